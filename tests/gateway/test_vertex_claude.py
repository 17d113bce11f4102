"""Claude on Vertex AI on the gateway: the `anthropic` SDK's `AnthropicVertex` → `tokenomy serve` (rawPredict,
streamRawPredict, count-tokens:rawPredict) → a Bedrock model (the emulator), Anthropic's API (a scripted upstream)
or an OpenAI-format model. Tools, images, streamed and not, the ledger, keys, and malformed bodies refused by name."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import anthropic
import httpx
import httpx2
import pytest

from helpers import stand_in_aws_keys
from helpers.claude_gateway import HAIKU, ClaudeGateway
from helpers.recording_openai import arguments_for
from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3  # every byte value: a re-encoding on the way changes it
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
PREFIX = "/v1/projects/my-project/locations/us-east5/publishers/anthropic/models"
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def vertex_body(**fields) -> dict:
    return {"anthropic_version": "vertex-2023-10-16", "max_tokens": 20, "messages": ASK, **fields}


class Served(ClaudeGateway):
    """The Claude gateway (helpers.claude_gateway) with Vertex's own model names as routes (an application keeps the
    names it sends); the `anthropic` SDK's AnthropicVertex on it."""

    def __init__(self, ledger) -> None:
        super().__init__(ledger, {"claude-sonnet-4-5@20250929": {"model": "claude"}, "team/haiku": {"model": "haiku"}})
        self.sdk = anthropic.AnthropicVertex(
            base_url=self.url + "/v1", region="us-east5", project_id="my-project", access_token="unused", max_retries=0
        )


@pytest.fixture
def served(tmp_path):
    served = Served(tmp_path / "ledger.duckdb")
    yield served
    served.stack.close()


