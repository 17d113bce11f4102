"""Bedrock's Converse API on the gateway: boto3's `bedrock-runtime` client → `tokenomy serve` → a Bedrock model (the
Bedrock emulator) or any other provider (a recording OpenAI upstream). Tools, tool results, images and documents,
streamed and not, keys and budgets, and every malformed or uncarried field refused by name."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from helpers import stand_in_aws_keys
from helpers.converse_capture import record_converse
from helpers.openai_samples import GATEWAY_FIELDS, SAMPLES, request_fields
from helpers.recording_openai import RecordingOpenAI, arguments_for
from helpers.scripted_openai import ScriptedOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
OPUS = "anthropic.claude-opus-4-5-20251101-v1:0"  # takes an effort level (Claude 3 Haiku does not)
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3  # every byte value: a re-encoding on the way changes it
PDF = b"%PDF-1.4\n" + bytes(range(256))
WEATHER = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Weather in a city",
        "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
}
TIME = {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
ASK = [{"role": "user", "content": [{"text": "Weather in Paris?"}]}]
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


@pytest.fixture
def served(tmp_path, monkeypatch):
    """(boto3 client, gateway URL, recording upstream, the Converse params the Bedrock provider sent, ledger)."""
    sent = record_converse(monkeypatch)
    ledger = tmp_path / "ledger.duckdb"
    with ServerThread(create_bedrock(engine=InstantEngine())) as bedrock, RecordingOpenAI() as upstream:
        config = parse_config(
            {
                "models": {
                    "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU},
                    "opus": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": OPUS},
                    "fast": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU},
                    "text-only": {
                        "provider": "openai",
                        "model": "up-text",
                        "base_url": upstream.url,
                        "price_as": HAIKU,
                        "inputs": ["text"],
                    },
                }
            }
        )
        with ServerThread(create_app(config, str(ledger)), lifespan="on") as url:
            client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
            yield client, url, upstream, sent, ledger


def test_a_tool_turn_with_an_image_and_a_document_reaches_bedrock_intact(served) -> None:
    client, _, _, sent, _ = served
    history = [
        {
            "role": "user",
            "content": [
                {"text": "What is this, and the weather there?"},
                {"image": {"format": "png", "source": {"bytes": IMAGE}}},
                {"document": {"format": "pdf", "name": "spec", "source": {"bytes": PDF}}},
            ],
        },
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}}],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tu_1", "content": [{"json": {"temp_c": 18}}, {"text": "sunny"}]}},
                {"cachePoint": {"type": "default"}},
            ],
        },
    ]
    reply = client.converse(
        modelId="haiku",
        messages=history,
        system=[{"text": "Be brief."}],
        toolConfig={"tools": [WEATHER]},
        inferenceConfig={"maxTokens": 20, "temperature": 0.2},
    )
    assert reply["output"]["message"]["content"][0]["text"]
    assert reply["stopReason"] == "end_turn" and reply["usage"]["outputTokens"] > 0
    params = sent[-1]
    user, assistant, results = params["messages"]
    assert user["content"][1]["image"] == {"format": "png", "source": {"bytes": IMAGE}}
    assert user["content"][2]["document"]["source"]["bytes"] == PDF
    assert assistant["content"] == history[1]["content"]
    assert results["content"][0]["toolResult"] == {
        "toolUseId": "tu_1",
        "content": [{"text": '{"temp_c":18}'}, {"text": "sunny"}],
    }
    assert results["content"][-1] == {"cachePoint": {"type": "default"}}
    assert params["system"] == [{"text": "Be brief."}]
    assert params["toolConfig"] == {"tools": [WEATHER]}
    assert params["inferenceConfig"] == {"maxTokens": 20, "temperature": 0.2}


def test_bedrocks_own_fields_reach_bedrock_models_routed_ones_included_and_no_other(tmp_path, monkeypatch) -> None:
    """guardrailConfig, additionalModelResponseFieldPaths, requestMetadata: carried as sent to a route whose every
    model is a Bedrock one (a routing policy's tiers and fallbacks included), refused for one that may reach another
    provider, naming it."""
    sent = record_converse(monkeypatch)
    sonnet = "anthropic.claude-3-7-sonnet-20250219-v1:0"
    with ServerThread(create_bedrock(engine=InstantEngine())) as bedrock, RecordingOpenAI() as upstream:
        config = parse_config(
            {
                "models": {
                    "haiku": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": HAIKU},
                    "sonnet": {"provider": "bedrock", "region": "us-east-1", "endpoint_url": bedrock, "model": sonnet},
                    "fast": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": HAIKU},
                },
                "tiers": {"cheap": ["haiku"], "strong": ["sonnet"], "other": ["fast"]},
                "routes": {
                    "smart": {"policy": "bedrock-rules"},
                    "mixed": {"policy": "mixed-rules"},
                    "safe": {"model": "haiku", "fallback": ["fast"]},
                },
                "routing": {
                    "policies": {
                        "bedrock-rules": {
                            "type": "rules",
                            "tiers": ["cheap", "strong"],
                            "rules": [{"name": "hard", "tier": "strong", "keywords": ["prove"]}],
                        },
                        "mixed-rules": {
                            "type": "rules",
                            "tiers": ["other", "strong"],
                            "rules": [{"name": "hard", "tier": "strong", "keywords": ["prove"]}],
                        },
                    }
                },
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
            own = {
                "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"},
                "additionalModelResponseFieldPaths": ["/usage"],
                "requestMetadata": {"app": "shop"},
            }
            for model in ("haiku", "smart"):
                reply = client.converse(modelId=model, messages=ASK, inferenceConfig={"maxTokens": 8}, **own)
                assert reply["output"]["message"]["content"]
                assert {key: sent[-1][key] for key in own} == own
            # A Bedrock model's own stop reason comes back as Bedrock said it, whole and streamed.
            from tokenomy.emulate import bedrock_converse

            answer = bedrock_converse.answer_events

            def intervened(*args):
                for event in answer(*args):
                    yield event if event[0] != "finish" else (*event[:2], "guardrail_intervened")

            monkeypatch.setattr(bedrock_converse, "answer_events", intervened)
            reply = client.converse(modelId="haiku", messages=ASK, inferenceConfig={"maxTokens": 8}, **own)
            assert reply["stopReason"] == "guardrail_intervened"
            events = list(client.converse_stream(modelId="haiku", messages=ASK, **own)["stream"])
            assert events[-2]["messageStop"]["stopReason"] == "guardrail_intervened"
            monkeypatch.setattr(bedrock_converse, "answer_events", answer)
            # What they ask for comes back, whole and streamed, where Converse and ConverseStream carry it.
            asked = {
                "additionalModelResponseFields": {"stop_sequence": "END"},
                "trace": {"guardrail": {"actionReason": "No action."}},
            }
            monkeypatch.setattr("tokenomy.providers.bedrock.answer_fields", lambda fields, trace: asked)
            reply = client.converse(modelId="haiku", messages=ASK, inferenceConfig={"maxTokens": 8}, **own)
            assert {key: reply[key] for key in asked} == asked
            events = list(
                client.converse_stream(modelId="haiku", messages=ASK, inferenceConfig={"maxTokens": 8}, **own)["stream"]
            )
            assert events[-2]["messageStop"]["additionalModelResponseFields"] == asked["additionalModelResponseFields"]
            assert events[-1]["metadata"]["trace"] == asked["trace"]
            for model, other in (("mixed", "openai"), ("safe", "openai")):
                with pytest.raises(ClientError) as refused:
                    client.converse(modelId=model, messages=ASK, **own)
                assert refused.value.response["Error"]["Message"] == (
                    f"guardrailConfig: the gateway carries this field to Bedrock models only, and `{model}` may "
                    f"reach {other} models; remove it"
                )


def test_a_converse_request_reaches_an_openai_model_and_its_tool_calls_come_back_as_tool_use(served) -> None:
    client, _, upstream, _, _ = served
    message = [
        {
            "role": "user",
            "content": [{"text": "Weather and time?"}, {"image": {"format": "png", "source": {"bytes": IMAGE}}}],
        }
    ]
    reply = client.converse(
        modelId="fast",
        messages=message,
        toolConfig={"tools": [WEATHER, TIME]},
        inferenceConfig={"maxTokens": 30, "topP": 0.5, "stopSequences": ["END"]},
    )
    body = upstream.bodies[-1]
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "get_time"]
    image_url = body["messages"][0]["content"][1]["image_url"]["url"]
    assert base64.b64decode(image_url.split(",", 1)[1]) == IMAGE
    assert (body["max_tokens"], body["top_p"], body["stop"]) == (30, 0.5, ["END"])
    uses = [block["toolUse"] for block in reply["output"]["message"]["content"]]
    assert [(u["toolUseId"], u["name"]) for u in uses] == [("call_0", "get_weather"), ("call_1", "get_time")]
    assert uses[0]["input"] == json.loads(arguments_for("get_weather"))
    assert reply["stopReason"] == "tool_use"
    # The next turn: the calls and their results, as boto3 sends them, reach the upstream as OpenAI's messages.
    turn = [
        *message,
        reply["output"]["message"],
        {
            "role": "user",
            "content": [{"toolResult": {"toolUseId": u["toolUseId"], "content": [{"text": "18C"}]}} for u in uses],
        },
    ]
    final = client.converse(modelId="fast", messages=turn, toolConfig={"tools": [WEATHER, TIME]})
    assert final["output"]["message"]["content"] == [{"text": "answer after 18C"}]
    sent = upstream.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "tool"]
    assert [c["id"] for c in sent[1]["tool_calls"]] == ["call_0", "call_1"]


def test_a_streamed_answer_comes_as_converse_stream_events(served) -> None:
    client, _, _, _, _ = served
    events = list(client.converse_stream(modelId="fast", messages=ASK, toolConfig={"tools": [WEATHER, TIME]})["stream"])
    assert events[0] == {"messageStart": {"role": "assistant"}}
    starts = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert [s["start"]["toolUse"]["name"] for s in starts] == ["get_weather", "get_time"]
    for start in starts:  # each call's fragments, joined, are its arguments byte for byte
        name = start["start"]["toolUse"]["name"]
        fragments = [
            e["contentBlockDelta"]["delta"]["toolUse"]["input"]
            for e in events
            if "contentBlockDelta" in e and e["contentBlockDelta"]["contentBlockIndex"] == start["contentBlockIndex"]
        ]
        assert len(fragments) > 1 and "".join(fragments) == arguments_for(name)
    stops = [e["contentBlockStop"]["contentBlockIndex"] for e in events if "contentBlockStop" in e]
    assert stops == [s["contentBlockIndex"] for s in starts]
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}
    assert events[-1]["metadata"]["usage"]["outputTokens"] > 0
    text = list(client.converse_stream(modelId="haiku", messages=ASK, inferenceConfig={"maxTokens": 8})["stream"])
    assert "".join(e["contentBlockDelta"]["delta"]["text"] for e in text if "contentBlockDelta" in e)


def test_the_ai_sdks_empty_system_list_is_no_system_prompt(served) -> None:
    """@ai-sdk/amazon-bedrock sends `system: []` on every request without a system message (Bedrock takes it)."""
    _, url, upstream, sent, _ = served
    body = {"system": [], "messages": ASK, "inferenceConfig": {"maxTokens": 20}}  # its request, byte for byte
    for model, operation in (("haiku", "converse"), ("fast", "converse"), ("haiku", "converse-stream")):
        answer = httpx.post(f"{url}/model/{model}/{operation}", json=body)
        assert answer.status_code == 200, answer.text
    assert [m["role"] for m in upstream.bodies[-1]["messages"]] == ["user"]
    assert sent and all("system" not in params for params in sent)


def test_the_stop_sequence_the_ai_sdk_asks_of_claude_comes_back_from_any_model(served) -> None:
    """@ai-sdk/amazon-bedrock asks every Claude model for `/delta/stop_sequence` (additionalModelResponseFieldPaths)
    and reads `additionalModelResponseFields.delta.stop_sequence`; a route to a model off Bedrock answers it too."""
    _, url, upstream, sent, _ = served
    body = {"system": [], "messages": ASK, "additionalModelResponseFieldPaths": ["/delta/stop_sequence"]}
    answer = httpx.post(f"{url}/model/fast/converse", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["additionalModelResponseFields"] == {"delta": {"stop_sequence": None}}
    assert "additionalModelResponseFieldPaths" not in upstream.bodies[-1]
    whole = httpx.post(f"{url}/model/haiku/converse", json=body).json()  # a Bedrock Claude: answered the same
    assert whole["additionalModelResponseFields"] == {"delta": {"stop_sequence": None}}
    assert "additionalModelResponseFieldPaths" not in sent[-1]


def test_claudes_output_config_in_model_fields_is_the_requests_json_schema_for_any_model(served) -> None:
    """@ai-sdk/amazon-bedrock sends a Claude model's JSON schema (generateObject) and effort as Claude's own
    `output_config` in additionalModelRequestFields; read as outputConfig is, they reach any model (before, a route
    off Bedrock refused the field, and a Bedrock one got it as an opaque model field)."""
    _, url, upstream, sent, _ = served
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    body = {
        "system": [],
        "messages": ASK,
        "additionalModelResponseFieldPaths": ["/delta/stop_sequence"],
        "additionalModelRequestFields": {"output_config": {"format": {"type": "json_schema", "schema": schema}}},
    }
    for model in ("fast", "haiku"):
        answer = httpx.post(f"{url}/model/{model}/converse", json=body)
        assert answer.status_code == 200, answer.text
    assert upstream.bodies[-1]["response_format"]["json_schema"]["schema"] == schema
    assert json.loads(sent[-1]["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"]) == schema
    assert "additionalModelRequestFields" not in sent[-1]
    effort = {**body, "additionalModelRequestFields": {"output_config": {"effort": "high"}}}
    assert httpx.post(f"{url}/model/opus/converse", json=effort).status_code == 200
    assert sent[-1]["outputConfig"] == {"effort": "high"} and "additionalModelRequestFields" not in sent[-1]
    twice = {
        **body,
        "outputConfig": {"effort": "low"},
        "additionalModelRequestFields": {"output_config": {"effort": "high"}},
    }
    refused = httpx.post(f"{url}/model/opus/converse", json=twice)
    assert refused.status_code == 400 and "output_config.effort: send the effort once" in refused.json()["message"]


def test_pydantic_ais_empty_system_list_and_inference_config_pass_through_boto3(served) -> None:
    # Pydantic AI's BedrockConverseModel sends `system: []` and `inferenceConfig: {}` on every call without
    # instructions; Bedrock answers it, and the gateway refused it ("system: expected a non-empty list").
    client, _, upstream, sent, _ = served
    reply = client.converse(modelId="haiku", messages=ASK, system=[], inferenceConfig={})
    assert reply["output"]["message"]["content"][0]["text"] and "system" not in sent[-1]
    streamed = list(client.converse_stream(modelId="fast", messages=ASK, system=[], inferenceConfig={})["stream"])
    assert streamed[-2] == {"messageStop": {"stopReason": "end_turn"}}
    assert [m["role"] for m in upstream.last["messages"]] == ["user"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"messages": [{"role": "user", "content": [{"video": {"format": "mp4", "source": {"bytes": b"x"}}}]}]},
            "messages[0].content[0].video: not carried",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"image": {"format": "png", "source": {"s3Location": {"uri": "s3://bucket/cat.png"}}}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image.source.s3Location",
        ),
        (
            {"messages": [{"role": "user", "content": [{"cachePoint": {"type": "default"}}, {"text": "b"}]}]},
            "messages[0].content[0].cachePoint: a cachePoint goes after a content block",
        ),
        (
            {"guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"}, "modelId": "fast"},
            "guardrailConfig: the gateway carries this field to Bedrock models only",
        ),
        (
            {
                "messages": [{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": IMAGE}}}]}],
                "modelId": "text-only",
            },
            "messages[0].content[0]",
        ),
        ({"additionalModelRequestFields": {"top_k": 0}}, "additionalModelRequestFields.top_k"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"document": {"format": "exe", "name": "d", "source": {"bytes": PDF}}}],
                    }
                ],
                "modelId": "fast",
            },
            "messages[0].content[0].document.format: expected one of pdf",
        ),
        # Not JSON, yet Python's decoder reads them: a float no SDK's encoder takes (a 500 on the way to Claude's API)
        *(
            (
                {
                    "outputConfig": {
                        "textFormat": {
                            "type": "json_schema",
                            "structure": {
                                "jsonSchema": {
                                    "name": "x",
                                    "schema": '{"type": "object", "properties": {"a": {"type": "number", "maximum": MAX}}}'.replace(
                                        "MAX", number
                                    ),
                                }
                            },
                        }
                    }
                },
                f"outputConfig.textFormat.structure.jsonSchema.schema: expected a JSON schema as JSON text ({number} is",
            )
            for number in ("NaN", "-Infinity", "1e400")
        ),
    ],
)
def test_what_the_gateway_cannot_carry_is_a_validation_exception_naming_it(served, change, named) -> None:
    client = served[0]
    request = {"modelId": "haiku", "messages": ASK, **change}
    with pytest.raises(ClientError) as raised:
        client.converse(**request)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert named in raised.value.response["Error"]["Message"]


def test_malformed_bodies_botocore_would_not_send_are_named_too(served) -> None:
    url = served[1]
    for body, named in (
        (b"{", "Expecting"),
        (b"[]", "must be a JSON object"),
        (json.dumps({"messages": ASK, "extra": 1}).encode(), "extra: not carried"),
        (
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "not base64!"}}}]}
                    ]
                }
            ).encode(),
            "messages[0].content[0].image.source.bytes: not valid base64",
        ),
        *(
            (
                json.dumps(
                    {
                        "messages": [
                            {"role": "user", "content": [{"image": {"format": fmt, "source": {"bytes": "AA=="}}}]}
                        ]
                    }
                ).encode(),
                "messages[0].content[0].image.format: expected one of",
            )
            for fmt in ([], {"a": 1})
        ),
    ):
        answer = httpx.post(f"{url}/model/haiku/converse", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 400, body
        assert answer.headers["x-amzn-ErrorType"] == "ValidationException" and named in answer.json()["message"]
    missing = httpx.post(f"{url}/model/nope/converse", json={"messages": ASK})
    assert missing.status_code == 404 and missing.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    # Bedrock Runtime's other operations: boto3 shows why (in another error shape its message would be empty).
    with pytest.raises(ClientError, match="it serves Converse and ConverseStream") as unserved:
        served[0].apply_guardrail(
            guardrailIdentifier="g", guardrailVersion="1", source="INPUT", content=[{"text": {"text": "hi"}}]
        )
    assert unserved.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_gateway_key_rides_in_boto3s_credentials_and_its_budget_holds(tmp_path, monkeypatch) -> None:
    """botocore sends a bearer token (AWS_BEARER_TOKEN_BEDROCK) to https endpoints only; over http the gateway key
    goes as the access key id. AWS credentials of another kind are refused, naming both ways."""
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
        app = create_app(config, str(ledger))
        posts: list[str] = []

        async def counting(scope, receive, send):  # every request boto3 sends, retries included
            if scope["type"] == "http" and scope["method"] == "POST":
                posts.append(scope["path"])
            await app(scope, receive, send)

        with ServerThread(counting, lifespan="on") as url:
            signed = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
            with pytest.raises(ClientError, match="AWS_BEARER_TOKEN_BEDROCK") as refused:
                signed.converse(modelId="haiku", messages=ASK)
            assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
            bearer = httpx.post(
                f"{url}/model/haiku/converse", json={"messages": ASK}, headers={"authorization": f"Bearer {secret}"}
            )  # as botocore sends it over https
            assert bearer.status_code == 200 and bearer.json()["output"]["message"]["content"]
            session = boto3.session.Session(aws_access_key_id=secret, aws_secret_access_key="anything")
            client = session.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
            reply = client.converse(modelId="haiku", messages=ASK, inferenceConfig={"maxTokens": 5})
            request_id = reply["ResponseMetadata"]["RequestId"]
            # 20k output tokens at Haiku's $1.25 per million could cost $0.025: more than the key's $0.01 budget.
            # Not a throttle: botocore would retry it (every 429, in both retry modes), and no retry refills a budget.
            posts.clear()
            for mode in ("legacy", "standard"):
                retrying = session.client(
                    "bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=Config(retries={"mode": mode})
                )
                with pytest.raises(ClientError) as spent:
                    retrying.converse(modelId="haiku", messages=ASK, inferenceConfig={"maxTokens": 20_000})
                assert spent.value.response["Error"]["Code"] == "ServiceQuotaExceededException"
                assert "Budget exhausted" in spent.value.response["Error"]["Message"]
            assert posts == ["/model/haiku/converse"] * 2
    rows = sorted(open_store(str(ledger)).events(), key=lambda e: e.ts)
    assert [(e.key_id, e.route) for e in rows] == [(key.key_id, "haiku")] * 2 and rows[1].request_id == request_id


def test_a_fault_after_the_stream_began_ends_it_with_a_stream_exception(tmp_path) -> None:
    upstream = ScriptedOpenAI([(200, {}, "cut")])  # streams a token, then the connection drops
    config = parse_config(
        {
            "models": {"up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}},
            "routes": {"once": {"model": "up", "retry": {"max_attempts": 1}}},
        }
    )
    with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
        client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
        events = client.converse_stream(modelId="once", messages=ASK)["stream"]
        with pytest.raises(EventStreamError, match="upstream"):
            list(events)
    upstream.close()
    [row] = open_store(str(tmp_path / "ledger.duckdb")).events()
    assert row.outcome == "server_error" and row.output_tokens == 1  # what the provider billed is recorded


def test_an_upstream_client_error_without_a_bedrock_type_is_a_validation_exception(tmp_path, monkeypatch) -> None:
    """An upstream's 422 is the caller's request at fault, not an InternalServerException."""
    stand_in_aws_keys(monkeypatch)
    upstream = ScriptedOpenAI([(422, {}, "unprocessable")])
    config = parse_config(
        {
            "models": {"up": {"provider": "openai", "model": "up", "base_url": upstream.url, "price_as": HAIKU}},
            "routes": {"once": {"model": "up", "retry": {"max_attempts": 1}}},
        }
    )
    with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
        client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1", config=NO_RETRIES)
        with pytest.raises(ClientError) as failed:
            client.converse(modelId="once", messages=ASK)
    upstream.close()
    error = failed.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (422, "ValidationException")


def test_a_model_that_does_not_answer_in_time_is_bedrocks_model_timeout_on_every_bedrock_path(tmp_path) -> None:
    """A model silent past its `timeout_s` was a ServiceUnavailableException; Bedrock calls it a
    ModelTimeoutException, which botocore raises as its own class."""
    upstream = ScriptedOpenAI([(200, {}, "late")] * 4)  # botocore 1.44 tries twice even at max_attempts 1
    config = parse_config(
        {
            "models": {
                "slow": {
                    "provider": "openai",
                    "model": "up",
                    "base_url": upstream.url,
                    "price_as": HAIKU,
                    "timeout_s": 0.3,
                }
            },
            "routes": {"hasty": {"model": "slow", "retry": {"max_attempts": 1}}},
        }
    )
    try:
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            client = boto3.client(
                "bedrock-runtime",
                endpoint_url=url,
                region_name="us-east-1",
                config=NO_RETRIES,
                aws_access_key_id="x",
                aws_secret_access_key="x",
            )
            with pytest.raises(client.exceptions.ModelTimeoutException, match="timeout_s"):
                client.converse(modelId="hasty", messages=ASK)
            body = json.dumps(
                {
                    "anthropic_version": "bedrock-2023-05-31",
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "hi"}],
                }
            )
            with pytest.raises(client.exceptions.ModelTimeoutException):
                client.invoke_model(modelId="hasty", body=body)
    finally:
        upstream.close()


def test_a_body_refused_at_the_edge_on_any_bedrock_runtime_path_is_bedrocks_error(served) -> None:
    """The edge refuses a body it cannot send on (a NaN here) before any route reads it: on every Bedrock Runtime
    path, served or not, in Bedrock's shape (boto3 shows no message in another); it was so on /model/... only."""
    url = served[1]
    for path in ("/model/haiku/converse", "/guardrail/g/version/1/apply", "/async-invoke"):
        answer = httpx.post(
            url + path, content=b'{"messages": [], "temperature": NaN}', headers={"content-type": "application/json"}
        )
        assert answer.status_code == 400 and answer.headers["x-amzn-ErrorType"] == "ValidationException", path
        assert "temperature" in answer.json()["message"]


def test_an_empty_system_list_is_no_system_prompt_as_bedrock_takes_it(served) -> None:
    # langchain-aws's ChatBedrockConverse sends `system: []` with every request that has no system message.
    client, _, upstream, sent, _ = served
    reply = client.converse(modelId="haiku", messages=ASK, system=[], inferenceConfig={"maxTokens": 8})
    assert reply["output"]["message"]["content"][0]["text"] and "system" not in sent[-1]
    events = list(client.converse_stream(modelId="fast", messages=ASK, system=[])["stream"])
    assert events[-1]["metadata"]["usage"]["outputTokens"] > 0
    assert [m["role"] for m in upstream.last["messages"]] == ["user"]


OPENAI_ONLY = [
    ("verbosity", "low"),
    ("prompt_cache_retention", "24h"),
    ("metadata", {"team": "search"}),
    ("service_tier", "priority"),
    ("prediction", {"type": "content", "content": "Paris"}),
    ("web_search_options", {}),
    ("audio", {"voice": "alloy", "format": "wav"}),
    ("modalities", ["text", "audio"]),
    ("moderation", {"model": "omni-moderation-latest"}),
    ("prompt_cache_options", {"mode": "explicit"}),
]


@pytest.mark.parametrize(("field", "value"), OPENAI_ONLY)
def test_openai_only_fields_to_a_bedrock_route_are_refused_by_name_before_any_call(served, field, value) -> None:
    """OpenAI's own fields have no Converse counterpart: sent on as additionalModelRequestFields, Bedrock would refuse
    them after the call; the gateway refuses them first, naming the field and the fix."""
    import openai

    _, url, _, sent, _ = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="haiku", messages=ask, max_tokens=10, extra_body={field: value})
    message = raised.value.body["message"] if isinstance(raised.value.body, dict) else str(raised.value)
    assert field in message and ("remove" in message or "send" in message)
    assert raised.value.body.get("param") == field
    assert sent == []  # no Converse request was made
    # a model's own parameter still rides in additionalModelRequestFields; the defaults of OpenAI's fields ask nothing
    reply = client.chat.completions.create(
        model="opus",
        messages=ask,
        max_tokens=10,
        modalities=["text"],
        extra_body={"top_k": 5, "anthropic_beta": ["context-1m-2025-08-07"]},
    )
    assert reply.choices[0].message.content
    assert sent[-1]["additionalModelRequestFields"] == {"top_k": 5, "anthropic_beta": ["context-1m-2025-08-07"]}


