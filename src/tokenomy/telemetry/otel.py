"""GenAI semantic-convention spans and metrics around each provider call attempt (and a provider batch job's steps).

They go to whichever OpenTelemetry providers are installed: `otel_pipeline` installs the SDK's from the OTEL_*
environment variables (or in memory, for tests); with none, the API's no-op ones cost next to nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tokenomy.chat_response import ChatResponse, Usage
from tokenomy.errors import ProviderError
from tokenomy.messages import ChatRequest
from tokenomy.pricing.served_tier import served_tier

TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]


# A proxy: it delegates to whichever tracer provider is installed, even one installed later (tests, apps),
# so it is made once rather than looked up (an environment read) on every attempt.
_TRACER = trace.get_tracer("tokenomy")


def _make_histograms() -> tuple[Any, Any]:
    """The token-usage and duration histograms. Made once, like `_TRACER`: a meter taken before any provider is
    installed is a proxy whose instruments start recording into the provider installed later (tests, apps)."""
    meter = metrics.get_meter("tokenomy")
    return (
        meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Measures number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        ),
        meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        ),
    )


_HISTOGRAMS = _make_histograms()


# Ledger provider names whose OpenTelemetry GenAI name differs (the OTLP import maps them back).
SEMCONV_PROVIDERS = {"azure": "azure.ai.openai"}
# Providers speaking OpenAI's API, whose spans take the conventions' openai.* attributes (the service tier asked for,
# and the one OpenAI says it served, which the ledger prices the call at). Other APIs' tiers have no attribute there.
OPENAI_APIS = ("openai", "azure")


@contextmanager
def call_span(model: str, request_id: str, cancelled: str = "CallCancelled") -> Iterator[Context]:
    """The INTERNAL span `tokenomy.call {model}` of one call, whose attempts (retries, fallbacks, a cascade's tiers)
    are its children: one trace a call. It carries no gen_ai.* usage (its attempts do: a span importer or a GenAI
    view counts each once). Failed when the call raises: `error.type` its last error's, `cancelled` when its
    caller went (a stream closed, a task cancelled). Yields the context its attempts' spans are started in."""
    span = _TRACER.start_span(
        f"tokenomy.call {model}", kind=SpanKind.INTERNAL, attributes={"tokenomy.request_id": request_id}
    )
    try:
        yield trace.set_span_in_context(span)
    except ProviderError as exc:
        _failed(span, exc.kind if exc.__cause__ is None else type(exc.__cause__).__name__)
        raise
    except Exception as exc:
        _failed(span, type(exc).__qualname__)
        raise
    except BaseException:  # GeneratorExit, CancelledError, KeyboardInterrupt: the caller stopped waiting
        _failed(span, cancelled)
        raise
    finally:
        span.end()


def _failed(span: Span, error_type: str, description: str | None = None) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, description or error_type))


# The error type of an attempt whose answer a cascade's validators rejected (the call went on to a stronger tier).
REJECTED = "cascade_rejected"


@contextmanager
def attempt_span(
    request: ChatRequest,
    provider_name: str,
    attempt: int,
    current: bool = True,
    parent: Context | None = None,
    server: tuple[str, int] | None = None,
) -> Iterator[Span]:
    """The CLIENT span `chat {model}` for one attempt, a child of `parent` (the call's span, `call_span`);
    `current=False` for generators (streams); `server`: the (host, port) the provider calls, none in process."""
    attributes: dict = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": SEMCONV_PROVIDERS.get(provider_name, provider_name),
        "gen_ai.request.model": request.model,
        "tokenomy.attempt": attempt,
    }
    if server is not None:
        attributes["server.address"], attributes["server.port"] = server
    if request.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = request.max_tokens
    if request.temperature is not None:
        attributes["gen_ai.request.temperature"] = request.temperature
    if request.meta.task:
        attributes["tokenomy.task"] = request.meta.task
    if request.meta.route:
        attributes["tokenomy.route"] = request.meta.route
    if provider_name in OPENAI_APIS:
        asked = request.extra.get("service_tier")
        if isinstance(asked, str):
            attributes["openai.request.service_tier"] = asked
    span = _TRACER.start_span(f"chat {request.model}", context=parent, kind=SpanKind.CLIENT, attributes=attributes)
    try:
        # A span with no trace (no SDK installed, no parent) changes nothing as the current span: skip the attach.
        if current and span.get_span_context().is_valid:
            with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                yield span
        else:
            yield span
    except ProviderError:
        raise  # already described by record_failure
    except Exception as exc:  # a bug or an unmapped error: still visible on the span
        span.set_attribute("error.type", type(exc).__qualname__)
        span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
        raise
    finally:
        span.end()


