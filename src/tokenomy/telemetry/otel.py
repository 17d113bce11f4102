"""GenAI semantic-convention spans and metrics around each provider call attempt.

Exporters follow the standard OTEL_* environment variables: with OTEL_TRACES_EXPORTER /
OTEL_METRICS_EXPORTER or an OTLP endpoint set, an SDK pipeline is configured once; with none set,
the OpenTelemetry API stays a no-op and costs next to nothing.
"""

from __future__ import annotations

import os
import threading
from decimal import Decimal

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tokenomy.messages import ChatRequest, ChatResponse

TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]

_setup_lock = threading.Lock()
_configured = False
_instruments: dict[str, object] = {}


def _wants(kind: str) -> str | None:
    """The exporter named for traces/metrics, or 'otlp' when only an endpoint is given."""
    named = os.environ.get(f"OTEL_{kind.upper()}_EXPORTER")
    if named:
        return None if named.strip().lower() == "none" else named.strip().lower()
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(f"OTEL_EXPORTER_OTLP_{kind.upper()}_ENDPOINT"):
        return "otlp"
    return None


def configure_from_env() -> None:
    """Install SDK providers with exporters chosen by OTEL_* variables (once; never over an existing SDK)."""
    global _configured
    with _setup_lock:
        if _configured:
            return
        _configured = True
        from opentelemetry.sdk.resources import Resource

        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "tokenomy")})
        traces = _wants("traces")
        if traces and type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider":
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

            provider = TracerProvider(resource=resource)
            if traces == "console":
                exporter = ConsoleSpanExporter()
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                exporter = OTLPSpanExporter()
            provider.add_span_processor(BatchSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
        kind = _wants("metrics")
        if kind and type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider":
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

            if kind == "console":
                metric_exporter = ConsoleMetricExporter()
            else:
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

                metric_exporter = OTLPMetricExporter()
            metrics.set_meter_provider(MeterProvider(resource=resource,
                                                     metric_readers=[PeriodicExportingMetricReader(metric_exporter)]))


def _instrument(name: str):
    """Histograms are created lazily so providers installed later (tests, apps) are picked up."""
    meter = metrics.get_meter("tokenomy")
    key = f"{id(metrics.get_meter_provider())}:{name}"
    if key not in _instruments:
        if name == "tokens":
            _instruments[key] = meter.create_histogram(
                "gen_ai.client.token.usage", unit="{token}", description="Measures number of input and output tokens used",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
        else:
            _instruments[key] = meter.create_histogram(
                "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
    return _instruments[key]


def start_span(request: ChatRequest, provider_name: str, attempt: int):
    """Open the CLIENT span `chat {model}` for one attempt (use as a context manager)."""
    attributes = {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider_name,
        "gen_ai.request.model": request.model, "tokenomy.attempt": attempt,
    }
    if request.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = request.max_tokens
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    if request.meta.task:
        attributes["tokenomy.task"] = request.meta.task
    if request.meta.route:
        attributes["tokenomy.route"] = request.meta.route
    return trace.get_tracer("tokenomy").start_as_current_span(
        f"chat {request.model}", kind=SpanKind.CLIENT, attributes=attributes, record_exception=False,
        set_status_on_exception=False)


def _common(provider_name: str, request_model: str, response_model: str | None, error_type: str | None) -> dict:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider_name,
             "gen_ai.request.model": request_model}
    if response_model:
        attrs["gen_ai.response.model"] = response_model
    if error_type:
        attrs["error.type"] = error_type
    return attrs


def record_success(span, request: ChatRequest, response: ChatResponse, cost_usd: Decimal, duration_s: float) -> None:
    """Put usage and cost on the span and feed the two GenAI histograms."""
    usage = response.usage
    span.set_attribute("gen_ai.response.model", response.model)
    span.set_attribute("gen_ai.response.finish_reasons", [response.finish_reason])
    span.set_attribute("gen_ai.usage.input_tokens", usage.total_input_tokens)  # conventions: cached included
    span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
    span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cache_read_tokens)
    span.set_attribute("gen_ai.usage.cache_creation.input_tokens", usage.cache_write_tokens)
    span.set_attribute("tokenomy.cost.usd", float(cost_usd))
    if response.tier:
        span.set_attribute("tokenomy.tier", response.tier)
    attrs = _common(response.provider, request.model, response.model, None)
    tokens = _instrument("tokens")
    tokens.record(usage.total_input_tokens, {**attrs, "gen_ai.token.type": "input"})
    tokens.record(usage.output_tokens, {**attrs, "gen_ai.token.type": "output"})
    _instrument("duration").record(duration_s, attrs)


def record_failure(span, request: ChatRequest, provider_name: str, error_type: str, duration_s: float) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))
    _instrument("duration").record(duration_s, _common(provider_name, request.model, None, error_type))
