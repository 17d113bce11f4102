"""POST /v1/embeddings through the gateway, driven by the openai SDK against the instant OpenAI-format upstream."""

import asyncio
import json
import threading
import time
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest

from helpers import stand_in_aws_keys
from helpers.cut_off import cut_off_upstream
from helpers.noticing_openai import NoticingOpenAI
from helpers.openai_samples import EMBEDDING_GATEWAY_FIELDS, EMBEDDING_SAMPLES, embedding_fields
from tokenomy.config import parse_config
from tokenomy.emulate.azure_openai import create_app as azure_app
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.instant_openai import InstantOpenAI, embedding_vector
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.gateway.embeddings_attempts import embed_with_retries
from tokenomy.gateway.embeddings_request import parse_embeddings_request
from tokenomy.gateway.keys import KeyStore
from tokenomy.gateway.state import Gateway
from tokenomy.ledger.store import open_store
from tokenomy.messages import RequestMeta
from tokenomy.telemetry.otel_pipeline import in_memory_pipeline

SMALL = "text-embedding-3-small"
PER_TOKEN = Decimal("0.02") / 1_000_000  # text-embedding-3-small: $0.02 per 1M input tokens


class RecordingUpstream(InstantOpenAI):
    """The instant upstream, keeping every body it receives (it refuses none)."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[dict] = []

    def _refusal(self, body: bytes) -> bytes | None:
        self.bodies.append(json.loads(body))
        return None


def gateway(url: str, ledger: Path, **extra) -> ServerThread:
    config = {
        "models": {
            "embed": {"provider": "openai", "model": SMALL, "base_url": url, "api_key_env": "EMBED_KEY"},
            "backup": {"provider": "openai", "model": "text-embedding-3-large", "base_url": url},
            "claude": {"provider": "anthropic", "model": "claude-3-5-haiku-20241022"},
            "nova": {"provider": "bedrock", "model": "amazon.nova-lite-v1:0", "region": "us-east-1"},
        },
        "tiers": {"cheap": ["embed"], "strong": ["backup"]},
        "routes": {
            "search": {"model": "embed"},
            "safe": {"model": "embed", "fallback": ["backup"]},
            "routed": {"policy": "cascade"},
            "chat": {"model": "claude"},
        },
        "routing": {
            "policies": {"cascade": {"type": "cascade", "tiers": ["cheap", "strong"], "validators": {"json": True}}}
        },
        **extra,
    }
    return ServerThread(create_app(parse_config(config), str(ledger)), lifespan="on")


def test_vectors_arrive_intact_the_upstream_gets_the_fields_sent_and_the_ledger_prices_input_tokens(ledger_path):
    spans = in_memory_pipeline()[0]
    spans.clear()
    upstream = RecordingUpstream()
    with upstream as upstream_url, gateway(upstream_url, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        floats = client.embeddings.with_raw_response.create(
            model="search",
            input=["hello world", "second"],
            encoding_format="float",
            dimensions=8,
            user="u-1",
            extra_headers={"x-tokenomy-tags": "team=rag"},
        )
        # No encoding_format: the SDK asks for base64 and decodes the float32 bytes itself.
        default = client.embeddings.create(model="embed", input="hello world")
        tokens = client.embeddings.create(
            model="search", input=[[1, 2, 3], [4, 5]], encoding_format="base64", dimensions=4
        )
        exposed = httpx.get(url + "/metrics").text
    answer = floats.parse()
    assert [d.embedding for d in answer.data] == [embedding_vector("hello world", 8), embedding_vector("second", 8)]
    assert answer.model == "search" and answer.usage.prompt_tokens == 3  # 11 // 4 + 6 // 4
    assert default.data[0].embedding == embedding_vector("hello world") and len(default.data[0].embedding) == 1536
    assert isinstance(tokens.data[1].embedding, str)  # asked for base64: passed on as sent, not decoded
    assert upstream.bodies == [
        {
            "model": SMALL,
            "input": ["hello world", "second"],
            "encoding_format": "float",
            "dimensions": 8,
            "user": "u-1",
        },
        {"model": SMALL, "input": "hello world", "encoding_format": "base64"},
        {"model": SMALL, "input": [[1, 2, 3], [4, 5]], "encoding_format": "base64", "dimensions": 4},
    ]
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)
    assert [(e.route, e.input_tokens, e.output_tokens) for e in rows] == [
        ("search", 3, 0),
        ("embed", 2, 0),
        ("search", 5, 0),
    ]
    assert [e.cost_usd for e in rows] == [3 * PER_TOKEN, 2 * PER_TOKEN, 5 * PER_TOKEN]
    assert rows[0].cost_usd == Decimal("0.00000006") and rows[0].priced_by == "tokenomy-catalog"
    assert {(e.model, e.provider, e.outcome) for e in rows} == {(SMALL, "openai", "ok")}
    assert rows[0].tags == {"team": "rag", "operation": "embeddings"}
    assert rows[0].request_id == floats.headers["x-request-id"]
    assert rows[0].prompt_hash != rows[2].prompt_hash and rows[0].prompt_text is None
    [span, *_] = [dict(s.attributes) for s in spans.get_finished_spans() if s.name == f"embeddings {SMALL}"]
    assert span["gen_ai.operation.name"] == "embeddings" and span["gen_ai.usage.input_tokens"] == 3
    assert span["tokenomy.route"] == "search" and span["tokenomy.cost.usd"] == float(3 * PER_TOKEN)
    assert span["gen_ai.request.encoding_formats"] == ("float",) and span["gen_ai.embeddings.dimension.count"] == 8
    assert 'tokenomy_tokens_total{model="embed",type="input"}' in exposed  # the counters outlive one test
    assert 'tokenomy_requests_total{model="search",status="200"}' in exposed


def test_a_budget_refuses_what_it_cannot_cover_and_settles_at_the_real_cost(ledger_path):
    store = KeyStore(open_store(ledger_path))
    secret, key = store.create(budget_usd=Decimal("0.000001"), period="month")  # 50 tokens of text-embedding-3-small
    upstream = RecordingUpstream()
    with upstream as upstream_url, gateway(upstream_url, ledger_path, auth=True) as url:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="tk-wrong", max_retries=0).embeddings.create(
                model="search", input="x"
            )
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.RateLimitError) as refused:
            client.embeddings.create(model="search", input="y" * 400)  # ~100 tokens: $0.000002
        assert refused.value.code == "budget_exceeded" and "Budget exhausted" in refused.value.message
        assert refused.value.response.headers["x-should-retry"] == "false"
        for _ in range(4):  # 40 tokens, 10 each: within the budget once each is settled at its real cost
            client.embeddings.create(model="search", input="z" * 40, encoding_format="float")
        with pytest.raises(openai.RateLimitError):  # 40 spent + ~25 more would pass the 50
            client.embeddings.create(model="search", input="w" * 100, encoding_format="float")
    assert len(upstream.bodies) == 4
    rows = open_store(ledger_path).events()
    assert {e.key_id for e in rows} == {key.key_id} and sum(e.cost_usd for e in rows) == 40 * PER_TOKEN


def test_unknown_fields_malformed_input_and_routes_without_one_openai_model_are_refused_by_name(ledger_path):
    upstream = RecordingUpstream()
    with upstream as upstream_url, gateway(upstream_url, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.BadRequestError) as unknown:
            client.embeddings.create(model="search", input="x", extra_body={"truncate": True})
        assert unknown.value.param == "truncate" and "remove it" in unknown.value.message

        def refusal(body: object, content: bytes | None = None) -> dict:
            answer = (
                httpx.post(url + "/v1/embeddings", json=body)
                if content is None
                else httpx.post(url + "/v1/embeddings", content=content, headers={"content-type": "application/json"})
            )
            assert answer.status_code == 400, answer.text
            return answer.json()["error"]

        for given, place in (
            ([], "input"),
            ("", "input"),  # OpenAI refuses an empty text as `'$.input' is invalid`, never saying which
            (["a", "", "b"], "input[1]"),
            ([[1, "a"]], "input[0][1]"),
            (["a", 1], "input[1]"),
            ([[1], 2], "input[1]"),
            ([[]], "input[0]"),
            ([-1], "input[0]"),
            ([True], "input[0]"),
            ({"text": "x"}, "input"),
            (None, "input"),
        ):
            assert refusal({"model": "search", "input": given})["param"] == place, given
        assert refusal({"model": "search"})["param"] == "input"
        assert refusal({"input": "x"})["param"] == "model"
        assert refusal({"model": "search", "input": "x", "encoding_format": "hex"})["param"] == "encoding_format"
        for dimensions in (0, True, "8", 2.5):
            assert refusal({"model": "search", "input": "x", "dimensions": dimensions})["param"] == "dimensions"
        assert refusal({"model": "search", "input": "x", "user": 7})["param"] == "user"
        assert refusal(["x"])["param"] == "body"
        assert "not valid JSON" in refusal(None, content=b"{model: search")["message"]

        anthropic = refusal({"model": "chat", "input": "x"})
        assert anthropic["param"] == "model" and anthropic["code"] == "model_not_supported"
        assert all(
            word in anthropic["message"] for word in ("`chat`", "`anthropic`", "no embeddings API", "provider: openai")
        )
        nova = refusal({"model": "nova", "input": "x"})["message"]  # a Bedrock chat model: no embeddings
        assert "`amazon.nova-lite-v1:0`" in nova and "no embedding model" in nova and "titan-embed" in nova
        cohere_only = refusal({"model": "search", "input": "x", "input_type": "search_query"})  # the one extension
        assert cohere_only["param"] == "input_type" and "Cohere Embed" in cohere_only["message"]
        assert refusal({"model": "search", "input": "x", "input_type": "query"})["param"] == "input_type"
        assert "falls back to backup" in refusal({"model": "safe", "input": "x"})["message"]
        assert "routing policy `cascade`" in refusal({"model": "routed", "input": "x"})["message"]
        missing = httpx.post(url + "/v1/embeddings", json={"model": "nope", "input": "x"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    assert upstream.bodies == [] and open_store(ledger_path).events() == []


def test_a_null_optional_field_is_not_given_as_openai_and_the_chat_route_take_it(ledger_path):
    # Clients that serialize every field of their request type send `"dimensions": null` for one they did not set.
    upstream = RecordingUpstream()
    nulls = {"encoding_format": None, "dimensions": None, "user": None}
    with upstream as upstream_url, gateway(upstream_url, ledger_path) as url:
        answer = httpx.post(url + "/v1/embeddings", json={"model": "search", "input": "hello world", **nulls})
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"][0]["embedding"] == embedding_vector("hello world")  # floats, the default
    assert upstream.bodies == [{"model": SMALL, "input": "hello world"}]


def test_an_upstream_error_keeps_its_status_and_every_attempt_is_a_row(ledger_path):
    class Throttled(RecordingUpstream):
        def _refusal(self, body: bytes) -> bytes | None:
            super()._refusal(body)
            payload = b'{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}'
            return (
                b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 0\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
            )

    upstream = Throttled()
    retry = {"max_attempts": 2, "base_delay_s": 0.01}
    with (
        upstream as upstream_url,
        gateway(upstream_url, ledger_path, routes={"search": {"model": "embed", "retry": retry}}) as url,
    ):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.RateLimitError) as throttled:
            client.embeddings.create(model="search", input="x")
    # The upstream's own code reaches the caller (an OpenAI-format upstream's, as OpenAI's API names a rate limit).
    assert throttled.value.code == "rate_limit_exceeded" and "slow down" in throttled.value.message
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.attempt)
    assert len(upstream.bodies) == 2
    assert [(e.attempt, e.outcome, e.cost_usd) for e in rows] == [(1, "throttled", 0), (2, "throttled", 0)]
    assert {e.request_id for e in rows} == {throttled.value.response.headers["x-request-id"]}


def test_the_attempts_of_one_embeddings_request_are_children_of_its_call_span(ledger_path):
    class ThrottledOnce(RecordingUpstream):
        def _refusal(self, body: bytes) -> bytes | None:
            super()._refusal(body)
            if len(self.bodies) > 1:
                return None
            payload = b'{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}'
            return (
                b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 0\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
            )

    spans = in_memory_pipeline()[0]
    spans.clear()
    retry = {"max_attempts": 2, "base_delay_s": 0.01}
    with (
        ThrottledOnce() as upstream_url,
        gateway(upstream_url, ledger_path, routes={"search": {"model": "embed", "retry": retry}}) as url,
    ):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        answered = client.embeddings.with_raw_response.create(model="search", input="x")
    [call] = [s for s in spans.get_finished_spans() if s.name == f"tokenomy.call {SMALL}"]
    attempts = [s for s in spans.get_finished_spans() if s.name == f"embeddings {SMALL}"]
    assert call.attributes["tokenomy.request_id"] == answered.headers["x-request-id"]
    assert [(a.attributes["tokenomy.attempt"], a.attributes.get("error.type")) for a in attempts] == [
        (1, "throttled"),
        (2, None),
    ]
    assert all(a.parent is not None and a.parent.span_id == call.context.span_id for a in attempts)


def test_an_upstream_that_reports_no_usage_is_recorded_at_the_estimate_and_the_caller_still_gets_usage(ledger_path):
    class Unmetered(RecordingUpstream):  # some OpenAI-compatible servers send no usage
        def _refusal(self, body: bytes) -> bytes | None:
            super()._refusal(body)
            payload = json.dumps(
                {
                    "object": "list",
                    "model": SMALL,
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25]}],
                }
            ).encode()
            return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
                len(payload),
                payload,
            )

    upstream = Unmetered()
    with upstream as upstream_url, gateway(upstream_url, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        answer = client.embeddings.create(model="search", input="x" * 80, encoding_format="float")
    assert answer.data[0].embedding == [0.5, -0.25] and answer.usage.prompt_tokens == 20
    [row] = open_store(ledger_path).events()
    assert (row.input_tokens, row.cost_usd, row.outcome) == (20, 20 * PER_TOKEN, "ok")


def test_the_routes_rate_limit_holds_embeddings_too(ledger_path):
    upstream = RecordingUpstream()
    route = {"model": "embed", "rate_limit": {"requests_per_minute": 1}, "retry": {"deadline_s": 0.2}}
    with upstream as upstream_url, gateway(upstream_url, ledger_path, routes={"search": route}) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        client.embeddings.create(model="search", input="x")
        with pytest.raises(openai.RateLimitError) as limited:
            client.embeddings.create(model="search", input="x")
    assert "client-side rate limit" in limited.value.message and "rate_limit" in limited.value.message
    assert len(upstream.bodies) == 1 and len(open_store(ledger_path).events()) == 1  # nothing sent, no row


def test_a_call_cancelled_in_flight_is_a_row_at_its_estimated_input(ledger_path):
    # As a chat call cancelled in flight (a timeout, the gateway shutting down): the upstream has the request and
    # bills it, so the ledger must not lose it. The caller leaves once the upstream has the request (not after a
    # fixed time: on a loaded machine a short timeout can end the call before it sent anything).
    upstream = NoticingOpenAI(delay_s=60)  # never answers within the test: its exit ends the wait

    async def cancelled() -> None:
        config = parse_config({"models": {"embed": {"provider": "openai", "model": SMALL, "base_url": upstream_url}}})
        gw = Gateway(config, str(ledger_path))
        asked = parse_embeddings_request({"model": "embed", "input": "x" * 40})
        spec = gw.client.spec_for("embed")
        meta = RequestMeta(route="embed", request_id="r-1")
        try:
            policy = gw.policy_for("embed", gw.route_for("embed"))
            call = asyncio.ensure_future(embed_with_retries(gw, asked, spec, policy, meta, asked.estimated_tokens()))
            assert await asyncio.to_thread(upstream.has_request.wait, 60)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        finally:
            await gw.client.aclose_upstreams()
            gw.client.close()

    with upstream as upstream_url:
        asyncio.run(cancelled())
    [row] = open_store(ledger_path).events()
    assert (row.outcome, row.error_type, row.input_tokens) == ("cancelled", "CallCancelled", 10)
    assert row.cost_usd == 10 * PER_TOKEN and row.request_id == "r-1"


def test_an_azure_deployment_embeds_through_its_sdk_client_and_is_recorded_under_its_model(ledger_path, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    azure = ServerThread(azure_app({"emb-prod": SMALL}, InstantEngine()))
    config = {
        "models": {
            "azure-embed": {"provider": "azure", "model": "emb-prod", "price_as": SMALL, "api_version": "2024-10-21"},
            "missing": {"provider": "azure", "model": "nope", "price_as": SMALL},
        }
    }
    with azure as azure_url:
        for spec in config["models"].values():
            spec["base_url"] = azure_url
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            floats = client.embeddings.create(
                model="azure-embed", input=["a b c d"], encoding_format="float", dimensions=4
            )
            default = client.embeddings.create(model="azure-embed", input="a b c d")  # base64, decoded by the SDK
            with pytest.raises(openai.APIStatusError) as missing:
                client.embeddings.create(model="missing", input="x")
    assert floats.data[0].embedding == embedding_vector("a b c d", 4) and floats.model == "azure-embed"
    assert default.data[0].embedding == embedding_vector("a b c d")
    assert missing.value.status_code == 502 and "DeploymentNotFound" in missing.value.message  # the config's fault
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)
    assert [(e.provider, e.model, e.tags["deployment"], e.outcome) for e in rows] == [
        ("azure", SMALL, "emb-prod", "ok"),
        ("azure", SMALL, "emb-prod", "ok"),
        ("azure", SMALL, "nope", "client_error"),
    ]
    assert [(e.input_tokens, e.cost_usd) for e in rows] == [(1, PER_TOKEN), (1, PER_TOKEN), (0, 0)]  # 7 // 4 tokens


def test_an_answer_with_fewer_vectors_than_inputs_is_a_502_and_its_billed_row_says_so(ledger_path):
    # An index zips inputs with vectors: one missing would file every later chunk under its neighbour's vector.
    class Short(RecordingUpstream):
        def _refusal(self, body: bytes) -> bytes | None:
            super()._refusal(body)
            payload = json.dumps(
                {
                    "object": "list",
                    "model": SMALL,
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
                    "usage": {"prompt_tokens": 7, "total_tokens": 7},
                }
            ).encode()
            return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
                len(payload),
                payload,
            )

    spans, reader = in_memory_pipeline()
    spans.clear()
    before = _billed_in_failures(reader)
    upstream = Short()
    with upstream as upstream_url, gateway(upstream_url, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as short:
            client.embeddings.create(model="search", input=["first", "second"], encoding_format="float")
    assert short.value.status_code == 502 and "1 embedding for 2 inputs" in short.value.message
    assert len(upstream.bodies) == 1  # not asked again: the upstream would answer the same
    [row] = open_store(ledger_path).events()
    assert (row.outcome, row.input_tokens, row.cost_usd) == ("server_error", 7, 7 * PER_TOKEN)
    # The tokens the upstream counted and billed are on the failed attempt's span and in the token metric too.
    [span] = [s for s in spans.get_finished_spans() if s.name == f"embeddings {SMALL}"]
    assert span.attributes["error.type"] == "server_error" and span.attributes["gen_ai.usage.input_tokens"] == 7
    assert span.attributes["tokenomy.cost.usd"] == float(7 * PER_TOKEN)
    assert _billed_in_failures(reader) - before == 7


def _billed_in_failures(reader) -> int:
    """Input tokens in the token-usage histogram of failed embeddings attempts so far (it is cumulative)."""
    data = reader.get_metrics_data()
    return sum(
        point.sum
        for rm in (data.resource_metrics if data else [])
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == "gen_ai.client.token.usage"
        for point in metric.data.data_points
        if point.attributes.get("error.type") and point.attributes["gen_ai.operation.name"] == "embeddings"
    )


@pytest.mark.parametrize("usage", [{"total_tokens": 9}, {"prompt_tokens": -1, "total_tokens": -1}, {}])
def test_an_answer_whose_usage_has_no_valid_prompt_tokens_tells_the_caller_what_was_billed(ledger_path, usage):
    class Miscounted(RecordingUpstream):
        def _refusal(self, body: bytes) -> bytes | None:
            super()._refusal(body)
            payload = json.dumps(
                {
                    "object": "list",
                    "model": SMALL,
                    "usage": usage,
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.5]}],
                }
            ).encode()
            return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
                len(payload),
                payload,
            )

    with Miscounted() as upstream_url, gateway(upstream_url, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        answer = client.embeddings.create(model="search", input="x" * 80, encoding_format="float")
    [row] = open_store(ledger_path).events()
    assert row.input_tokens == 20 and answer.usage.prompt_tokens == 20 and answer.usage.total_tokens == 20


def test_a_malformed_tags_header_is_a_400_before_any_reservation(ledger_path):
    store = KeyStore(open_store(ledger_path))
    secret, _ = store.create(budget_usd=Decimal("1"), period="month")
    upstream = RecordingUpstream()
    with upstream as upstream_url, gateway(upstream_url, ledger_path, auth=True) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        with pytest.raises(openai.BadRequestError) as malformed:
            client.embeddings.create(model="search", input="x", extra_headers={"x-tokenomy-tags": "team"})
        assert "x-tokenomy-tags" in malformed.value.message
        client.embeddings.create(model="search", input="x")  # the refused call held no slot or reservation
    assert len(upstream.bodies) == 1


# Bedrock's embedding models: the openai SDK -> the gateway -> boto3's InvokeModel -> the Bedrock emulator.
TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
TITAN_PER_TOKEN = Decimal("0.02") / 1_000_000  # genai-prices: $0.00002 per 1K input tokens
COHERE_PER_TOKEN = Decimal("0.10") / 1_000_000  # the catalog: $0.0001 per 1K input tokens


class WordEngine(InstantEngine):
    """Counts a token a word, so what Bedrock counts differs from the gateway's estimate (~4 characters a token)."""

    def count(self, text: str) -> int:
        return len(text.split())


