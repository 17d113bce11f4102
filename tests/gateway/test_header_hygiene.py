"""The edge refuses a header whose value holds a CR, LF or NUL, naming the first such header; any other byte passes."""

from __future__ import annotations

import pytest

from tokenomy.gateway.hygiene import header_problem

CLEAN = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"), (b"x-tokenomy-tags", b"a=\xe9,b=\t1")]


@pytest.mark.parametrize("bad", [b"\r", b"\n", b"\x00", b"\r\n"])
@pytest.mark.parametrize("where", [0, 2])
def test_a_value_with_a_line_break_or_nul_is_named(bad: bytes, where: int) -> None:
    headers = list(CLEAN)
    headers.insert(where + 1, (b"x-tokenomy-task", b"a" + bad + b"b"))
    headers.append((b"x-later", b"\n"))  # only the first is named
    assert header_problem(headers) == "x-tokenomy-task"


def test_clean_headers_pass() -> None:
    assert header_problem(CLEAN) is None and header_problem([]) is None
    assert header_problem([(b"x-bytes", bytes(b for b in range(256) if b not in (0, 10, 13)))]) is None
