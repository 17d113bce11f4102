"""What `tokenomy route` prints: the tables of `route eval` and `route drift`, and the prices behind a command's
costs."""

from __future__ import annotations

from tokenomy.commands._output import console, table, usd, usd_short


def show_eval(result: dict, dataset: str, png: str, seeds: int) -> None:
    """`route eval`'s tables: each policy on the held-out half, each router's curve figures, the splits' medians."""
    console.print(
        table(
            f"{dataset}: {result['held_out']} held-out prompts (trained on {result['trained_on']}; thresholds: "
            f"{result['calibration']})",
            ["policy", "cost", "per 1k", "quality", "retained", "strong share", "accuracy", "escalation"],
            [
                [
                    p["policy"],
                    usd(p["cost"]),
                    usd(p["cost_per_1k"]),
                    f"{p['quality']:.3f}",
                    f"{p['quality_retained']:.1%}",
                    f"{p['strong_share']:.1%}",
                    f"{p['routing_accuracy']:.1%}",
                    f"{p['escalation_rate']:.1%}",
                ]
                for p in result["policies"]
            ],
        )
    )
    console.print(
        table(
            f"routers, thresholds swept on the held-out half (CPT = strong share recovering that share of the "
            f"weak-strong quality gap); share for {result['target_quality']:.0%} of strong quality: random "
            f"{result['cpt95_random']:.1%}",
            [
                "router",
                "CPT(50%)",
                "CPT(80%)",
                "CPT(95%)",
                "APGR",
                "share @ target",
                "calibration promised",
                "decision p50/p99 (cpu p99)",
            ],
            [
                [
                    name,
                    f"{m['cpt50']:.1%}",
                    f"{m['cpt80']:.1%}",
                    f"{m['cpt95']:.1%}",
                    f"{m['apgr']:.3f}",
                    f"{m['share_at_target']:.1%}",
                    f"{m['calibrated_quality']:.1%} (threshold {m['threshold']:.3f})",
                    f"{m['decision_ms_p50']:.2f} / {m['decision_ms_p99']:.2f} ({m['decision_cpu_ms_p99']:.2f}) ms",
                ]
                for name, m in result["routers"].items()
            ],
        )
    )
    console.print(f"curve: {png}")
    if seeds > 1:
        console.print(
            table(
                f"{seeds} splits (seeds 0-{seeds - 1}): share for {result['target_quality']:.0%} of strong quality, "
                "and the calibrated point on each held-out half",
                ["router", "median share @ target", "per seed", "median calibrated share", "median quality kept"],
                [
                    [
                        name,
                        f"{m['median_share_at_target']:.1%}",
                        " ".join(f"{v:.0%}" for v in m["share_at_target"]),
                        f"{m['median_strong_share']:.1%}",
                        f"{m['median_quality_retained']:.1%}",
                    ]
                    for name, m in result["over_seeds"].items()
                ],
            )
        )
    console.print(f"rules: {result['rules_file'] or '(none)'}; cascade validators: {result['cascade_validators']}")
    print_prices(result["prices"])


def print_prices(prices: list[dict]) -> None:
    """Each model's per-token prices behind a command's costs, with their source and as_of (`Price.describe()`)."""
    for p in prices:
        console.print(
            f"price: {p['model']} {p['region']}: {usd_short(p['input_per_million'])}/M in, "
            f"{usd_short(p['output_per_million'])}/M out ({p['source']}, as of {p['as_of']})"
        )


def show_drift(result: dict, days: int) -> None:
    """`route drift`'s tables: each cascade route's escalation against its threshold, each tier's share."""
    if not result["escalation"] and not result["tier_share"]:
        console.print(f"no routed requests in the last {days} day(s); widen --days or check --ledger / --config")
        return
    if not result["escalation"]:  # an empty table with headers read as a failure to find the cascades
        console.print(f"no cascade route had requests in the last {days} day(s)")
    else:
        _print_escalation(result["escalation"])
    if not result["tier_share"]:
        console.print(f"no routed request had a tier in the last {days} day(s)")
        return
    console.print(
        table(
            "tier share",
            ["route", "tier", "share", "expected", "flag"],
            [
                [
                    r["route"],
                    r["tier"],
                    f"{r['share']:.1%}",
                    "-" if r["expected"] is None else f"{r['expected']:.0%}",
                    "[red]drift[/red]" if r["flagged"] else "",
                ]
                for r in result["tier_share"]
            ],
        )
    )


def _print_escalation(rows: list[dict]) -> None:
    console.print(
        table(
            "cascade escalation",
            ["route", "requests", "escalated", "rate", "threshold", "flag", "rejected for (answers)"],
            [
                [
                    r["route"],
                    r["calls"],
                    r["escalations"],
                    f"{r['rate']:.1%}",
                    f"{r['threshold']:.0%}",
                    "[red]above threshold[/red]" if r["flagged"] else "",
                    _rejections(r["rejections"]),
                ]
                for r in rows
            ],
        )
    )


def _rejections(found: list[dict], shown: int = 3) -> str:
    """The commonest reasons a route's answers were rejected, each with its count ("hedging language: 'i cannot'
    (4)"); the rest counted as one more line."""
    from rich.markup import escape

    lines = [f"{escape(r['reason'])} ({r['answers']})" for r in found[:shown]]
    if len(found) > shown:
        lines.append(f"{len(found) - shown} other reason(s) ({sum(r['answers'] for r in found[shown:])})")
    return "\n".join(lines) or "-"