@contextmanager
def embeddings_span(
    provider_name: str,
    model: str,
    route: str | None,
    attempt: int,
    encoding_format: str = "float",
    dimensions: int | None = None,
    parent: Context | None = None,
    server: tuple[str, int] | None = None,
) -> Iterator[Span]:
    """The CLIENT span `embeddings {model}` for one attempt of an embeddings call (GenAI operation `embeddings`),
    with the request's encoding and dimensions as the conventions' embeddings span has them; a child of `parent`
    (the call's span, `call_span`); `server` as for `attempt_span`."""
    attributes: dict = {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": SEMCONV_PROVIDERS.get(provider_name, provider_name),
        "gen_ai.request.model": model,
        "gen_ai.request.encoding_formats": [encoding_format],
        "tokenomy.attempt": attempt,
    }
    if server is not None:
        attributes["server.address"], attributes["server.port"] = server
    if dimensions is not None:
        attributes["gen_ai.embeddings.dimension.count"] = dimensions
    if route:
        attributes["tokenomy.route"] = route
    span = _TRACER.start_span(f"embeddings {model}", context=parent, kind=SpanKind.CLIENT, attributes=attributes)
    with _opened(span, True) as span:
        yield span


def record_embeddings(
    span: Span,
    provider_name: str,
    request_model: str,
    response_model: str | None,
    input_tokens: int,
    cost_usd: Decimal | None,
    duration_s: float,
    error_type: str | None = None,
) -> None:
    """An embeddings attempt's outcome on its span, and in the two GenAI histograms (input tokens only). A failed
    attempt's `input_tokens` are those the upstream counted all the same (an answer whose vectors are unusable: it
    billed them), on its span and in the token histogram as the ledger row has them."""
    if error_type is not None:
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, error_type))
    counted = error_type is None or input_tokens > 0
    if counted and span.is_recording():
        span.set_attributes(
            {
                "gen_ai.response.model": response_model or request_model,
                "gen_ai.usage.input_tokens": input_tokens,
                "tokenomy.cost.usd": float(cost_usd or 0),
            }
        )
    attrs = _common(provider_name, request_model, response_model, error_type, "embeddings")
    tokens, duration = _HISTOGRAMS
    if counted:
        tokens.record(input_tokens, {**attrs, "gen_ai.token.type": "input"})
    duration.record(duration_s, attrs)


@contextmanager
def _opened(span: Span, current: bool) -> Iterator[Span]:
    """`span`, made current unless `current` is False, ended on exit; an unexpected exception marks it failed.
    `attempt_span` does the same inline: on the chat path this one more generator measured +0.65 us an attempt."""
    try:
        # A span with no trace (no SDK installed, no parent) changes nothing as the current span: skip the attach.
        if current and span.get_span_context().is_valid:
            with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                yield span
        else:
            yield span
    except ProviderError:
        raise  # already described by record_failure
    except Exception as exc:  # a bug or an unmapped error: still visible on the span
        span.set_attribute("error.type", type(exc).__qualname__)
        span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
        raise
    finally:
        span.end()


@contextmanager
def batch_span(phase: str, provider_name: str, model: str, job_id: str) -> Iterator[Span]:
    """The CLIENT span `batch {phase} {model}` of a provider batch job: its submission (`submit`) or the collection
    of one finished part's results (`collect`, with their usage and cost: `record_batch`), so a trace backend sees
    batch spend as it sees calls. Each is a trace of its own: a job outlives the process that submitted it. A local
    job's requests go through the call path, whose attempts have spans already."""
    attributes = {
        "gen_ai.operation.name": "batch",
        "gen_ai.provider.name": SEMCONV_PROVIDERS.get(provider_name, provider_name),
        "gen_ai.request.model": model,
        "tokenomy.batch.job_id": job_id,
    }
    span = _TRACER.start_span(f"batch {phase} {model}", kind=SpanKind.CLIENT, attributes=attributes)
    try:
        yield span
    except BaseException as exc:  # a provider's refusal, a bug, Ctrl-C: the span says the step did not finish
        _failed(span, exc.kind if isinstance(exc, ProviderError) else type(exc).__qualname__)
        raise
    finally:
        span.end()


