"""The gateway's shared state: config, the one call path (its pooled OpenAI upstreams), keys, limits,
budgets, the overload guard, and the per-route caches the request handlers read."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.responses import JSONResponse

from tokenomy.caching.placement import audio_input_tokens, input_bound, input_size
from tokenomy.caching.tokens import apply_token_policy
from tokenomy.call_cost import RUNNING_WAIT_S
from tokenomy.client import CallPolicy, Tokenomy
from tokenomy.config import RouteConfig, TokenomyConfig
from tokenomy.errors import ProviderError, TokenomyError
from tokenomy.gateway import auth
from tokenomy.gateway.budgets import Budgets
from tokenomy.gateway.keycache import KeyCache
from tokenomy.gateway.keys import KeyStore, VirtualKey
from tokenomy.gateway.limits import LocalLimits, RedisLimits
from tokenomy.gateway.pricing import GatewayCatalog
from tokenomy.gateway.upstream import AsyncOpenAIUpstream
from tokenomy.gateway.worst_case import Bound, Line, WorstCase, asks_for_audio, audio_prices, predicted_tokens
from tokenomy.ledger.journal import Journal, claim, journal_dir, legacy_journal_dir
from tokenomy.ledger.journal_replay import replay
from tokenomy.ledger.store import open_store
from tokenomy.ledger.writer import LedgerWriter
from tokenomy.ledger.writer_process import ProcessLedgerWriter
from tokenomy.messages import ChatRequest
from tokenomy.pricing.entry import DEFAULT_OUTPUT_ESTIMATE
from tokenomy.pricing.identifiers import pricing_region
from tokenomy.pricing.served_tier import asked_tier
from tokenomy.pricing.server_tools import fetched_content, implied_searches, reserved_tools_usd
from tokenomy.providers.block_refusals import inputs_refusal, tool_pairs_error
from tokenomy.providers.refusals import Unsupported
from tokenomy.request_views import one_hour_cache_point


class OverloadGuard:
    """At most `max_inflight` calls run and `max_queue` wait; beyond that requests are refused at once."""

    def __init__(self, max_inflight: int, max_queue: int) -> None:
        self.slots = asyncio.Semaphore(max_inflight)
        self.max_queue = max_queue
        self.waiting = 0
        self.inflight = 0

    def full(self) -> bool:
        return self.slots.locked() and self.waiting >= self.max_queue


class GatewayClient(Tokenomy):
    """The one call path, with OpenAI-compatible upstreams reached through a pooled async passthrough."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.upstreams: dict[tuple, AsyncOpenAIUpstream] = {}
        # Escape hatch (and A/B switch for the benchmark): the SDK-based provider in a worker thread.
        self.sdk_upstream = bool(os.environ.get("TOKENOMY_GATEWAY_SDK_UPSTREAM"))

    def provider_for(self, spec):
        if spec.provider != "openai" or self.sdk_upstream:
            return super().provider_for(spec)
        return self.pooled(spec)

    def pooled(self, spec) -> AsyncOpenAIUpstream:
        """The pooled upstream of an OpenAI-format model (embeddings take it whatever `sdk_upstream` says)."""
        key = (spec.base_url, spec.api_key_env, spec.timeout_s, spec.empty_tool_call_content)
        upstream = self.upstreams.get((*key, spec.name))
        if upstream is None:  # a server's models share its pool (many models behind one vLLM or OpenRouter URL)
            owner = next((up for named, up in self.upstreams.items() if named[:-1] == key), None)
            upstream = self.upstreams[(*key, spec.name)] = AsyncOpenAIUpstream(spec, pooled_with=owner)
        return upstream

    async def aclose_upstreams(self) -> None:
        for upstream in self.upstreams.values():
            if upstream.pooled_with is None:  # the pool's owner closes it
                await upstream.aclose()


