"""How each attempt of a call is recorded: its ledger row (an answer at its real usage and cost; an attempt without
one at $0, or at its estimate when the provider had started on it and billed it), its span, and the rate limiter's
correction to what the provider really counted. `Tokenomy` (client.py) runs the attempts and inherits this.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time

from tokenomy import attempt_estimate
from tokenomy.call_cost import Running
from tokenomy.call_policy import Attempt, CallState, Target
from tokenomy.chat_response import ChatResponse, Usage
from tokenomy.errors import ProviderError, TokenomyError, price_file
from tokenomy.ids import new_id
from tokenomy.ledger.events import (
    CACHE_WRITE_1H_TAG,
    OVER_CAP_TAG,
    UsageEvent,
    content_counts,
    event_from_response,
    record_priced_as,
    row_jsonl,
    utcnow,
)
from tokenomy.ledger.fingerprints import prompt_fingerprint
from tokenomy.ledger.writer import LedgerWriter
from tokenomy.pricing.catalog import PriceCatalog, PriceEntry
from tokenomy.pricing.cost import answered_cost, billable_usage
from tokenomy.pricing.cost_breakdown import CostBreakdown
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.pricing.served_tier import served_tier
from tokenomy.pricing.server_tools import billed_counts, implied_searches, server_tool_counts, with_server_tools
from tokenomy.routing.router import REASON_TAG, REJECTED_TAG
from tokenomy.routing.validators import Rejection
from tokenomy.telemetry import otel

log = logging.getLogger("tokenomy.client")  # the client's log: these are its calls

# Output tokens below every chat model's maximum output: an uncapped answer under it is not compared with its model's.
UNCAPPED_FLOOR = 1024


class Recorder:
    """The recording half of `Tokenomy`: what it needs is set by `Tokenomy.__init__`."""

    catalog: PriceCatalog
    store_prompts: bool
    writer: LedgerWriter | None
    running: Running  # attempts cancelled callers left running in worker threads, until recorded
    _cache_unpriced_warned: set[str]
    _local: threading.local

    def _finish(
        self,
        call: CallState,
        att: Attempt,
        response: ChatResponse,
        rejected: Rejection | None = None,
        cancelled: bool = False,
    ) -> ChatResponse:
        """Price and record an answer (`rejected`: why the cascade's validators rejected it; `cancelled`: one its caller
        was no longer waiting for)."""
        target = att.target
        pricing_model = target.spec.price_as or response.model
        region = pricing_region(response.region)
        usage = self._billable_usage(response.usage, pricing_model, region, target)
        tier = served_tier(response) if call.mode == "on_demand" else "standard"
        # The provider answered (and bills for it): the caller gets the answer and the ledger its row, at $0 marked
        # unpriced where the catalog lacks the price.
        cost = answered_cost(usage, pricing_model, region, call.mode, self.catalog, service_tier=tier)
        # Tools the provider ran and bills per request (Anthropic's web search, Gemini's Google Search grounding, the
        # search an OpenAI search model runs on every call): counted in the answer (or implied by the model), in the
        # unit the model is billed in, priced apart at the model's web search price
        searches = server_tool_counts(response.raw) or implied_searches(pricing_model)
        if searches:
            entry = self._entry(pricing_model, region)
            searches = billed_counts(searches, entry.family if entry is not None else pricing_model)
            cost = with_server_tools(cost, target.provider.name, searches, entry)
        total = cost.total_usd  # a property adding five Decimals: summed once, not once a use
        response.cost_usd = total
        response.call_cost_usd = call.cost.add(total)  # a cascade's rejected answers were paid for too
        response.attempts = att.number
        if att.tier.name is not None:
            response.tier = att.tier.name
        event = record_priced_as(
            event_from_response(target.call, response, cost, call.mode, self.store_prompts, call.request_id),
            target.spec.price_as,
            target.spec.name,
            self.catalog,
        )
        _deployment_row(event, target)
        event.attempt = att.number
        if cancelled:  # answered and billed, though nobody received it
            event.outcome, event.error_type = "cancelled", "CallCancelled"
        if searches:  # the row says how many requests its tools_usd (the cost beyond its token costs) paid for
            event.tags = {**(event.tags or {}), **{name: str(number) for name, number in searches.items()}}
        if tier != "standard":  # the row says why its price is not the standard one
            event.tags = {**(event.tags or {}), "service_tier": tier}
        why = None
        written = response.usage.output_tokens
        cap = target.call.max_tokens
        # One comparison on the normal path; an uncapped answer is compared with the model's maximum output only past
        # UNCAPPED_FLOOR (no chat model's maximum is below it). A count the gateway estimated (no usage came) is no
        # provider's report: ~4 characters a token may well pass the cap.
        if written > (cap if cap is not None else UNCAPPED_FLOOR):
            over = self._over_cap(target, response, cap, pricing_model, region, event.route)
            if over is not None:
                event.tags = {**(event.tags or {}), OVER_CAP_TAG: over}
        if rejected is not None:  # the answer was paid for and not used: the row (and the span) says why
            why = (rejected.check, rejected.said(self.store_prompts))
            event.tags = {**(event.tags or {}), REJECTED_TAG: why[0], REASON_TAG: why[1]}
        if usage is not response.usage:  # the row's token columns are the ones its costs were computed from
            event.apply_usage(usage)
        if att.event_id is not None:  # the row supersedes the journal's in-flight entry (`_in_flight`)
            event.event_id = att.event_id
        self._record(event)
        if call.policy.limiter:
            usage = response.usage
            call.policy.limiter.settle(target.estimate, usage.total_input_tokens + usage.output_tokens)
        otel.record_success(
            att.span,
            target.call,
            response,
            total,
            None if cancelled else time.perf_counter() - att.started,
            [p.after for p in target.placements],
            why,
        )
        self._local.placements = target.placements
        return response

    def _over_cap(
        self, target: Target, response: ChatResponse, cap: int | None, model: str, region: str | None, route: str | None
    ) -> str | None:
        """The cap an answer's output tokens passed ("max_tokens 100", "model maximum 16384"), logged as a warning
        naming the route, model and counts (never the prompt); None when it passed none (`n` choices each write up to
        max_tokens; a stand-in priced as another model has that model's price, not its limits; an estimated count, for
        an answer that came without one, is no provider's report)."""
        written = response.usage.output_tokens
        if isinstance(response.raw, dict) and response.raw.get("usage_source") == "estimated":
            return None
        if cap is not None:
            n = target.call.extra.get("n")
            if written <= cap * (n if type(n) is int and n > 1 else 1):
                return None
            over = f"max_tokens {cap}"
        else:
            entry = None if target.spec.price_as else self._entry(model, region)
            most = entry.max_output_tokens if entry is not None else None
            if most is None or written <= most:
                return None
            over = f"model maximum {most}"
        log.warning(
            "route %s, model %s: the provider reported %d output tokens, more than the call allowed (%s); "
            "recorded as reported, tagged %s",
            route or "-",
            target.spec.name,
            written,
            over,
            OVER_CAP_TAG,
        )
        return over

    def _entry(self, model: str, region: str | None) -> PriceEntry | None:
        """The model's price entry (for its web search price), or None where the catalog has none."""
        try:
            return self.catalog.lookup(model, region)
        except TokenomyError:
            return None

    def _billable_usage(self, usage: Usage, model: str, region: str | None, target: Target) -> Usage:
        """Cache tokens count as plain input for a model the catalog has no cache prices for: a stand-in (e.g. the
        local model's KV cache, priced as a model that cannot cache) would be billed so by that model, and for a
        provider's own model that input price is the catalog's best figure. The local model's KV cache, priced as
        another model, is billed as that model would bill it (`billable_usage`'s `kv_cache`)."""
        stand_in = bool(target.spec.price_as)
        kv_cache = stand_in and target.provider.name == "local"
        billable = billable_usage(usage, model, region, self.catalog, kv_cache)
        if billable is usage:
            return usage
        if not stand_in and model not in self._cache_unpriced_warned:
            self._cache_unpriced_warned.add(model)
            log.warning(
                "%s reported cache tokens but the price catalog has no cache prices for it: they are priced as "
                "input (add its cache prices with %s)",
                model,
                price_file(),
            )
        return billable

    def _record(self, event: UsageEvent) -> None:
        if self.writer is not None:
            self.writer.record(event)

    def _in_flight(self, call: CallState, att: Attempt) -> None:
        """Before an attempt is sent: put its row at its estimate (outcome `interrupted`) in the writer's journal as
        an in-flight entry, so a gateway killed while the provider works on it (and bills it) still records it at the
        next start. Its own row, under the same event id, supersedes the entry. Without a journal (the library, batch
        without a journal) nothing is written: a crash of that process loses its calls in flight, as before."""
        journal = self.writer.journal if self.writer is not None else None
        if journal is None:
            return
        # Only the columns it needs, encoded straight from a dict (the rest take their defaults at replay): it is
        # written for every attempt, and a whole UsageEvent and its encoding cost more than the journal's write. Its
        # tokens only, not their cost: the replay prices the few entries it ever reads (as `pricing_model`, with the
        # gateway's catalog, as `attempt_estimate.estimated` would), and pricing every attempt here was most of the
        # entry's cost.
        # The prompt's estimate is the target's, made once: a rate limit's reservation and a failed attempt's row
        # read the same.
        target, request = att.target, att.target.call
        meta = request.meta
        model, tags = _recorded_model(target, target.spec.model, meta.tags)
        att.event_id = new_id()
        row = {
            "ts": utcnow(),
            "provider": target.provider.name,
            "model": model,
            "region": request.region,
            "mode": call.mode,
            "task": meta.task,
            "tags": tags,
            "tenant": meta.tenant,
            "key_id": meta.key_id,
            "route": meta.route,
            "tier": meta.tier,
            "input_tokens": target.estimate - (request.max_tokens or 0),  # as `attempt_estimate.estimated` counts one
            "audio_input_tokens": target.audio_estimate,  # priced at the audio rate, as its answer would be
            "outcome": "interrupted",
            "error_type": "GatewayStopped",
            "attempt": att.number,
            "request_id": call.request_id,
            "event_id": att.event_id,  # last, as in every row's line (journal_replay.replay reads it there)
        }
        journal.in_flight(
            att.event_id,
            row_jsonl(row),
            target.spec.pricing_model,
            attempt_estimate.priced_tier(self.catalog, call, att),
        )

    def _no_row(self, att: Attempt) -> None:
        """An attempt that ends without a row (cancelled before anything was sent): its in-flight entry is void."""
        journal = self.writer.journal if self.writer is not None else None
        if journal is not None and att.event_id is not None:
            journal.void(att.event_id)

    def _fail(self, call: CallState, att: Attempt, exc: ProviderError, traced: bool = True) -> None:
        """Record a failed attempt (`traced`: on its span too, which has ended for an attempt left running)."""
        target = att.target
        if exc.unsent and call.policy.limiter:  # nothing was sent: the next model gets the allowance
            call.policy.limiter.release(target.estimate)
        error_type = exc.kind if exc.__cause__ is None else type(exc.__cause__).__name__
        if traced:
            otel.record_failure(
                att.span, target.call, target.provider.name, error_type, time.perf_counter() - att.started, att.reported
            )
        if att.deltas or exc.reached:
            # The stream failed after the provider had generated part of the answer, or the call stopped waiting
            # for a provider still working on it: it billed the prompt and any tokens received, so the row carries
            # them estimated, as for a stream the caller abandoned (and the call's budget counts them).
            self._record_unanswered(
                call, att, exc.kind, error_type, attempt_estimate.estimated(self.catalog, call, att)
            )
        else:
            self._record_unanswered(call, att, exc.kind, error_type)

    def _abandon(
        self, call: CallState, att: Attempt, traced: bool = True, outcome: str = "cancelled", error_type: str = ""
    ) -> None:
        """The caller gave up on an attempt before its answer's end: stopped reading a stream (closed it,
        disconnected) or cancelled the call while it waited (`outcome` and `error_type` say otherwise for `_crash`).

        The provider has already billed the prompt and whatever it generated, so the attempt is
        recorded with estimated tokens (prompt estimate; the output received, see `attempt_estimate.estimated`)
        rather than vanishing from the ledger.
        """
        error_type = error_type or ("StreamAbandoned" if call.stream else "CallCancelled")
        if traced:
            otel.record_failure(
                att.span,
                att.target.call,
                att.target.provider.name,
                error_type,
                time.perf_counter() - att.started,
                att.reported,
            )
        usage, cost = attempt_estimate.estimated(self.catalog, call, att)
        self._record_unanswered(call, att, outcome, error_type, (usage, cost))
        if call.policy.limiter:
            call.policy.limiter.settle(att.target.estimate, usage.total_input_tokens + usage.output_tokens)

    def _crash(self, call: CallState, att: Attempt, exc: Exception) -> None:
        """An attempt ended by a bug in Tokenomy's own code (a mapping that could not read the provider's answer, ...).
        The request has most likely gone out and been billed, so the attempt is recorded at its estimate, as
        `server_error` with the exception's class as its error type, rather than lost; the caller then gets the
        exception (the gateway answers a 500 and logs the traceback)."""
        if att.response is None and att.thread is None:  # else recorded already, or when its thread ends
            self._abandon(call, att, outcome="server_error", error_type=type(exc).__name__)

    def _record_unanswered(
        self,
        call: CallState,
        att: Attempt,
        outcome: str,
        error_type: str,
        estimated: tuple[Usage, CostBreakdown] | None = None,
    ) -> None:
        """The ledger row of an attempt that gave no whole answer; at its estimated tokens and cost when the
        provider had started answering (and so billed it)."""
        target = att.target
        request, meta = target.call, target.call.meta
        event = UsageEvent(
            ts=utcnow(),
            provider=target.provider.name,
            model=target.spec.model,
            region=request.region,
            mode=call.mode,
            task=meta.task,
            tags=dict(meta.tags),
            tenant=meta.tenant,
            key_id=meta.key_id,
            route=meta.route,
            tier=meta.tier,
            latency_ms=(time.perf_counter() - att.started) * 1000,
            outcome=outcome,
            error_type=error_type,
            attempt=att.number,
            request_id=call.request_id,
            prompt_hash=prompt_fingerprint(request),
            **content_counts(request),
        )
        if estimated is not None:
            usage, cost = estimated
            event.input_tokens, event.output_tokens = usage.input_tokens, usage.output_tokens
            event.cache_read_tokens, event.cache_write_tokens = usage.cache_read_tokens, usage.cache_write_tokens
            event.audio_input_tokens = usage.audio_input_tokens
            event.audio_cache_read_tokens = usage.audio_cache_read_tokens
            event.audio_output_tokens = usage.audio_output_tokens
            if usage.cache_write_1h_tokens:  # as an answered call's row keeps them (events.event_from_response)
                event.tags[CACHE_WRITE_1H_TAG] = str(usage.cache_write_1h_tokens)
            event.apply_cost(cost)
            if cost.service_tier != "standard":  # the row says why its price is not the standard one
                event.tags["service_tier"] = cost.service_tier
            call.cost.add(cost.total_usd, unanswered=True)
        _deployment_row(event, target)
        if att.event_id is not None:  # the row supersedes the journal's in-flight entry (`_in_flight`)
            event.event_id = att.event_id
        self._record(event)

    def _leave_running(self, call: CallState, att: Attempt, running: concurrent.futures.Future) -> None:
        """Record a cancelled caller's attempt when its worker thread ends: the answer at its real usage and cost, as
        the provider bills it (the rate limiter settled with its real tokens); the estimate only if the call failed
        without an answer. The call's cost, which the gateway settles its budget with, is final then."""
        att.thread = "running"
        call.cost.leave_running()
        self.running.add()

        def ended(done: concurrent.futures.Future) -> None:
            try:
                exc = done.exception()
                if exc is None:
                    self._finish(call, att, done.result(), cancelled=True)
                elif isinstance(exc, ProviderError):
                    self._fail(call, att, exc, traced=False)
                else:
                    self._abandon(call, att, traced=False)
            except Exception:  # a recording bug must not hold the call's cost open for ever
                log.exception("recording an attempt whose caller was cancelled failed (request %s)", call.request_id)
            finally:
                try:
                    call.cost.ended()
                finally:
                    self.running.remove()

        running.add_done_callback(ended)


def _deployment_row(event: UsageEvent, target: Target) -> None:
    """A row (answered or not) under the model `_recorded_model` names."""
    event.model, event.tags = _recorded_model(target, event.model, event.tags or {})


def _recorded_model(target: Target, model: str, tags: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The model and tags a row of `target` is recorded under: an Azure deployment name says nothing about the model,
    so its rows are recorded under the model it is priced as (reports and billing imports group by model), with the
    deployment as a tag."""
    if target.provider.deployment_names and target.spec.price_as and model != target.spec.price_as:
        return target.spec.price_as, {**tags, "deployment": model}
    return model, tags