@pytest.fixture
def aws(monkeypatch):
    stand_in_aws_keys(monkeypatch)


def bedrock_gateway(bedrock_url: str, ledger: Path, **extra) -> ServerThread:
    def model(model_id: str) -> dict:
        return {"provider": "bedrock", "model": model_id, "region": "us-east-1", "endpoint_url": bedrock_url}

    config = {
        "models": {"titan": model(TITAN), "cohere": model(COHERE), "cohere-v4": model("cohere.embed-v4:0")},
        **extra,
    }
    return ServerThread(create_app(parse_config(config), str(ledger)), lifespan="on")


def test_titan_embeds_several_inputs_in_order_priced_tagged_and_settled_at_what_bedrock_counted(ledger_path, aws):
    from tokenomy.emulate.bedrock_embed import titan_vector

    store = KeyStore(open_store(ledger_path))
    # 50 tokens of Titan: two requests fit only when each is settled at Bedrock's count (20), not the estimate (26).
    secret, key = store.create(budget_usd=Decimal("0.000001"), period="month")
    texts = [f"{word} " * 10 for word in ("alfa", "brvo")]  # 10 words (tokens) each; estimated 50 // 4 = 13 each
    bedrock = create_bedrock(engine=WordEngine())
    with ServerThread(bedrock) as bedrock_url, bedrock_gateway(bedrock_url, ledger_path, auth=True) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
        answers = [
            client.embeddings.with_raw_response.create(
                model="titan",
                input=texts,
                encoding_format="float",
                dimensions=256,
                extra_headers={"x-tokenomy-tags": "team=rag"},
            )
            for _ in range(2)
        ]
        with pytest.raises(openai.RateLimitError) as refused:  # 40 spent + 28 reserved > 50
            client.embeddings.create(model="titan", input=texts, encoding_format="float")
        many = client.embeddings.create(
            model="titan",
            input=[f"text {i}" for i in range(7)],
            encoding_format="float",
            extra_headers={"authorization": "Bearer " + store.create()[0]},
        )
    assert refused.value.code == "budget_exceeded"
    # An embeddings request costs less than a micro-dollar: the message says how much, not "$0.000000".
    # 28 tokens (the inputs' upper bound, 26 estimated) at $0.02 per 1M.
    assert "could cost up to $0.000000560 " in refused.value.message
    answer = answers[0].parse()
    assert [d.embedding for d in answer.data] == [titan_vector(t, 256) for t in texts]  # the inputs' order
    assert answer.model == "titan" and answer.object == "list" and [d.index for d in answer.data] == [0, 1]
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (20, 20)
    assert [d.embedding for d in many.data] == [titan_vector(f"text {i}", 1024) for i in range(7)]
    assert many.usage.prompt_tokens == 14 and bedrock.state.emulator.calls == 2 + 2 + 7  # one call per input
    rows = sorted((e for e in open_store(ledger_path).events() if e.key_id == key.key_id), key=lambda e: e.ts)
    assert [(e.provider, e.model, e.region, e.input_tokens, e.output_tokens, e.outcome) for e in rows] == [
        ("aws.bedrock", TITAN, "us-east-1", 20, 0, "ok")
    ] * 2
    assert [e.cost_usd for e in rows] == [20 * TITAN_PER_TOKEN] * 2 and rows[0].priced_by == "genai-prices"
    assert rows[0].tags == {"team": "rag", "operation": "embeddings"} and rows[0].route == "titan"
    assert rows[0].request_id == answers[0].headers["x-request-id"]


