"""`tokenomy prices`, `tokenomy cost` and `tokenomy chat`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption, PricesOption, apply_prices, takes_prices
from tokenomy.commands._options import when_option
from tokenomy.commands._output import WideOption, console, err_console, print_json, print_table, table, usd
from tokenomy.money import usd as money_usd


def register(app: typer.Typer) -> None:
    app.command("prices")(takes_prices(prices))
    app.command("cost")(takes_prices(cost))
    app.command("chat")(chat)


def prices(
    model: Optional[str] = typer.Argument(
        None,
        help="Model id (Bedrock ids, profiles like us.…, ARNs, OpenAI, "
        "Anthropic, Gemini names, or 'local'); omit to list the catalog; "
        "`update` refreshes genai-prices' data.",
    ),
    region: Optional[str] = typer.Option(None, "--region", help="AWS region (Bedrock), e.g. eu-west-2."),
    litellm: Optional[str] = typer.Option(
        None, "--litellm", help="Also import a LiteLLM model_prices_and_context_window.json file."
    ),
    stale: bool = typer.Option(False, "--stale", help="List only entries whose data is older than 90 days."),
    from_file: Optional[str] = typer.Option(
        None,
        "--from",
        help="With `update`: read genai-prices' data.json from this file instead of fetching it (offline).",
    ),
    price_file: Optional[str] = PricesOption,
    wide: bool = WideOption,
    as_json: bool = JsonOption,
) -> None:
    """Show prices per million tokens, with the source and as-of date of each."""
    from tokenomy.pricing.catalog import default_catalog, set_default_catalog

    if model == "update":
        _update_prices(from_file, as_json)
        return
    if from_file:
        from tokenomy.errors import ConfigError

        raise ConfigError("--from is for `tokenomy prices update --from FILE`")
    apply_prices(price_file)
    catalog = default_catalog()
    if litellm:
        catalog = catalog.with_litellm(litellm)
        set_default_catalog(catalog)
    if model:
        if stale:
            from tokenomy.errors import UsageError

            raise UsageError(
                f"--stale lists the catalog's stale entries, not one model's; `tokenomy prices {model}` says whether "
                "its price is stale (a `stale` row)"
            )
        entry = catalog.lookup(model, region)
        if as_json:
            print_json(entry.to_json())
            return
        rows = [[k, v] for k, v in entry.to_json().items() if v not in (None, {}, "")]
        from tokenomy.pricing.freshness import STALE_DAYS, age_days, refresh_hint

        age = age_days(entry.as_of)
        if age is None or age > STALE_DAYS:  # as `prices --stale` lists it: the date alone read as current
            rows.append(["stale", f"{'no date' if age is None else f'{age} days old'}: {refresh_hint(entry)}"])
        console.print(table(f"{entry.model} ({entry.region})", ["field", "value"], rows, text_columns=("value",)))
        return
    entries = sorted(catalog.entries(), key=lambda e: (e.provider, e.model, e.region))
    if region:
        regions = sorted({e.region for e in entries})
        entries = [e for e in entries if e.region == region]
        if not entries:
            from tokenomy.errors import ConfigError

            raise ConfigError(f"--region {region!r}: no prices in that region; priced regions: {', '.join(regions)}")
    if stale:
        from tokenomy.pricing.freshness import STALE_DAYS, age_days, refresh_hint, stale_entries

        entries = stale_entries(entries)
        if as_json:
            print_json([{**e.to_json(), "age_days": age_days(e.as_of)} for e in entries])
            return
        hints = sorted({refresh_hint(e) for e in entries})  # one per kind of source among them
        heading = f"{len(entries)} price entries are older than {STALE_DAYS} days"
        console.print(heading + "".join(f"; {h}" for h in hints))
    if as_json:
        print_json([e.to_json() for e in entries])
        return
    from tokenomy.pricing.freshness import stale_entries

    old = {id(e) for e in stale_entries(entries)}  # flagged beside their date, as `prices --stale` lists them
    # Each row's source as a numbered note under the table: the URLs are too long for a column, and a price that
    # cannot be traced to its page cannot be checked.
    notes: dict[str, int] = {}
    for e in entries:
        notes.setdefault(e.source, len(notes) + 1)
    from tokenomy.commands.prices_table import prices_table

    shown, left_out = prices_table(entries, notes, old, wide)
    print_table(shown, wide)
    if left_out:
        console.print(left_out)
    if notes:
        console.print("Sources:", soft_wrap=wide)
    for source, number in notes.items():
        console.print(f"[{number}] {source}", markup=False, highlight=False, soft_wrap=wide)


def _update_prices(from_file: Optional[str], as_json: bool) -> None:
    from tokenomy.pricing.library import update_library

    result = update_library(from_file)
    if as_json:
        print_json(result)
        return
    console.print(
        f"saved genai-prices data ({result['providers']} providers, {result['models']} models) from "
        f"{result['origin']} to {result['path']} (as of {result['as_of']})"
    )


def cost(
    model: str = typer.Option(..., "--model", help="Model id to price."),
    input_tokens: int = typer.Option(0, "--input", min=0, help="Input tokens (excluding cache reads/writes)."),
    output_tokens: int = typer.Option(0, "--output", min=0, help="Output tokens."),
    cache_read: int = typer.Option(0, "--cache-read", min=0, help="Tokens read from the prompt cache."),
    cache_write: int = typer.Option(0, "--cache-write", min=0, help="Tokens written to the prompt cache."),
    audio_input: int = typer.Option(
        0, "--audio-input", min=0, help="Of --input, the audio tokens (priced at the model's audio rate)."
    ),
    audio_cache_read: int = typer.Option(0, "--audio-cache-read", min=0, help="Of --cache-read, the audio tokens."),
    audio_output: int = typer.Option(0, "--audio-output", min=0, help="Of --output, the audio tokens."),
    mode: str = typer.Option("on_demand", "--mode", help="on_demand, batch or provisioned."),
    region: Optional[str] = typer.Option(
        None,
        "--region",
        help="Region the model is served from (a Bedrock AWS region, a Vertex AI location); "
        "models with one global price ignore it.",
    ),
    cache_ttl: str = typer.Option("5m", "--cache-ttl", help="Cache-write price: 5m (default) or 1h."),
    service_tier: str = typer.Option(
        "standard",
        "--service-tier",
        help="On-demand tier: standard (default), priority, flex, ultrafast or fast_mode (where published).",
    ),
    at: Optional[datetime] = when_option(
        "--at",
        "Price as on this UTC day or time (a call made then: a tier's price that changes on a date) \\[default: now].",
    ),
    price_file: Optional[str] = PricesOption,
    as_json: bool = JsonOption,
) -> None:
    """Price one usage record exactly (Decimal arithmetic, per token type)."""
    from tokenomy.chat_response import Usage
    from tokenomy.errors import UsageError, cost_options_taken
    from tokenomy.pricing.cost import CACHE_TTLS, MODES, SERVICE_TIER_CHOICES, compute_cost
    from tokenomy.pricing.identifiers import pricing_region

    # Named as typed: the cost engine's own message names its parameters ("mode='weird' is not one of ...").
    for option, value, choices in (
        ("--mode", mode, MODES),
        ("--cache-ttl", cache_ttl, CACHE_TTLS),
        ("--service-tier", service_tier, SERVICE_TIER_CHOICES),
    ):
        if value not in choices:
            raise UsageError(f"{option} {value!r}: give one of {', '.join(choices)}")
    if service_tier != "standard" and mode != "on_demand":
        raise UsageError(f"--service-tier {service_tier} prices on-demand calls only; drop it, or drop --mode {mode}")
    for part, part_count, whole, whole_count in (
        ("--audio-input", audio_input, "--input", input_tokens),
        ("--audio-cache-read", audio_cache_read, "--cache-read", cache_read),
        ("--audio-output", audio_output, "--output", output_tokens),
    ):
        if part_count > whole_count:
            raise UsageError(
                f"{part} {part_count} is more than {whole} {whole_count}; the audio tokens are part of {whole}"
            )
    apply_prices(price_file)
    usage = Usage(input_tokens, output_tokens, cache_read, cache_write)
    usage.audio_input_tokens, usage.audio_cache_read_tokens = audio_input, audio_cache_read
    usage.audio_output_tokens = audio_output
    with cost_options_taken():  # a price it cannot give names --service-tier or --cache-ttl as a fix
        breakdown = compute_cost(
            usage,
            model,
            region,
            mode,
            cache_ttl=cache_ttl,
            service_tier=service_tier,
            one_call=True,
            at=at,
        )
    if pricing_region(region) is not None and breakdown.region in ("global", "local"):
        # The catalog prices such a model the same everywhere and so takes any region; say so rather than let the
        # caller think the region was priced (on stderr: the --json output stays the breakdown alone).
        err_console.print(
            f"note: {breakdown.model} has one {breakdown.region} price, not a price per region; "
            f"--region {region} does not change it",
            markup=False,
            highlight=False,
        )
    if as_json:
        print_json(breakdown.to_json())
        return
    # The cost as recorded, as the JSON prints it: exact (a part rounded to 8 places read $0.00000004 for $0.000000035).
    rows = [
        ["input", f"{input_tokens:,}", money_usd(breakdown.input_usd, "record")],
        ["output", f"{output_tokens:,}", money_usd(breakdown.output_usd, "record")],
        ["cache read", f"{cache_read:,}", money_usd(breakdown.cache_read_usd, "record")],
        ["cache write", f"{cache_write:,}", money_usd(breakdown.cache_write_usd, "record")],
        [
            "total",
            f"{input_tokens + output_tokens + cache_read + cache_write:,}",
            money_usd(breakdown.total_usd, "record"),
        ],
    ]
    tier = "" if breakdown.service_tier == "standard" else f" · {breakdown.service_tier} tier"
    when = "" if at is None else f" · at {(at.astimezone(UTC) if at.tzinfo else at):%Y-%m-%d}"  # naive is UTC
    title = f"{breakdown.model} · {breakdown.region} · {mode}{tier}{when}"
    console.print(table(title, ["tokens", "count", "cost"], rows))
    console.print(f"[dim]priced by {breakdown.priced_by}: {breakdown.source} (as of {breakdown.as_of})[/dim]")
    if breakdown.note:
        console.print(f"[yellow]{breakdown.note}[/yellow]")


def chat(
    prompt: str = typer.Argument(..., help="The user message."),
    model: str = typer.Option("local", "--model", "-m", help="Model id or configured model name."),
    system: Optional[str] = typer.Option(None, "--system", "-s", help="System prompt."),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="Cap on output tokens."),
    task: Optional[str] = typer.Option(None, "--task", help="Task type recorded in the ledger."),
    route: Optional[str] = typer.Option(None, "--route", help="Route name from the config (routing policy)."),
    config: Optional[str] = typer.Option(None, "--config", help="tokenomy.yaml with models and routes."),
    store_prompt: bool = typer.Option(False, "--store-prompt", help="Keep the prompt text in the ledger."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Send one request, print the answer with tokens, cost and latency, and record it."""
    from tokenomy.client import CallPolicy, Tokenomy
    from tokenomy.errors import ConfigError
    from tokenomy.messages import ChatRequest, RequestMeta

    if not prompt.strip():
        raise ConfigError('PROMPT is empty: give the message to send, e.g. tokenomy chat "Say hi"')
    request = ChatRequest.simple(
        prompt, model=model, system=system, max_tokens=max_tokens, meta=RequestMeta(task=task, route=route)
    )
    models = policy = None
    if config or route:
        from dataclasses import replace

        from tokenomy.config import load_config

        cfg = load_config(config)
        models = cfg.model_specs()
        if route:
            # The route's caps, retries, fallbacks and routing policy, applied by the client's attempt loop.
            policy = CallPolicy.for_route(cfg, route)  # a route that does not exist is an error naming it
            request = replace(request, model=getattr(cfg.route_for(route), "model", None) or route)
    from tokenomy.commands._common import open_existing_ledger
    from tokenomy.providers.registry import resolve_model

    if policy is None:
        resolve_model(request.model, models)  # an unknown model is refused before a new ledger file is made
    store = open_existing_ledger(ledger, must_exist=False)  # a new ledger is fine; someone else's database is not
    with Tokenomy(store, models=models, store_prompts=store_prompt) as client:
        if as_json:
            response = client.chat(request, policy=policy)
        else:
            response = None
            for chunk in client.stream(request, policy=policy):
                if chunk.delta:
                    console.print(chunk.delta, end="", markup=False, highlight=False)
                if chunk.response is not None:
                    response = chunk.response
            console.print()
    assert response is not None
    _print_chat(response, as_json, printed=not as_json)


