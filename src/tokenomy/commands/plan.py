"""`tokenomy plan breakeven|size|utilization|savings`."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption
from tokenomy.commands._options import http_url, number_option, routing_pair, usd_option, when_option
from tokenomy.commands._output import console, err_console, print_json, table, usd
from tokenomy.money import money_str
from tokenomy.money import usd as money_usd

plan_app = typer.Typer(
    help="Provisioned throughput break-even and sizing, utilisation watch, what-if savings.", no_args_is_help=True
)

TermOption = typer.Option("1m", "--term", help="Commitment term: none, 1m or 6m.")
TpmOption = typer.Option(None, "--tpm-per-unit", help="Tokens per minute one model unit serves (overrides catalog).")
HourlyOption = usd_option(None, "--hourly-usd", "Price per model unit per hour (overrides catalog).")
RegionOption = typer.Option(None, "--region", help="AWS region for prices (default the model's first priced region).")


def register(app: typer.Typer) -> None:
    app.add_typer(plan_app, name="plan")


def _econ(model, region, term, units, share, tpm, hourly, input_price=None, output_price=None, provisioned="bedrock"):
    from tokenomy.planning.breakeven import unit_economics
    from tokenomy.pricing.catalog import default_catalog

    if provisioned not in ("bedrock", "azure-ptu"):
        raise typer.BadParameter(f"--provisioned {provisioned!r}: use bedrock or azure-ptu")
    if term not in ("none", "1m", "6m"):
        raise typer.BadParameter(f"--term {term!r}: use none, 1m or 6m")
    entry = default_catalog().lookup(model, region)
    if provisioned == "azure-ptu":
        from tokenomy.planning.azure_ptu import MIN_PTUS, ptu_economics

        return ptu_economics(
            entry,
            MIN_PTUS if units is None else units,
            share,
            tpm,
            hourly,
            input_price,
            output_price,
        )
    return unit_economics(
        entry,
        term,
        1 if units is None else units,
        share,
        tpm,
        hourly,
        input_price,
        output_price,
    )


@plan_app.command("breakeven")
def breakeven_cmd(
    model: str = typer.Option(..., "--model", help="Model id (catalog)."),
    units: Optional[int] = typer.Option(
        None, "--units", help="Model units (default 1); Azure PTUs (default 15, in steps of 5)."
    ),
    provisioned: str = typer.Option(
        "bedrock",
        "--provisioned",
        help="bedrock (model units) or azure-ptu (Azure OpenAI provisioned deployment; --hourly-usd is required).",
    ),
    term: str = TermOption,
    input_share: Optional[float] = number_option(
        None, "--input-share", min=0, max=1, help="Fraction of tokens that are input."
    ),
    avg_input: Optional[float] = typer.Option(None, "--avg-input", help="Average input tokens per request."),
    avg_output: Optional[float] = typer.Option(None, "--avg-output", help="Average output tokens per request."),
    tpm: Optional[int] = TpmOption,
    hourly: Optional[Decimal] = HourlyOption,
    input_price: Optional[Decimal] = usd_option(None, "--input-price", "On-demand USD per 1M input tokens."),
    output_price: Optional[Decimal] = usd_option(None, "--output-price", "On-demand USD per 1M output tokens."),
    region: Optional[str] = RegionOption,
    as_json: bool = JsonOption,
) -> None:
    """Utilisation above which provisioned throughput beats on-demand, with monthly figures at 730 hours."""
    from tokenomy.planning.breakeven import breakeven, input_share_from

    result = breakeven(
        _econ(
            model,
            region,
            term,
            units,
            input_share_from(avg_input, avg_output, input_share),
            tpm,
            hourly,
            input_price,
            output_price,
            provisioned,
        )
    )
    if as_json:
        # Prices per 1M tokens by the catalog's unit-price rule, as the table and `prices --json` print them; the
        # rest of the money as amounts.
        prices = {k: money_str(v, "unit_price") for k, v in result.items() if k.endswith("_per_mtok")}
        print_json({**result, **prices}, money="amount")
        return
    console.print(
        table(
            f"Break-even · {result['model']} · {result['units']} "
            + ("PTU(s) · hourly" if provisioned == "azure-ptu" else f"unit(s) · term {term}"),
            ["", "value"],
            [
                ["capacity", f"{result['tpm_per_unit'] * result['units']:,} tokens/min"],
                ["input share", f"{result['input_share']:.1%}"],
                [
                    "blended on-demand price",  # a price per 1M tokens: the catalog's unit-price rule, all digits
                    f"{money_usd(result['blended_price_per_mtok'], 'unit_price')} per 1M tokens",
                ],
                [
                    "on-demand cost of full capacity",
                    f"{usd(result['on_demand_hourly_usd_at_full_capacity'], 2)}/h · "
                    f"{usd(result['on_demand_monthly_usd_at_full_capacity'], 2)}/month",
                ],
                [
                    "provisioned cost",
                    f"{usd(result['provisioned_hourly_usd'], 2)}/h · {usd(result['provisioned_monthly_usd'], 2)}/month",
                ],
                [
                    "break-even utilisation",
                    "never (on-demand tokens are free)"
                    if result["breakeven_utilization"] is None
                    else f"{result['breakeven_utilization']:.1%}",
                ],
                [
                    "break-even volume",
                    "never"
                    if result["breakeven_tokens_per_minute"] is None
                    else f"{result['breakeven_tokens_per_minute']:,.0f} tokens/min sustained (any capacity)",
                ],
            ],
        )
    )
    if result["tpm_per_unit_assumed"]:
        console.print(f"[yellow]note:[/] {result['sources']['tpm_per_unit']}")
    console.print(
        f"[dim]{result['formula']}; sources: " + "; ".join(f"{k}: {v}" for k, v in result["sources"].items()) + "[/dim]"
    )


def _series(trace, ledger, cloudwatch, model, region, since, until, endpoint_url, idle_ok=False, warnings=None):
    """The traffic series; `idle_ok` (utilisation): a ledger or CloudWatch window without calls is idle minutes."""
    from tokenomy.commands._options import utc_window
    from tokenomy.planning import traffic

    utc_window(since, until)  # an inverted pair is named, not read as a window without traffic
    if trace:
        return traffic.from_csv(trace, _utc(since), _utc(until))
    if cloudwatch:
        start, end = traffic.default_window()
        return traffic.from_cloudwatch(
            model, region or "us-east-1", _utc(since) or start, _utc(until) or end, endpoint_url, idle_ok, warnings
        )
    from tokenomy.commands._common import open_existing_ledger

    return traffic.from_ledger(
        open_existing_ledger(ledger), model if not trace else None, _utc(since), _utc(until), idle_ok, warnings
    )


def _utc(value: Optional[datetime]) -> Optional[datetime]:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@plan_app.command("size")
def size_cmd(
    model: str = typer.Option(..., "--model", help="Model to size provisioned throughput for."),
    trace: Optional[str] = typer.Option(
        None,
        "--trace",
        help="Trace CSV (Azure TIMESTAMP,ContextTokens,"
        "GeneratedTokens or ts,input_tokens,output_tokens), or a packaged trace: "
        "azure-conv, azure-code, azure-conv-slice.",
    ),
    cloudwatch: bool = typer.Option(False, "--cloudwatch", help="Read AWS/Bedrock metrics from CloudWatch."),
    endpoint_url: Optional[str] = typer.Option(
        None, "--endpoint-url", callback=http_url, help="CloudWatch endpoint (testing)."
    ),
    since: Optional[datetime] = when_option("--since", "Window start (UTC)."),
    until: Optional[datetime] = when_option("--until", "Window end (UTC)."),
    term: str = TermOption,
    tpm: Optional[int] = TpmOption,
    hourly: Optional[Decimal] = HourlyOption,
    region: Optional[str] = RegionOption,
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Cheapest number of model units for a traffic series (0 = stay on-demand), from sustained use, not peaks."""
    from tokenomy.planning.sizing import size

    series = _series(trace, ledger, cloudwatch, model, region, since, until, endpoint_url)
    totals = series["input_tokens"].sum() + series["output_tokens"].sum()
    share = Decimal(int(series["input_tokens"].sum())) / Decimal(int(totals)) if totals else Decimal("0.5")
    result = size(series, _econ(model, region, term, 1, share, tpm, hourly))
    for warning in result["warnings"]:
        err_console.print(f"warning: {warning}", markup=False, highlight=False)
    if as_json:
        print_json(result, money="amount")
        return
    tpm_p = result["tokens_per_minute"]
    peak_to_mean = result["burstiness"]["peak_to_mean"]  # None: no tokens at all in the window
    console.print(
        f"Traffic: {result['window']}; tokens/min p50 {tpm_p['p50']:,.0f} · "
        f"p95 {tpm_p['p95']:,.0f} · max {tpm_p['max']:,.0f}; peak-to-mean "
        + ("- (no tokens)" if peak_to_mean is None else f"{peak_to_mean:.1f}")
    )
    console.print(
        table(
            f"Options · {model} · term {term} · {result['tpm_per_unit']:,} tokens/min per unit",
            ["units", "sustained use", "minutes over", "reserved/month", "spill-over/month", "total/month"],
            [
                [
                    o["units"],
                    "-" if o["sustained_utilization"] is None else f"{o['sustained_utilization']:.1%}",
                    f"{o['minutes_above_capacity_share']:.1%}",
                    usd(o["provisioned_monthly_usd"], 2),
                    usd(o["spillover_monthly_usd"], 2),
                    usd(o["monthly_cost_usd"], 2),
                ]
                for o in result["options"]
            ],
        )
    )
    console.print(f"[bold]Verdict:[/bold] {result['verdict']}")
    console.print(f"[dim]Assumption: {result['assumption']}.[/dim]")
    if result["tpm_per_unit_assumed"]:
        console.print(f"[yellow]note:[/] {result['sources']['tpm_per_unit']}")
    # the prices behind the table's dollars, with their dates, as `plan breakeven` prints them
    sources = "; ".join(f"{k}: {v}" for k, v in result["sources"].items())
    console.print(f"sources: {sources}", style="dim", markup=False, highlight=False)


