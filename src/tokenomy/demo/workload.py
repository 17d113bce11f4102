"""Demo step 1: a small mixed support workload (classification, extraction, summarisation sharing one
long system prompt) on the local model, and its spend summary."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tokenomy.chat_response import Usage
from tokenomy.ledger.summary import spend_summary
from tokenomy.messages import ChatRequest, RequestMeta
from tokenomy.pricing.catalog import default_catalog
from tokenomy.pricing.cost import cacheable_usage, compute_cost

if TYPE_CHECKING:
    from tokenomy.demo.context import DemoContext
    from tokenomy.ledger.events import UsageEvent

TITLE = "Workload on the local model"
COMPARE_MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
REGION = "us-east-1"

SYSTEM_PROMPT = (
    """You are the support assistant of Northwind Telecom. Follow these policies exactly.
Products: Basic mobile plan (10 GB, $20/month), Plus plan (50 GB, $35/month), Unlimited plan ($55/month),
Home fibre 500 (500 Mbit/s, $45/month), Home fibre 1000 (1 Gbit/s, $65/month), TV add-on ($12/month).
Billing: invoices are issued on the 1st, payment is due on the 15th, late fees are $5 after the 20th.
Duplicate charges are refunded within 5 business days after verification by the billing team.
Roaming: EU roaming is included in Plus and Unlimited; elsewhere $5 per day with 1 GB per day.
Outages: check the status page first; credits are given for outages longer than 24 hours.
Device issues: restart the device, reinsert the SIM, reset network settings, then escalate to tier 2.
Cancellation: 30 days notice, no fee after the first 12 months, otherwise $50 early termination fee.
Privacy: never ask for full card numbers or passwords; verify identity with the account PIN only.
Tone: friendly, brief, concrete. Use the customer's name when given. Never invent policies.
Categories for classification: billing, technical, sales, cancellation, roaming, other.
"""
    * 3
)

WORKLOAD = [
    (
        "classification",
        "Classify this ticket into one category (billing, technical, sales, cancellation, "
        "roaming, other). Answer with the category only.\nTicket: {text}",
    ),
    (
        "extraction",
        "Extract the customer's name and the product mentioned as JSON with keys name and product.\nTicket: {text}",
    ),
    ("summarisation", "Summarise this ticket in one sentence.\nTicket: {text}"),
]
TICKETS = [
    "Hi, I'm Maria Lopez and I was charged twice for my Plus plan this month.",
    "This is Tom Becker. My home fibre 500 keeps dropping every evening since Monday.",
    "Hello, Aisha Khan here. I want to upgrade from Basic to Unlimited, what does it cost?",
    "I'm Peter Novak and I'd like to cancel my TV add-on at the end of the month.",
    "Jin Park writing: I'm travelling to Japan next week, how does roaming work on my plan?",
    "Hi, Sara Olsen. My phone shows no signal after I swapped the SIM into a new device.",
]


def run(ctx: DemoContext) -> None:
    console = ctx.console
    requests = [(task, template.format(text=ticket)) for ticket in TICKETS for task, template in WORKLOAD]
    with Progress(
        TextColumn("[bold]workload[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task("calls", total=len(requests))
        for task, prompt in requests:
            ctx.client.chat(
                ChatRequest.simple(
                    prompt,
                    system=SYSTEM_PROMPT,
                    max_tokens=48,
                    meta=RequestMeta(task=task, tags={"app": "support-demo"}),
                )
            )
            progress.advance(bar)
    ctx.client.flush()
    from tokenomy.commands.ledger import print_summary

    rows = spend_summary(ctx.store)
    print_summary(rows, "Spend summary — local model (SmolLM2-135M on this CPU)")
    console.print(compare_text([e for e in ctx.store.events() if e.tags.get("app") == "support-demo"]))


def compare_text(events: list[UsageEvent]) -> str:
    """The workload's tokens priced on COMPARE_MODEL, each call's cache reads and writes as that model would bill
    them: the local model's KV cache reads any repeated prefix, Bedrock caches none under the model's minimum."""
    entry = default_catalog().lookup(COMPARE_MODEL, REGION)
    local = sum((e.usage for e in events), Usage())
    billed = sum((cacheable_usage(e.usage, entry) for e in events), Usage())
    cached = compute_cost(billed, COMPARE_MODEL, REGION)
    uncached = compute_cost(Usage(billed.total_input_tokens, billed.output_tokens), COMPARE_MODEL, REGION)
    saving = (1 - cached.total_usd / uncached.total_usd) if uncached.total_usd else Decimal(0)
    as_input = local.cache_read_tokens + local.cache_write_tokens - billed.cache_read_tokens - billed.cache_write_tokens
    prefix = max((e.prefix_tokens or 0 for e in events), default=0)
    text = f"The same tokens on Bedrock {COMPARE_MODEL} ({REGION}, prices as of {cached.as_of}): "
    if cached.total_usd == uncached.total_usd:
        text += f"${cached.total_usd:.6f}, with or without prompt caching"
    else:
        text += f"${uncached.total_usd:.6f} without prompt caching, ${cached.total_usd:.6f} with it ({saving:.0%} less)"
    if not as_input:
        return text + ", its cache reads and writes as measured here."
    every = as_input == local.cache_read_tokens + local.cache_write_tokens
    return text + (
        f". The local model read {local.cache_read_tokens:,} prompt tokens from its KV cache, but {COMPARE_MODEL} "
        f"caches no prefix under {entry.cache_min_tokens:,} tokens"
        + (f" and this system prompt is ~{prefix:,}" if every and prefix else "")
        + f": Bedrock would bill {'all ' if every else ''}{as_input:,} of them as input (step 4 caches a prompt long "
        "enough)."
    )