def test_cohere_embeds_a_batch_in_calls_of_96_with_the_callers_input_type(ledger_path, aws):
    from tokenomy.emulate.bedrock_embed import cohere_vector

    texts = [f"passage number {i}" for i in range(100)]
    bedrock = create_bedrock(engine=WordEngine())
    with ServerThread(bedrock) as bedrock_url, bedrock_gateway(bedrock_url, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        documents = client.embeddings.create(model="cohere", input=texts, encoding_format="float")
        query = client.embeddings.create(
            model="cohere", input="a query", encoding_format="float", extra_body={"input_type": "search_query"}
        )
        v4 = client.embeddings.create(model="cohere-v4", input=["a", "b"], dimensions=256, encoding_format="float")
        with pytest.raises(openai.BadRequestError) as fixed:
            client.embeddings.create(model="cohere", input="x", dimensions=256)
        unset = client.embeddings.create(
            model="cohere",
            input="a query",
            encoding_format="float",
            extra_body={"input_type": None, "dimensions": None},
        )  # not given
    assert [d.embedding for d in documents.data] == [cohere_vector(t) for t in texts]
    assert documents.usage.prompt_tokens == 300 and documents.model == "cohere"
    assert query.data[0].embedding == cohere_vector("a query") and query.usage.prompt_tokens == 2
    assert [len(d.embedding) for d in v4.data] == [256, 256]
    assert fixed.value.param == "dimensions" and "1024" in fixed.value.message
    assert unset.data[0].embedding == cohere_vector("a query")
    assert bedrock.state.emulator.calls == 2 + 1 + 1 + 1  # 96 + 4 texts, then one each
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)
    assert [(e.model, e.input_tokens, e.cost_usd, e.priced_by) for e in rows[:2]] == [
        (COHERE, 300, 300 * COHERE_PER_TOKEN, "tokenomy-catalog"),
        (COHERE, 2, 2 * COHERE_PER_TOKEN, "tokenomy-catalog"),
    ]
    assert rows[2].model == "cohere.embed-v4:0" and rows[2].cost_usd == 2 * Decimal("0.12") / 1_000_000


