"""How many model units to buy: sustained (time-weighted) utilisation and on-demand spill-over per option."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd

from tokenomy.errors import ConfigError
from tokenomy.planning.breakeven import HOURS_PER_MONTH, MILLION, UnitEconomics, breakeven
from tokenomy.planning.window import short_for_reservation, window_text

MAX_UNITS = 1000  # the most model units `size` evaluates (options 0..N)


def tpm_percentiles(series: pd.DataFrame) -> dict[str, float]:
    tokens = (series["input_tokens"] + series["output_tokens"]).to_numpy()
    return {
        "p50": float(np.percentile(tokens, 50)),
        "p90": float(np.percentile(tokens, 90)),
        "p95": float(np.percentile(tokens, 95)),
        "p99": float(np.percentile(tokens, 99)),
        "max": float(tokens.max()),
        "mean": float(tokens.mean()),
    }


def evaluate_units(series: pd.DataFrame, econ: UnitEconomics, units: int) -> dict:
    """Cost of `units` reserved units plus on-demand for every minute's tokens above their capacity."""
    tokens_in = series["input_tokens"].to_numpy(dtype=float)
    tokens_out = series["output_tokens"].to_numpy(dtype=float)
    total = tokens_in + tokens_out
    capacity = float(units * econ.tpm_per_unit)
    served = np.minimum(total, capacity)
    spill = total - served
    # Spilled tokens keep the minute's own mix: output, and input read from a cache, written to one, or neither
    # (each at its own on-demand price; a trace or CloudWatch series has no cache columns: all plain input).
    spilled = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, column in (("read", "cache_read_tokens"), ("write", "cache_write_tokens"), ("out", "output_tokens")):
            tokens = series[column].to_numpy(dtype=float) if column in series else np.zeros(len(series))
            spilled[name] = float((spill * np.where(total > 0, tokens / total, 0.0)).sum())
    spilled["in"] = float(spill.sum()) - spilled["read"] - spilled["write"] - spilled["out"]
    prices = _prices(econ)
    minutes = len(series)
    scale = HOURS_PER_MONTH * 60 / Decimal(minutes)  # the observed window repeats for a month
    spill_cost = sum(Decimal(str(round(spilled[k]))) * prices[k] for k in prices) / MILLION * scale
    reserved_cost = econ.hourly_per_unit * units * HOURS_PER_MONTH
    return {
        "units": units,
        "capacity_tpm": int(capacity),
        "sustained_utilization": float(served.sum() / (capacity * minutes)) if units else None,
        "minutes_above_capacity_share": float((total > capacity).mean()) if units else float((total > 0).mean()),
        "spillover_tokens_per_month": round(float(spill.sum()) * float(scale)),
        "provisioned_monthly_usd": reserved_cost,
        "spillover_monthly_usd": spill_cost,
        "monthly_cost_usd": reserved_cost + spill_cost,
    }


def _prices(econ: UnitEconomics) -> dict[str, Decimal]:
    """On-demand USD per 1M tokens of each kind: plain input, read from a cache, written to one, output (a cache price
    the catalog does not give, or on-demand prices from the command line: priced as input)."""
    return {
        "in": econ.input_price,
        "read": econ.input_price if econ.cache_read_price is None else econ.cache_read_price,
        "write": econ.input_price if econ.cache_write_price is None else econ.cache_write_price,
        "out": econ.output_price,
    }


def mix_breakeven(series: pd.DataFrame, econ: UnitEconomics) -> float | None:
    """Utilisation above which one unit costs less than its tokens on demand, at the traffic's own mix of plain input,
    cache reads, cache writes and output, each at its price as the options table prices them (not the input/output
    blend, which prices cached prompt tokens as plain input). None: on-demand tokens cost nothing."""
    tokens = {"in": int(series["input_tokens"].sum()), "out": int(series["output_tokens"].sum())}
    if not tokens["in"] + tokens["out"]:  # no tokens: no mix to read, the stated input share's blend
        return breakeven(replace(econ, units=1))["breakeven_utilization"]
    for name, column in (("read", "cache_read_tokens"), ("write", "cache_write_tokens")):
        tokens[name] = int(series[column].sum()) if column in series else 0
    tokens["in"] -= tokens["read"] + tokens["write"]  # the series' input counts cached prompt tokens too
    prices = _prices(econ)
    per_mtok = sum(Decimal(tokens[k]) * prices[k] for k in prices) / Decimal(sum(tokens.values()))
    on_demand_full = Decimal(econ.tpm_per_unit * 60) * per_mtok / MILLION  # a whole unit's tokens for an hour
    return float(econ.hourly_per_unit / on_demand_full) if on_demand_full else None