def record_batch(span: Span, requests: int, usage: Usage | None = None, cost_usd: Decimal | None = None) -> None:
    """The requests a batch span covers (sent, or results collected) and, for collected results, their token totals
    (input with cached tokens, as the conventions count it) and cost, as their ledger rows have them."""
    if not span.is_recording():
        return
    attributes: dict[str, Any] = {"tokenomy.batch.requests": requests}
    if usage is not None:
        attributes.update(
            {
                "gen_ai.usage.input_tokens": usage.total_input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
                "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
                "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
                "tokenomy.cost.usd": float(cost_usd or 0),
                "tokenomy.mode": "batch",
            }
        )
    span.set_attributes(attributes)


def _common(
    provider_name: str, request_model: str, response_model: str | None, error_type: str | None, operation: str = "chat"
) -> dict:
    attrs = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": SEMCONV_PROVIDERS.get(provider_name, provider_name),
        "gen_ai.request.model": request_model,
    }
    if response_model:
        attrs["gen_ai.response.model"] = response_model
    if error_type:
        attrs["error.type"] = error_type
    return attrs


def record_success(
    span: Span,
    request: ChatRequest,
    response: ChatResponse,
    cost_usd: Decimal,
    duration_s: float | None,
    cache_points: list[str] | None = None,
    rejected: tuple[str, str] | None = None,
) -> None:
    """Put usage and cost on the span and feed the two GenAI histograms (`duration_s` None: the attempt's duration
    was recorded already, when its caller cancelled it). `rejected`: (validator, reason) of an answer a cascade's
    validators rejected: billed, so its usage and cost stay, but the operation did not give the call its answer, so
    its span is failed with error.type `cascade_rejected` (its duration counted under that error type too)."""
    usage = response.usage
    error_type = None
    if rejected is not None:
        error_type = REJECTED
        span.set_attributes({"tokenomy.cascade.rejected": rejected[0], "tokenomy.cascade.reason": rejected[1]})
        _failed(span, REJECTED, rejected[1])
    if span.is_recording():  # a span nobody records (no SDK installed, sampled out) would drop them anyway
        attributes: dict[str, Any] = {
            "gen_ai.response.model": response.model,
            "gen_ai.response.finish_reasons": [response.finish_reason],
            "gen_ai.usage.input_tokens": usage.total_input_tokens,  # conventions: cached included
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
            "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
            "tokenomy.cost.usd": float(cost_usd),
        }
        if cache_points:
            attributes["tokenomy.cache_points"] = cache_points
        if response.tier:
            attributes["tokenomy.tier"] = response.tier
        if response.provider in OPENAI_APIS:
            top = response.raw.get("top") if isinstance(response.raw, dict) else None
            served = top.get("service_tier") if isinstance(top, dict) else None
            if isinstance(served, str):
                attributes["openai.response.service_tier"] = served
        # The tier the ledger row prices and tags the call at, read the same way, for every API (Claude's priority
        # and fast mode are no OpenAI attribute): span and row agree.
        tier = served_tier(response)
        if tier != "standard":
            attributes["tokenomy.service_tier"] = tier
        span.set_attributes(attributes)
    attrs = _common(response.provider, request.model, response.model, None)
    tokens, duration = _HISTOGRAMS
    tokens.record(usage.total_input_tokens, {**attrs, "gen_ai.token.type": "input"})
    tokens.record(usage.output_tokens, {**attrs, "gen_ai.token.type": "output"})
    if duration_s is not None:
        duration.record(duration_s, attrs if error_type is None else {**attrs, "error.type": error_type})


def record_failure(
    span: Span,
    request: ChatRequest,
    provider_name: str,
    error_type: str,
    duration_s: float,
    counted: Usage | None = None,
) -> None:
    """Mark the span failed with `error.type` and record the attempt's duration. `counted`: the prompt's tokens the
    provider counted as its answer began (Anthropic's message_start), which it bills though the answer failed: on
    the span and in the token histogram, as the ledger row has them (output tokens are only estimated: left out)."""
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))
    attrs = _common(provider_name, request.model, None, error_type)
    if counted is not None:
        span.set_attributes(
            {
                "gen_ai.usage.input_tokens": counted.total_input_tokens,  # conventions: cached included
                "gen_ai.usage.cache_read.input_tokens": counted.cache_read_tokens,
                "gen_ai.usage.cache_creation.input_tokens": counted.cache_write_tokens,
            }
        )
        _HISTOGRAMS[0].record(counted.total_input_tokens, {**attrs, "gen_ai.token.type": "input"})
    _HISTOGRAMS[1].record(duration_s, attrs)