def test_base64_from_bedrock_decodes_to_the_very_floats(ledger_path, aws):
    import base64
    import struct

    from tokenomy.emulate.bedrock_embed import titan_vector

    with (
        ServerThread(create_bedrock(engine=InstantEngine())) as bedrock_url,
        bedrock_gateway(bedrock_url, ledger_path) as url,
    ):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        floats = client.embeddings.create(model="titan", input=["one", "two"], encoding_format="float")
        decoded = client.embeddings.create(model="titan", input=["one", "two"])  # the SDK asks base64, decodes
        raw = httpx.post(url + "/v1/embeddings", json={"model": "titan", "input": "one", "encoding_format": "base64"})
    assert (
        [d.embedding for d in decoded.data]
        == [d.embedding for d in floats.data]
        == [titan_vector("one"), titan_vector("two")]
    )
    sent = raw.json()["data"][0]["embedding"]
    assert isinstance(sent, str) and list(struct.unpack("<1024f", base64.b64decode(sent))) == titan_vector("one")


def test_what_bedrock_cannot_take_is_refused_by_name_before_anything_is_sent(ledger_path, aws):
    bedrock = create_bedrock(engine=InstantEngine())
    with ServerThread(bedrock) as bedrock_url, bedrock_gateway(bedrock_url, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        for kwargs, param, needles in (
            ({"dimensions": 1536}, "dimensions", ("256, 512, 1024", "`titan`")),
            ({"input": [[101, 102], [103]]}, "input", ("token ids", "text only")),
            ({"input": [101, 102]}, "input", ("token ids",)),
            ({"user": "u-1"}, "user", ("x-tokenomy-tags",)),
            ({"extra_body": {"input_type": "search_query"}}, "input_type", ("Cohere",)),
            # A text over the model's documented length: named before any call, rather than refused by Bedrock
            # after the calls before it were answered (and billed) and under an index of its own call.
            ({"input": ["fits", "ok", "x" * 50_001, "ok"]}, "input[2]", ("50001 characters", "at most 50000")),
            ({"input": "x" * 50_001}, "input", ("50001 characters",)),
        ):
            with pytest.raises(openai.BadRequestError) as refused:
                client.embeddings.create(model="titan", **{"input": "x", **kwargs})
            assert refused.value.param == param and all(n in refused.value.message for n in needles), kwargs
        with pytest.raises(openai.BadRequestError) as refused:  # the 101st text, in what would be the second call
            client.embeddings.create(model="cohere", input=["short"] * 100 + ["y" * 2049])
        assert refused.value.param == "input[100]" and "at most 2048" in refused.value.message
        client.embeddings.create(model="cohere-v4", input="z" * 3000)  # v4 takes up to 128k tokens
    assert bedrock.state.emulator.calls == 1
    assert [e.model for e in open_store(ledger_path).events()] == ["cohere.embed-v4:0"]


# What each field of OpenAI's embeddings request does to Titan's answer, where the gateway carries it.
ON_TITAN = {
    "dimensions": lambda answer: len(answer.data[0].embedding) == 256,
    "encoding_format": lambda answer: isinstance(answer.data[0].embedding, str),  # base64, done as OpenAI does it
}


def test_every_field_of_the_sdks_embeddings_request_is_carried_or_refused_by_name(ledger_path, aws):
    """Each field of the installed openai SDK's EmbeddingCreateParams reaches an OpenAI-format upstream as sent, and
    does what it asks of a Bedrock model (ON_TITAN) or is refused naming it before any call. A field a newer SDK
    adds fails here until it gets a sample (helpers/openai_samples.py) and a place."""
    upstream = RecordingUpstream()
    bedrock = create_bedrock(engine=InstantEngine())
    with (
        upstream as upstream_url,
        gateway(upstream_url, ledger_path) as openai_url,
        ServerThread(bedrock) as bedrock_url,
        bedrock_gateway(bedrock_url, ledger_path.with_name("bedrock.duckdb")) as bedrock_gateway_url,
    ):
        to_openai = openai.OpenAI(base_url=openai_url + "/v1", api_key="unused", max_retries=0)
        to_bedrock = openai.OpenAI(base_url=bedrock_gateway_url + "/v1", api_key="unused", max_retries=0)
        for field in embedding_fields():
            if field in EMBEDDING_GATEWAY_FIELDS:
                continue
            assert field in EMBEDDING_SAMPLES, f"OpenAI's embeddings request has a new field {field!r}: add a sample"
            asked = {field: EMBEDDING_SAMPLES[field]}
            to_openai.embeddings.create(model="embed", input="hello", **asked)
            assert upstream.bodies[-1][field] == EMBEDDING_SAMPLES[field], field  # under its own name, unchanged
            calls = bedrock.state.emulator.calls
            if field in ON_TITAN:
                assert ON_TITAN[field](to_bedrock.embeddings.create(model="titan", input="hello", **asked)), field
                continue
            with pytest.raises(openai.BadRequestError) as refused:
                to_bedrock.embeddings.create(model="titan", input="hello", **asked)
            assert refused.value.param == field and f"`{field}`" in refused.value.message, refused.value.message
            assert bedrock.state.emulator.calls == calls  # refused before any call


def test_a_routes_requests_per_minute_counts_each_bedrock_call_a_request_makes(ledger_path, aws):
    # The route's rate_limit keeps the gateway under the upstream's quota, which Bedrock counts per InvokeModel
    # call: a Titan request of 3 texts is 3 calls, a Cohere request of 100 texts 2.
    routes = {
        "titan-4": {"model": "titan", "rate_limit": {"requests_per_minute": 4}, "retry": {"deadline_s": 0.5}},
        "cohere-2": {"model": "cohere", "rate_limit": {"requests_per_minute": 2}, "retry": {"deadline_s": 0.5}},
    }
    bedrock = create_bedrock(engine=InstantEngine())
    with ServerThread(bedrock) as bedrock_url, bedrock_gateway(bedrock_url, ledger_path, routes=routes) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        client.embeddings.create(model="titan-4", input=["a", "b", "c"])
        with pytest.raises(openai.RateLimitError) as limited:  # 3 more calls: one left in the minute
            client.embeddings.create(model="titan-4", input=["d", "e", "f"])
        client.embeddings.create(model="cohere-2", input=["g"] * 100)
        with pytest.raises(openai.RateLimitError):
            client.embeddings.create(model="cohere-2", input="h")
        client.embeddings.create(model="titan", input=["i"] * 10)  # the model's own name has no limit
    assert "client-side rate limit" in limited.value.message
    assert bedrock.state.emulator.calls == 3 + 2 + 10


def test_a_throttled_bedrock_is_retried_and_every_attempt_is_a_row(ledger_path, aws):
    retry = {"max_attempts": 2, "base_delay_s": 0.01}
    routes = {"titan-r": {"model": "titan", "retry": retry}, "cohere-r": {"model": "cohere", "retry": retry}}
    # Seeded: calls 1-2 answer, 3-4 are throttled, ... (seed 0); call 1 is throttled, 2 answers (seed 1).
    with (
        ServerThread(create_bedrock(throttle_rate=0.5, seed=1, engine=WordEngine())) as bedrock_url,
        bedrock_gateway(bedrock_url, ledger_path, routes=routes) as url,
    ):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        retried = client.embeddings.with_raw_response.create(
            model="titan-r", input="three words here", encoding_format="float"
        )
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.attempt)
    assert [(e.attempt, e.outcome, e.input_tokens, e.cost_usd) for e in rows] == [
        (1, "throttled", 0, 0),
        (2, "ok", 3, 3 * TITAN_PER_TOKEN),
    ]
    assert {e.request_id for e in rows} == {retried.headers["x-request-id"]}
    assert rows[0].error_type == "ThrottlingException" and retried.parse().usage.prompt_tokens == 3

    second = ledger_path.with_name("second.duckdb")
    with (
        ServerThread(create_bedrock(throttle_rate=0.5, seed=0, engine=WordEngine())) as bedrock_url,
        bedrock_gateway(bedrock_url, second, routes=routes) as url,
    ):
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.RateLimitError) as throttled:  # 200 texts: calls of 96, 96 (answered), 8 (429)
            client.embeddings.create(model="cohere-r", input=[f"w{i}" for i in range(200)], encoding_format="float")
    assert throttled.value.code == "throttled" and "ThrottlingException" in throttled.value.message
    rows = sorted(open_store(second).events(), key=lambda e: e.attempt)
    # Bedrock bills the two batches that answered before the third was throttled; the retry's first call was too.
    assert [(e.attempt, e.outcome, e.input_tokens, e.cost_usd) for e in rows] == [
        (1, "throttled", 192, 192 * COHERE_PER_TOKEN),
        (2, "throttled", 0, 0),
    ]


