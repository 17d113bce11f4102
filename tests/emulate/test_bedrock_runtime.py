"""The Bedrock Runtime emulator driven by the real, unmodified boto3 client (and raw HTTP for framing)."""

from __future__ import annotations

import json

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError

from tokenomy.emulate.bedrock_runtime import BedrockEmulator, create_app
from tokenomy.emulate.engine import Engine
from tokenomy.emulate.prompt_cache import PromptCache
from tokenomy.emulate.server import ServerThread
from tokenomy.pricing.catalog import default_catalog

pytestmark = pytest.mark.slow

SONNET = "anthropic.claude-3-7-sonnet-20250219-v1:0"
ROUTER = "arn:aws:bedrock:us-east-1:123456789012:default-prompt-router/anthropic.claude:1"


def long_text(tag: str, lines: int = 80) -> str:
    """A system prompt of well over 1,024 local-model tokens, unique per test so caches don't collide."""
    return "\n".join(
        f"[{tag}] Rule {i}: answer support ticket type {i} politely and cite policy {i * 7}." for i in range(lines)
    )


def client_for(url: str):
    # One attempt (botocore's legacy `max_attempts: 1` still allowed a retry): on a loaded machine the local model's
    # first read of a long prompt passed botocore's 60 s read timeout, and the resent call read the cache the first
    # had written, so a test of write-then-read saw two reads.
    config = Config(retries={"total_max_attempts": 1}, read_timeout=600)
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=config,
    )


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": [{"text": text}]}]


@pytest.fixture(scope="module")
def url():
    with ServerThread(create_app()) as base:
        yield base


@pytest.fixture(scope="module")
def brt(url):
    return client_for(url)


def test_converse_round_trip(brt) -> None:
    result = brt.converse(modelId=SONNET, messages=user("Name a colour."), inferenceConfig={"maxTokens": 6})
    [block] = result["output"]["message"]["content"]
    assert result["output"]["message"]["role"] == "assistant" and block["text"].strip()
    usage = result["usage"]
    assert 0 < usage["outputTokens"] <= 6 and usage["inputTokens"] > 5
    assert usage["totalTokens"] == (
        usage["inputTokens"] + usage["outputTokens"] + usage["cacheReadInputTokens"] + usage["cacheWriteInputTokens"]
    )
    assert result["stopReason"] in ("end_turn", "max_tokens") and result["metrics"]["latencyMs"] >= 0


def test_converse_stream_matches_converse(brt) -> None:
    kwargs = dict(modelId=SONNET, messages=user("Count to three."), inferenceConfig={"maxTokens": 8, "temperature": 0})
    whole = brt.converse(**kwargs)
    events = list(brt.converse_stream(**kwargs)["stream"])
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    assert "contentBlockDelta" in kinds
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == whole["output"]["message"]["content"][0]["text"]
    metadata = events[-1]["metadata"]
    assert metadata["usage"]["outputTokens"] == whole["usage"]["outputTokens"]
    assert events[-2]["messageStop"]["stopReason"] == whole["stopReason"]


def test_stream_frames_decode_with_botocore(url) -> None:
    body = {"messages": user("Say yes."), "inferenceConfig": {"maxTokens": 3}}
    response = httpx.post(f"{url}/model/{SONNET}/converse-stream", json=body, timeout=60)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()
    buffer.add_data(response.content)  # CRC mismatches would raise here
    messages = list(buffer)
    assert messages[0].headers[":event-type"] == "messageStart"
    assert {m.headers[":message-type"] for m in messages} == {"event"}
    assert {m.headers[":content-type"] for m in messages} == {"application/json"}
    assert json.loads(messages[-1].payload)["usage"]["outputTokens"] <= 3


