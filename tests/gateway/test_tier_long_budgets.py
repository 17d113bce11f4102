"""A budgeted call asking for a dearer service tier with a prompt over the model's long-context threshold. The gateway
reserved it at the standard tier's long-context prices or the tier's short-prompt ones, whichever was dearer, while
the provider bills the whole call at the tier's own long-context prices (GPT-6.1 Sol at priority over 272k input
tokens: $8 input, $10 cache write, $30 output per 1M, against $5 / $20 reserved), so concurrent long calls overspent a
budget. It is now reserved at the tier's long-context prices."""

from __future__ import annotations

from decimal import Decimal

from helpers.gateway_worst_case import worst_case
from tokenomy.caching.placement import input_bound
from tokenomy.gateway.limits import to_nano
from tokenomy.messages import ChatRequest, Message

NOWHERE = "http://127.0.0.1:9"  # nothing is sent: the worst case is measured before any call
M = Decimal(1_000_000)


def test_a_long_prompt_at_the_priority_tier_is_reserved_at_the_tiers_long_context_prices(ledger_path):
    config = {"models": {"sol": {"provider": "openai", "model": "gpt-6.1-sol", "base_url": NOWHERE}}}
    request = ChatRequest(
        [Message("user", "word " * 300_000)], model="sol", max_tokens=100, extra={"service_tier": "priority"}
    )
    prompt = input_bound(request)[0]  # the prompt's upper bound, which a budget reserves
    assert prompt > 272_000
    # Every prompt token at the dearest input rate that may apply (the tier's long-context cache write, $10).
    worst = worst_case(config, "sol", request, ledger_path)
    assert worst.nano() == to_nano((prompt * Decimal(10) + 100 * Decimal(30)) / M)
    # Under the threshold the tier's own prices, as before ($5 cache write, $20 output at priority).
    short = ChatRequest(
        [Message("user", "word " * 1_000)], model="sol", max_tokens=100, extra={"service_tier": "priority"}
    )
    small = input_bound(short)[0]
    assert worst_case(config, "sol", short, ledger_path).nano() == to_nano((small * Decimal(5) + 100 * Decimal(20)) / M)
