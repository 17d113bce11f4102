"""Run an emulator app with uvicorn: in the foreground (the CLI) or in a background thread (tests, demos)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Literal


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerThread:
    """`with ServerThread(app) as url:` serves `app` on a free loopback port until the block ends."""

    def __init__(
        self,
        app,
        host: str = "127.0.0.1",
        port: int | None = None,
        startup_timeout: float = 30.0,
        lifespan: Literal["auto", "on", "off"] = "off",
    ) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=self.port, log_level="warning", access_log=False, lifespan=lifespan)
        )
        self.thread = threading.Thread(target=self.server.run, name=f"emulator:{self.port}", daemon=True)
        self.startup_timeout = startup_timeout

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"emulator did not start on {self.url}")
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def check_listen(host: str, port: int) -> None:
    """Try the address before uvicorn does: uvicorn logs the bind error and exits 3 without saying what to change
    (a port in use, a host name that does not resolve)."""
    from tokenomy.errors import ConfigError

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or --host, "
            "or stop the process using it"
        ) from None


def serve(app, host: str, port: int) -> None:
    """Serve in the foreground until Ctrl-C."""
    import uvicorn

    check_listen(host, port)
    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="off")