def test_cache_point_writes_then_reads(brt) -> None:
    system = [{"text": long_text("write-read")}, {"cachePoint": {"type": "default"}}]
    first = brt.converse(modelId=SONNET, system=system, messages=user("Ticket 3?"), inferenceConfig={"maxTokens": 2})
    second = brt.converse(modelId=SONNET, system=system, messages=user("Ticket 9?"), inferenceConfig={"maxTokens": 2})
    minimum = default_catalog().lookup(SONNET, "us-east-1").cache_min_tokens
    written = first["usage"]["cacheWriteInputTokens"]
    assert written >= minimum and first["usage"]["cacheReadInputTokens"] == 0
    assert first["usage"]["cacheDetails"] == [{"ttl": "5m", "inputTokens": written}]
    assert second["usage"]["cacheReadInputTokens"] == written and second["usage"]["cacheWriteInputTokens"] == 0
    # inputTokens excludes the cached prefix: only the question and chat framing remain
    assert 0 < second["usage"]["inputTokens"] < 40


def test_prefix_below_minimum_is_not_cached(brt) -> None:
    system = [{"text": long_text("short", lines=10)}, {"cachePoint": {"type": "default"}}]
    for _ in range(2):
        usage = brt.converse(modelId=SONNET, system=system, messages=user("Hi"), inferenceConfig={"maxTokens": 1})[
            "usage"
        ]
        assert usage["cacheReadInputTokens"] == 0 and usage["cacheWriteInputTokens"] == 0
        assert usage["inputTokens"] == usage["totalTokens"] - usage["outputTokens"]


def test_cache_expires_after_ttl() -> None:
    now = [0.0]
    engine = Engine(cache=PromptCache(clock=lambda: now[0]))
    system = [{"text": long_text("ttl")}, {"cachePoint": {"type": "default"}}]
    with ServerThread(create_app(engine=engine)) as base:
        brt = client_for(base)

        def usage() -> dict:
            return brt.converse(modelId=SONNET, system=system, messages=user("Hi"), inferenceConfig={"maxTokens": 1})[
                "usage"
            ]

        assert usage()["cacheWriteInputTokens"] > 0
        now[0] += 200
        assert usage()["cacheReadInputTokens"] > 0
        now[0] += 301  # the catalog TTL for this model is 300 s, refreshed by the hit at t=200
        again = usage()
        assert again["cacheReadInputTokens"] == 0 and again["cacheWriteInputTokens"] > 0
        # an explicit one-hour cache point outlives the default five minutes
        system[1] = {"cachePoint": {"type": "default", "ttl": "1h"}}
        now[0] += 301
        hour = usage()
        assert hour["cacheWriteInputTokens"] > 0 and hour["cacheDetails"][0]["ttl"] == "1h"
        now[0] += 1800
        assert usage()["cacheReadInputTokens"] == hour["cacheWriteInputTokens"]


@pytest.mark.parametrize(
    "model_id",
    [
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "eu.anthropic.claude-3-haiku-20240307-v1:0",
        "apac.anthropic.claude-3-haiku-20240307-v1:0",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
    ],
)
def test_profile_ids_and_arns_are_accepted(brt, model_id) -> None:
    result = brt.converse(modelId=model_id, messages=user("Hi"), inferenceConfig={"maxTokens": 1})
    assert result["usage"]["outputTokens"] == 1


def test_prompt_router_reports_invoked_model(brt) -> None:
    result = brt.converse(modelId=ROUTER, messages=user("Hi"), inferenceConfig={"maxTokens": 1})
    invoked = result["trace"]["promptRouter"]["invokedModelId"]
    assert invoked.startswith("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-")
    stream = brt.converse_stream(modelId=ROUTER, messages=user("Hi"), inferenceConfig={"maxTokens": 1})["stream"]
    streamed = list(stream)
    assert streamed[-1]["metadata"]["trace"]["promptRouter"]["invokedModelId"] == invoked


