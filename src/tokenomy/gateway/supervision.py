"""Workers started by `tokenomy serve --workers N` must not outlive their supervisor."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


def exit_with_parent(parent: int) -> None:
    """A worker must not outlive its supervisor `parent` (a SIGKILLed supervisor left workers serving the port): on
    Linux the kernel sends SIGTERM when the parent dies; elsewhere a thread watches the parent's pid."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
                if os.getppid() != parent:  # it died before the call: nobody would send the signal
                    os.kill(os.getpid(), signal.SIGTERM)
                return
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="tokenomy-parent-watch", daemon=True).start()
