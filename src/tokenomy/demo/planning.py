"""Demo step: size provisioned throughput on a real trace slice, and what-if savings on the demo ledger."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from tokenomy.planning.breakeven import ASSUMED_TPM_PER_UNIT as ASSUMED_TPM

if TYPE_CHECKING:
    from tokenomy.demo.context import DemoContext

TITLE = "Planning: provisioned throughput and what-if savings"
MODEL = "anthropic.claude-v2:1"  # has published Provisioned Throughput prices in the catalog
PRICE_AS = "anthropic.claude-haiku-4-5-20251001-v1:0"  # illustrative, and has a Bedrock batch price


def run(ctx: DemoContext) -> None:
    from tokenomy.commands._output import table, usd
    from tokenomy.planning import traffic
    from tokenomy.planning.breakeven import unit_economics
    from tokenomy.planning.savings import SavingsInputs, what_if
    from tokenomy.planning.sizing import size
    from tokenomy.pricing.catalog import default_catalog

    series = traffic.from_csv("azure-conv-slice")  # packaged: tokenomy/data/traces
    share = Decimal(int(series["input_tokens"].sum())) / Decimal(
        int(series.sum()[["input_tokens", "output_tokens"]].sum())
    )
    econ = unit_economics(default_catalog().lookup(MODEL), "6m", 1, share, ASSUMED_TPM)
    result = size(series, econ)
    p = result["tokens_per_minute"]
    ctx.console.print(
        f"Azure conversation trace slice ({result['window_minutes']} min): tokens/min p50 {p['p50']:,.0f}, "
        f"p95 {p['p95']:,.0f}, max {p['max']:,.0f}; {MODEL}, 6-month term, {ASSUMED_TPM:,} tokens/min "
        "per unit (assumed)."
    )
    best = result["options"][result["recommended_units"]]
    ctx.console.print(
        f"[bold]Verdict:[/bold] {result['verdict']} — {usd(best['monthly_cost_usd'], 2)}/month vs "
        f"{usd(result['all_on_demand_monthly_usd'], 2)} all on-demand."
    )
    ctx.client.flush()
    savings = what_if(
        ctx.store.events(),
        SavingsInputs(
            batch_tasks=("summarisation",), price_as=PRICE_AS, cheap_model="amazon.nova-micro-v1:0", routing_share=0.5
        ),
    )
    ctx.console.print(
        table(
            f"What-if on the demo ledger, every call priced as {PRICE_AS}",
            ["lever", "saving/month", "assumption"],
            [[r["lever"], usd(r["monthly_saving_usd"]), r["assumption"]] for r in savings["levers"]],
        )
    )
    ctx.console.print(
        f"Compounded: {usd(savings['compounded_monthly_saving_usd'])}/month "
        f"(plain sum {usd(savings['sum_of_individual_monthly_savings_usd'])})."
    )