TOOLS = {"tools": [{"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}]}


@pytest.mark.parametrize(
    "kwargs,code,status,needle",
    [
        (dict(modelId="acme.nonexistent-v1:0", messages=user("x")), "ValidationException", 400, "model identifier"),
        (dict(modelId=SONNET, messages=[]), "ValidationException", 400, "start with a user message"),
        (
            dict(modelId=SONNET, messages=[{"role": "bot", "content": [{"text": "x"}]}]),
            "ValidationException",
            400,
            "enum value set",
        ),
        (
            dict(modelId=SONNET, messages=[{"role": "assistant", "content": [{"text": "x"}]}]),
            "ValidationException",
            400,
            "start with a user message",
        ),
        (dict(modelId=SONNET, messages=user("a") + user("b")), "ValidationException", 400, "alternate"),
        (dict(modelId=SONNET, messages=[{"role": "user", "content": []}]), "ValidationException", 400, "is empty"),
        (dict(modelId=SONNET, messages=user("   ")), "ValidationException", 400, "is blank"),
        (
            dict(
                modelId=SONNET,
                messages=[
                    {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "42"}]}}]}
                ],
            ),
            "ValidationException",
            400,
            "toolConfig",
        ),
        (
            dict(
                modelId=SONNET,
                messages=[
                    {
                        "role": "user",
                        "content": [{"text": "x"}] + [{"text": "y"}, {"cachePoint": {"type": "default"}}] * 5,
                    }
                ],
            ),
            "ValidationException",
            400,
            "cache points",
        ),
        (
            dict(modelId=SONNET, messages=user("x"), inferenceConfig={"temperature": 1.5}),
            "ValidationException",
            400,
            "temperature",
        ),
        (
            dict(modelId=ROUTER.replace("anthropic.claude:1", "acme.router:1"), messages=user("x")),
            "ResourceNotFoundException",
            404,
            "not found",
        ),
        (
            dict(modelId="arn:aws:bedrock:us-east-1::foundation-model/acme.nothing-v1:0", messages=user("x")),
            "ResourceNotFoundException",
            404,
            "not found",
        ),
    ],
)
def test_rejects_what_bedrock_rejects(brt, kwargs, code, status, needle) -> None:
    for call in (brt.converse, brt.converse_stream):
        with pytest.raises(ClientError) as info:
            call(**kwargs)
        error = info.value.response
        assert error["Error"]["Code"] == code and error["ResponseMetadata"]["HTTPStatusCode"] == status
        assert needle in error["Error"]["Message"]


def test_tool_config_and_tool_results_are_accepted(brt) -> None:
    messages = [
        {"role": "user", "content": [{"text": "What is 6*7?"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "42"}]}}]},
    ]
    result = brt.converse(modelId=SONNET, messages=messages, toolConfig=TOOLS, inferenceConfig={"maxTokens": 2})
    assert result["usage"]["inputTokens"] > 20


def test_claude_tools_bill_its_tool_use_system_prompt_by_tool_choice(brt) -> None:
    """Claude on Bedrock adds a system prompt to a call that sends tools and bills it as input, as Anthropic does:
    346 tokens on Claude 3.7 Sonnet for toolChoice auto, 313 for any or tool (the catalog's tool_prompt_tokens_auto /
    _any). The emulator billed only the tools' JSON, as the Anthropic emulator did before; Nova and Llama add none."""
    from tokenomy.emulate.bedrock_request import parse_converse

    tools = {
        "tools": [
            {
                "toolSpec": {
                    "name": "weather",
                    "description": "The weather in a city.",
                    "inputSchema": {"json": {"type": "object"}},
                }
            }
        ]
    }
    ask = {"messages": user("Weather in Paris?"), "toolConfig": tools}
    system, turns, _ = parse_converse(ask, 300)
    rendered = Engine().count_input(system, turns)  # the tools and the prompt as the local model reads them
    for choice, tool_prompt in (
        (None, 346),
        ({"auto": {}}, 346),
        ({"any": {}}, 313),
        ({"tool": {"name": "weather"}}, 313),
    ):
        config = {**tools, "toolChoice": choice} if choice else tools
        called = {"messages": ask["messages"], "toolConfig": config}
        usage = brt.converse(modelId=SONNET, inferenceConfig={"maxTokens": 2}, **called)["usage"]
        assert usage["inputTokens"] == rendered + tool_prompt, choice
        streamed = list(brt.converse_stream(modelId=SONNET, inferenceConfig={"maxTokens": 2}, **called)["stream"])
        assert streamed[-1]["metadata"]["usage"]["inputTokens"] == rendered + tool_prompt, choice
        counted = brt.count_tokens(modelId=SONNET, input={"converse": called})["inputTokens"]
        assert counted == rendered + tool_prompt, choice
    plain = {"messages": ask["messages"]}
    system, turns, _ = parse_converse(plain, 300)
    assert brt.converse(modelId=SONNET, inferenceConfig={"maxTokens": 2}, **plain)["usage"]["inputTokens"] == (
        Engine().count_input(system, turns)
    )
    for other in ("amazon.nova-lite-v1:0", "meta.llama3-1-8b-instruct-v1:0"):
        usage = brt.converse(modelId=other, inferenceConfig={"maxTokens": 2}, **ask)["usage"]
        assert usage["inputTokens"] == rendered, other


