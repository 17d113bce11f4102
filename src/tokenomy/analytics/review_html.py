"""The review as one self-contained HTML page (inline CSS, no script, no network), and the one money format
the review's renderers share."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tokenomy.analytics.review_lifecycle import not_proposed_line, retirement_note
from tokenomy.analytics.review_models import price_date_note
from tokenomy.money import usd

STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;margin:.5rem 0 "
    "1.5rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}.num{text-align:right;"
    "font-variant-numeric:tabular-nums}td.none{color:#666}th{background:#f3f3f3}.bad{color:#b00}h2{margin-top:2rem}"
    # a wide table scrolls inside the page, not the page sideways on a phone (figures off screen)
    "table{display:block;max-width:100%;overflow-x:auto}@media (max-width:600px){body{margin:1rem}}"
)


def money(value: Any, places: int = 2) -> str:
    """Dollars as the review shows them: $1,234.56; None (unpriced) is "-"."""
    return usd(value, "report", places)


class _Share(float):
    """A rate or share (0.4 = 40%), shown as a percentage; every other float is shown as a plain number."""


def _pct(value: Any) -> Any:
    return None if value is None else _Share(value)


def days_text(days: int) -> str:
    """The period as words: 1 day, 90 days."""
    return f"{days} day" if days == 1 else f"{days} days"


def _cell(value: Any) -> str:
    if isinstance(value, _Share):
        return f"{value:.1%}"
    if isinstance(value, float):  # tokens per call, bench quality (0-100): a number, whatever its size
        return f"{value:,.1f}"
    return html.escape("" if value is None else str(value))


_BLANK = (None, "", "-")  # no figure: an empty cell, or "-" for an unpriced one


def _is_number(value: Any) -> bool:
    """A figure (a count, a rate, dollars as money() writes them), not words."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (isinstance(value, str) and value.lstrip("-").startswith("$"))


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    """Figures right-aligned under a right-aligned heading, words left (a sentence set flush right, as every column
    but the first was, read ragged on its left); a table with no rows says so rather than stand as bare headings."""
    numeric = [
        i > 0 and any(v not in _BLANK for v in values) and all(_is_number(v) for v in values if v not in _BLANK)
        for i, values in enumerate(zip(*rows, strict=True) if rows else [() for _ in columns])
    ]
    attr = [' class="num"' if n else "" for n in numeric]
    head = "".join(f"<th{a}>{html.escape(c)}</th>" for c, a in zip(columns, attr, strict=True))
    body = "".join(
        "<tr>" + "".join(f"<td{a}>{_cell(v)}</td>" for v, a in zip(row, attr, strict=True)) + "</tr>" for row in rows
    )
    if not rows:
        body = f'<tr><td class="none" colspan="{len(columns)}">none in this period</td></tr>'
    return f"<table><tr>{head}</tr>{body}</table>"


def utc_text(stamp: str) -> str:
    """A stored ISO time ("2026-12-07T16:20:56.79Z") as "2026-12-07 16:20 UTC"."""
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def period_title(period: dict[str, Any]) -> str:
    """The period a review covers, read one way only: "2026-11-06 00:00 UTC to 2026-12-06 00:00 UTC (end excluded)"
    (its label, "2026-11-06..2026-12-06", says neither the time zone nor whether the end day is in)."""
    if not (period.get("start") and period.get("end")):
        return str(period["label"])
    return f"{utc_text(period['start'])} to {utc_text(period['end'])} (end excluded)"


