"""Demo step: automatic cache points on a Bedrock model (through the in-process emulator), priced both ways."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from tokenomy.chat_response import Usage
from tokenomy.messages import ChatRequest
from tokenomy.pricing.cost import compute_cost

if TYPE_CHECKING:
    from tokenomy.demo.context import DemoContext

TITLE = "Prompt caching: automatic cache points on Bedrock (emulated on the local model)"
MODEL = "anthropic.claude-sonnet-4-5-20250929-v1:0"
REGION = "us-east-1"
# Appended to the demo's support policy so the system prompt passes Sonnet's 1,024-token minimum.
# It extends the workload's prompt, so the local model reuses its KV cache and the step stays quick.
FAQ = """Frequently asked questions, answer them exactly like this:
Q: Why is there a late fee? A: Payment arrived after the 20th; the $5 fee is waived once a year on request.
Q: Can I keep my number? A: Yes, request a porting code before the cancellation date.
Q: Is EU roaming included? A: Included in Plus and Unlimited; Basic pays $5 per day for 1 GB per day.
Q: How are outage credits computed? A: One day of the monthly fee per full day of outage beyond 24 hours.
Q: Can I pause my plan? A: Up to 3 months per year for $3 per month; the number is kept.
Q: How do I change my PIN? A: In the app under Account, Security; support never asks for the old PIN.
"""


def run(ctx: DemoContext) -> None:
    from tokenomy.client import Tokenomy
    from tokenomy.commands._output import table, usd
    from tokenomy.demo.workload import SYSTEM_PROMPT
    from tokenomy.emulate.bedrock_runtime import create_app
    from tokenomy.emulate.server import ServerThread
    from tokenomy.pricing.catalog import default_catalog
    from tokenomy.providers.registry import ModelSpec

    minimum = default_catalog().lookup(MODEL, REGION).cache_min_tokens
    long_system, short_system = SYSTEM_PROMPT + FAQ, SYSTEM_PROMPT.split("\n\n")[0][:600]
    calls = [
        ("My invoice shows a late fee, why?", long_system),
        ("Can I keep my number if I cancel?", long_system),
        ("Is EU roaming included on Plus?", short_system),
    ]
    rows = []
    with ServerThread(create_app()) as url:
        spec = {"sonnet": ModelSpec(name="sonnet", provider="bedrock", model=MODEL, region=REGION, endpoint_url=url)}
        client = Tokenomy(ctx.client.writer, models=spec)  # same ledger as the rest of the demo
        for question, system in calls:
            response = client.chat(ChatRequest.simple(question, model="sonnet", system=system, max_tokens=16))
            placed = ", ".join(f"after {p.after} (~{p.prefix_tokens} tokens)" for p in client.last_placements)
            rows.append((question, placed or f"none (under {minimum:,})", response.usage, response.cost_usd))
    ctx.console.print(
        table(
            f"{MODEL} via the Bedrock emulator — the caller marked nothing",
            ["question", "cache point placed", "input", "cache write", "cache read", "cost"],
            [
                [q, placed, u.input_tokens, u.cache_write_tokens, u.cache_read_tokens, usd(c)]
                for q, placed, u, c in rows
            ],
        )
    )
    with_cache = sum((c or Decimal(0) for *_, c in rows), Decimal(0))
    without = sum(
        (compute_cost(Usage(u.total_input_tokens, u.output_tokens), MODEL, REGION).total_usd for _, _, u, _ in rows),
        Decimal(0),
    )
    entry = default_catalog().lookup(MODEL, REGION)
    assert entry.cache_write is not None and entry.cache_ttl_seconds is not None  # a caching model, checked above
    # Project the measured calls to 100 questions on the same prompt within the TTL: one write, 99 reads.
    write, read = rows[0][2], rows[1][2]
    projected = compute_cost(write, MODEL, REGION).total_usd + 99 * compute_cost(read, MODEL, REGION).total_usd
    plain = 100 * compute_cost(Usage(write.total_input_tokens, write.output_tokens), MODEL, REGION).total_usd
    ctx.console.print(
        f"These calls cost {usd(with_cache)} with automatic cache points and {usd(without)} without "
        f"({1 - with_cache / without:.0%} less). Per 1M tokens: input ${entry.input}, cache write "
        f"${entry.cache_write}, cache read ${entry.cache_read}; a write pays for itself on the first repeat "
        f"within {entry.cache_ttl_seconds // 60} minutes. "
        f"100 questions on this prompt: {usd(projected)} cached vs {usd(plain)} ({1 - projected / plain:.0%} less)."
    )
