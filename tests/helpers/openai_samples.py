"""One sample value for each field of OpenAI's chat-completions request (the installed `openai` package's
CompletionCreateParams), for the tests that send every field to a route and check it is carried or refused by name."""

from __future__ import annotations

import typing

from openai.types.chat import completion_create_params

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

# A conversation in which get_weather was called and answered, as an OpenAI caller sends it back.
WEATHER_CALLED: list[dict[str, typing.Any]] = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
]

# One sample value per field of OpenAI's request (CompletionCreateParams). A field the installed `openai`
# package adds later fails the tests of every field (tests/gateway) until it gets a sample here.
SAMPLES: dict[str, typing.Any] = {
    "audio": {"voice": "alloy", "format": "wav"},
    "frequency_penalty": 0.25,
    "function_call": "auto",
    "functions": [{"name": "f", "parameters": {"type": "object", "properties": {}}}],
    "logit_bias": {"50256": -100},
    "logprobs": True,
    "max_completion_tokens": 7,
    "max_tokens": 7,
    "metadata": {"k": "v"},
    "modalities": ["text", "audio"],  # ["text"], its default, asks nothing: every model takes it
    "moderation": {"model": "omni-moderation-latest"},
    "n": 2,
    "parallel_tool_calls": False,
    "prediction": {"type": "content", "content": "hello"},
    "presence_penalty": 0.25,
    "prompt_cache_key": "tenant-1",
    "prompt_cache_options": {"mode": "implicit", "ttl": "30m"},
    "prompt_cache_retention": "24h",
    "reasoning_effort": "low",
    "response_format": {"type": "json_object"},
    "safety_identifier": "user-hash",
    "seed": 7,
    "service_tier": "flex",
    "stop": ["END"],
    "store": True,
    "temperature": 0.5,
    "tool_choice": "required",
    "tools": [TOOL],
    "top_logprobs": 2,
    "top_p": 0.5,
    "user": "u-1",
    "verbosity": "low",
    "web_search_options": {"search_context_size": "low"},
}
GATEWAY_FIELDS = {"model", "messages", "stream", "stream_options"}  # used by the gateway itself (tested elsewhere)


def request_fields() -> list[str]:
    return sorted(typing.get_type_hints(completion_create_params.CompletionCreateParamsStreaming))
