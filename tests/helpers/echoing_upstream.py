"""An upstream that answers every request with a 401 whose message repeats the credentials it was sent, as some
proxies do: what the secret-scrubbing tests feed the SDKs and the gateway."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from helpers import free_port


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        sent = {h: self.headers.get(h) for h in ("authorization", "x-api-key", "api-key") if self.headers.get(h)}
        body = json.dumps(
            {
                "type": "error",
                "error": {"type": "authentication_error", "message": f"Incorrect API key provided: {sent}"},
            }
        ).encode()
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def echoing_upstream() -> Iterator[str]:
    """Its base URL (http://127.0.0.1:PORT) while it runs."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