@pytest.mark.parametrize("route", ["cohere-r", "titan-r"])
def test_a_retry_sends_only_the_calls_that_did_not_answer_and_each_text_is_billed_once(ledger_path, aws, route):
    # A request of several Bedrock calls, some throttled: Bedrock billed the calls that answered, so a retry that
    # sent them again would pay for them twice (past the request's budget reservation). The retry sends the rest;
    # the rows' tokens add up to the request's, which the caller is told.
    retry = {"max_attempts": 6, "base_delay_s": 0.01}
    routes = {"cohere-r": {"model": "cohere", "retry": retry}, "titan-r": {"model": "titan", "retry": retry}}
    spans = in_memory_pipeline()[0]
    spans.clear()
    texts = [f"w{i}" for i in range(200)] if route == "cohere-r" else [f"w{i}" for i in range(12)]
    bedrock = create_bedrock(throttle_rate=0.3, seed=2, engine=WordEngine())
    with ServerThread(bedrock) as bedrock_url, bedrock_gateway(bedrock_url, ledger_path, routes=routes) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        answer = client.embeddings.create(model=route, input=texts, encoding_format="float")
    emulator = bedrock.state.emulator
    assert emulator.throttle.throttled > 0 and emulator.calls - emulator.throttle.throttled == (
        3 if route == "cohere-r" else 12
    )  # every call answered once: 96 + 96 + 8 texts, or one a text
    assert len(answer.data) == len(texts) and answer.usage.prompt_tokens == len(texts)  # a token a word
    from tokenomy.emulate.bedrock_embed import cohere_vector, titan_vector

    vector = cohere_vector if route == "cohere-r" else titan_vector
    assert [d.embedding for d in answer.data] == [vector(t) for t in texts]  # put together in the inputs' order
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.attempt)
    assert len(rows) > 1 and rows[-1].outcome == "ok"
    assert sum(e.input_tokens for e in rows) == len(texts)
    per_token = COHERE_PER_TOKEN if route == "cohere-r" else TITAN_PER_TOKEN
    assert sum(e.cost_usd for e in rows) == len(texts) * per_token
    attempts = [dict(s.attributes) for s in spans.get_finished_spans() if s.name.startswith("embeddings ")]
    assert len(attempts) == len(rows)  # a span an attempt, with its row's tokens
    assert sum(a.get("gen_ai.usage.input_tokens", 0) for a in attempts) == rows[-1].input_tokens