@plan_app.command("utilization")
def utilization_cmd(
    model: str = typer.Option(..., "--model", help="Model of the reservation."),
    units: int = typer.Option(..., "--reservation-units", min=1, help="Model units reserved."),
    trace: Optional[str] = typer.Option(
        None, "--trace", help="Trace CSV instead of the ledger (or azure-conv, azure-code, azure-conv-slice)."
    ),
    cloudwatch: bool = typer.Option(False, "--cloudwatch", help="Read AWS/Bedrock metrics from CloudWatch."),
    endpoint_url: Optional[str] = typer.Option(
        None, "--endpoint-url", callback=http_url, help="CloudWatch endpoint (testing)."
    ),
    since: Optional[datetime] = when_option("--since", "Window start (UTC)."),
    until: Optional[datetime] = when_option("--until", "Window end (UTC)."),
    term: str = typer.Option("1m", "--term", help="Commitment term: none, 1m or 6m (utilisation needs no price)."),
    tpm: Optional[int] = TpmOption,
    hourly: Optional[Decimal] = usd_option(
        None, "--hourly-usd", "Price per model unit per hour: not needed, utilisation divides by capacity alone."
    ),
    threshold: float = number_option(
        0.5, "--threshold", min=0.0, max=1.0, help="Flag weeks below this sustained utilisation (a fraction, 0–1)."
    ),
    region: Optional[str] = RegionOption,
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Weekly sustained utilisation of an existing reservation; weeks under 50% are flagged."""
    from tokenomy.planning.breakeven import unit_capacity
    from tokenomy.planning.sizing import weekly_utilization
    from tokenomy.pricing.catalog import default_catalog

    if term not in ("none", "1m", "6m"):
        raise typer.BadParameter(f"--term {term!r}: use none, 1m or 6m")
    # A window without calls is what the idle watch is for: 0% used, flagged, not "no traffic" (ledger, CloudWatch).
    warnings: list[str] = []
    series = _series(trace, ledger, cloudwatch, model, region, since, until, endpoint_url, True, warnings)
    for warning in warnings:
        err_console.print(f"warning: {warning}", markup=False, highlight=False)
    # Utilisation is tokens over capacity: no price enters it, so a reservation of a model (or term) the catalog has
    # no provisioned-throughput price for is watched too (it was refused: "pass --hourly-usd").
    per_unit, tpm_source = unit_capacity(default_catalog().lookup(model, region), tpm)
    rows = weekly_utilization(series, units * per_unit, threshold)
    assumed = tpm_source.startswith("ASSUMED")  # the capacity every figure is a share of
    if as_json:
        print_json(
            {
                "model": model,
                "units": units,
                "tpm_per_unit": per_unit,
                "tpm_per_unit_assumed": assumed,
                "tpm_per_unit_source": tpm_source,
                "weeks": rows,
                "warnings": warnings,
            },
            money="amount",
        )
        return
    console.print(
        table(
            f"Utilisation · {units} unit(s) of {model} · {per_unit:,} tokens/min per unit",
            ["week", "minutes", "sustained", "flag"],
            [
                [
                    r["week"],
                    r["minutes"],
                    f"{r['sustained_utilization']:.1%}",
                    "IDLE: paying for unused units — consider switching back to on-demand" if r["flagged"] else "",
                ]
                for r in rows
            ],
            text_columns=("flag",),
        )
    )
    if assumed:
        console.print(f"[yellow]note:[/] {tpm_source}")


@plan_app.command("savings")
def savings_cmd(
    batch_tasks: str = typer.Option("", "--batch-tasks", help="Comma-separated latency-tolerant task types."),
    batch_tag: str = typer.Option("latency_tolerant", "--batch-tag", help="Tag marking latency-tolerant calls."),
    cheap_model: Optional[str] = typer.Option(None, "--cheap-model", help="Model routing would move traffic to."),
    routing_share: float = number_option(0.0, "--routing-share", min=0, max=1, help="Share of calls routing moves."),
    cap_percentile: float = number_option(
        95.0, "--cap-percentile", min=0, max=100, help="Output cap at this percentile per task."
    ),
    price_as: Optional[str] = typer.Option(None, "--price-as", help="Re-price every call as if it ran on this model."),
    cache_ttl: str = typer.Option(
        "5m",
        "--cache-ttl",
        help="Caching lever's cache lifetime: 5m, or 1h at the "
        "1-hour cache-write price (models without one are not cached).",
    ),
    since: Optional[datetime] = when_option("--since", "Window start (UTC)."),
    until: Optional[datetime] = when_option("--until", "Window end (UTC)."),
    ledger: Optional[str] = LedgerOption,
    as_json: bool = JsonOption,
) -> None:
    """Projected monthly saving of each lever on your ledger traffic, then all of them compounded."""
    from tokenomy.commands._common import open_existing_ledger
    from tokenomy.commands._options import utc_window
    from tokenomy.planning.savings import SavingsInputs, what_if

    utc_window(since, until)  # inverted, it read as "the ledger has no successful calls to analyse"
    routing_pair(cheap_model, routing_share)
    inputs = SavingsInputs(
        tuple(t for t in batch_tasks.split(",") if t),
        batch_tag,
        routing_share,
        cheap_model,
        cap_percentile,
        price_as=price_as,
        cache_ttl=cache_ttl,
    )
    from tokenomy.analytics.billed import spend_events

    # the calls as spend counts them, so `plan savings` and the dashboard's levers agree (a bill never doubles a day)
    result = what_if(
        spend_events(open_existing_ledger(ledger), _utc(since), _utc(until)), inputs, _utc(since), _utc(until)
    )
    for warning in result["warnings"]:
        err_console.print(f"warning: {warning}", markup=False, highlight=False)
    if as_json:
        print_json(result, money="amount")
        return
    console.print(
        table(
            f"What-if savings · {result['events']} calls over {result['window']} · current "
            f"{usd(result['current_monthly_cost_usd'])}/month",
            ["lever", "saving/month", "assumption"],
            # At the scale of every report table (money.py `amount`): in cents a lever saving $0.004 read "$0.00"
            [[r["lever"], usd(r["monthly_saving_usd"]), r["assumption"]] for r in result["levers"]],
            text_columns=("assumption",),
        )
    )
    if not result["compounded_order"]:  # was "Compounded (): $0.00/month"
        console.print(
            f"Compounded: [bold]{usd(Decimal(0))}/month[/bold] (no lever saves on this traffic). "
            f"[dim]Assumption: {result['assumption']}.[/dim]"
        )
        return
    console.print(
        f"Compounded ({' → '.join(result['compounded_order'])}): "
        f"[bold]{usd(result['compounded_monthly_saving_usd'])}/month[/bold] "
        f"(the plain sum would claim {usd(result['sum_of_individual_monthly_savings_usd'])}). "
        f"[dim]Assumption: {result['assumption']}.[/dim]"
    )
