"""OpenTelemetry GenAI spans and metrics on real calls (local model, real HTTP servers), and OTEL_* setup."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from helpers import stand_in_aws_keys
from tokenomy.client import CallPolicy, Tokenomy
from tokenomy.errors import ProviderError
from tokenomy.messages import ChatRequest, RequestMeta
from tokenomy.resilience.retry import RetryPolicy
from tokenomy.telemetry.otel import DURATION_BUCKETS, TOKEN_BUCKETS
from tokenomy.telemetry.otel_pipeline import in_memory_pipeline

SYSTEM = "You are a support agent for Acme Mobile. " + " ".join(
    f"Rule {i}: plan {i} costs {i + 5} dollars a month and includes {i} GB." for i in range(12)
)


@pytest.fixture
def telemetry():
    exporter, reader = in_memory_pipeline()
    exporter.clear()
    return exporter, reader


def chat_spans(exporter) -> list:
    return [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]


def histograms(reader) -> dict:
    found = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                found[metric.name] = metric
    return found


@pytest.mark.slow
def test_local_model_call_carries_genai_attributes_and_metrics(telemetry):
    exporter, reader = telemetry
    meta = RequestMeta(task="support")
    with Tokenomy(record=False) as client:
        first = client.chat(
            ChatRequest(
                messages=ChatRequest.simple("Price of plan 3?").messages,
                model="local",
                system=SYSTEM,
                max_tokens=6,
                meta=meta,
            )
        )
        second = client.chat(
            ChatRequest(
                messages=ChatRequest.simple("Price of plan 7?").messages,
                model="local",
                system=SYSTEM,
                max_tokens=6,
                meta=meta,
            )
        )
        placed = client.last_placements
    spans = chat_spans(exporter)
    assert len(spans) == 2
    span = spans[-1]
    attrs = dict(span.attributes)
    assert span.name == "chat local" and span.kind == trace.SpanKind.CLIENT
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.provider.name"] == "local"
    assert attrs["gen_ai.request.model"] == "local" and attrs["gen_ai.response.model"] == second.model
    assert attrs["gen_ai.request.max_tokens"] == 6
    # The local model reuses the shared system-prompt KV cache: cached tokens are counted in input_tokens.
    assert second.usage.cache_read_tokens > 64
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == second.usage.cache_read_tokens
    assert attrs["gen_ai.usage.input_tokens"] == second.usage.input_tokens + second.usage.cache_read_tokens
    assert attrs["gen_ai.usage.cache_creation.input_tokens"] == second.usage.cache_write_tokens
    assert attrs["gen_ai.usage.output_tokens"] == second.usage.output_tokens > 0
    assert attrs["tokenomy.cost.usd"] == 0.0 and attrs["tokenomy.task"] == "support" and attrs["tokenomy.attempt"] == 1
    # The system prompt is over the local model's 64-token minimum (counted by its own tokenizer).
    assert [p.after for p in placed] == ["system"] and list(attrs["tokenomy.cache_points"]) == ["system"]
    assert "error.type" not in attrs and span.status.status_code != StatusCode.ERROR
    assert first.usage.total_input_tokens == spans[0].attributes["gen_ai.usage.input_tokens"]

    found = histograms(reader)
    tokens, duration = found["gen_ai.client.token.usage"], found["gen_ai.client.operation.duration"]
    assert tokens.unit == "{token}" and duration.unit == "s"
    # Metrics are cumulative over the test session and split by attributes (other tests call the
    # local model too), so sum every local data point of each token type.
    local_points = [p for p in tokens.data.data_points if p.attributes["gen_ai.provider.name"] == "local"]
    assert {p.attributes["gen_ai.token.type"] for p in local_points} == {"input", "output"}
    inputs = [p for p in local_points if p.attributes["gen_ai.token.type"] == "input"]
    assert all(list(p.explicit_bounds) == TOKEN_BUCKETS for p in inputs)
    assert sum(p.sum for p in inputs) >= first.usage.total_input_tokens + second.usage.total_input_tokens
    assert any(p.attributes["gen_ai.request.model"] == "local" for p in inputs)
    local_durations = [p for p in duration.data.data_points if p.attributes["gen_ai.provider.name"] == "local"]
    assert local_durations and all(list(p.explicit_bounds) == DURATION_BUCKETS for p in local_durations)
    assert sum(p.count for p in local_durations) >= 2


def test_failed_attempts_get_their_own_error_spans(telemetry, ledger_path):
    from helpers.scripted_openai import ScriptedOpenAI, models

    exporter, reader = telemetry
    server = ScriptedOpenAI([(429, {}), (400, {})])
    try:
        policy = CallPolicy(retry=RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02))
        with Tokenomy(ledger_path, models=models(a=server.url), policy=policy) as client:
            with pytest.raises(ProviderError):
                client.chat(ChatRequest.simple("hi", model="a", max_tokens=3))
    finally:
        server.close()
    spans = chat_spans(exporter)
    assert [(s.attributes["tokenomy.attempt"], s.attributes["error.type"]) for s in spans] == [
        (1, "RateLimitError"),
        (2, "BadRequestError"),
    ]
    assert all(
        s.status.status_code == StatusCode.ERROR and s.attributes["gen_ai.provider.name"] == "openai" for s in spans
    )
    durations = histograms(reader)["gen_ai.client.operation.duration"].data.data_points
    assert {p.attributes.get("error.type") for p in durations} >= {"RateLimitError", "BadRequestError"}


def _clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(extra)
    return env


def test_nothing_is_configured_without_otel_variables():
    code = (
        "import sys; from tokenomy.client import Tokenomy; Tokenomy(record=False);"
        "from opentelemetry import trace, metrics;"
        "print(type(trace.get_tracer_provider()).__name__, type(metrics.get_meter_provider()).__name__,"
        "'opentelemetry.sdk.trace' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_clean_env(), capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["ProxyTracerProvider", "_ProxyMeterProvider", "False"], out.stderr


class Collector:
    """A minimal OTLP/HTTP receiver: stores every POST body by path."""

    def __init__(self) -> None:
        self.posts: dict[str, list[bytes]] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                outer.posts.setdefault(self.path, []).append(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_otel_variables_choose_otlp_and_console_exporters():
    collector = Collector()
    code = (
        "from tokenomy.client import Tokenomy; from tokenomy.messages import ChatRequest;"
        "c = Tokenomy(record=False); r = c.chat(ChatRequest.simple('Hi', max_tokens=2)); print('done')"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            env=_clean_env(
                OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
                OTEL_METRICS_EXPORTER="console",
                OTEL_SERVICE_NAME="tokenomy-test",
            ),
        )
    finally:
        collector.close()
    assert out.returncode == 0, out.stderr
    traces = b"".join(collector.posts.get("/v1/traces", []))
    assert b"chat local" in traces and b"gen_ai.usage.input_tokens" in traces and b"tokenomy-test" in traces
    assert "gen_ai.client.token.usage" in out.stdout and "gen_ai.client.operation.duration" in out.stdout
    assert "/v1/metrics" not in collector.posts  # metrics went to the console, as OTEL_METRICS_EXPORTER said


def test_a_cancelled_call_left_running_marks_its_span_cancelled(telemetry, ledger_path):
    """An async caller that stops waiting (a timeout, a gateway's client gone) while the SDK's worker thread still
    runs the call: the attempt's span ends then, and must say so; the answer that arrives later is still metered."""
    import asyncio

    from helpers.scripted_openai import ScriptedOpenAI, models

    exporter, reader = telemetry
    server = ScriptedOpenAI([(200, {}, "held")])
    try:
        with Tokenomy(ledger_path, models=models(cancelme=server.url)) as client:

            async def go() -> None:
                call = asyncio.ensure_future(client.achat(ChatRequest.simple("hi", model="cancelme", max_tokens=3)))
                await asyncio.to_thread(server.received.wait, 10)
                call.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await call
                server.released.set()

            asyncio.run(go())
            assert client.running.wait(10)  # the answer came, and was recorded
    finally:
        server.close()
    [span] = chat_spans(exporter)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "CallCancelled"
    durations = [
        p
        for p in histograms(reader)["gen_ai.client.operation.duration"].data.data_points
        if p.attributes["gen_ai.request.model"] == "cancelme"
    ]
    assert sum(p.count for p in durations) == 1  # one attempt, one duration, however it ended


def test_the_attempts_of_one_call_share_its_parent_span(telemetry, ledger_path):
    """A retried call's attempts are children of one span for the call (one trace), whether it ends in an answer,
    an error or a stream its caller closed: without it a gateway's retries were unrelated traces."""
    from helpers.scripted_openai import ScriptedOpenAI, models

    exporter, _ = telemetry
    policy = CallPolicy(retry=RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02))
    server = ScriptedOpenAI(
        [(500, {}), (200, {}), (429, {}), (400, {}), (500, {}), (200, {}, "slow")], reply=tuple("abcdef")
    )
    try:
        with Tokenomy(ledger_path, models=models(a=server.url), policy=policy) as client:
            client.chat(ChatRequest.simple("hi", model="a", max_tokens=3))
            with pytest.raises(ProviderError):
                client.chat(ChatRequest.simple("hi", model="a", max_tokens=3))
            stream = client.stream(ChatRequest.simple("hi", model="a", max_tokens=3))
            next(stream)
            stream.close()
    finally:
        server.close()
    finished = exporter.get_finished_spans()
    calls = [s for s in finished if s.name == "tokenomy.call a"]
    assert len(calls) == 3
    attempts = chat_spans(exporter)
    by_call = [
        [a.attributes["tokenomy.attempt"] for a in attempts if a.parent and a.parent.span_id == c.context.span_id]
        for c in calls
    ]
    assert by_call == [[1, 2], [1, 2], [1, 2]]
    assert all(
        a.context.trace_id == c.context.trace_id
        for c in calls
        for a in attempts
        if a.parent and a.parent.span_id == c.context.span_id
    )
    assert [c.status.status_code for c in calls] == [StatusCode.UNSET, StatusCode.ERROR, StatusCode.ERROR]
    assert [c.attributes.get("error.type") for c in calls] == [None, "BadRequestError", "StreamAbandoned"]
    assert all(
        c.kind == trace.SpanKind.INTERNAL and not any(k.startswith("gen_ai.usage") for k in c.attributes) for c in calls
    )


