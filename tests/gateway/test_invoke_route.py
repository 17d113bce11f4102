"""Bedrock's InvokeModel and InvokeModelWithResponseStream with Claude's body on the gateway: boto3's
`invoke_model` and the `anthropic` SDK's `AnthropicBedrock` → `tokenomy serve` → a Bedrock model (the emulator),
Anthropic's API (a scripted upstream) or an OpenAI-format model. Tools, images, streamed and not, Bedrock's headers
and metrics, the ledger, and every field refused by name."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import anthropic
import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers import stand_in_aws_keys
from helpers.anthropic_samples import COMPANIONS, GATEWAY_FIELDS, HEADER_FIELDS, SAMPLES, request_fields
from helpers.claude_gateway import HAIKU, ClaudeGateway
from helpers.recording_openai import arguments_for
from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

VERSION = "bedrock-2023-05-31"
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3  # every byte value: a re-encoding on the way changes it
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ASK = [{"role": "user", "content": "Weather in Paris?"}]
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def claude_body(**fields) -> bytes:
    return json.dumps({"anthropic_version": VERSION, "max_tokens": 20, "messages": ASK, **fields}).encode()


class Served(ClaudeGateway):
    """The Claude gateway (helpers.claude_gateway) with "mixed": Bedrock with an OpenAI-format fallback; boto3's
    bedrock-runtime client on it."""

    def __init__(self, ledger) -> None:
        super().__init__(ledger, {"mixed": {"model": "haiku", "fallback": ["fast"]}})
        self.client = boto3.client("bedrock-runtime", endpoint_url=self.url, region_name="us-east-1", config=NO_RETRIES)


@pytest.fixture
def served(tmp_path):
    served = Served(tmp_path / "ledger.duckdb")
    yield served
    served.stack.close()


def test_boto3_invoke_model_carries_a_tool_turn_with_an_image_to_bedrock_intact(served) -> None:
    client, sent = served.client, served.sent
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
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "tu_1",
                    "content": "18C sunny",
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        },
    ]
    reply = client.invoke_model(
        modelId="haiku",
        body=claude_body(messages=messages, system="Be brief.", tools=[WEATHER], temperature=0.2, top_k=5),
    )
    answer = json.loads(reply["body"].read())
    assert answer["type"] == "message" and answer["role"] == "assistant" and answer["model"] == "haiku"
    assert answer["content"][0]["type"] == "text" and answer["content"][0]["text"]
    assert answer["stop_reason"] in ("end_turn", "max_tokens")
    headers = reply["ResponseMetadata"]["HTTPHeaders"]
    assert int(headers["x-amzn-bedrock-input-token-count"]) == answer["usage"]["input_tokens"] > 0
    assert int(headers["x-amzn-bedrock-output-token-count"]) == answer["usage"]["output_tokens"] > 0
    assert int(headers["x-amzn-bedrock-invocation-latency"]) >= 0
    params = sent[-1]
    user, assistant, results = params["messages"]
    assert user["content"][1]["image"] == {"format": "png", "source": {"bytes": IMAGE}}
    assert assistant["content"] == [
        {"toolUse": {"toolUseId": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}}
    ]
    assert results["content"][0]["toolResult"]["toolUseId"] == "tu_1"
    assert results["content"][-1] == {"cachePoint": {"type": "default"}}
    assert params["system"] == [{"text": "Be brief."}]
    assert params["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    assert params["inferenceConfig"] == {"maxTokens": 20, "temperature": 0.2}
    assert params["additionalModelRequestFields"] == {"top_k": 5}
    rows = served.rows(reply["ResponseMetadata"]["RequestId"])
    assert [(r.route, r.outcome, r.image_count) for r in rows] == [("haiku", "ok", 1)]
    assert rows[0].input_tokens == answer["usage"]["input_tokens"] and rows[0].cost_usd > 0
    assert Decimal(answer["tokenomy"]["cost_usd"]) == rows[0].cost_usd


def test_boto3_invoke_with_response_stream_sends_claudes_events_in_chunks_with_bedrocks_metrics(served) -> None:
    client = served.client
    reply = client.invoke_model_with_response_stream(modelId="haiku", body=claude_body(max_tokens=30))
    assert reply["contentType"] == "application/json"
    events = [json.loads(part["chunk"]["bytes"]) for part in reply["body"]]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    deltas = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
    assert "".join(deltas) and len(events) >= 6  # one frame per event: start, block start/delta/stop, delta, stop
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    rows = served.rows(reply["ResponseMetadata"]["RequestId"])
    assert len(rows) == 1
    assert (metrics["inputTokenCount"], metrics["outputTokenCount"]) == (rows[0].input_tokens, rows[0].output_tokens)
    assert metrics["outputTokenCount"] == events[-2]["usage"]["output_tokens"] > 0
    assert 0 <= metrics["firstByteLatency"] <= metrics["invocationLatency"]


def test_the_anthropic_bedrock_sdk_gets_tool_calls_from_any_model_whole_and_streamed(served) -> None:
    """`AnthropicBedrock` (the SDK coding agents on Bedrock use) in front of an OpenAI-format model answering with tool
    calls: tool_use blocks come back whole and as input_json_delta events, the arguments byte for byte."""
    url, upstream = served.url, served.upstream
    sdk = anthropic.AnthropicBedrock(base_url=url, api_key="unused", aws_region="us-east-1", max_retries=0)
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
    assert final.content[0].type == "tool_use" and final.content[0].input == {"city": "Paris", "tool": "get_weather"}
    # The next turn with the tool's result reaches the model as a tool message.
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


def test_claudes_own_fields_and_betas_reach_anthropics_api_as_it_takes_them(served) -> None:
    """A field Tokenomy does not map rides to Claude as sent; `anthropic_beta` (in InvokeModel's body, where the SDK
    puts `betas`) becomes Anthropic's beta header on a route to Anthropic's API."""
    url, scripted = served.url, served.scripted
    scripted.requests.clear()
    sdk = anthropic.AnthropicBedrock(base_url=url, api_key="unused", aws_region="us-east-1", max_retries=0)
    reply = sdk.beta.messages.create(
        model="claude", max_tokens=5, messages=ASK, betas=["context-1m-2025-08-07"], extra_body={"service_tier": "auto"}
    )
    assert reply.content[0].text == "Hi"
    headers, body = scripted.requests[-1]
    assert headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert body["service_tier"] == "auto" and "anthropic_beta" not in body and "anthropic_version" not in body
    assert body["model"] == "claude-sonnet-4-5-20250929"


def test_a_beta_and_claudes_fields_go_to_bedrock_in_additional_model_request_fields(served) -> None:
    client, sent = served.client, served.sent
    client.invoke_model(modelId="haiku", body=claude_body(anthropic_beta=["token-efficient-tools-2025-02-19"]))
    assert sent[-1]["additionalModelRequestFields"] == {"anthropic_beta": ["token-efficient-tools-2025-02-19"]}


# Where each field of Claude's body lands, by route: Converse's params for "haiku" (Bedrock), Anthropic's body for
# "claude" (its own name, value unchanged), an OpenAI-format body for "fast", as a dotted path and its value (None:
# asks nothing of that model, as service_tier "auto", Anthropic's default tier, of Bedrock). Any other is refused.
MODEL_FIELD = {"haiku": "additionalModelRequestFields.{}"}
INVOKE_PLACES: dict[str, dict[str, str | tuple[str, object] | None]] = {
    "cache_control": {"haiku": MODEL_FIELD["haiku"]},
    "container": {"haiku": MODEL_FIELD["haiku"]},
    "diagnostics": {"haiku": MODEL_FIELD["haiku"]},
    "inference_geo": {"haiku": MODEL_FIELD["haiku"]},
    "metadata": {"haiku": ("requestMetadata", {"user_id": "u-1"}), "fast": ("user", "u-1")},
    "output_config": {
        "haiku": ("outputConfig.textFormat.type", "json_schema"),
        "fast": ("response_format.type", "json_schema"),
    },
    "service_tier": {"haiku": None, "fast": ("service_tier", "auto")},
    "speed": {"haiku": MODEL_FIELD["haiku"]},
    "stop_sequences": {"haiku": ("inferenceConfig.stopSequences", ["END"]), "fast": ("stop", ["END"])},
    "system": {"haiku": ("system", [{"text": "Be brief."}]), "fast": ("messages.0.content", "Be brief.")},
    "thinking": {},  # Claude 3 Haiku does not think; an OpenAI-format model takes no budget
    "tool_choice": {"haiku": ("toolConfig.toolChoice", {"any": {}}), "fast": ("tool_choice", "required")},
    "tools": {
        "haiku": ("toolConfig.tools.0.toolSpec.name", "get_weather"),
        "fast": ("tools.0.function.name", "get_weather"),
    },
    # The SDK moves it from its header into Bedrock's body, where Claude on Bedrock reads it.
    "user_profile_id": {"haiku": MODEL_FIELD["haiku"]},
}


def _at(body, path: str):
    for step in path.split("."):
        body = body[int(step)] if isinstance(body, list) else body[step]
    return body


def test_every_field_of_the_anthropic_bedrock_sdks_request_is_carried_or_refused_by_name(served) -> None:
    """Each field of the installed anthropic SDK's MessageCreateParams, sent by AnthropicBedrock (InvokeModel's body
    for Claude), reaches Bedrock, Anthropic's API and an OpenAI-format model where each reads it (INVOKE_PLACES), or is
    refused naming it before any call. workspace_id, which the SDK sends as a header, went nowhere, unsaid. A field a
    newer SDK adds fails here until it gets a sample (helpers/anthropic_samples.py) and a place."""
    sdk = anthropic.AnthropicBedrock(base_url=served.url, api_key="unused", aws_region="us-east-1", max_retries=0)
    for field in request_fields():
        if field in GATEWAY_FIELDS:
            continue
        assert (field in SAMPLES and field in INVOKE_PLACES) or field in HEADER_FIELDS, (
            f"add {field!r} a sample and places"
        )
        asked = {field: SAMPLES[field], **COMPANIONS.get(field, {})}
        places = INVOKE_PLACES.get(field, {})
        for model in ("haiku", "claude", "fast"):
            served.sent.clear(), served.scripted.requests.clear(), served.upstream.bodies.clear()
            carried = model in places or (model == "claude" and field in INVOKE_PLACES)
            if not carried:
                with pytest.raises(anthropic.BadRequestError) as refused:
                    sdk.messages.create(model=model, max_tokens=2000, messages=ASK, **asked)
                assert field in refused.value.message, (model, refused.value.message)
                assert served.sent == served.scripted.requests == served.upstream.bodies == []  # before any call
                continue
            sdk.messages.create(model=model, max_tokens=2000, messages=ASK, **asked)
            if model == "claude":
                assert served.scripted.requests[-1][1][field] == SAMPLES[field]  # its own name, value unchanged
                continue
            sent = served.sent[-1] if model == "haiku" else served.upstream.last
            place = places[model]
            if isinstance(place, str):  # a model field of Claude's, under its own name
                assert _at(sent, place.format(field)) == SAMPLES[field], (model, sent)
            elif place is not None:
                assert _at(sent, place[0]) == place[1], (model, sent)


def test_invoke_models_header_parameters_become_converse_fields_on_bedrock_and_are_refused_elsewhere(served) -> None:
    client, sent = served.client, served.sent
    client.invoke_model(
        modelId="haiku",
        body=claude_body(),
        guardrailIdentifier="g1",
        guardrailVersion="2",
        trace="ENABLED",
        requestMetadata=json.dumps({"app": "shop"}),
    )
    assert sent[-1]["guardrailConfig"] == {"guardrailIdentifier": "g1", "guardrailVersion": "2", "trace": "enabled"}
    assert sent[-1]["requestMetadata"] == {"app": "shop"}
    before = len(sent)
    client.invoke_model(
        modelId="haiku",
        body=claude_body(),
        trace="DISABLED",
        performanceConfigLatency="standard",
        serviceTier="default",
    )  # they ask for nothing
    assert "guardrailConfig" not in sent[-1] and "serviceTier" not in sent[-1] and len(sent) == before + 1
    for model, params, named in (
        ("fast", {"guardrailIdentifier": "g1", "guardrailVersion": "2"}, "guardrailIdentifier: the gateway carries"),
        ("mixed", {"requestMetadata": "{}"}, "requestMetadata: the gateway carries"),
        ("haiku", {"guardrailIdentifier": "g1"}, "send both, or neither"),
        ("haiku", {"requestMetadata": "[1]"}, "requestMetadata: expected a JSON object"),
    ):
        with pytest.raises(ClientError) as refused:
            client.invoke_model(modelId=model, body=claude_body(), **params)
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert named in refused.value.response["Error"]["Message"], (model, params)
    assert len(sent) == before + 1


# One sample per header member of botocore's InvokeModel input, with what it needs beside it and the Converse field
# it becomes on a Bedrock route (a path into Converse's params and its value).
GUARDRAIL = {"guardrailIdentifier": "g1", "guardrailVersion": "2"}
INVOKE_HEADERS = {
    "guardrailIdentifier": (GUARDRAIL, "guardrailConfig.guardrailIdentifier", "g1"),
    "guardrailVersion": (GUARDRAIL, "guardrailConfig.guardrailVersion", "2"),
    "trace": ({**GUARDRAIL, "trace": "ENABLED"}, "guardrailConfig.trace", "enabled"),
    "requestMetadata": ({"requestMetadata": json.dumps({"app": "shop"})}, "requestMetadata", {"app": "shop"}),
    "projectIdentifier": ({"projectIdentifier": "proj-1"}, "projectIdentifier", "proj-1"),
    # Refused for Claude 3 Haiku: billed at prices the catalog lacks (test_converse_mapping.py).
    "performanceConfigLatency": ({"performanceConfigLatency": "optimized"}, None, None),
    "serviceTier": ({"serviceTier": "flex"}, None, None),
}
TRANSPORT = {"body", "modelId", "contentType", "accept"}  # the request itself: its body, path and media types


@pytest.mark.parametrize("operation", ["InvokeModel", "InvokeModelWithResponseStream"])
def test_every_header_member_of_botocores_invoke_input_is_carried_or_refused_by_name(served, operation) -> None:
    """Each member of the installed botocore's InvokeModel input shapes beside the body reaches Bedrock as the
    Converse field of the same meaning, or is refused naming it (and for a route that may reach another provider,
    always) before any call. performanceConfigLatency was refused as `performanceConfig`, a Converse field the caller
    never wrote. A member a newer botocore adds fails here until it gets a sample."""
    import botocore.session

    client, sent = served.client, served.sent
    shape = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model(operation).input_shape
    invoke = client.invoke_model if operation == "InvokeModel" else client.invoke_model_with_response_stream
    for member in set(shape.members) - TRANSPORT:
        assert member in INVOKE_HEADERS, f"{operation} has a new member {member!r}: add it to INVOKE_HEADERS"
        params, place, value = INVOKE_HEADERS[member]
        for model in ("haiku", "fast"):
            sent.clear()
            served.upstream.bodies.clear()
            if model == "fast" or place is None:
                with pytest.raises(ClientError) as refused:
                    invoke(modelId=model, body=claude_body(), **params)
                message = refused.value.response["Error"]["Message"]
                assert message.startswith(next(iter(params))), (member, message)  # the parameter the caller set
                assert sent == [] and served.upstream.bodies == []  # refused before any call
                continue
            answer = invoke(modelId=model, body=claude_body(), **params)
            if operation == "InvokeModelWithResponseStream":
                list(answer["body"])
            assert _at(sent[-1], place) == value, (member, sent[-1])


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{", "Expecting"),
        (b"[]", "must be a JSON object"),
        (json.dumps({"max_tokens": 5, "messages": ASK}).encode(), "anthropic_version: required"),
        (
            json.dumps({"anthropic_version": 2023, "max_tokens": 5, "messages": ASK}).encode(),
            "anthropic_version: required, e.g. 'bedrock-2023-05-31' (got 2023)",
        ),
        (claude_body(model="haiku"), "model: not a field of InvokeModel's body"),
        (claude_body(stream=True), "stream: not a field of InvokeModel's body"),
        (claude_body(anthropic_beta="x"), "anthropic_beta: expected a list of strings"),
        # Text-completion bodies go as written to a model of their family only (test_invoke_prompts)
        (
            json.dumps({"inputText": "hi", "textGenerationConfig": {}}).encode(),
            "body for Amazon Titan Text models, which the gateway sends as written to such models on Bedrock only",
        ),
        (json.dumps({"prompt": "hi", "max_gen_len": 5}).encode(), "or send the conversation through Converse"),
        (json.dumps({"message": "hi"}).encode(), "request body for Cohere Command models"),
        # Anthropic's cache warming: Bedrock's Converse has no zero-token call (maxTokens is at least 1)
        (claude_body(max_tokens=0), "cannot take `max_tokens` 0 (a call that only writes the prompt cache"),
        (claude_body(max_tokens=-1), "max_tokens: Field required"),
        (claude_body(tools={}), "tools: Input should be a list of tools"),
        (claude_body(stop_sequences=""), "stop_sequences: Input should be a list of strings"),
        (
            claude_body(tools=[WEATHER], tool_choice={"type": "any", "name": "get_weather"}),
            "tool_choice.name: only tool_choice type 'tool' takes a name",
        ),
        (
            claude_body(max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024, "display": "full"}),
            "thinking.display: Input should be 'summarized' or 'omitted'",
        ),  # Claude's two displays are carried
        (claude_body(thinking={"type": "disabled", "budget_tokens": 1024}), "thinking.budget_tokens: not carried"),
        (
            claude_body(
                messages=[
                    *ASK,
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "w", "input": {}}]},
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x", "is_error": "false"}],
                    },
                ],
                tools=[WEATHER],
            ),
            "messages.2.content.0.is_error: Input should be a boolean",
        ),
        (
            claude_body(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/png",
                                    "data": base64.b64encode(IMAGE).decode(),
                                    "detail": "low",
                                },
                            }
                        ],
                    }
                ]
            ),
            "messages.0.content.0.source.detail: the gateway cannot carry this field",
        ),
        (
            claude_body(
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "document",
                                "source": {"type": "text", "media_type": "text/html", "data": "<p>hi</p>"},
                            }
                        ],
                    }
                ]
            ),
            "messages.0.content.0.source.media_type: text documents must be text/plain",
        ),
        (
            claude_body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": ["base64"]}}]}]),
            "messages.0.content.0.source.type: expected base64 or url",
        ),
        (
            claude_body(
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
            ),
            "messages.0.content.0",
        ),
    ],
)
def test_malformed_or_other_families_bodies_are_validation_errors_naming_the_field(served, body, named) -> None:
    client, url, sent = served.client, served.url, served.sent
    before = len(sent)
    with pytest.raises(ClientError) as refused:
        client.invoke_model(modelId="haiku", body=body)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert named in refused.value.response["Error"]["Message"]
    answer = httpx.post(f"{url}/model/haiku/invoke-with-response-stream", content=body)
    assert answer.status_code == 400 and named in answer.json()["message"]
    assert len(sent) == before  # nothing reached the model


def test_a_field_the_routes_model_cannot_take_is_named_where_the_caller_put_it(served) -> None:
    client = served.client
    document = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    with pytest.raises(ClientError) as refused:
        client.invoke_model(
            modelId="haiku",
            body=claude_body(messages=[{"role": "user", "content": [{"type": "text", "text": "Read this"}, document]}]),
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "messages.0.content.1" in refused.value.response["Error"]["Message"]
    only = "service_tier: the gateway carries this field to Bedrock and Anthropic models only"
    with pytest.raises(ClientError, match=only):
        client.invoke_model(modelId="mixed", body=claude_body(service_tier="priority"))
    # "auto" (Anthropic's default) and "standard_only" ask for the standard tier, which Bedrock and the OpenAI-format
    # fallback serve unasked: answered, the tier left out for Bedrock, not refused
    for tier in ("auto", "standard_only"):
        assert json.loads(client.invoke_model(modelId="mixed", body=claude_body(service_tier=tier))["body"].read())
        assert "service_tier" not in served.sent[-1] and "serviceTier" not in served.sent[-1]


def test_unknown_models_and_bad_keys_are_bedrocks_errors(tmp_path, monkeypatch) -> None:
    from tokenomy.gateway.keys import KeyStore

    stand_in_aws_keys(monkeypatch, access_key_id="AKIAIOSFODNN7EXAMPLE")
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
            signed = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
            with pytest.raises(ClientError, match="AWS_BEARER_TOKEN_BEDROCK") as refused:
                signed.invoke_model(modelId="haiku", body=claude_body())
            assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
            # The gateway key as the SigV4 access key id (the SDK signs with botocore), or as a bearer token.
            sdk = anthropic.AnthropicBedrock(
                base_url=url, aws_access_key=secret, aws_secret_key="anything", aws_region="us-east-1", max_retries=0
            )
            assert sdk.messages.create(model="haiku", max_tokens=5, messages=ASK).content[0].text
            bearer = anthropic.AnthropicBedrock(base_url=url, api_key=secret, aws_region="us-east-1", max_retries=0)
            with pytest.raises(anthropic.NotFoundError, match="does not exist on this gateway"):
                bearer.messages.create(model="nope", max_tokens=5, messages=ASK)
            # 20k output tokens at Haiku's $1.25 per million could cost $0.025: more than the key's $0.01 budget.
            with pytest.raises(anthropic.BadRequestError, match="Budget exhausted"):
                bearer.messages.create(model="haiku", max_tokens=20_000, messages=ASK)
            with pytest.raises(anthropic.BadRequestError, match="Budget exhausted"):
                bearer.messages.create(model="haiku", max_tokens=20_000, messages=ASK, stream=True)
    rows = open_store(str(ledger)).events()
    assert [(e.key_id, e.route) for e in rows] == [(key.key_id, "haiku")]


def test_a_stream_that_fails_before_its_first_event_is_an_error_status_not_an_empty_stream(served) -> None:
    """An upstream failure before anything streamed is Bedrock's error with its status (botocore raises it); the
    failed attempts' ledger id is in x-amzn-RequestId."""
    with pytest.raises(ClientError) as failed:
        served.client.invoke_model_with_response_stream(modelId="down", body=claude_body())
    error = failed.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 502 and error["Error"]["Message"].startswith("upstream ")
    rows = served.rows(error["ResponseMetadata"]["RequestId"])
    assert rows and all(r.outcome != "ok" for r in rows)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"anthropic_version": "bedrock-2023-05-31", "max_tokens": NaN, "messages": []}', "max_tokens"),
        (b'{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": ["\\ud800"]}', "messages.0"),
        (b'{"anthropic_version": "\xff"}', "UTF-8"),
    ],
)
def test_a_body_refused_at_the_edge_is_bedrocks_validation_error_naming_the_field(served, body, named) -> None:
    """What the gateway's edge refuses before any route reads it (not JSON, a NaN, a lone surrogate) is Bedrock's
    error there too: botocore reads the code from x-amzn-ErrorType, and raised a bare "400" without it."""
    with pytest.raises(ClientError) as refused:
        served.client.invoke_model(modelId="haiku", body=body)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert named in refused.value.response["Error"]["Message"]


