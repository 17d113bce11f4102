"""One sample value for each field of google-genai's GenerateContentConfig (the installed package's), for the tests
that send every field to a route and check it is carried or refused by name: a field a newer SDK adds fails them until
it gets a sample here."""

from __future__ import annotations

import typing

from google.genai import types

WEATHER = types.FunctionDeclaration(
    name="get_weather",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
SAMPLES: dict[str, typing.Any] = {
    "audio_timestamp": True,
    "audio_transcription_config": {"language_codes": ["en-US"]},
    "candidate_count": 2,
    "continuation_token": b"abc",
    "enable_enhanced_civic_answers": True,
    "frequency_penalty": 0.25,
    "generation_output_config": {"output_uri_prefix": "gs://bucket/out"},
    "image_config": {"aspect_ratio": "16:9"},
    "labels": {"team": "search"},
    "logprobs": 2,
    "max_output_tokens": 20,
    "media_resolution": "MEDIA_RESOLUTION_LOW",
    "model_armor_config": {"prompt_template_name": "template"},
    "model_selection_config": {"feature_selection_preference": "PRIORITIZE_QUALITY"},
    "presence_penalty": 0.25,
    "response_json_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
    "response_logprobs": True,
    "response_mime_type": "application/json",
    "response_modalities": ["AUDIO"],
    "response_schema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
    "routing_config": {"auto_mode": {"model_routing_preference": "BALANCED"}},
    "safety_settings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_ONLY_HIGH"}],
    "seed": 7,
    "service_tier": "flex",
    "speech_config": "Kore",
    "stop_sequences": ["END"],
    "store": True,
    "system_instruction": "Be brief.",
    "temperature": 0.5,
    "thinking_config": {"thinking_budget": 1024},
    "tool_config": {"function_calling_config": {"mode": "ANY"}},
    "tools": [types.Tool(function_declarations=[WEATHER])],
    "top_k": 3,
    "top_p": 0.5,
    # The SDK's own settings: they change how it calls (or what it gives back), not what it sends.
    "automatic_continuation": True,
    "automatic_function_calling": {"disable": True},
    "http_options": {"timeout": 30_000},
    "should_return_http_response": True,
}
# What a sample needs beside it to be a request at all.
COMPANIONS: dict[str, dict[str, typing.Any]] = {
    "tool_config": {"tools": SAMPLES["tools"]},
    "response_schema": {"response_mime_type": "application/json"},
    "response_json_schema": {"response_mime_type": "application/json"},
}
SDK_ONLY = {"automatic_continuation", "automatic_function_calling", "http_options", "should_return_http_response"}


def config_fields() -> list[str]:
    return sorted(types.GenerateContentConfig.model_fields)