def test_full_throttling_answers_429() -> None:
    with ServerThread(create_app(throttle_rate=1.0, retry_after=0.5)) as base, pytest.raises(ClientError) as info:
        client_for(base).converse(modelId=SONNET, messages=user("x"))
    response = info.value.response
    assert response["Error"]["Code"] == "ThrottlingException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "0.5"


def test_throttle_rate_is_a_seeded_fraction() -> None:
    def pattern(seed: int) -> list[bool]:
        emulator = BedrockEmulator(throttle_rate=0.3, seed=seed, engine=object())  # type: ignore[arg-type]
        out = []
        for _ in range(400):
            try:
                emulator.maybe_throttle()
                out.append(False)
            except Exception:
                out.append(True)
        return out

    first, again, other = pattern(7), pattern(7), pattern(8)
    assert first == again and first != other
    assert 0.22 < sum(first) / len(first) < 0.38


def test_thirty_percent_throttling_under_concurrent_load() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ServerThread(create_app(throttle_rate=0.3, seed=11)) as base:
        brt = client_for(base)  # boto3 clients are thread-safe

        def call(i: int) -> str:
            try:
                result = brt.converse(modelId=SONNET, messages=user(f"Hi {i}"), inferenceConfig={"maxTokens": 1})
                assert result["usage"]["outputTokens"] == 1
                return "ok"
            except ClientError as exc:
                return exc.response["Error"]["Code"]

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(call, range(50)))
    assert set(outcomes) == {"ok", "ThrottlingException"}
    assert 5 <= outcomes.count("ThrottlingException") <= 25