def test_cache_control_inside_a_tool_results_content_is_a_cache_point_or_refused_by_name(served) -> None:
    """A tool_result's own content blocks may carry cache_control (the Messages API allows it): on its last block the
    cache ends where the tool_result does (the turn's end, a cache point); anywhere else it is named, not dropped."""
    client, sent = served.client, served.sent

    def turn(*inner):
        return [
            *ASK,
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": list(inner)}]},
        ]

    cached = {"type": "text", "text": "18C", "cache_control": {"type": "ephemeral"}}
    client.invoke_model(
        modelId="haiku", body=claude_body(messages=turn({"type": "text", "text": "sunny"}, cached), tools=[WEATHER])
    )
    assert sent[-1]["messages"][-1]["content"][-1] == {"cachePoint": {"type": "default"}}
    before = len(sent)
    with pytest.raises(ClientError, match=r"messages\.2\.content\.0\.content\.0\.cache_control: the gateway sets"):
        client.invoke_model(
            modelId="haiku", body=claude_body(messages=turn(cached, {"type": "text", "text": "x"}), tools=[WEATHER])
        )
    assert len(sent) == before


def test_a_stop_sequence_that_ended_a_bedrock_answer_is_named_as_invoke_model_names_it(tmp_path, monkeypatch) -> None:
    """Converse says a stop sequence ended the answer, not which; Claude's own answer field says, and Bedrock hands it
    back when asked (additionalModelResponseFieldPaths ["/stop_sequence"]): the gateway asks, so stop_sequence is
    the matched one, as InvokeModel answers, whole and streamed, and the Converse caller who did not ask gets no
    field it did not ask for. A peer answering as Bedrock does, read by the real boto3."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    from tokenomy.providers import eventstream

    asked = []
    usage = {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}

    async def whole(request):
        body = await request.json()
        asked.append(body.get("additionalModelResponseFieldPaths"))
        return JSONResponse(
            {
                "output": {"message": {"role": "assistant", "content": [{"text": "Hi"}]}},
                "stopReason": "stop_sequence",
                "usage": usage,
                "metrics": {"latencyMs": 1},
                "additionalModelResponseFields": {"stop_sequence": "STOP"},
            }
        )

    async def streamed(request):
        body = await request.json()
        asked.append(body.get("additionalModelResponseFieldPaths"))

        def frames():
            yield eventstream.event("messageStart", {"role": "assistant"})
            yield eventstream.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
            yield eventstream.event("contentBlockStop", {"contentBlockIndex": 0})
            yield eventstream.event(
                "messageStop",
                {"stopReason": "stop_sequence", "additionalModelResponseFields": {"stop_sequence": "STOP"}},
            )
            yield eventstream.event("metadata", {"usage": usage, "metrics": {"latencyMs": 1}})

        return StreamingResponse(frames(), media_type="application/vnd.amazon.eventstream")

    stand_in_aws_keys(monkeypatch)
    peer = Starlette(
        routes=[
            Route("/model/{model_id:path}/converse", whole, methods=["POST"]),
            Route("/model/{model_id:path}/converse-stream", streamed, methods=["POST"]),
        ]
    )
    with ServerThread(peer) as bedrock:
        config = parse_config(
            {
                "models": {
                    "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU}
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
            body = claude_body(stop_sequences=["END", "STOP"])
            answer = json.loads(client.invoke_model(modelId="haiku", body=body)["body"].read())
            events = [
                json.loads(part["chunk"]["bytes"])
                for part in client.invoke_model_with_response_stream(modelId="haiku", body=body)["body"]
            ]
            converse = client.converse(
                modelId="haiku",
                messages=[{"role": "user", "content": [{"text": "x"}]}],
                inferenceConfig={"stopSequences": ["STOP"]},
            )
    assert (answer["stop_reason"], answer["stop_sequence"]) == ("stop_sequence", "STOP")
    assert events[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "STOP"}
    assert converse["stopReason"] == "stop_sequence" and "additionalModelResponseFields" not in converse
    assert asked == [["/stop_sequence"]] * 3


def test_a_fault_inside_the_gateway_is_bedrocks_internal_server_exception(served, monkeypatch) -> None:
    """A bug (not the caller's request, not the upstream) is answered in Bedrock's shape on its paths, as the edge's
    refusals are: botocore raises its modelled InternalServerException, not a bare "500" without a message."""
    from tokenomy.gateway import invoke_routes

    def broken(body):
        raise RuntimeError("a bug")

    monkeypatch.setattr(invoke_routes, "request_from_anthropic", broken)
    with pytest.raises(ClientError) as failed:
        served.client.invoke_model(modelId="haiku", body=claude_body())
    error = failed.value.response
    assert error["Error"]["Code"] == "InternalServerException" and error["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "internal error (RuntimeError); see the gateway's log" in error["Error"]["Message"]
