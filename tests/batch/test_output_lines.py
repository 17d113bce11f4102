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


def test_the_error_stored_for_a_garbled_line_quotes_its_start_not_the_prompt_it_repeats():
    from tokenomy.batch.output_lines import broken_line, misshapen_or, unplaced

    # Stored in batch_results and shown by `batch results`: the line's first 200 characters held the prompt Bedrock
    # (modelInput) and Vertex AI (request) repeat, kept though store_prompts was off.
    bedrock = b'{"recordId": "r9", "modelInput": {"messages": [{"role": "user", "content": "Patient file 1187'
    vertex = "{'status': '', 'request': {'contents': [{'parts': [{'text': 'Patient file 1187"
    failed = broken_line(bedrock, "line 3 of s3://b/o.out", "r9", "m", [])
    assert failed.error.startswith('unreadable output line (line 3 of s3://b/o.out): {"recordId": "r9", "modelInput":')
    [stray] = unplaced([("line 4 of gs://b/p.jsonl", vertex)], "m")
    [nameless] = unanswered_failures(["r1"], set(), [("line 5 of gs://b/p.jsonl", vertex)], "m")

    def shape(item, model):
        raise KeyError("modelOutput")

    odd = misshapen_or(
        shape,
        {"recordId": "r8", "modelInput": {"messages": [{"content": "Patient file 1187"}]}},
        "m",
        "recordId",
        "line 6",
    )
    for result in (failed, stray, nameless, odd):
        assert "Patient file" not in result.error and "line" in result.error, result.error
    assert odd.error.startswith("malformed output line (line 6: KeyError): ") and '"recordId": "r8"' in odd.error


def test_the_usage_a_garbled_line_still_shows_is_read_as_each_backend_reads_a_whole_lines():
    # A line garbled in its answer's text (a raw control character) still shows its usage: the call was billed.
    from tokenomy.batch.bedrock_bodies import output_usage
    from tokenomy.batch.output_lines import usage_shown
    from tokenomy.batch.vertex_backend import _shown_usage
    from tokenomy.chat_response import Usage

    claude = (
        '{"recordId": "r1", "modelInput": {"messages": []}, "modelOutput": {"content": [{"type": "text", '
        '"text": "Hi\x01"}], "usage": {"input_tokens": 12, "output_tokens": 5, "cache_read_input_tokens": 3}}}'
    )
    nova = (
        '{"recordId": "r2", "modelOutput": {"output": {"message": {"content": [{"text": "\x01"}]}}, '
        '"usage": {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13}}}'
    )
    vertex = (
        '{"request": {}, "response": {"candidates": [{"content": {"parts": [{"text": "\x01"}]}}], '
        '"usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 2, "totalTokenCount": 9}}}'
    )
    assert usage_shown(claude, "usage", output_usage) == Usage(12, 5, 3, 0)
    assert usage_shown(nova, "usage", output_usage) == Usage(9, 4)
    assert usage_shown(vertex, "usageMetadata", _shown_usage) == Usage(7, 2)
    # Cut before its usage, or a count no answer has: none is read, and the record is a failure without usage.
    assert usage_shown(claude[:150], "usage", output_usage) is None
    assert usage_shown(claude.replace("12", "-12"), "usage", output_usage) is None
