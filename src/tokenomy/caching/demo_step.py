"""Demo step: automatic cache points on a Bedrock model (through the emulator), priced both ways."""

from __future__ import annotations

from tokenomy.messages import ChatRequest, Usage
from tokenomy.pricing.cost import compute_cost

TITLE = "Prompt caching: automatic cache points on Bedrock (emulated on the local model)"
MODEL = "anthropic.claude-3-7-sonnet-20250219-v1:0"


def run(ctx) -> None:  # noqa: ANN001 - DemoContext
    from tokenomy.client import Tokenomy
    from tokenomy.demo import SYSTEM_PROMPT
    from tokenomy.emulate.bedrock_runtime import create_app
    from tokenomy.emulate.server import ServerThread
    from tokenomy.providers.registry import ModelSpec

    rows = []
    with ServerThread(create_app()) as url:
        spec = {"sonnet": ModelSpec(name="sonnet", provider="bedrock", model=MODEL, region="us-east-1",
                                    endpoint_url=url)}
        client = Tokenomy(ctx.client.writer, models=spec)
        system = SYSTEM_PROMPT * 2  # the policy text plus its FAQ copy: over Sonnet's 1,024-token minimum
        for question in ("My invoice shows a late fee, why?", "Can I keep my number if I cancel?",
                         "Does the Plus plan include EU roaming?"):
            response = client.chat(ChatRequest.simple(question, model="sonnet", system=system, max_tokens=24))
            placed = ", ".join(f"after {p.after} ({p.prefix_tokens} tokens)" for p in client.last_placements) or "none"
            rows.append((question, response.usage, response.cost_usd, placed))
    from tokenomy.commands._common import table, usd

    ctx.console.print(table(f"{MODEL} via `tokenomy emulate bedrock` — callers marked nothing",
                            ["question", "cache point", "input", "cache write", "cache read", "cost"],
                            [[q, placed, u.input_tokens, u.cache_write_tokens, u.cache_read_tokens, usd(c)]
                             for q, u, c, placed in rows]))
    with_cache = sum((c for _, _, c, _ in rows), start=compute_cost(Usage(), MODEL).total_usd)
    without = sum(compute_cost(Usage(u.total_input_tokens, u.output_tokens), MODEL, "us-east-1").total_usd
                  for _, u, _, _ in rows)
    ctx.console.print(f"Three calls cost {usd(with_cache)} with cache points, {usd(without)} without "
                      f"({1 - with_cache / without:.0%} less): writes cost 1.25x input, reads 0.1x, TTL 5 minutes.")