def test_a_stream_that_fails_after_anthropic_counted_the_prompt_carries_that_count(telemetry, ledger_path):
    """Anthropic counts the prompt in message_start; a stream that then fails (an error event) was billed it, the
    ledger row has it: so do the attempt's span and the token-usage histogram (with the error.type)."""
    from helpers.scripted_anthropic import ScriptedAnthropic
    from tokenomy.emulate.server import ServerThread
    from tokenomy.ledger.store import open_store
    from tokenomy.providers.registry import ModelSpec

    exporter, reader = telemetry
    scripted = ScriptedAnthropic()
    scripted.usage = {
        "input_tokens": 10,
        "output_tokens": 2,
        "cache_creation_input_tokens": 5,
        "cache_read_input_tokens": 100,
    }
    scripted.failure = {"type": "overloaded_error", "message": "Overloaded"}

    def counted_in_failures() -> float:
        points = histograms(reader).get("gen_ai.client.token.usage")
        return sum(
            p.sum
            for p in (points.data.data_points if points else [])
            if p.attributes["gen_ai.request.model"] == "claude-haiku-4-5"
            and p.attributes.get("error.type")
            and p.attributes["gen_ai.token.type"] == "input"
        )

    before = counted_in_failures()
    with ServerThread(scripted.app) as url:
        spec = ModelSpec(name="claude", provider="anthropic", model="claude-haiku-4-5", base_url=url)
        with Tokenomy(ledger_path, models={"claude": spec}) as client:
            with pytest.raises(ProviderError):
                list(client.stream(ChatRequest.simple("hi", model="claude", max_tokens=20)))
    [row] = open_store(ledger_path).events()
    assert (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens) == (10, 100, 5)
    [span] = chat_spans(exporter)
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["gen_ai.usage.input_tokens"] == 115
    assert span.attributes["gen_ai.usage.cache_read.input_tokens"] == 100
    assert "gen_ai.usage.output_tokens" not in span.attributes  # only estimated: not the provider's count
    assert counted_in_failures() - before == 115


