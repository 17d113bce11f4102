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
