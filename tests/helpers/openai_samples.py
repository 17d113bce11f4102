"""One sample value for each field of OpenAI's chat-completions, Responses and embeddings requests (the installed
`openai` package's CompletionCreateParams, ResponseCreateParams and EmbeddingCreateParams), for the tests that send every field to a route and check it is carried or refused by name."""

from __future__ import annotations

import typing

from openai.types import embedding_create_params
from openai.types.chat import completion_create_params
from openai.types.responses import response_create_params

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


# One sample value per field of OpenAI's embeddings request (EmbeddingCreateParams), as SAMPLES is for chat.
EMBEDDING_SAMPLES: dict[str, typing.Any] = {"dimensions": 256, "encoding_format": "base64", "user": "u-1"}
EMBEDDING_GATEWAY_FIELDS = {"model", "input"}


def embedding_fields() -> list[str]:
    return sorted(typing.get_type_hints(embedding_create_params.EmbeddingCreateParams))


RESPONSES_TOOL = {
    "type": "function",
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
# One sample value per field of OpenAI's Responses request (ResponseCreateParams), as SAMPLES is for chat.
RESPONSES_SAMPLES: dict[str, typing.Any] = {
    "access_programs": {"cyber": "standard"},
    "background": True,
    "background_options": {"completion_window": "2h"},
    "context_management": [{"type": "compaction", "compact_threshold": 1000}],
    "conversation": "conv_1",
    "image": {"context_compression": "disabled"},
    "include": ["message.output_text.logprobs"],
    "instructions": "Be brief.",
    "max_output_tokens": 20,
    "max_tool_calls": 3,
    "metadata": {"team": "search"},
    "moderation": {"model": "omni-moderation-latest"},
    "parallel_tool_calls": False,
    "previous_response_id": "resp_1",
    "prompt": {"id": "pmpt_1"},
    "prompt_cache_key": "tenant-1",
    "prompt_cache_options": {"mode": "implicit", "ttl": "30m"},
    "prompt_cache_retention": "24h",
    "reasoning": {"effort": "low"},
    "safety_identifier": "user-hash",
    "service_tier": "flex",
    "store": True,
    "temperature": 0.5,
    "text": {"verbosity": "low"},
    "tool_choice": "required",
    "tools": [RESPONSES_TOOL],
    "top_logprobs": 2,
    "top_p": 0.5,
    "truncation": "auto",
    "user": "u-1",
}
RESPONSES_COMPANIONS = {"tool_choice": {"tools": [RESPONSES_TOOL]}, "parallel_tool_calls": {"tools": [RESPONSES_TOOL]}}
RESPONSES_GATEWAY_FIELDS = {"model", "input", "stream", "stream_options"}  # used by the gateway itself


def responses_fields() -> list[str]:
    return sorted(typing.get_type_hints(response_create_params.ResponseCreateParamsBase))