def test_attempt_spans_name_the_server_each_provider_calls(telemetry, ledger_path):
    """`server.address` and `server.port` (recommended by the GenAI conventions) on each attempt's span: the host and
    port of the provider's endpoint, so a trace backend tells apart a model served by OpenAI, a proxy or a region."""
    from urllib.parse import urlsplit

    from helpers.recording_openai import RecordingOpenAI
    from helpers.scripted_anthropic import ScriptedAnthropic
    from tokenomy.emulate.server import ServerThread
    from tokenomy.providers.registry import ModelSpec

    exporter, _ = telemetry
    with RecordingOpenAI() as upstream, ServerThread(ScriptedAnthropic().app) as claude:
        models = {
            "gpt": ModelSpec(name="gpt", provider="openai", model="gpt-4o-mini", base_url=upstream.url),
            "claude": ModelSpec(name="claude", provider="anthropic", model="claude-haiku-4-5", base_url=claude),
        }
        with Tokenomy(ledger_path, models=models) as client:
            client.chat(ChatRequest.simple("hi", model="gpt", max_tokens=3))
            list(client.stream(ChatRequest.simple("hi", model="claude", max_tokens=3)))
    spans = {s.attributes["gen_ai.request.model"]: s.attributes for s in chat_spans(exporter)}
    for model, url in (("gpt-4o-mini", upstream.url), ("claude-haiku-4-5", claude)):
        assert (spans[model]["server.address"], spans[model]["server.port"]) == ("127.0.0.1", urlsplit(url).port)


