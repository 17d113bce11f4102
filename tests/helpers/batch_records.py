"""Batch input lines and polling shared by the Bedrock and OpenAI batch tests."""

from __future__ import annotations

import json
import time

from tokenomy.batch.backends import FINAL_STATES, STATES, BatchBackend
from tokenomy.batch.formats import read_records


def plain(n: int, max_tokens: int = 8, start: int = 0) -> list[str]:
    return [
        json.dumps({"id": f"r{i}", "prompt": f"topic{i} please summarise briefly", "max_tokens": max_tokens})
        for i in range(start, start + n)
    ]


def records(lines: list[str]):
    good, bad = read_records(lines)
    assert not bad
    return good


def wait(backend: BatchBackend, handle: str, timeout: float = 120) -> list[str]:
    """Poll until final; the distinct normalised states seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, _ = backend.status(handle)
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in FINAL_STATES:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"job {handle} not final after {timeout}s: {seen}")


def in_order(seen: list[str]) -> bool:
    return [STATES.index(s) for s in seen] == sorted(STATES.index(s) for s in seen)


def squeezed(smalls: int, bigs: int, size) -> tuple[list[str], dict[str, int]]:
    """`smalls` short plain lines then `bigs` long ones (3.5 times as long as `size` counts a short one: as a backend
    sends it), and Bedrock-like quotas scaled down to them: 3 records a job at least, and bytes a job for two long
    records and a short one (2 long + 1 short), no more. Ids r0..r9, one digit each, so every short line is as long."""
    assert smalls + bigs <= 10

    def line(i: int, prompt_chars: int) -> str:
        return json.dumps({"id": f"r{i}", "prompt": "x" * prompt_chars, "max_tokens": 8})

    short = size(records([line(0, 40)])[0])
    long_chars = 40 + round(2.5 * short)
    lines = [line(i, 40) for i in range(smalls)] + [line(i, long_chars) for i in range(smalls, smalls + bigs)]
    sizes = [size(rec) for rec in records(lines)]
    assert set(sizes[:smalls]) == {short}
    job_bytes = 2 * sizes[-1] + short
    quotas = {
        "min_records_per_job": 3,
        "max_records_per_job": 50,
        "max_records_per_file": 50,
        "max_bytes_per_job": job_bytes,
        "max_bytes_per_file": job_bytes,
    }
    return lines, quotas
