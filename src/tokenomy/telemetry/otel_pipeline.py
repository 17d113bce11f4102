"""Which OpenTelemetry SDK pipeline the process exports its spans and metrics to (`otel` makes them).

Exporters follow the standard OTEL_* environment variables: with OTEL_TRACES_EXPORTER /
OTEL_METRICS_EXPORTER or an OTLP endpoint set, an SDK pipeline is configured once; with none set,
the OpenTelemetry API stays a no-op and costs next to nothing. Tests install one that keeps them in memory.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from opentelemetry import metrics, trace

log = logging.getLogger(__name__)
_setup_lock = threading.Lock()
_configured = False


def _wants(kind: str) -> str | None:
    """The exporter named for traces/metrics, or 'otlp' when only an endpoint is given."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    named = os.environ.get(f"OTEL_{kind.upper()}_EXPORTER")
    if named:
        # The variable may list several exporters; Tokenomy supports one, the first it knows.
        for name in (n.strip().lower() for n in named.split(",")):
            if name in ("otlp", "console"):
                return name
            if name != "none":
                log.warning(
                    "OTEL_%s_EXPORTER=%s is not supported here (use otlp or console); not exporting", kind.upper(), name
                )
        return None
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(f"OTEL_EXPORTER_OTLP_{kind.upper()}_ENDPOINT"):
        return "otlp"
    return None


def _otlp_protocol_check() -> None:
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol != "http/protobuf":
        log.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s: Tokenomy ships the OTLP http/protobuf exporter; using it", protocol
        )


def configure_from_env() -> None:
    """Install SDK providers with exporters chosen by OTEL_* variables (once; never over an existing SDK)."""
    global _configured
    with _setup_lock:
        if _configured:
            return
        _configured = True
        traces, kind = _wants("traces"), _wants("metrics")
        if not traces and not kind:
            return  # no exporter asked for: the API's no-op providers stay, and cost nothing
        from opentelemetry.sdk.resources import Resource

        # Resource.create also reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES.
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "tokenomy")})
        if "otlp" in (traces, kind):
            _otlp_protocol_check()
        if traces and type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider":
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

            provider = TracerProvider(resource=resource)
            exporter: Any
            if traces == "console":
                exporter = ConsoleSpanExporter()
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                exporter = OTLPSpanExporter()  # endpoint, headers, timeout from OTEL_EXPORTER_OTLP_*
            provider.add_span_processor(BatchSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
        if kind and type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider":
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader

            metric_exporter: Any
            if kind == "console":
                metric_exporter = ConsoleMetricExporter()
            else:
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

                metric_exporter = OTLPMetricExporter()
            metrics.set_meter_provider(
                MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(metric_exporter)])
            )


_memory: tuple | None = None


def in_memory_pipeline() -> tuple:
    """Install (once per process) SDK providers that keep spans and metrics in memory, for tests.

    Returns (InMemorySpanExporter, InMemoryMetricReader). OpenTelemetry allows one global provider
    per process, so every test module must share this pipeline rather than install its own.
    """
    global _memory
    with _setup_lock:
        if _memory is None:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

            exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            _memory = (exporter, reader)
    return _memory
