"""An upstream whose connection breaks halfway through its answer: every POST gets a 200 with the first half of a JSON
body (the model generated, and the provider billed, the whole of it); a path starting `/silent` is closed without a
word (the request may never have run)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def cut_off_upstream(answer: bytes) -> Iterator[str]:
    """The upstream's base URL while inside."""

    class CutOff(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            if not self.path.startswith("/silent"):
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer[: len(answer) // 2])
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), CutOff)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