def test_anthropic_vertex_carries_a_tool_turn_with_an_image_to_bedrock_and_the_ledger_has_it(served) -> None:
    sdk, sent = served.sdk, served.sent
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this, and the weather there?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(IMAGE).decode()},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "18C sunny"}]},
    ]
    raw = sdk.messages.with_raw_response.create(
        model="haiku",
        max_tokens=20,
        messages=messages,
        system="Be brief.",
        tools=[WEATHER],
        extra_body={"temperature": 0.2},
    )
    message = raw.parse()
    assert message.type == "message" and message.model == "haiku" and message.content[0].text
    assert message.stop_reason in ("end_turn", "max_tokens") and message.usage.input_tokens > 0
    params = sent[-1]
    user, assistant, results = params["messages"]
    assert user["content"][1]["image"] == {"format": "png", "source": {"bytes": IMAGE}}
    assert assistant["content"] == [
        {"toolUse": {"toolUseId": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}}
    ]
    assert results["content"][0]["toolResult"]["toolUseId"] == "tu_1"
    assert params["system"] == [{"text": "Be brief."}]
    assert params["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    assert params["inferenceConfig"] == {"maxTokens": 20, "temperature": 0.2}
    # anthropic_version (the SDK's own API version here) is Vertex's envelope, not a field for the model
    assert "additionalModelRequestFields" not in params
    rows = served.rows(raw.headers["request-id"])
    assert [(r.route, r.outcome, r.image_count) for r in rows] == [("haiku", "ok", 1)]
    assert rows[0].input_tokens == message.usage.input_tokens and rows[0].cost_usd > 0
    assert Decimal(message.model_extra["tokenomy"]["cost_usd"]) == rows[0].cost_usd


def test_stream_raw_predict_sends_anthropics_events_and_the_ledger_has_the_call(served) -> None:
    with served.sdk.messages.stream(model="haiku", max_tokens=30, messages=ASK) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
        request_id = stream.response.headers["request-id"]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and "text" in kinds
    assert final.content[0].text and final.usage.output_tokens > 0
    rows = served.rows(request_id)
    assert [(r.route, r.outcome) for r in rows] == [("haiku", "ok")]
    assert rows[0].output_tokens == final.usage.output_tokens and rows[0].cost_usd > 0


def test_the_paths_the_sdk_uses_and_a_raw_request_with_vertexs_version(served) -> None:
    url, sdk = served.url, served.sdk
    seen: list[str] = []
    client = sdk.copy(http_client=httpx2.Client(event_hooks={"request": [lambda r: seen.append(r.url.path)]}))
    client.messages.create(model="haiku", max_tokens=5, messages=ASK)
    client.messages.create(model="haiku", max_tokens=5, messages=ASK, stream=True).close()
    assert seen == [f"{PREFIX}/haiku:rawPredict", f"{PREFIX}/haiku:streamRawPredict"]
    whole = httpx.post(f"{url}{PREFIX}/haiku:rawPredict", json=vertex_body())
    assert whole.status_code == 200 and whole.json()["content"][0]["type"] == "text"
    streamed = httpx.post(f"{url}{PREFIX}/haiku:streamRawPredict", json=vertex_body(stream=True))
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.startswith("event: message_start") and "event: message_stop" in streamed.text
    # A base URL without Vertex's /v1 reaches the same endpoint.
    bare = httpx.post(f"{url}{PREFIX.removeprefix('/v1')}/haiku:rawPredict", json=vertex_body())
    assert bare.status_code == 200


def test_a_route_named_with_a_slash_is_reached_whole_and_streamed(served) -> None:
    """The SDK percent-encodes a `/` in the model (.../models/team%2Fhaiku:rawPredict); the route of that name answers,
    not a 404 for a path the decoded slash split."""
    message = served.sdk.messages.create(model="team/haiku", max_tokens=5, messages=ASK)
    assert message.model == "team/haiku" and message.content[0].text
    with served.sdk.messages.stream(model="team/haiku", max_tokens=5, messages=ASK) as stream:
        request_id = stream.response.headers["request-id"]
        assert stream.get_final_message().content[0].text
    assert [(r.route, r.outcome) for r in served.rows(request_id)] == [("team/haiku", "ok")]


def test_tool_calls_from_an_openai_format_model_come_back_whole_and_streamed(served) -> None:
    sdk, upstream = served.sdk, served.upstream
    message = sdk.messages.create(model="fast", max_tokens=50, messages=ASK, tools=[WEATHER])
    assert message.stop_reason == "tool_use"
    assert [(b.type, b.name, b.input) for b in message.content] == [
        ("tool_use", "get_weather", json.loads(arguments_for("get_weather")))
    ]
    assert upstream.last["tools"][0]["function"]["name"] == "get_weather"
    with sdk.messages.stream(model="fast", max_tokens=50, messages=ASK, tools=[WEATHER]) as stream:
        fragments = [e.partial_json for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    assert "".join(fragments) == arguments_for("get_weather")
    assert final.content[0].type == "tool_use"
    turn = [
        *ASK,
        {"role": "assistant", "content": message.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": message.content[0].id, "content": "18C sunny"}],
        },
    ]
    answer = sdk.messages.create(model="fast", max_tokens=50, messages=turn, tools=[WEATHER])
    assert answer.content[0].type == "text"
    assert upstream.last["messages"][-1] == {
        "role": "tool",
        "tool_call_id": message.content[0].id,
        "content": "18C sunny",
    }


def test_a_route_to_anthropics_api_gets_the_model_and_the_beta_header_not_vertexs_envelope(served) -> None:
    sdk, scripted = served.sdk, served.scripted
    reply = sdk.beta.messages.create(
        model="claude", max_tokens=5, messages=ASK, betas=["context-1m-2025-08-07"], extra_body={"service_tier": "auto"}
    )
    assert reply.content[0].text == "Hi"
    headers, body = scripted.requests[-1]
    assert headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert body["model"] == "claude-sonnet-4-5-20250929" and body["service_tier"] == "auto"
    assert "anthropic_version" not in body
    with served.sdk.messages.stream(model="claude-sonnet-4-5@20250929", max_tokens=5, messages=ASK) as stream:
        assert stream.get_final_message().content[0].text == "Hi"
    assert scripted.requests[-1][1]["model"] == "claude-sonnet-4-5-20250929"


def test_count_tokens_on_vertex_counts_with_the_routes_model(served) -> None:
    counted = served.sdk.messages.count_tokens(model="haiku", messages=ASK, system="Be brief.")
    assert counted.input_tokens > 0
    assert served.sent[-1]["system"] == [{"text": "Be brief."}]  # the route's Bedrock model counted it
    counts = len(served.sent)
    refused = httpx.post(
        f"{served.url}{PREFIX}/count-tokens:rawPredict",
        json={"anthropic_version": "vertex-2023-10-16", "model": "haiku", "messages": ASK, "max_tokens": 5},
    )
    assert refused.status_code == 400 and refused.json()["error"]["message"].startswith("max_tokens: Extra inputs")
    assert len(served.sent) == counts  # a refused count reaches no model


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"anthropic_version": "vertex-2023-10-16", "max_tokens": NaN, "messages": []}', "max_tokens"),  # the edge's
        (json.dumps({"max_tokens": 5, "messages": ASK}).encode(), "anthropic_version: required"),
        (json.dumps(vertex_body(model="fast")).encode(), "model: the path names the model"),
        (json.dumps(vertex_body(stream=True)).encode(), "stream: True asks for the other method"),
        (json.dumps(vertex_body(stream="yes")).encode(), "stream: Input should be a boolean"),
        (json.dumps(vertex_body(max_tokens=0)).encode(), "max_tokens"),
        (
            json.dumps(
                vertex_body(
                    messages=[
                        {
                            "role": "user",
                            "content": [
                                {
                                    "type": "image",
                                    "source": {"type": "base64", "media_type": "image/png", "data": "not base64!"},
                                }
                            ],
                        }
                    ]
                )
            ).encode(),
            "messages.0.content.0",
        ),
    ],
)
def test_malformed_bodies_are_anthropic_400s_naming_the_field(served, body, named) -> None:
    answer = httpx.post(
        f"{served.url}{PREFIX}/haiku:rawPredict", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert named in error["error"]["message"]
    assert served.sent == []  # nothing reached the model


def test_the_sdk_raises_bad_requests_and_unknown_models_and_paths(served) -> None:
    sdk, url = served.sdk, served.url
    document = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.0\.content\.1"):
        sdk.messages.create(
            model="haiku",
            max_tokens=5,
            messages=[{"role": "user", "content": [{"type": "text", "text": "Read this"}, document]}],
        )
    with pytest.raises(anthropic.NotFoundError, match="`nope` does not exist on this gateway"):
        sdk.messages.create(model="nope", max_tokens=5, messages=ASK)
    with pytest.raises(anthropic.NotFoundError, match="`nope` does not exist on this gateway"):
        sdk.messages.create(model="nope", max_tokens=5, messages=ASK, stream=True)
    other = httpx.post(f"{url}{PREFIX}/haiku:predict", json=vertex_body())
    assert other.status_code == 404 and ":rawPredict and :streamRawPredict" in other.json()["error"]["message"]


def test_a_fault_inside_the_gateway_is_anthropics_api_error(served, monkeypatch) -> None:
    """A bug on Vertex's paths is answered in Anthropic's shape, as on /v1/messages: the SDK's error has the message."""
    from tokenomy.gateway import vertex_routes

    def broken(body, model, stream):
        raise RuntimeError("a bug")

    monkeypatch.setattr(vertex_routes, "_messages_body", broken)
    with pytest.raises(anthropic.InternalServerError) as crashed:
        served.sdk.messages.create(model="haiku", max_tokens=5, messages=ASK)
    assert crashed.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "internal error (RuntimeError); see the gateway's log"},
    }