def review_html(body: dict[str, Any]) -> str:
    period, spend = body["period"], body["spend"]
    parts = [
        f"<h1>Tokenomy review {html.escape(period_title(period))}</h1>",
        f"<p>{days_text(period['days'])} against the previous {days_text(period['days'])}: "
        f"{money(spend['current_usd'])} vs "
        f"{money(spend['previous_usd'])} ({money(spend['change_usd'])}).</p>",
    ]
    if body.get("created_at") and period.get("start") and period.get("end"):
        # the console shows the latest stored review, however old: its figures are as of the day it was made
        parts.insert(
            1,
            f"<p>Made {utc_text(body['created_at'])}, over {utc_text(period['start'])} to {utc_text(period['end'])}; "
            "prices, candidates and lifecycle dates as of that day.</p>",
        )
    forecast = spend.get("forecast") or {}
    if "forecast_usd" in forecast:
        parts.append(
            f"<p>Month-end forecast for {forecast['month']}: {money(forecast['forecast_usd'])} "
            f"({money(forecast['low_usd'])}–{money(forecast['high_usd'])}).</p>"
        )
    parts.append("<h2>Actions</h2>")
    parts.append(
        _table(
            ["#", "change", "$/month", "apply"],
            [[a["rank"], a["message"], money(a["monthly_usd"]), a["apply"]] for a in body["actions"]],
        )
    )
    for by, rows in spend["groups"].items():
        parts.append(f"<h2>Spend by {html.escape(by)}</h2>")
        parts.append(
            _table(
                [by, "previous", "current", "change"],
                [[r[by], money(r["previous_usd"]), money(r["current_usd"]), money(r["change_usd"])] for r in rows],
            )
        )
    for by, rows in spend["movers"].items():
        parts.append(f"<h2>Largest movers by {html.escape(by)}</h2>")
        parts.append(
            _table(
                [by, "change", "volume", "tokens/call", "price"],
                [
                    [
                        r[by],
                        money(r["change_usd"]),
                        money(r["volume_usd"]),
                        money(r["tokens_per_call_usd"]),
                        money(r["price_usd"]),
                    ]
                    for r in rows
                ],
            )
        )
    parts.append("<h2>Models in use and candidates</h2>")
    rows = []
    for info in body["models"]:
        rows.append([info["model"], info.get("line") or "", "", money(info.get("current_monthly_usd")), ""])
        for c in info["candidates"]:
            rows.append(
                [
                    "",
                    c["line"],
                    f"{c['kind']}: {c['model']} ({c['released']}){price_date_note(c)}{retirement_note(c)}",
                    money(c["monthly_usd"]),
                    money(c["monthly_change_usd"]),
                ]
            )
    parts.append(_table(["model", "line", "candidate", "$/month", "change"], rows))
    retired = not_proposed_line(body["models"])
    if retired:
        parts.append(f"<p>{html.escape(retired)}</p>")
    bench = body.get("bench")
    if bench:
        parts.append(f"<h2>Re-benchmark (judge: {html.escape(str(bench.get('judge')))})</h2>")
        flagged = {(c["task"], c["model"]): c for c in bench.get("comparison", [])}
        parts.append(
            _table(
                ["task", "model", "quality", "95% CI", "previous", "regressed"],
                [
                    [
                        r["task"],
                        r["model"],
                        r["quality"],
                        r["quality_ci95"],
                        flagged.get((r["task"], r["model"]), {}).get("previous_quality"),
                        "yes" if flagged.get((r["task"], r["model"]), {}).get("regressed") else "",
                    ]
                    for r in bench["results"]
                ],
            )
        )
    habits = body["habits"]
    parts.append("<h2>Cache hit rate</h2>")
    parts.append(
        _table(
            ["model", "previous", "current"],
            [[r["model"], _pct(r["previous_rate"]), _pct(r["current_rate"])] for r in habits["cache_hit_rate"]],
        )
    )
    parts.append("<h2>History length (input tokens per call)</h2>")
    parts.append(
        _table(
            ["task", "previous", "current", "growth"],
            [
                [r["task"], r["previous_input_per_call"], r["current_input_per_call"], _pct(r["growth"])]
                for r in habits["history_length"]
            ],
        )
    )
    parts.append("<h2>Routing tier share</h2>")
    parts.append(
        _table(
            ["route", "tier", "share", "expected", "off by more than the tolerance"],
            [
                [r["route"], r["tier"], _pct(r["share"]), _pct(r["expected"]), "yes" if r["flagged"] else ""]
                for r in habits["tier_share"]
            ],
        )
    )
    parts.append("<h2>Provisioned throughput</h2>")
    parts.append(
        _table(
            ["model", "units", "utilisation", "$/month", "idle $/month", "on demand $/month"],
            [
                [
                    r["model"],
                    r["units"],
                    _pct(r["utilization"]),
                    money(r["monthly_cost_usd"]),
                    money(r["idle_monthly_usd"]),
                    money(r["on_demand_monthly_usd"]),
                ]
                for r in habits["reservations"]
            ],
        )
    )
    parts.append(f"<p>Uncapped outputs: {html.escape(habits['uncapped_outputs']['note'])}</p>")
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Tokenomy review {html.escape(period_title(period))}"
        f"</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )


def write_review_html(body: dict[str, Any], out: str | Path) -> Path:
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(review_html(body), encoding="utf-8")
    return path