def _share(value: float) -> str:
    """A utilisation in words: whole percent, or one decimal below 10% ("0.1%", never "0%" beside "0%")."""
    return f"{value:.0%}" if value >= 0.1 else f"{value:.1%}"


def size(series: pd.DataFrame, econ: UnitEconomics, max_units: int | None = None) -> dict:
    """Evaluate N = 0..enough units; pick the cheapest and explain the verdict in words."""
    total = series["input_tokens"] + series["output_tokens"]
    peak = float(total.max())
    enough = max(1, int(np.ceil(peak / econ.tpm_per_unit))) if max_units is None else max_units
    if enough > MAX_UNITS:  # each option is a pass over the series: a tiny per-unit figure would run for hours
        raise ConfigError(
            f"covering the peak of {peak:,.0f} tokens/min at {econ.tpm_per_unit:,} tokens/min per unit "
            f"needs {enough:,} units (more than {MAX_UNITS:,} are not sized); check --tpm-per-unit, "
            "which is tokens per minute for ONE model unit"
        )
    options = [evaluate_units(series, econ, n) for n in range(0, enough + 1)]
    best = min(options, key=lambda o: (o["monthly_cost_usd"], o["units"]))
    on_demand = options[0]["monthly_cost_usd"]
    saving = on_demand - best["monthly_cost_usd"]
    mean = float(total.mean())
    needed = mix_breakeven(series, econ)
    if best["units"] == 0:
        used = options[1]["sustained_utilization"]
        if needed is None:  # on-demand tokens are free
            verdict = "stay on-demand: its tokens cost nothing, so no reservation can pay"
        elif needed > 1:
            verdict = (
                f"stay on-demand: a model unit costs more than its whole capacity bought on demand at this "
                f"traffic's mix (break-even at {needed:.0%} utilisation), so no utilisation makes it pay"
            )
        else:
            verdict = (
                f"stay on-demand: one unit would run at {_share(used)} sustained utilisation and only pays off "
                f"above {_share(needed)}; a reservation would mostly buy idle time"
            )
    else:
        verdict = (
            f"buy {best['units']} model unit(s) ({econ.term} term): sustained utilisation "
            f"{best['sustained_utilization']:.0%}, {best['minutes_above_capacity_share']:.1%} of minutes spill "
            f"to on-demand, saving ${saving:,.2f} a month ({saving / on_demand:.0%}) versus all on-demand"
        )
    start, end = series.index[0].to_pydatetime(), series.index[-1].to_pydatetime() + timedelta(minutes=1)
    short = short_for_reservation(start, end)
    if short and best["units"]:
        verdict += f" — but {short}"
    return {
        "model": econ.model,
        "region": econ.region,
        "term": econ.term,
        "tpm_per_unit": econ.tpm_per_unit,
        "window": window_text(start, end),
        "warnings": [short] if short else [],
        "window_minutes": len(series),
        "window_start": start.isoformat().replace("+00:00", "Z"),
        "window_end": end.isoformat().replace("+00:00", "Z"),  # the end of the last minute, as `window` says
        "assumption": "the observed window repeats for a 730-hour month; capacity counts input + output tokens",
        "tokens_per_minute": tpm_percentiles(series),
        "burstiness": {
            "peak_to_mean": peak / mean if mean else None,
            "minutes_above_one_unit_share": float((total > econ.tpm_per_unit).mean()),
        },
        "options": options,
        "monthly_cost_usd": {str(o["units"]): o["monthly_cost_usd"] for o in options},
        "recommended_units": best["units"],
        "all_on_demand_monthly_usd": on_demand,
        "breakeven_utilization": needed,  # of one unit, at the traffic's own token mix (cache reads at their price)
        "monthly_saving_usd": saving,
        "verdict": verdict,
        "sources": econ.sources,
        "tpm_per_unit_assumed": econ.sources["tpm_per_unit"].startswith("ASSUMED"),
    }


def weekly_utilization(series: pd.DataFrame, capacity: int, threshold: float = 0.5) -> list[dict]:
    """Sustained utilisation of an existing reservation of `capacity` tokens/min (its units together) per ISO week;
    flags weeks below `threshold`. No price enters it."""
    total = (series["input_tokens"] + series["output_tokens"]).clip(upper=capacity)
    rows = []
    index = total.index
    if getattr(index, "tz", None) is not None:  # UTC minutes: weeks are UTC weeks (to_period warns on a tz)
        index = index.tz_convert(None)
    for week, chunk in total.groupby(index.to_period("W-SUN")):
        utilization = float(chunk.sum() / (capacity * len(chunk))) if len(chunk) else 0.0
        rows.append(
            {
                "week": str(week.start_time.date()),
                "minutes": len(chunk),
                "sustained_utilization": utilization,
                "flagged": utilization < threshold,
            }
        )
    return rows