def test_a_stream_that_fails_before_its_first_event_is_an_error_status(served) -> None:
    with pytest.raises(anthropic.APIStatusError) as failed:
        served.sdk.messages.create(model="down", max_tokens=5, messages=ASK, stream=True)
    assert failed.value.status_code == 502 and "upstream " in failed.value.message
    rows = served.rows(failed.value.response.headers["request-id"])
    assert rows and all(r.outcome != "ok" for r in rows)


def test_the_gateway_key_is_the_sdks_access_token_and_its_budget_holds(tmp_path, monkeypatch) -> None:
    from tokenomy.gateway.keys import KeyStore

    stand_in_aws_keys(monkeypatch)
    ledger = tmp_path / "ledger.duckdb"
    secret, key = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.01"), period="month", name="app")
    with ServerThread(create_bedrock(engine=InstantEngine())) as bedrock:
        config = parse_config(
            {
                "auth": True,
                "models": {
                    "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU}
                },
            }
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:

            def client(token: str) -> anthropic.AnthropicVertex:
                return anthropic.AnthropicVertex(
                    base_url=url + "/v1", region="global", project_id="p", access_token=token, max_retries=0
                )

            for stream in (False, True):
                with pytest.raises(anthropic.AuthenticationError):
                    client("not-a-key").messages.create(model="haiku", max_tokens=5, messages=ASK, stream=stream)
            unkeyed = httpx.post(f"{url}{PREFIX}/haiku:rawPredict", content=b"[]")
            assert unkeyed.status_code == 401  # the key is checked before the body
            assert unkeyed.json()["error"]["type"] == "authentication_error"
            with pytest.raises(anthropic.AuthenticationError):
                client("not-a-key").messages.count_tokens(model="haiku", messages=ASK)
            sdk = client(secret)
            assert sdk.messages.create(model="haiku", max_tokens=5, messages=ASK).content[0].text
            assert sdk.messages.count_tokens(model="haiku", messages=ASK).input_tokens > 0
            # 20k output tokens at Haiku's $1.25 per million could cost $0.025: more than the key's $0.01 budget.
            with pytest.raises(anthropic.RateLimitError, match="Budget exhausted"):
                sdk.messages.create(model="haiku", max_tokens=20_000, messages=ASK)
    rows = open_store(str(ledger)).events()
    assert [(e.key_id, e.route) for e in rows] == [(key.key_id, "haiku")]