def test_malformed_json_body_is_a_validation_error(url) -> None:
    response = httpx.post(
        f"{url}/model/{SONNET}/converse", content=b"{not json", timeout=30, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"].startswith("ValidationException")
    assert "not valid JSON" in response.json()["message"]


def test_converse_helper_for_extensions_skips_throttling() -> None:
    emulator = create_app(throttle_rate=1.0).state.emulator
    result = emulator.converse(SONNET, {"messages": user("Hi"), "inferenceConfig": {"maxTokens": 1}}, throttle=False)
    assert result["usage"]["outputTokens"] == 1 and result["output"]["message"]["content"][0]["text"]


def test_count_tokens_equals_the_input_tokens_converse_reports(url) -> None:
    client = client_for(url)
    tools = {
        "tools": [
            {
                "toolSpec": {
                    "name": "weather",
                    "description": "The weather in a city.",
                    "inputSchema": {"json": {"type": "object"}},
                }
            }
        ]
    }
    asks = [
        {"messages": user("Count these words.")},
        {"messages": user("Count these words."), "system": [{"text": "Be brief."}], "toolConfig": tools},
    ]
    for ask in asks:
        counted = client.count_tokens(modelId=SONNET, input={"converse": ask})["inputTokens"]
        assert (
            counted == client.converse(modelId=SONNET, inferenceConfig={"maxTokens": 2}, **ask)["usage"]["inputTokens"]
        )
    assert counted > client.count_tokens(modelId=SONNET, input={"converse": asks[0]})["inputTokens"]
    for given, says in (
        ({"converse": {"messages": []}}, "start with a user message"),
        ({"invokeModel": {"body": b"{}"}}, "input.converse only"),
    ):
        with pytest.raises(ClientError, match=says) as refused:
            client.count_tokens(modelId=SONNET, input=given)
        assert refused.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as routed:
        client.count_tokens(modelId=ROUTER, input={"converse": asks[0]})
    assert "doesn't support counting tokens" in str(routed.value)
    # boto3 checks members itself; another client's unknown one is Bedrock's ValidationException too.
    raw = httpx.post(
        f"{url}/model/{SONNET}/count-tokens",
        json={"input": {"converse": {**asks[0], "inferenceConfig": {"maxTokens": 2}}}},
    )
    assert raw.status_code == 400 and "input.converse.inferenceConfig" in raw.json()["message"]


TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"


def invoke(client, model_id: str, body: dict) -> tuple[dict, dict]:
    result = client.invoke_model(
        modelId=model_id, body=json.dumps(body), contentType="application/json", accept="application/json"
    )
    return json.loads(result["body"].read()), result["ResponseMetadata"]["HTTPHeaders"]


def test_titan_embeddings_are_deterministic_unit_vectors_counted_by_the_local_tokenizer(brt) -> None:
    from tokenomy.emulate.bedrock_embed import titan_vector

    text = "Tokenomy keeps the ledger of every embedding call."
    answer, headers = invoke(brt, TITAN, {"inputText": text, "dimensions": 256})
    again, _ = invoke(brt, TITAN, {"inputText": text, "dimensions": 256})
    assert answer["embedding"] == again["embedding"] == titan_vector(text, 256) == answer["embeddingsByType"]["float"]
    assert len(answer["embedding"]) == 256 and abs(sum(v * v for v in answer["embedding"]) - 1) < 1e-5
    tokens = Engine().count(text)  # the local model's tokenizer, as Converse counts
    assert answer["inputTextTokenCount"] == int(headers["x-amzn-bedrock-input-token-count"]) == tokens > 5
    assert int(headers["x-amzn-bedrock-invocation-latency"]) >= 1
    default, _ = invoke(brt, "us." + TITAN, {"inputText": "other"})  # a profile id; 1024 dimensions by default
    assert len(default["embedding"]) == 1024 and default["embedding"] != titan_vector(text, 1024)
    raw, _ = invoke(brt, TITAN, {"inputText": text, "dimensions": 256, "normalize": False})
    assert all(v * 128 == int(v * 128) for v in raw["embedding"]) and raw["embedding"] != answer["embedding"]


def test_cohere_embeds_a_batch_and_counts_it_only_in_the_header(brt) -> None:
    from tokenomy.emulate.bedrock_embed import cohere_vector

    texts = ["first passage", "second passage, a little longer", "third"]
    bare, headers = invoke(brt, COHERE, {"texts": texts, "input_type": "search_document"})
    assert bare["response_type"] == "embeddings_floats" and bare["texts"] == texts
    assert bare["embeddings"] == [cohere_vector(t) for t in texts] and len(bare["embeddings"][0]) == 1024
    assert int(headers["x-amzn-bedrock-input-token-count"]) == sum(Engine().count(t) for t in texts)
    assert "inputTextTokenCount" not in bare
    typed, _ = invoke(
        brt, COHERE, {"texts": texts, "input_type": "search_query", "truncate": "NONE", "embedding_types": ["float"]}
    )
    assert typed["response_type"] == "embeddings_by_type" and typed["embeddings"]["float"] == bare["embeddings"]
    v4, _ = invoke(brt, "cohere.embed-v4:0", {"texts": texts, "input_type": "clustering", "output_dimension": 512})
    assert [len(v) for v in v4["embeddings"]["float"]] == [512] * 3


@pytest.mark.parametrize(
    "model_id, body, needle",
    [
        (TITAN, {"inputText": "x", "dimensions": 300}, "#/dimensions"),
        (TITAN, {"inputText": ""}, "#/inputText"),
        (TITAN, {"texts": ["x"]}, "extraneous key [texts]"),
        (COHERE, {"texts": ["x"]}, "#/input_type"),
        (COHERE, {"texts": ["x"] * 97, "input_type": "search_document"}, "maxItems: 96"),
        (COHERE, {"texts": ["x" * 2049], "input_type": "search_document"}, "#/texts/0"),
        (SONNET, {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": []}, "non-empty list"),
    ],
)
def test_invoke_refuses_what_bedrock_refuses(brt, model_id, body, needle) -> None:
    with pytest.raises(ClientError) as refused:
        invoke(brt, model_id, body)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert needle in refused.value.response["Error"]["Message"]


@pytest.mark.parametrize("model_id", [TITAN, COHERE, "cohere.embed-v4:0", "us.cohere.embed-v4:0"])
def test_an_embedding_model_answers_no_converse_and_counts_no_tokens(brt, model_id) -> None:
    # Bedrock refuses them: an embedding model has no chat, and CountTokens counts no embeddings.
    with pytest.raises(ClientError) as chat:
        brt.converse(modelId=model_id, messages=user("hi"))
    with pytest.raises(ClientError) as streamed:
        brt.converse_stream(modelId=model_id, messages=user("hi"))
    with pytest.raises(ClientError) as counted:
        brt.count_tokens(modelId=model_id, input={"converse": {"messages": user("hi")}})
    for refused in (chat, streamed):
        error = refused.value.response["Error"]
        assert error["Code"] == "ValidationException" and "doesn't support the model" in error["Message"]
    error = counted.value.response["Error"]
    assert error["Code"] == "ValidationException" and "doesn't support counting tokens" in error["Message"]


def test_invoke_is_throttled_as_converse_is() -> None:
    with ServerThread(create_app(throttle_rate=1.0, retry_after=0.5)) as base, pytest.raises(ClientError) as info:
        invoke(client_for(base), TITAN, {"inputText": "x"})
    response = info.value.response
    assert response["Error"]["Code"] == "ThrottlingException" and response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_a_matched_stop_sequence_is_the_stop_reason_and_named_when_asked() -> None:
    # Converse said "end_turn" when a stop sequence ended the text (the local model drops the sequence and cannot say
    # which); Bedrock says "stop_sequence", and names it for a Claude model asked by additionalModelResponseFieldPaths.
    from tokenomy.emulate.instant_engine import InstantEngine

    with ServerThread(create_app(engine=InstantEngine())) as base:
        brt = client_for(base)
        ask = {
            "modelId": SONNET,
            "messages": user("alpha beta STOP gamma"),
            "inferenceConfig": {"maxTokens": 50, "stopSequences": ["zzz", "ta ST", "STOP"]},
            "additionalModelResponseFieldPaths": ["/stop_sequence", "/delta/stop_sequence"],
        }
        whole = brt.converse(**ask)
        events = list(brt.converse_stream(**ask)["stream"])
        plain = brt.converse(**{**ask, "inferenceConfig": {"maxTokens": 50, "stopSequences": ["zzz"]}})
        unasked = brt.converse(**{k: v for k, v in ask.items() if k != "additionalModelResponseFieldPaths"})
    named = {"stop_sequence": "ta ST", "delta": {"stop_sequence": "ta ST"}}
    assert whole["stopReason"] == "stop_sequence" and whole["additionalModelResponseFields"] == named
    assert whole["output"]["message"]["content"] == [{"text": "Re: alpha be"}]
    [stop] = [e["messageStop"] for e in events if "messageStop" in e]
    streamed = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    assert stop == {"stopReason": "stop_sequence", "additionalModelResponseFields": named}
    assert streamed == "Re: alpha be"
    assert plain["stopReason"] == "end_turn"
    assert plain["additionalModelResponseFields"] == {"stop_sequence": None, "delta": {"stop_sequence": None}}
    assert unasked["stopReason"] == "stop_sequence" and "additionalModelResponseFields" not in unasked


def test_top_k_and_top_p_reach_the_local_model(brt) -> None:
    # inferenceConfig.topP and additionalModelRequestFields' top_k (Claude's and Mistral's; Nova's inferenceConfig.topK)
    # were checked and ignored: an answer sampled at temperature 1 was drawn from all tokens.
    def said(model_id: str = SONNET, extra: dict | None = None, **inference) -> str:
        more = {"additionalModelRequestFields": extra} if extra else {}
        result = brt.converse(
            modelId=model_id,
            messages=user("Tell me a story"),
            inferenceConfig={"maxTokens": 16, **inference},
            **more,
        )
        return result["output"]["message"]["content"][0]["text"]

    greedy = said(temperature=0)
    assert said(temperature=1) != greedy
    assert said(temperature=1, extra={"top_k": 1}) == greedy
    assert said(temperature=1, topP=0) == greedy
    with pytest.raises(ClientError, match=r"additionalModelRequestFields\.top_k: must be a non-negative integer"):
        said(extra={"top_k": "1"})
    nova = "amazon.nova-lite-v1:0"
    assert said(nova, temperature=1, extra={"inferenceConfig": {"topK": 1}}) == said(nova, temperature=0)
    # InvokeModel's Claude body carries top_k as Converse does
    claude = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 16,
        "temperature": 1,
        "top_k": 1,
        "messages": [{"role": "user", "content": "Tell me a story"}],
    }
    answer = json.loads(brt.invoke_model(modelId=SONNET, body=json.dumps(claude))["body"].read())
    assert answer["content"][0]["text"] == greedy


def test_reasoning_and_answer_together_stay_within_max_tokens() -> None:
    # The reasoning was cut at maxTokens and the answer got all of maxTokens again, so under the interleaved-thinking
    # beta (a budget above maxTokens) a response said more output than its maxTokens: Claude's max_tokens bounds
    # its reasoning and text together. The instant engine echoes 12 words, one token each, reasoning included.
    from tokenomy.emulate.instant_engine import ANSWER_WORDS, InstantEngine

    words = " ".join(f"w{n}" for n in range(40))
    extra = {
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "anthropic_beta": ["interleaved-thinking-2025-05-14"],
    }
    with ServerThread(create_app(engine=InstantEngine())) as base:
        brt = client_for(base)
        for cap in (5, ANSWER_WORDS + 3, 2 * ANSWER_WORDS + 5):
            ask = {
                "modelId": SONNET,
                "messages": user(words),
                "inferenceConfig": {"maxTokens": cap},
                "additionalModelRequestFields": extra,
            }
            whole = brt.converse(**ask)
            assert whole["usage"]["outputTokens"] == min(cap, 2 * ANSWER_WORDS), (cap, whole["usage"])
            assert whole["stopReason"] == ("end_turn" if cap > 2 * ANSWER_WORDS else "max_tokens"), cap
            kinds = [next(iter(block)) for block in whole["output"]["message"]["content"]]
            assert kinds == (["reasoningContent"] if cap <= ANSWER_WORDS else ["reasoningContent", "text"]), kinds
            events = list(brt.converse_stream(**ask)["stream"])
            [stop] = [e["messageStop"] for e in events if "messageStop" in e]
            [metadata] = [e["metadata"] for e in events if "metadata" in e]
            assert stop["stopReason"] == whole["stopReason"], cap
            assert metadata["usage"]["outputTokens"] == whole["usage"]["outputTokens"], cap