def test_no_field_of_openais_request_rides_to_a_bedrock_model_under_its_own_name(served) -> None:
    """Each field of the installed openai SDK's request (`SAMPLES`), sent to a Bedrock route: mapped onto Converse's
    own fields, or refused naming it before any call; never passed on as a model parameter (additionalModelRequestFields),
    which some models ignore and others refuse only after the call. A field a newer SDK adds is caught here."""
    import openai

    _, url, _, sent, _ = served
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    for field in request_fields():
        if field in GATEWAY_FIELDS:
            continue
        assert field in SAMPLES, f"OpenAI's request has a new field {field!r}: add a sample value to SAMPLES"
        sent.clear()
        cap = {} if field in ("max_tokens", "max_completion_tokens") else {"max_tokens": 10}
        try:
            client.chat.completions.create(model="opus", messages=ask, **cap, extra_body={field: SAMPLES[field]})
        except openai.BadRequestError as refused:
            assert field in refused.message, (field, refused.message)
            assert sent == [], field  # refused before any call
            continue
        assert field not in sent[-1].get("additionalModelRequestFields", {}), field


SCHEMA_TEXT = json.dumps({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]})
# One sample value per member of botocore's Converse and ConverseStream input shapes (the installed botocore's model).
CONVERSE_SAMPLES = {
    "additionalModelRequestFields": {"top_k": 5},
    "additionalModelResponseFieldPaths": ["/usage"],
    "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
    "inferenceConfig": {"maxTokens": 20, "temperature": 0.5, "topP": 0.5, "stopSequences": ["END"]},
    "outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": SCHEMA_TEXT}}}},
    "performanceConfig": {"latency": "optimized"},
    "projectIdentifier": "proj-1",
    "promptVariables": {"city": {"text": "Paris"}},
    "requestMetadata": {"team": "search"},
    "serviceTier": {"type": "flex"},
    "system": [{"text": "Be brief."}],
    "toolConfig": {"tools": [WEATHER], "toolChoice": {"any": {}}},
}