def test_each_providers_endpoint_is_its_server(monkeypatch):
    from tokenomy.messages import ChatRequest as Request
    from tokenomy.providers.anthropic_provider import AnthropicProvider
    from tokenomy.providers.bedrock import BedrockProvider
    from tokenomy.providers.gemini_provider import GeminiProvider
    from tokenomy.providers.local import LocalProvider
    from tokenomy.providers.openai_provider import OpenAIProvider

    monkeypatch.setenv("ANTHROPIC_API_KEY", "unused")
    monkeypatch.setenv("GEMINI_API_KEY", "unused")
    stand_in_aws_keys(monkeypatch)
    ask = Request.simple("hi", model="m")
    assert OpenAIProvider().server_for(ask) == ("api.openai.com", 443)
    assert OpenAIProvider(base_url="http://localhost:11434/v1").server_for(ask) == ("localhost", 11434)
    assert AnthropicProvider().server_for(ask) == ("api.anthropic.com", 443)
    bedrock = BedrockProvider(region="eu-west-1")
    assert bedrock.server_for(ask) == ("bedrock-runtime.eu-west-1.amazonaws.com", 443)
    # A request naming another region (a region fallback) is sent to that region's endpoint.
    assert bedrock.server_for(Request.simple("hi", model="m", region="us-east-2")) == (
        "bedrock-runtime.us-east-2.amazonaws.com",
        443,
    )
    assert GeminiProvider().server_for(ask) == ("generativelanguage.googleapis.com", 443)
    assert GeminiProvider(vertex=True, project="p", location="europe-west4").server_for(ask) == (
        "europe-west4-aiplatform.googleapis.com",
        443,
    )
    assert LocalProvider().server_for(ask) is None  # in process: no server


def test_the_gateways_chat_and_embeddings_spans_name_the_upstream(telemetry, ledger_path):
    """The gateway's pooled upstream (the async path) and its embeddings calls name the server too."""
    from urllib.parse import urlsplit

    import openai

    from tokenomy.config import parse_config
    from tokenomy.emulate.instant_openai import InstantOpenAI
    from tokenomy.emulate.server import ServerThread
    from tokenomy.gateway.app import create_app

    exporter, _ = telemetry
    with InstantOpenAI() as upstream:
        config = parse_config(
            {
                "models": {
                    "fast": {"provider": "openai", "model": "gpt-4o-mini", "base_url": upstream},
                    "embed": {"provider": "openai", "model": "text-embedding-3-small", "base_url": upstream},
                }
            }
        )
        with ServerThread(create_app(config, str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}], max_tokens=3)
            client.embeddings.create(model="embed", input="hi")
    port = urlsplit(upstream).port
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith(("chat ", "embeddings "))]
    assert sorted(s.name for s in spans) == ["chat gpt-4o-mini", "embeddings text-embedding-3-small"]
    assert all((s.attributes["server.address"], s.attributes["server.port"]) == ("127.0.0.1", port) for s in spans)


