"""A throwaway PostgreSQL cluster on a free port (owned by the `postgres` user when run as root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from helpers import free_port, require


class PostgresCluster:
    """initdb on creation; start/stop as a test needs (e.g. to take the server down mid-run); remove at the end."""

    def __init__(self) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        require(bool(bins), "PostgreSQL server binaries not found (run scripts/install-system-deps.sh)")
        self.bindir = bins[-1]
        self.base = Path(tempfile.mkdtemp(prefix="tokenomy-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.base, user.pw_uid, user.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*self.prefix, f"{self.bindir}/initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run(
            [
                *self.prefix,
                f"{self.bindir}/pg_ctl",
                "-D",
                str(self.data),
                "-l",
                str(self.base / "server.log"),
                "-w",
                "-o",
                f"-p {self.port} -k {self.base} -h 127.0.0.1 -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, f"{self.bindir}/pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
