"""Output lines that are not JSON, named in a log by where they are and their size, never by their text."""

from __future__ import annotations

import logging

from tokenomy.batch.output_lines import unanswered_failures


def test_lines_left_out_are_logged_by_where_and_size_not_by_the_prompt_they_echo(caplog):
    # A Bedrock output line repeats its modelInput: its first 200 characters, logged, carried the prompt.
    torn = b'{"recordId": "r9", "modelInput": {"messages": [{"role": "user", "content": "Patient file 1187'
    lines = [("line 3 of s3://b/out.jsonl.out", torn)]
    with caplog.at_level(logging.WARNING):
        assert list(unanswered_failures(["r1"], {"r1"}, lines, "m")) == []
    assert "Patient file" not in caplog.text, caplog.text
    assert "line 3 of s3://b/out.jsonl.out" in caplog.text and f"{len(torn)} bytes" in caplog.text