def test_a_provider_batch_job_has_a_span_for_its_submission_and_one_for_its_results(
    telemetry, tmp_path, ledger_path, monkeypatch
):
    """Batch spend reached the ledger only: a team's trace backend saw none of it. A provider batch job's submission
    and its results' collection are spans now, the latter with the requests, token totals and cost the ledger has."""
    import json
    from decimal import Decimal

    from tokenomy.batch.backends import SubmitOptions
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts
    from tokenomy.batch.jobs import wait as wait_job
    from tokenomy.emulate.instant_engine import InstantEngine
    from tokenomy.emulate.openai_batch_api import create_app
    from tokenomy.emulate.server import ServerThread
    from tokenomy.ledger.store import open_store

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    exporter, _ = telemetry
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"r{i}", "prompt": f"topic{i} please", "max_tokens": 4}) + "\n" for i in range(3))
    )
    tables = open_tables(str(ledger_path))
    with ServerThread(create_app(engine=InstantEngine(), validating_seconds=0.05)) as url:
        job = create_job(tables, path, "gpt-4o-mini", "openai", SubmitOptions(endpoint_url=url))
        job = submit_parts(tables, job)
        job = wait_job(tables, job.job_id, timeout_s=30, poll_s=0.05)
    assert job.status == "completed"
    spans = {s.name: s for s in exporter.get_finished_spans() if s.name.startswith("batch ")}
    assert set(spans) == {"batch submit gpt-4o-mini", "batch collect gpt-4o-mini"}
    submitted, collected = spans["batch submit gpt-4o-mini"].attributes, spans["batch collect gpt-4o-mini"].attributes
    for attrs in (submitted, collected):
        assert attrs["gen_ai.operation.name"] == "batch" and attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.request.model"] == "gpt-4o-mini" and attrs["tokenomy.batch.job_id"] == job.job_id
        assert attrs["tokenomy.batch.requests"] == 3
    assert not any(k.startswith("gen_ai.usage") for k in submitted)  # nothing answered, nothing billed yet
    rows = open_store(str(ledger_path)).query(
        "SELECT sum(input_tokens + cache_read_tokens + cache_write_tokens) AS i, sum(output_tokens) AS o, "
        "sum(cost_usd) AS usd FROM usage_events WHERE batch_job_id = ?",
        [job.job_id],
    )
    assert collected["gen_ai.usage.input_tokens"] == rows[0]["i"] > 0
    assert collected["gen_ai.usage.output_tokens"] == rows[0]["o"] > 0
    assert Decimal(str(collected["tokenomy.cost.usd"])) == Decimal(str(rows[0]["usd"])) > 0
    assert collected["tokenomy.mode"] == "batch"


def test_a_batch_submission_that_fails_is_a_failed_span(telemetry, tmp_path, ledger_path, monkeypatch):
    import json
    import socket

    from tokenomy.batch.backends import SubmitOptions
    from tokenomy.batch.jobs import create_job, open_tables, submit_parts

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    exporter, _ = telemetry
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"id": "r0", "prompt": "hi", "max_tokens": 4}) + "\n")
    tables = open_tables(str(ledger_path))
    job = create_job(tables, path, "gpt-4o-mini", "openai", SubmitOptions(endpoint_url=f"http://127.0.0.1:{port}"))
    with pytest.raises(ProviderError):
        submit_parts(tables, job)
    [span] = [s for s in exporter.get_finished_spans() if s.name.startswith("batch ")]
    assert span.name == "batch submit gpt-4o-mini" and span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "server_error" and span.attributes["tokenomy.batch.requests"] == 0


