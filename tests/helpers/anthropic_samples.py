"""One sample value for each field of Anthropic's Messages request (the installed `anthropic` package's
MessageCreateParams and MessageCountTokensParams), for the tests that send every field to a route and check it is
carried or refused by name: a field a newer SDK adds fails them until it gets a sample here."""

from __future__ import annotations

import typing

from anthropic.types import message_count_tokens_params, message_create_params

TOOL = {"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
SCHEMA = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": False}

SAMPLES: dict[str, typing.Any] = {
    "cache_control": {"type": "ephemeral"},
    "container": "container_1",
    "diagnostics": {"cache_miss_reason": True},
    "inference_geo": "global",
    "metadata": {"user_id": "u-1"},
    "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    "service_tier": "auto",
    "speed": "standard",
    "stop_sequences": ["END"],
    "system": "Be brief.",
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "tool_choice": {"type": "any"},
    "tools": [TOOL],
    "user_profile_id": "up_1",
    "workspace_id": "wrkspc_1",
}
# What a sample needs beside it to be a request at all (a tool choice chooses among tools).
COMPANIONS: dict[str, dict[str, typing.Any]] = {"tool_choice": {"tools": [TOOL]}}
GATEWAY_FIELDS = {"model", "messages", "max_tokens"}  # used by the gateway itself (tested elsewhere)
# Parameters the SDK sends as headers, which no upstream of the gateway can take: refused by name
# (test_the_sdks_workspace_and_user_profile_are_refused_by_name_not_dropped).
HEADER_FIELDS = {"workspace_id", "user_profile_id"}


def request_fields() -> list[str]:
    return sorted(typing.get_type_hints(message_create_params.MessageCreateParamsBase))


def count_fields() -> list[str]:
    return sorted(typing.get_type_hints(message_count_tokens_params.MessageCountTokensParams))
