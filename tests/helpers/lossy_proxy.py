"""A TCP proxy in front of an emulator that loses answers: the server did the work, the client saw the connection
drop. A provider accepted the create, and its answer never came back."""

from __future__ import annotations

import socket
import threading


class LossyProxy:
    """Forwards HTTP/1.1 requests on 127.0.0.1 to `target_url`'s host and port, one upstream connection each. The
    first `lose` requests whose request line starts with `prefix` (or one of them) reach the server, which
    answers; the proxy then closes the client's connection without that answer. `lost` counts them."""

    def __init__(self, target_url: str, prefix: bytes | tuple[bytes, ...], lose: int) -> None:
        host_port = target_url.split("//", 1)[1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        self.target = (host, int(port))
        self.prefix = prefix
        self.lose = lose
        self.lost = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def __enter__(self) -> LossyProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            buffered = b""
            while True:
                request, buffered = _read_request(client, buffered)
                if request is None:
                    return
                head, _, body = request.partition(b"\r\n\r\n")
                # One upstream connection per request, told to close after its answer, so the answer ends at EOF.
                lines = [x for x in head.split(b"\r\n") if not x.lower().startswith(b"connection:")]
                forwarded = b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body
                with socket.create_connection(self.target) as upstream:
                    upstream.sendall(forwarded)
                    answer = b""
                    while chunk := upstream.recv(65536):
                        answer += chunk
                with self._lock:
                    losing = request.startswith(self.prefix) and self.lost < self.lose
                    self.lost += losing
                if losing:
                    return  # the server answered; the client never hears it
                client.sendall(answer)
                return  # the answer says `connection: close`: the client opens a new connection


def _read_request(sock: socket.socket, buffered: bytes) -> tuple[bytes | None, bytes]:
    """One request (head and Content-Length body) and what was read past it; None when the client closed."""
    while b"\r\n\r\n" not in buffered:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        buffered += chunk
    head, _, rest = buffered.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]
