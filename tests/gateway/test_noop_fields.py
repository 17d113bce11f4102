"""A field sent at the value that asks for nothing (OpenAI's documented default, or null) is no field to refuse: an app
whose SDK sends `store: false`, `metadata: {}` or `frequency_penalty: 0` with every call broke on every model that is
not OpenAI's, refused a 400 for a request each serves as asked. The official SDKs drive a real gateway on 127.0.0.1 in
front of each kind of upstream it can reach (Anthropic's Messages API, Bedrock Converse, Gemini, an OpenAI-format
server): each such value is answered, and what the upstream receives is what it receives without it; a value that does
ask for something (n=2, logprobs, audio out, stored completions) is still refused by name before any call."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from helpers.claude_gateway import ClaudeGateway
from helpers.openai_samples import TOOL

pytestmark = pytest.mark.slow
USER = [{"role": "user", "content": "Weather in Paris?"}]
# Each route the gateway serves, and how to read what its upstream received last.
ROUTES = ("claude", "haiku", "gemini", "fast")
# Each OpenAI field at the value that asks for nothing (OpenAI's API reference: its default, or null), as the openai
# SDK sends it; a null through extra_body, which the SDK would leave out as a named argument's NOT_GIVEN.
NOOPS: list[tuple[str, dict[str, Any]]] = [
    ("modalities", {"modalities": ["text"]}),
    ("store", {"store": False}),
    ("store", {"extra_body": {"store": None}}),
    ("n", {"n": 1}),
    ("logprobs", {"logprobs": False}),
    ("top_logprobs", {"extra_body": {"top_logprobs": None}}),
    ("service_tier", {"service_tier": "auto"}),
    ("service_tier", {"service_tier": "default"}),
    ("metadata", {"metadata": {}}),
    ("frequency_penalty", {"frequency_penalty": 0}),
    ("presence_penalty", {"presence_penalty": 0}),
    ("reasoning_effort", {"extra_body": {"reasoning_effort": None}}),
    ("prediction", {"extra_body": {"prediction": None}}),
    ("audio", {"extra_body": {"audio": None}}),
    ("logit_bias", {"logit_bias": {}}),
    ("logit_bias", {"extra_body": {"logit_bias": None}}),
    ("seed", {"extra_body": {"seed": None}}),
    ("parallel_tool_calls", {"tools": [TOOL], "parallel_tool_calls": True}),
    ("tool_choice", {"tools": [TOOL], "tool_choice": "auto"}),
]
# The fields an upstream has a place of its own for, where it gets the no-op value as sent (OpenAI's: all; Gemini's
# penalties; a tool choice of auto, said outright), and that place in the body it receives (else the field's name).
CARRIED = {
    "fast": {field for field, _ in NOOPS},
    "gemini": {"frequency_penalty", "presence_penalty", "tool_choice"},
    "claude": {"tool_choice", "service_tier"},  # Anthropic's own service_tier, whose "auto" is its default
    "haiku": {"tool_choice"},
}
PLACES = {
    ("gemini", "frequency_penalty"): ("generationConfig", "frequencyPenalty"),
    ("gemini", "presence_penalty"): ("generationConfig", "presencePenalty"),
    ("gemini", "tool_choice"): ("toolConfig",),
    ("haiku", "tool_choice"): ("toolConfig", "toolChoice"),
}


def without(body: dict[str, Any], place: tuple[str, ...]) -> dict[str, Any]:
    """`body` without the key at `place` (a path of keys)."""
    head, *rest = place
    if not rest:
        return {k: v for k, v in body.items() if k != head}
    return {**body, head: without(body[head], tuple(rest))}


# Values that ask for what no API but OpenAI's has: still refused by name, before any call.
ASKING = [
    ("n", {"n": 2}),
    ("logprobs", {"logprobs": True}),
    ("modalities", {"modalities": ["text", "audio"]}),
    ("store", {"store": True}),  # not to Gemini, which has a `store` of its own (its request logging)
    ("logit_bias", {"logit_bias": {"50256": -100}}),
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    served = ClaudeGateway(tmp_path_factory.mktemp("noop") / "ledger.duckdb", {}, gemini_models={"gemini": FLASH})
    yield served
    served.stack.close()


FLASH = "gemini-2.5-flash"


def received(gateway: ClaudeGateway, route: str) -> Any:
    """What `route`'s upstream received last: the Messages API body, the Converse params, the GenerateContentRequest
    or the chat-completions body."""
    sent = {
        "claude": lambda: gateway.scripted.requests[-1][1],
        "haiku": lambda: gateway.sent[-1],
        "gemini": lambda: gateway.gemini_sent[-1],
        "fast": lambda: gateway.upstream.last,
    }
    return sent[route]()


def calls(gateway: ClaudeGateway) -> int:
    return len(gateway.scripted.requests) + len(gateway.sent) + len(gateway.gemini_sent) + len(gateway.upstream.bodies)


def chat(gateway: ClaudeGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("field", "sent"), NOOPS, ids=[f"{f}={s}" for f, s in NOOPS])
def test_an_openai_field_asking_nothing_is_answered_and_changes_nothing_upstream(gateway, route, field, sent) -> None:
    client = chat(gateway)
    tools = {"tools": sent["tools"]} if "tools" in sent else {}
    client.chat.completions.create(model=route, messages=USER, max_tokens=16, **tools)
    plain = received(gateway, route)
    reply = client.chat.completions.with_raw_response.create(model=route, messages=USER, max_tokens=16, **sent)
    assert reply.status_code == 200, reply.text
    assert reply.parse().choices
    asked = received(gateway, route)
    if field in CARRIED.get(route, ()):  # an API with the field gets it as sent (the same no-op), and nothing else
        asked = without(asked, PLACES.get((route, field), (field,)))
    assert asked == plain


@pytest.mark.parametrize("route", ROUTES)
def test_usage_asked_of_a_stream_is_answered(gateway, route) -> None:
    stream = chat(gateway).chat.completions.create(
        model=route, messages=USER, max_tokens=16, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("route", ("claude", "haiku", "fast"))
def test_an_end_user_id_reaches_each_api_with_a_field_for_it(gateway, route) -> None:
    """Gemini has none: there it is refused by name, unless the model's config says to send requests without it
    (`omit_end_user_id`: test_anthropic_messages)."""
    reply = chat(gateway).chat.completions.create(model=route, messages=USER, max_tokens=16, user="end-user-1")
    assert reply.choices and "end-user-1" in str(received(gateway, route))


@pytest.mark.parametrize(
    ("route", "field", "sent"),
    [(r, f, s) for r in ("claude", "haiku", "gemini") for f, s in ASKING if (r, f) != ("gemini", "store")],
)
def test_a_field_asking_for_something_is_still_refused_by_name_before_any_call(gateway, route, field, sent) -> None:
    client, before = chat(gateway), calls(gateway)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=route, messages=USER, max_tokens=16, **sent)
    assert refused.value.body["param"] == field and field in refused.value.message, refused.value.message
    assert calls(gateway) == before


# The anthropic SDK's fields at the value that asks for nothing (Anthropic's API reference: its default, or empty).
ANTHROPIC_NOOPS: list[tuple[str, dict[str, Any]]] = [
    ("metadata", {"metadata": {}}),
    ("service_tier", {"service_tier": "auto"}),
    ("stop_sequences", {"stop_sequences": []}),
    ("top_k", {"extra_body": {"top_k": None}}),
    ("tool_choice", {"tools": [{"name": "get_weather", "input_schema": TOOL["function"]["parameters"]}]}),
]


@pytest.mark.parametrize("route", ("haiku", "gemini", "fast"))
@pytest.mark.parametrize(("field", "sent"), ANTHROPIC_NOOPS, ids=[f for f, _ in ANTHROPIC_NOOPS])
def test_an_anthropic_field_asking_nothing_is_answered_and_changes_nothing_upstream(
    gateway, route, field, sent
) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0)
    plain_args = {"tools": sent["tools"]} if "tools" in sent else {}
    if field == "tool_choice":
        sent = {**sent, "tool_choice": {"type": "auto"}}
    client.messages.create(model=route, messages=USER, max_tokens=16, **plain_args)
    plain = received(gateway, route)
    answer = client.messages.with_raw_response.create(model=route, messages=USER, max_tokens=16, **sent)
    assert answer.status_code == 200 and answer.parse().content
    asked = received(gateway, route)
    if field in CARRIED.get(route, ()) or route == "fast":  # OpenAI's service_tier "auto" is its default too
        asked = without(asked, PLACES.get((route, field), (field,)))
    assert asked == plain
