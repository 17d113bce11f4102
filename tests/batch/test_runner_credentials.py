"""A background batch runner is told its ledger without putting a postgresql:// password on its command line, which
every user of the machine can read (`ps`, /proc/PID/cmdline); its environment only its own user can."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

from tokenomy.commands import batch_run


def test_the_detached_runner_gets_its_ledger_url_outside_its_command_line(tmp_path: Path, monkeypatch) -> None:
    url = "postgresql://app:s3cretPass@127.0.0.1:5432/ledger"
    started: dict = {}

    class Started:
        pid = 4242

        def __init__(self, args, **kwargs) -> None:
            started.update(args=args, env=kwargs.get("env"))

    monkeypatch.setattr(subprocess, "Popen", Started)
    monkeypatch.setattr("tokenomy.batch.runner_process.journal_dir", lambda store: tmp_path)
    batch_run.spawn_resume(SimpleNamespace(store=SimpleNamespace(url=url)), "job1")
    assert not any("s3cretPass" in arg for arg in started["args"]), started["args"]
    assert started["env"]["TOKENOMY_LEDGER"] == url  # the runner still opens the same ledger