class SlowWordEngine(WordEngine):
    """Takes its time over a text that asks for it: the call carrying it is still in flight when the caller leaves."""

    def __init__(self) -> None:
        super().__init__()
        self.working_on_slow = threading.Event()

    def count(self, text: str) -> int:
        if text == "slow":
            self.working_on_slow.set()
            time.sleep(3)
        return super().count(text)


def test_a_retry_cancelled_in_flight_is_a_row_at_the_estimate_of_the_calls_it_sent(ledger_path, aws):
    # Seeded (rate 0.5, seed 10): the first batch of 96 answers, the second is throttled; the retry sends the
    # second only, and is cancelled while Bedrock works on it. Its row is the estimate of what it sent (1 token),
    # not of the whole request, whose first batch the first attempt's row already bills.
    # The caller leaves once Bedrock is working on the retried call (not after a fixed time: on a loaded machine
    # the first attempt alone can take longer than any short timeout).
    engine = SlowWordEngine()

    async def cancelled(bedrock_url: str) -> None:
        model = {"provider": "bedrock", "model": COHERE, "region": "us-east-1", "endpoint_url": bedrock_url}
        config = parse_config(
            {"models": {"cohere": model}, "routes": {"cohere-r": {"model": "cohere", "retry": {"base_delay_s": 0.01}}}}
        )
        gw = Gateway(config, str(ledger_path))
        asked = parse_embeddings_request({"model": "cohere-r", "input": ["a"] * 96 + ["slow"]})
        spec = gw.client.spec_for("cohere")
        meta = RequestMeta(route="cohere-r", request_id="r-1")
        try:
            policy = gw.policy_for("cohere-r", gw.route_for("cohere-r"))
            call = asyncio.ensure_future(embed_with_retries(gw, asked, spec, policy, meta, asked.estimated_tokens()))
            assert await asyncio.to_thread(engine.working_on_slow.wait, 60)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
        finally:
            gw.client.close()

    with ServerThread(create_bedrock(throttle_rate=0.5, seed=10, engine=engine)) as bedrock_url:
        asyncio.run(cancelled(bedrock_url))
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.attempt)
    assert [(e.attempt, e.outcome, e.input_tokens) for e in rows] == [(1, "throttled", 96), (2, "cancelled", 1)]