def _print_chat(response, as_json: bool, printed: bool = False) -> None:
    u = response.usage
    call_cost = response.call_cost_usd if response.call_cost_usd is not None else response.cost_usd
    if as_json:
        print_json(
            {
                "text": response.text,
                "model": response.model,
                "provider": response.provider,
                "tier": response.tier,
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "cache_read_tokens": u.cache_read_tokens,
                "cache_write_tokens": u.cache_write_tokens,
                "cost_usd": response.cost_usd,
                # What the whole call cost: a cascade's rejected cheaper answers were paid for too (its ledger rows).
                "call_cost_usd": call_cost,
                "latency_ms": round(response.latency_ms, 1),
                "ttft_ms": None if response.ttft_ms is None else round(response.ttft_ms, 1),
                "finish_reason": response.finish_reason,
            }
        )
        return
    if not printed:
        console.print(response.text, markup=False, highlight=False)
    ttft = f", first token {response.ttft_ms:.0f} ms" if response.ttft_ms is not None else ""
    tier = f" · tier {response.tier}" if response.tier else ""
    # The answer's own cost, and, when the call paid for more (a cascade's rejected answers, an attempt cut midway),
    # what the whole call cost, as its ledger rows add up.
    whole = f" (call {usd(call_cost, 6)}, every attempt paid)" if call_cost != response.cost_usd else ""
    console.print(
        f"[dim]{response.model}{tier} · in {u.input_tokens} · out {u.output_tokens} · cache read "
        f"{u.cache_read_tokens} · cache write {u.cache_write_tokens} · {usd(response.cost_usd, 6)}{whole} · "
        f"{response.latency_ms:.0f} ms{ttft}[/dim]"
    )