# Where each member lands in an OpenAI-format model's body; any other is refused by name (Bedrock's own features).
CONVERSE_IN_OPENAI_FORM = {
    "additionalModelRequestFields": ("top_k", 5),
    "inferenceConfig": ("max_tokens", 20),
    "outputConfig": ("response_format", "json_schema"),
    "system": ("messages", "Be brief."),
    "toolConfig": ("tool_choice", "required"),
}
# Refused for Claude 3 Haiku on Bedrock: billed at a tier's prices the catalog lacks (test_converse_mapping.py).
CONVERSE_UNPRICED = {"performanceConfig", "serviceTier"}
CONVERSE_RESHAPED = {"outputConfig"}  # its schema in the strict form Claude takes (test_claude_schemas.py)


@pytest.mark.parametrize("operation", ["Converse", "ConverseStream"])
def test_every_member_of_botocores_converse_input_is_carried_or_refused_by_name(served, operation) -> None:
    """Each member of the installed botocore's Converse and ConverseStream input shapes, sent by boto3, reaches a
    Bedrock model where Converse reads it and an OpenAI-format model in its own field (CONVERSE_IN_OPENAI_FORM), or is
    refused naming it before any call. projectIdentifier was refused ("not carried by the gateway") though the Bedrock
    mapping carries it, as it does InvokeModel's header. A member a newer botocore adds fails here until it gets a
    sample."""
    import botocore.session

    client, _, upstream, sent, _ = served
    shape = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model(operation).input_shape
    call = client.converse if operation == "Converse" else client.converse_stream
    for member in shape.members:
        if member in ("modelId", "messages"):
            continue
        assert member in CONVERSE_SAMPLES, f"{operation} has a new member {member!r}: add a sample to CONVERSE_SAMPLES"
        for model in ("haiku", "fast"):
            sent.clear()
            upstream.bodies.clear()
            carried = member not in CONVERSE_UNPRICED if model == "haiku" else member in CONVERSE_IN_OPENAI_FORM
            if not carried:
                with pytest.raises(ClientError) as refused:
                    call(modelId=model, messages=ASK, **{member: CONVERSE_SAMPLES[member]})
                assert refused.value.response["Error"]["Message"].startswith(member), refused.value.response
                assert sent == [] and upstream.bodies == []  # refused before any call
                continue
            answer = call(modelId=model, messages=ASK, **{member: CONVERSE_SAMPLES[member]})
            if operation == "ConverseStream":
                list(answer["stream"])
            if model == "haiku":
                assert member in sent[-1], (member, sent[-1])
                assert member in CONVERSE_RESHAPED or sent[-1][member] == CONVERSE_SAMPLES[member], sent[-1]
            else:
                place, value = CONVERSE_IN_OPENAI_FORM[member]
                assert upstream.last[place] == value or value in json.dumps(upstream.last[place]), upstream.last