@pytest.mark.parametrize("entry", [5, {"index": 0}, {"index": 0, "embedding": "not a vector"}])
@pytest.mark.parametrize("api", ["embeddings", "invoke"])
def test_an_answer_whose_entries_are_no_vectors_is_a_502_and_its_billed_row_says_so(
    api, entry, ledger_path, monkeypatch
):
    # The upstream counted (and billed) the input but its entries are no embedding objects. /v1/embeddings passed them
    # on as vectors; InvokeModel with a Titan body broke on them (a 500 "internal error") after recording the call ok.
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    class Garbled(RecordingUpstream):
        def _refusal(self, body: bytes) -> bytes | None:
            super()._refusal(body)
            payload = json.dumps(
                {"object": "list", "model": SMALL, "data": [entry], "usage": {"prompt_tokens": 7, "total_tokens": 7}}
            ).encode()
            return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
                len(payload),
                payload,
            )

    stand_in_aws_keys(monkeypatch)
    upstream = Garbled()
    with upstream as upstream_url, gateway(upstream_url, ledger_path) as url:
        if api == "embeddings":
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.InternalServerError) as failed:
                client.embeddings.create(model="search", input=["first"], encoding_format="float")
            status, message = failed.value.status_code, failed.value.message
        else:
            bedrock = boto3.client(
                "bedrock-runtime",
                endpoint_url=url,
                region_name="us-east-1",
                config=Config(retries={"total_max_attempts": 1}),
            )
            with pytest.raises(ClientError) as failed:
                bedrock.invoke_model(modelId="search", body=json.dumps({"inputText": "first"}))
            status = failed.value.response["ResponseMetadata"]["HTTPStatusCode"]
            message = failed.value.response["Error"]["Message"]
    assert status == 502 and "no embedding vectors" in message
    assert len(upstream.bodies) == 1  # not asked again: the upstream would answer the same
    [row] = open_store(ledger_path).events()
    assert (row.outcome, row.input_tokens, row.cost_usd) == ("server_error", 7, 7 * PER_TOKEN)


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_a_bedrock_vector_of_no_numbers_is_a_502_and_its_billed_row_says_so(encoding, ledger_path, aws):
    # Titan answered (and billed 3 tokens) with a vector holding a null. Asked for base64 (the openai SDK's default),
    # packing it raised struct.error out of the provider: a 500 and no row at all; asked for floats, the null reached
    # the caller as a vector component.
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def invoke(request):
        return JSONResponse({"embedding": [0.1, None], "inputTextTokenCount": 3})

    bedrock = Starlette(routes=[Route("/model/{model:path}/invoke", invoke, methods=["POST"])])
    with ServerThread(bedrock) as bedrock_url, bedrock_gateway(bedrock_url, ledger_path) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.InternalServerError) as failed:
            client.embeddings.create(model="titan", input="hello", encoding_format=encoding)
    assert failed.value.status_code == 502 and "no embeddings" in failed.value.message
    rows = open_store(ledger_path).events()
    assert rows and all((r.outcome, r.input_tokens) == ("server_error", 3) and r.cost_usd > 0 for r in rows)