class Gateway:
    """State shared by the handlers: config, client, keys, limits, estimates."""

    def __init__(self, config: TokenomyConfig, ledger: str | None, workers: int = 1) -> None:
        self.config = config
        self.workers = workers  # processes serving the config (`serve --workers`): each keeps 1/N of a route's rate
        store = open_store(ledger or config.ledger)
        self.store = store
        self.settings = config.gateway
        self.journal = None
        # Keys and teams the replay wrote calls of: their shared budget counters are counted again (`start`)
        self.replayed_spenders: set[tuple[str, str]] = set()
        # Before the replay: it prices the calls a killed gateway left in flight as their rows would have been.
        self.catalog = GatewayCatalog()
        if self.settings.journal:  # a crash loses nothing answered: replay what the last run left, then journal
            folder = Path(self.settings.journal_dir) if self.settings.journal_dir else journal_dir(store)
            if self.settings.journal_dir:  # the default folder is named after the ledger: no other ledger's
                claim(folder, store)
            replay(folder, store, self.catalog, self.replayed_spenders)
            legacy = None if self.settings.journal_dir else legacy_journal_dir(store)
            if legacy is not None and legacy != folder:
                replay(legacy, store, self.catalog, self.replayed_spenders)
            self.journal = Journal(folder, self.settings.journal_sync, self.settings.journal_fsync_seconds)
        # A write's cost is mostly fixed (connection, rollup statements): at 1,500 requests/s a batch of a
        # second's calls is one write, not two (max_batch only bounds memory).
        in_child = self.settings.ledger_writer == "process" and store.shared_with_other_processes
        writer = ProcessLedgerWriter if in_child else LedgerWriter
        self.writer = writer(
            store, flush_interval=self.settings.ledger_flush_seconds, max_batch=10_000, journal=self.journal
        )
        self.client = GatewayClient(
            self.writer, models=config.model_specs(), store_prompts=config.store_prompts, catalog=self.catalog
        )
        self.keys = KeyStore(store) if config.auth else None
        self.key_cache = KeyCache(self.keys, self.settings.key_cache_seconds) if self.keys else None
        concurrency = self.settings.max_inflight + self.settings.max_queue
        self.limits = (
            RedisLimits(config.redis_url, max_connections=concurrency, hold_seconds=self.settings.budget_hold_seconds)
            if config.redis_url
            else LocalLimits()
        )
        self.budgets = (
            Budgets(self.limits, self.writer, self.keys, self.key_cache, shared=bool(config.redis_url))
            if self.keys and self.key_cache
            else None
        )
        self.guard = OverloadGuard(self.settings.max_inflight, self.settings.max_queue)
        self.settling: set[asyncio.Task] = set()  # settlements that outlive their request (settlement.in_background)
        # Built once per route: each owns its token bucket and its router (policies were validated at load).
        self.policies = {
            name: CallPolicy.for_route(config, name, self.catalog, processes=workers) for name in config.routes
        }
        self._routes: dict[str, RouteConfig] = dict(config.routes)

    def served_names(self) -> list[str]:
        """The names a caller may send as `model`, sorted: routes, configured models and the local model (what
        GET /v1/models lists, in OpenAI's shape or Gemini's)."""
        return sorted(set(self.config.routes) | set(self.config.models) | {"local"})

    def route_for(self, name: str) -> RouteConfig | None:
        """The route a client's `model` names, made once per name (a bare model name is a one-model route)."""
        route = self._routes.get(name)
        if route is None:
            route = self.config.route_for(name)
            if route is not None:  # only names the config serves are kept: the cache stays bounded
                self._routes[name] = route
        return route

    def policy_for(self, name: str, route: RouteConfig) -> CallPolicy:
        """The call policy of a route, built once (a bare model's too: no per-request rebuild)."""
        policy = self.policies.get(name)
        if policy is None:
            policy = self.policies[name] = CallPolicy.from_route(route, processes=self.workers)
        return policy

    # -- auth -----------------------------------------------------------------------------------
    def authenticate(self, header: str | None) -> VirtualKey | JSONResponse | None:
        """Blocking form (the dashboard's handlers run in a worker thread)."""
        return auth.authenticate(self.key_cache, header)

    async def authenticate_async(self, header: str | None) -> VirtualKey | JSONResponse | None:
        return await auth.authenticate_async(self.key_cache, header)

    async def start(self) -> None:
        """On the serving loop, before the first request: the budget counters of the keys and teams whose calls the
        replay wrote are counted again from the ledger (`Budgets.recount`). In Redis they outlive a killed gateway,
        whose unsettled calls they lack once their holds' lease ends."""
        if self.budgets is not None and self.replayed_spenders:
            await self.budgets.recount(self.replayed_spenders)

    async def wind_down(self) -> None:
        """Before the ledger and the budget counters close: wait (at most RUNNING_WAIT_S) for the provider calls that
        cancelled requests left running in worker threads, which record their answers when they end, then for the
        budget settlements those and other requests left running."""
        await asyncio.to_thread(self.client.running.wait, RUNNING_WAIT_S)
        await asyncio.sleep(0)  # what the threads scheduled on this loop (settlement.settle_when_final) starts
        while self.settling:
            await asyncio.gather(*self.settling, return_exceptions=True)
        if self.budgets is not None:
            await self.budgets.aclose()

    def close(self) -> None:
        if self.key_cache is not None:
            self.key_cache.close()

    def refusal(
        self, route, request: ChatRequest, sent_as_is: bool = False, mapped: ChatRequest | None = None
    ) -> ProviderError | None:
        """The 400 for what of this request the route's model cannot take (an image to a text-only model, a field its
        API lacks: `refused`, or an option its mapping has no place for: `param`, `Provider.mapping_refusal`), asked
        before any call or budget reservation, so a request no model of the route takes leaves no ledger row; each
        ingress names its place as its caller sent it, as for the same error raised at call time. None when a
        fallback can take it: the client passes the request on to it without sending anything to the model that
        cannot (that attempt is a $0 client_error row). Routed tiers are checked at call time the same way (a
        cascade's cheap tier hands an image it cannot read to the next tier).

        `sent_as_is`: the caller changes nothing of the request but its meta before the client sends it, so a model
        that can take it is recorded on it (`ChatRequest.cleared`) and the client does not check it again for that
        model (these checks cover the client's and the provider's). `mapped`: the request as its mapping will read it,
        when `request` leaves out fields the provider checks would refuse but the mapping carries (an API's own).

        A tool result answering no call, or a call left unanswered, is refused whatever the route (routed tiers too):
        every provider's API refuses it, so no attempt, and no fallback, could be answered (`tool_pairs_error`); one
        that passes is marked so (`ChatRequest.tools_paired`, on `mapped` too: the request the client is given), and
        the client does not ask again."""
        unpaired = tool_pairs_error(request)
        if unpaired is not None:
            return unpaired
        if mapped is not None:
            mapped.tools_paired = True  # the same messages as `request`'s
        if not route.model:
            return None
        first: Unsupported | ProviderError | None = None
        for name in (route.model, *route.fallback):
            spec = self.client.spec_for(name)
            provider = self.client.provider_for(spec)
            why = (
                inputs_refusal(spec.inputs, request)
                or provider.refusal(request)
                or self.client.cache_refusal(spec, mapped or request)  # (with `extra`: a top-level cache point)
            )
            if why is not None:
                first = first or replace(why, by=f"model `{route.model}`")
                continue
            unsent = provider.mapping_refusal(mapped or request, spec.model)
            if unsent is not None:
                first = first or unsent
                continue
            if sent_as_is:
                request.cleared = (spec, provider)
            return None
        if isinstance(first, Unsupported):
            return ProviderError(first.error_text(first.where), kind="client_error", status=400, refused=first)
        return first

    def worst_case(self, route, request, policy: CallPolicy) -> WorstCase:
        """Worst-case cost of a call: its prompt at input price plus its output at output price, on the dearest
        model the route may use (its fallbacks; for a routing policy, every model of its tiers), plus the web
        searches its server tools may run at that model's web search price (an Anthropic tool's max_uses, or
        server_tools.DEFAULT_RESERVED_USES; Gemini's Google Search: that many queries on Gemini 3 and later, one
        grounded prompt on Gemini 2.x). What a web fetch, web search or URL context tool brings into the prompt is
        reserved too (`fetched_content`): the prompt at the model's whole context window, or a web fetch's bound.
        A call that sends tools adds the system prompt each model's provider adds to it (`tool_prompt_tokens`).
        The output is the cap the client applies to every attempt: the smaller of the request's and the route's (and of
        the maximum output of a model the caller did not name: `held_cap`). A
        call with none is reserved, on each model, at the cap its provider will be held to (`uncapped_output`)."""
        # One group per answer the request may pay for: a cascade (a router with validators) pays one per tier it
        # escalates through, each tier's dearest model (its fallbacks included); otherwise one answer is paid.
        answers = [list(models) for models in policy.router.paid_answers()] if policy.router is not None else [[]]
        if route.model:
            answers[0].insert(0, route.model)
        for models in answers:
            models += route.fallback
        sent = apply_token_policy(request, policy.tokens)[0]  # what the client will send: capped and trimmed
        # A document sent by URL or file id has a size the gateway cannot see: such a call's prompt is reserved at
        # each model's whole context window (where the catalog has it), not at the page the estimate counts.
        # The prompt is reserved at an upper bound of its tokens, not the ~4-characters-a-token estimate, which dense
        # text (digits, punctuation, base64) beats up to fourfold: N concurrent calls each admitted on the estimate
        # overspent the budget by N times the gap (`token_estimate.bound_length`).
        prompt, unsized = input_bound(sent)
        # The room an uncapped answer has in the window is what the prompt leaves by the estimate, as before: the
        # bound would leave it less room, and reserve less output than it may write.
        estimate = input_size(sent)[0] if sent.max_tokens is None else prompt
        # `n` answers (OpenAI's choices) each write up to the cap; the prompt is billed once.
        n = sent.extra.get("n")
        tier = asked_tier(sent.extra)  # a dearer tier asked for (priority, fast mode) is billed at its own prices
        # A 1-hour cache point's writes cost the 1-hour price (2x input on Claude, above the 5-minute 1.25x).
        one_hour = one_hour_cache_point(sent) is not None
        # Audio is billed apart from text where the model has audio prices (Gemini 2.0 Flash's audio input at 7 times
        # its text, OpenAI's audio output at 8): its prompt's audio parts, and an answer asked to speak, at those.
        audio = sum(audio_input_tokens(message.content) for message in sent.messages)
        speaks = asks_for_audio(sent.extra)
        groups: list[list[Line]] = []
        searches = Decimal(0)  # USD: the web searches each answer may run, at its dearest model's price
        server = [tool.server for tool in request.tools if tool.server is not None]
        built_in = sent.extra.get("tools")  # Gemini's built-in tools (Google Search), as sent
        # Pages a web fetch or URL context tool reads, and a web search's results, are billed as input: like a
        # document by URL, the prompt is reserved at each model's whole window, or at a web fetch's own bound.
        fetched = fetched_content(server, built_in) if server or built_in else None
        whole = unsized or (fetched is not None and fetched.tokens is None)
        # A call that sends tools is billed for the system prompt the provider adds to it (Claude's tool use prompt,
        # ~300-800 tokens by model and tool_choice), which the request does not show: reserved on each model.
        choice = sent.tool_choice.mode if sent.tool_choice is not None else None
        for names in answers:
            lines: list[Line] = []
            worst_searches = Decimal(0)
            for name in names:
                spec = self.client.spec_for(name)
                try:
                    entry = self.catalog.lookup(spec.pricing_model, pricing_region(spec.region))
                except TokenomyError:
                    continue
                if server or built_in or implied_searches(entry.family):
                    worst_searches = max(worst_searches, reserved_tools_usd(spec.provider, entry, server, built_in))
                bound = self.uncapped_output(spec, entry, sent, estimate) if sent.max_tokens is None else None
                held = self.client.held_cap(sent, name, spec, spec.region)  # as the client will send it that model
                window = entry.context_window
                sized = prompt + entry.tool_prompt_tokens(choice) if sent.tools else prompt
                read = max(sized, window or 0) if whole else sized
                if fetched is not None and fetched.tokens is not None and not whole:
                    read += fetched.tokens
                    read = min(read, max(sized, window)) if window else read  # no more than the window holds
                # Over its long-context threshold the provider bills the whole call at those dearer prices.
                long = entry.long_context
                rates: list[Any] = [long if long is not None and read > long.above_tokens else entry]
                if tier in entry.service_tiers:
                    priced = entry.service_tiers[tier].on(datetime.now(UTC).date())  # today's (a change on a date)
                    tier_long = priced.long_context  # the tier's own prices over its threshold, where published
                    rates.append(tier_long if tier_long is not None and read > tier_long.above_tokens else priced)
                for rate in rates:
                    # Without caching information, every prompt token at the dearest input rate that may apply.
                    input_rate = max(rate.input or 0, rate.cache_write or 0)
                    if one_hour:  # (a service tier's rates have one where published: fast mode's)
                        input_rate = max(input_rate, getattr(rate, "cache_write_1h", None) or 0)
                    audio_in, audio_out = audio_prices(entry, rate)
                    prompt_usd_m = Decimal(read) * input_rate + Decimal(audio) * max(audio_in - input_rate, Decimal(0))
                    output_price = max(Decimal(rate.output or 0), audio_out if speaks else Decimal(0))
                    lines.append(Line(prompt_usd_m, output_price, bound, held))
            groups.append(lines)
            searches += worst_searches
        choices = n if type(n) is int and n > 1 else 1
        # A predicted output's rejected tokens are billed as output past the cap (OpenAI's `prediction`).
        predicted = predicted_tokens(sent.extra.get("prediction"))
        return WorstCase(groups, searches, sent.max_tokens, choices, unsized, predicted, fetched)

    def uncapped_output(self, spec, entry, request: ChatRequest, prompt: int) -> Bound:
        """What a call that sets no output cap may write on one model (reasoning tokens included, billed as output):
        the cap the client sends such a call where its provider requires one (`CallPlanner.uncapped_cap`: Claude's,
        the model's maximum output within the window the prompt leaves), else the model's maximum output in the
        catalog (no more than its context window less the prompt), else DEFAULT_OUTPUT_ESTIMATE plus the thinking
        budget (an estimate: the model may write more)."""
        budget = request.reasoning.budget_tokens if request.reasoning is not None else None
        budget = max(budget or 0, 0)
        try:
            provider = self.client.provider_for(spec)
        except TokenomyError:  # a provider that cannot be built (no credentials) fails the call, not its estimate
            provider = None
        sent = None if provider is None else self.client.uncapped_cap(request, spec, spec.region, provider, prompt)
        if sent is not None:
            return Bound(entry.model, sent, "provider", budget)
        most = entry.output_within(prompt)
        if most is not None:
            return Bound(entry.model, most, "catalog", budget)
        return Bound(entry.model, DEFAULT_OUTPUT_ESTIMATE + budget, "estimate", budget)
