"""The examples each command's `--help` ends with, keyed by command path.

Kept in one table so `tests/commands/test_examples.py` can check that every command has some and that each
names only options the command has. Paths such as `examples/...` are the repository's examples (shipped in the
package as `tokenomy/examples/`).
"""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "prices": (
        "tokenomy prices anthropic.claude-haiku-4-5-20251001-v1:0 --json",
        "tokenomy prices us.anthropic.claude-sonnet-4-5-20250929-v1:0 --region eu-west-1",
        "tokenomy prices --stale",
        "tokenomy prices update --from data.json",
    ),
    "cost": (
        "tokenomy cost --model us.anthropic.claude-3-7-sonnet-20250219-v1:0 --input 1200 --output 300 "
        "--cache-read 4000 --json",
        "tokenomy cost --model gpt-4o-mini --input 100000 --output 20000 --mode batch",
        "tokenomy cost --model claude-sonnet-4-5 --input 1000 --cache-write 50000 --cache-ttl 1h",
        "tokenomy cost --model gpt-6.2-sol --input 10000 --output 2000 --service-tier ultrafast --at 2027-03-01",
    ),
    "chat": (
        'tokenomy chat "Classify: my card was charged twice" --system "You label support tickets."',
        'tokenomy chat "Summarise: ..." --model local --max-tokens 64 --task summarise --json',
        'tokenomy chat "Prove it step by step" --route support --config tokenomy.yaml',
    ),
    "serve": (
        "tokenomy serve",
        "tokenomy serve --config examples/gateway/team.yaml --workers 2 --port 8080",
    ),
    "report": (
        "tokenomy report spend --by model",
        "tokenomy report latency --since 7d --json",
        "tokenomy report reconcile --since 2025-11-24 --until 2025-11-26 --tolerance-pct 5",
        "tokenomy report --html report.html --since 30d",
    ),
    "review": (
        "tokenomy review",
        "tokenomy review --since 90d --config tokenomy.yaml --html review.html",
        "tokenomy review --bench examples/bench/support.yaml --candidates local --json",
    ),
    "demo": ("tokenomy demo", "tokenomy demo --workdir /tmp/tokenomy-demo"),
    "ledger import": ("tokenomy ledger import events.jsonl",),
    "ledger export": (
        "tokenomy ledger export -o events.jsonl",
        "tokenomy ledger export --format csv --since 7d -o week.csv",
    ),
    "ledger stats": ("tokenomy ledger stats", "tokenomy ledger stats --ledger postgresql://user@host/db --json"),
    "emulate bedrock": (
        "tokenomy emulate bedrock --port 8787 --throttle-rate 0.1 --seed 1",
        "tokenomy emulate bedrock --s3-endpoint-url http://127.0.0.1:5000",
    ),
    "emulate anthropic": ("tokenomy emulate anthropic --port 8788",),
    "emulate openai-batch": ("tokenomy emulate openai-batch --port 8789 --instant",),
    "emulate azure-openai": ("tokenomy emulate azure-openai --port 8791 --deployment prod-4o-mini=gpt-4o-mini",),
    "emulate gemini": ("tokenomy emulate gemini --port 8790", "tokenomy emulate gemini --instant --throttle-rate 0.2"),
    "keys create": (
        "tokenomy keys create --budget-usd 50 --period month --rpm 600 --team research --name alice",
        "tokenomy keys create --json",
    ),
    "keys list": ("tokenomy keys list --json",),
    "keys revoke": ("tokenomy keys revoke 7bd9033809fd",),
    "keys teams": ("tokenomy keys teams --json",),
    "keys team-budget": ("tokenomy keys team-budget research --budget-usd 500 --period month",),
    "route explain": (
        'tokenomy route explain "Prove it step by step" --config tokenomy.yaml --json',
        'tokenomy route explain "Extract the name" --config tokenomy.yaml --policy json --task extract',
    ),
    "route train": (
        "tokenomy route train examples/routing/labelled.jsonl -o router.joblib",
        "tokenomy route train gsm8k -o router.joblib --router combined --folds 5 --target-quality 0.95",
    ),
    "route eval": (
        "tokenomy route eval gsm8k --json",
        "tokenomy route eval mt-bench --seeds 5 --png mt-bench.png",
    ),
    "route drift": ("tokenomy route drift --config tokenomy.yaml --days 7",),
    "route export-labels": ("tokenomy route export-labels --config tokenomy.yaml -o labels.jsonl",),
    "batch validate": ("tokenomy batch validate examples/batch/plain_with_errors.jsonl --model local",),
    "batch submit": (
        "tokenomy batch submit records.jsonl --model local --backend local --json",
        "tokenomy batch submit records.jsonl --model anthropic.claude-haiku-4-5-20251001-v1:0 --backend bedrock "
        "--region us-east-1 --role-arn arn:aws:iam::123456789012:role/batch --s3-uri s3://bucket/prefix",
        "tokenomy batch submit records.jsonl --model gpt-4o-mini --backend openai --endpoint-url http://127.0.0.1:8789",
    ),
    "batch status": ("tokenomy batch status bj-20261202-4275afa2e9 --json",),
    "batch list": ("tokenomy batch list --json",),
    "batch wait": ("tokenomy batch wait bj-20261202-4275afa2e9 --timeout 3600",),
    "batch results": ("tokenomy batch results bj-20261202-4275afa2e9 -o answers.jsonl",),
    "batch cancel": ("tokenomy batch cancel bj-20261202-4275afa2e9",),
    "batch resume": ("tokenomy batch resume bj-20261202-4275afa2e9",),
    "batch plan": (
        "tokenomy batch plan records.jsonl --model gpt-4o-mini --deadline 06:00 --start 00:00 --tpm-quota 200000",
    ),
    "caches create": (
        "tokenomy caches create --model gemini-2.5-flash --contents-file policy.txt --ttl 3600",
        "tokenomy caches create --model gemini-2.5-flash --contents-file policy.txt --vertex --project P "
        "--location us-central1",
    ),
    "caches list": ("tokenomy caches list --json",),
    "caches delete": ("tokenomy caches delete cachedContents/abc123",),
    "caches settle": ("tokenomy caches settle",),
    "bench run": (
        "tokenomy bench run examples/bench/support.yaml --models local,anthropic.claude-haiku-4-5-20251001-v1:0 "
        "--judge local --repeat 2 --out bench-out",
        "tokenomy bench run examples/bench/support.yaml --out bench-out --resume",
    ),
    "bench summary": ("tokenomy bench summary bench-out --tolerance 5",),
    "bench export-labels": ("tokenomy bench export-labels bench-out -o labels.jsonl --config tokenomy.yaml",),
    "plan breakeven": (
        "tokenomy plan breakeven --model anthropic.claude-v2:1 --term 6m --avg-input 1500 --avg-output 300 "
        "--tpm-per-unit 100000 --json",
        "tokenomy plan breakeven --model gpt-4o --provisioned azure-ptu --hourly-usd 1 --input-share 0.8",
    ),
    "plan size": (
        "tokenomy plan size --model anthropic.claude-v2:1 --trace azure-conv-slice --term 6m --tpm-per-unit 100000",
        "tokenomy plan size --model anthropic.claude-v2:1 --since 7d",
    ),
    "plan utilization": (
        "tokenomy plan utilization --model anthropic.claude-v2:1 --reservation-units 2 --tpm-per-unit 100000",
    ),
    "plan savings": (
        "tokenomy plan savings --batch-tasks summarisation --cheap-model amazon.nova-micro-v1:0 --routing-share 0.5",
        "tokenomy plan savings --since 30d --cache-ttl 1h --json",
    ),
    "alerts check": (
        "tokenomy alerts check --config tokenomy.yaml --dry-run",
        "tokenomy alerts check --config tokenomy.yaml --webhook https://hooks.example.com/llm-costs",
    ),
    "export focus": ("tokenomy export focus --version 1.2 -o costs.csv",),
    "import otel": ("tokenomy import otel spans.json",),
    "import cur": ("tokenomy import cur cur-2025-11.parquet",),
    "import llm-log": ('tokenomy import llm-log "$(llm logs path)"',),
    "import focus": ("tokenomy import focus focus_multicloud.csv",),
    "import gcp-billing": ("tokenomy import gcp-billing gcp_billing.jsonl",),
    "import openai-usage": (
        "tokenomy import openai-usage --since 7d",
        "tokenomy import openai-usage openai_usage_and_costs.jsonl",
    ),
    "import anthropic-usage": (
        "tokenomy import anthropic-usage --since 7d --bucket-width 1h",
        "tokenomy import anthropic-usage anthropic_usage_report.json anthropic_cost_report.json",
    ),
}


def epilog(path: str) -> str | None:
    """The `Examples:` block for the command at `path` ("batch submit"), or None when it has none."""
    lines = EXAMPLES.get(path)
    if not lines:
        return None
    return "Examples:\n" + "\n".join(f"$ {line}" for line in lines)  # "$ " marks where a wrapped one begins