def test_a_bug_after_the_upstream_answered_is_a_500_with_the_call_in_the_ledger_at_its_estimate(
    ledger_path, monkeypatch
):
    # A bug reading the answer (here injected after the upstream answered): the call went out and was billed, but
    # only ProviderErrors and cancellations were recorded: the ledger lost it, while the budget kept its reservation.
    from tokenomy.gateway import upstream as upstream_module
    from tokenomy.gateway.keys import period_start
    from tokenomy.gateway.limits import to_nano

    answered = upstream_module.AsyncOpenAIUpstream.aembed

    async def broken(self, body):
        await answered(self, body)
        raise RuntimeError("a bug reading the answer")

    monkeypatch.setattr(upstream_module.AsyncOpenAIUpstream, "aembed", broken)
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=Decimal("1"), period="month")
    with RecordingUpstream() as upstream_url:
        config = {"auth": True, "models": {"embed": {"provider": "openai", "model": SMALL, "base_url": upstream_url}}}
        app = create_app(parse_config(config), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key=secret, max_retries=0)
            with pytest.raises(openai.InternalServerError) as failed:
                client.embeddings.create(model="embed", input="x" * 40, encoding_format="float")
            counter = f"key:{key.key_id}:{period_start('month').date()}"
            charged = asyncio.run(app.state.gateway.limits.spent(counter))
    assert failed.value.status_code == 500 and "RuntimeError" in failed.value.message
    [row] = open_store(ledger_path).events()
    assert (row.outcome, row.error_type, row.input_tokens) == ("server_error", "RuntimeError", 10)
    # Whether the upstream billed it is not known: the budget keeps its reservation (the input's upper bound, 11
    # tokens), never less than the row's estimate.
    assert row.cost_usd == 10 * PER_TOKEN and charged == to_nano(11 * PER_TOKEN) > to_nano(row.cost_usd)


def test_a_bedrock_embedding_cut_off_midway_is_a_502_recorded_at_its_estimate(ledger_path, aws):
    # The connection broke halfway through Titan's answer: Bedrock had embedded (and billed) the input, but the
    # attempt was recorded at 0 tokens, as if nothing had been sent.
    answer = json.dumps({"embedding": [0.5] * 256, "inputTextTokenCount": 3}).encode()
    with cut_off_upstream(answer) as endpoint:
        with bedrock_gateway(
            endpoint, ledger_path, routes={"once": {"model": "titan", "retry": {"max_attempts": 1}}}
        ) as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            with pytest.raises(openai.InternalServerError) as failed:
                client.embeddings.create(model="once", input="x" * 40, encoding_format="float")
    assert failed.value.status_code == 502
    [row] = open_store(ledger_path).events()
    assert (row.outcome, row.input_tokens) == ("server_error", 10) and row.cost_usd > 0


def test_retries_after_billed_timeouts_are_reserved_so_they_cannot_overspend_the_budget(ledger_path):
    # Three requests at once, each first attempt silent past the model's timeout after its input went out (billed),
    # each retry answered: a reservation covers one attempt's input, so each request paid twice what it reserved and
    # a budget for 3.5 of them was overspent. Now a retry first reserves what the failed attempt cost.
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from tokenomy.emulate.instant_openai import embeddings_answer
    from tokenomy.gateway.keys import period_start

    calls = []

    async def embeddings(request: Request) -> JSONResponse:
        calls.append(1)
        if len(calls) <= 3:
            await asyncio.sleep(1.5)
        status, body = embeddings_answer(await request.json())
        return JSONResponse(body, status_code=status)

    upstream = Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])
    budget = 100 * PER_TOKEN * 3 + 50 * PER_TOKEN  # room for three requests of 100 tokens and half a fourth
    secret, key = KeyStore(open_store(ledger_path)).create(budget_usd=budget, period="month")
    with ServerThread(upstream) as upstream_url:
        model = {"provider": "openai", "model": SMALL, "base_url": upstream_url + "/v1", "timeout_s": 0.5}
        config = {
            "auth": True,
            "models": {"embed": model},
            "routes": {"search": {"model": "embed", "retry": {"max_attempts": 3, "base_delay_s": 0}}},
        }
        app = create_app(parse_config(config), str(ledger_path))
        with ServerThread(app, lifespan="on") as url:

            async def three() -> list[httpx.Response]:
                async with httpx.AsyncClient(timeout=30, headers={"authorization": f"Bearer {secret}"}) as http:
                    ask = {"model": "search", "input": "y" * 400}
                    return await asyncio.gather(*(http.post(url + "/v1/embeddings", json=ask) for _ in range(3)))

            replies = asyncio.run(three())
            counter = f"key:{key.key_id}:{period_start('month').date()}"
            charged = asyncio.run(app.state.gateway.limits.spent(counter))
    rows = open_store(ledger_path).events()
    spent = sum(e.cost_usd for e in rows)
    assert spent <= budget and Decimal(charged) / 10**9 == spent  # nothing overspent, nothing left reserved
    assert [r.status_code for r in replies] == [504] * 3 and len(calls) == 3
    assert all("not tried again: the budget has no room" in r.json()["error"]["message"] for r in replies)
    assert [(e.outcome, e.input_tokens) for e in rows] == [("timeout", 100)] * 3