def test_no_cache_points_are_reported_placed_where_the_wire_carries_none(telemetry, ledger_path):
    """A model reached over the OpenAI format and priced as Claude (`price_as`) whose name does not say Claude gets
    no cache_control: its span and `last_placements` said the route placed points that were never sent."""
    from helpers.recording_openai import RecordingOpenAI
    from tokenomy.providers.registry import ModelSpec

    exporter, _ = telemetry
    policy = "Answer as the support desk of a bicycle shop. " * 130  # past Claude's 1,024-token minimum
    with RecordingOpenAI() as upstream:
        models = {
            name: ModelSpec(
                name=name, provider="openai", model=model, base_url=upstream.url, price_as="claude-sonnet-4-5"
            )
            for name, model in (("alias", "house-model"), ("named", "anthropic/claude-sonnet-4.5"))
        }
        with Tokenomy(ledger_path, models=models) as client:
            client.chat(ChatRequest.simple("hi", model="alias", system=policy, max_tokens=3))
            assert client.last_placements == []
            assert "cache_control" not in str(upstream.bodies[-1])
            client.chat(ChatRequest.simple("hi", model="named", system=policy, max_tokens=3))
            assert [p.after for p in client.last_placements] == ["system"]
            assert "cache_control" in str(upstream.bodies[-1])
    spans = {s.attributes["gen_ai.request.model"]: s.attributes for s in chat_spans(exporter)}
    assert "tokenomy.cache_points" not in spans["house-model"]
    assert list(spans["anthropic/claude-sonnet-4.5"]["tokenomy.cache_points"]) == ["system"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_cascade_answer_the_validators_rejected_has_a_failed_span_saying_why(telemetry, ledger_path, stream):
    """A rejected cheap answer's attempt span read as a success: only the next tier's span and the call's showed that
    the call escalated. It is now failed with error.type `cascade_rejected` and says which validator rejected it and
    why, keeping its usage and cost (the answer was billed); the call and the answer that passed stay successful."""
    from helpers.scripted_openai import ScriptedOpenAI
    from tokenomy.config import parse_config

    exporter, _ = telemetry
    small, big = ScriptedOpenAI([], reply=("I'm not sure, ", "maybe Tom")), ScriptedOpenAI([], reply=("Tom",))
    try:
        cfg = parse_config(
            {
                "models": {
                    "small": {"provider": "openai", "model": "small", "base_url": small.url, "price_as": "gpt-4o-mini"},
                    "big": {"provider": "openai", "model": "big", "base_url": big.url, "price_as": "gpt-4o"},
                },
                "tiers": {"basic": ["small"], "premium": ["big"]},
                "routes": {"extract": {"policy": "cascade"}},
                "routing": {"policies": {"cascade": {"type": "cascade", "tiers": ["basic", "premium"]}}},
            }
        )
        request = ChatRequest.simple("Name?", model="extract", meta=RequestMeta(route="extract"))
        policy = CallPolicy.for_route(cfg, "extract")
        with Tokenomy(ledger_path, models=cfg.model_specs()) as client:
            answer = (
                list(client.stream(request, policy=policy))[-1].response
                if stream
                else client.chat(request, policy=policy)
            )
    finally:
        small.close()
        big.close()
    assert answer.tier == "premium"
    rejected, passed = chat_spans(exporter)
    assert rejected.status.status_code == StatusCode.ERROR
    assert rejected.attributes["error.type"] == "cascade_rejected"
    assert rejected.attributes["tokenomy.cascade.rejected"] == "hedging"
    assert rejected.attributes["tokenomy.cascade.reason"] == 'hedging language: "i\'m not sure"'
    assert rejected.attributes["tokenomy.tier"] == "basic" and rejected.attributes["tokenomy.cost.usd"] > 0
    assert rejected.attributes["gen_ai.usage.output_tokens"] == 10
    assert passed.status.status_code == StatusCode.UNSET and "error.type" not in passed.attributes
    [call] = [s for s in exporter.get_finished_spans() if s.name == "tokenomy.call extract"]
    assert call.status.status_code == StatusCode.UNSET


@pytest.mark.parametrize("vertex", [False, True])
def test_a_gemini_endpoint_set_in_the_environment_is_the_spans_server(monkeypatch, vertex):
    """google-genai sends to GOOGLE_GEMINI_BASE_URL (GOOGLE_VERTEX_BASE_URL for Vertex AI) when the model config names
    no base_url, as a proxy or an emulator is reached; the span named Google's host instead."""
    from tokenomy.messages import ChatRequest as Request
    from tokenomy.providers.gemini_provider import GeminiProvider

    monkeypatch.setenv("GEMINI_API_KEY", "unused")
    monkeypatch.setenv("GOOGLE_VERTEX_BASE_URL" if vertex else "GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:8123")
    provider = GeminiProvider(vertex=True, project="p", location="europe-west4") if vertex else GeminiProvider()
    assert provider.server_for(Request.simple("hi", model="m")) == ("127.0.0.1", 8123)


def test_an_openai_call_at_a_service_tier_has_the_tier_asked_and_served_on_its_span(
    telemetry, ledger_path, monkeypatch
):
    """The conventions' openai.request.service_tier (what the call asked for) and openai.response.service_tier (what
    OpenAI says it served, the tier the ledger prices): a flex call's span said neither, so a trace backend priced it
    at the standard tier. A call that asks for none has no request attribute; an answer that names none, no response
    attribute."""
    from helpers.scripted_openai import ScriptedOpenAI
    from tokenomy.ledger.store import open_store
    from tokenomy.providers.registry import ModelSpec

    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    exporter, _ = telemetry
    upstream = ScriptedOpenAI([])
    models = {"o3": ModelSpec(name="o3", provider="openai", model="o3", base_url=upstream.url)}
    try:
        with Tokenomy(ledger_path, models=models) as client:
            upstream.top = {"service_tier": "flex"}
            client.chat(ChatRequest.simple("hi", model="o3", max_tokens=5, extra={"service_tier": "flex"}))
            upstream.top = {"service_tier": "default"}
            client.chat(ChatRequest.simple("hi", model="o3", max_tokens=5))
            upstream.top = {}
            client.chat(ChatRequest.simple("hi", model="o3", max_tokens=5))
    finally:
        upstream.close()
    tiers = [
        (s.attributes.get("openai.request.service_tier"), s.attributes.get("openai.response.service_tier"))
        for s in chat_spans(exporter)
    ]
    assert tiers == [("flex", "flex"), (None, "default"), (None, None)]
    assert [r.tags.get("service_tier") for r in open_store(ledger_path).events()] == ["flex", None, None]


@pytest.mark.parametrize("streamed", [False, True])
def test_a_claude_call_at_a_dearer_tier_has_on_its_span_the_tier_its_ledger_row_has(
    telemetry, ledger_path, monkeypatch, streamed
):
    """The span named the served tier only for OpenAI-format APIs (openai.response.service_tier): a Claude call
    Anthropic served at priority, or ran in fast mode, was tagged so in the ledger and priced at that tier, but its
    span said nothing of it, so a trace backend (or `tokenomy import otel`) priced it at the standard tier. Now the
    span has `tokenomy.service_tier`, read as the ledger reads it, for every API; a standard call has none."""
    from helpers.scripted_anthropic import USAGE, ScriptedAnthropic
    from tokenomy.emulate.server import ServerThread
    from tokenomy.ledger.store import open_store
    from tokenomy.providers.registry import ModelSpec

    monkeypatch.setenv("ANTHROPIC_API_KEY", "unused")
    exporter, _ = telemetry
    upstream = ScriptedAnthropic()
    served = [{"service_tier": "priority"}, {"service_tier": "standard", "speed": "fast"}, {"service_tier": "standard"}]
    with ServerThread(upstream.app) as url:
        models = {"opus": ModelSpec(name="opus", provider="anthropic", model="claude-opus-5", base_url=url)}
        with Tokenomy(ledger_path, models=models) as client:
            for usage in served:
                upstream.usage = {**USAGE, **usage}
                extra = {"speed": "fast"} if "speed" in usage else {}
                ask = ChatRequest.simple("hi", model="opus", max_tokens=5, extra=extra)
                list(client.stream(ask)) if streamed else client.chat(ask)
    spans = [s.attributes.get("tokenomy.service_tier") for s in chat_spans(exporter)]
    rows = sorted(open_store(ledger_path).events(), key=lambda e: e.ts)
    assert spans == [r.tags.get("service_tier") for r in rows] == ["priority", "fast_mode", None]
