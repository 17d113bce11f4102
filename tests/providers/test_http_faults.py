"""What an upstream's error says: a prompt too long for the model's context window, as each API words it, is told
apart from the other client errors (which end a call where this one moves on to a model with a larger window)."""

from __future__ import annotations

import pytest

from tokenomy.providers.http_faults import exceeds_context_window

TOO_LONG = [
    (None, "Anthropic BadRequestError: prompt is too long: 215000 tokens > 200000 maximum"),
    (
        None,
        "input length and `max_tokens` exceed context limit: 187537 + 20000 > 200000, decrease input length or "
        "`max_tokens` and try again",
    ),
    (None, "Bedrock ValidationException: Input is too long for requested model."),
    (
        None,
        "Gemini INVALID_ARGUMENT (400): The input token count (1200000) exceeds the maximum number of tokens "
        "allowed (1048576).",
    ),
    (
        "context_length_exceeded",
        "Error code: 400 - {'error': {'message': 'Your input exceeds the context window of "
        "this model.', 'code': 'context_length_exceeded'}}",
    ),
    (None, "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens."),  # vLLM: no code
    ("exceed_context_size_error", "the request exceeds the available context size, try increasing it"),  # llama.cpp
]
OTHER = [
    ("invalid_value", "Invalid value for 'temperature': expected a number between 0 and 2."),
    (None, "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens for claude-sonnet-4"),
    ("string_above_max_length", "Invalid 'messages[0].content': string too long."),
    (None, "Bedrock ValidationException: The provided model identifier is invalid."),
]


@pytest.mark.parametrize(("code", "message"), TOO_LONG)
def test_a_prompt_too_long_for_the_window_is_read_as_such(code, message):
    assert exceeds_context_window(code, message)


@pytest.mark.parametrize(("code", "message"), OTHER)
def test_other_client_errors_are_not(code, message):
    assert not exceeds_context_window(code, message)
