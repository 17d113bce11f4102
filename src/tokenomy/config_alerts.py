"""The `alerts:` and `budgets:` sections of tokenomy.yaml, typed once (validated when the config loads).

`tokenomy.analytics` reads them (alerts, reviews); they live in the config layer, below it, because `config.py`
composes them and the config imports no package that reads it."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tokenomy.errors import ConfigError

# Budget scope → the ledger column it matches (a tag matches key=value inside `tags`).
SCOPES = {"provider": "provider", "model": "model", "key": "key_id", "tag": None}


class Budget(BaseModel):
    """A monthly spend limit on a provider, model, key or tag (`budgets:` items)."""

    model_config = ConfigDict(extra="forbid")
    scope: Literal["provider", "model", "key", "tag"]
    match: str
    limit_usd: Decimal


class Reservation(BaseModel):
    """A provisioned-throughput reservation to watch for idle time."""

    model_config = ConfigDict(extra="forbid")
    model: str
    units: int = Field(gt=0)
    tpm_per_unit: int = Field(gt=0, description="tokens per minute one model unit serves")
    term: Literal["none", "1m", "6m"] = Field(
        "none", description="commitment term: prices the idle capacity from the catalog's provisioned_hourly"
    )
    hourly_usd: Decimal | None = Field(
        None, ge=0, description="price per unit-hour when the catalog has none for the term"
    )


# Expected share of calls per tier, each from 0 to 1 (`{weak: 2}` loaded, and read as "expected 200.0%").
TierShares = dict[str, Annotated[float, Field(ge=0, le=1)]]


class AlertSettings(BaseModel):
    """`alerts:` in tokenomy.yaml; every threshold has a default."""

    model_config = ConfigDict(extra="forbid")
    # At most 100 years, as `review --since` takes: a window back past year 1 was an OverflowError traceback.
    window_days: int = Field(7, ge=1, le=36500, description="recent window compared, and anomaly lookback")
    anomaly_groups: list[Literal["model", "provider"]] = Field(
        default_factory=lambda: ["model"],  # type: ignore[arg-type]
        description="daily spend series checked",
    )
    cache_drop_points: float = Field(0.15, gt=0, le=1, description="hit-rate fall (0.15 = 15 points) that alerts")
    cache_min_tokens: int = Field(1000, ge=0, description="input tokens a week needs before its rate counts")
    tier_tolerance: float = Field(0.10, gt=0, le=1)
    expected_tier_share: TierShares = Field(default_factory=dict)
    escalation_threshold: float = Field(0.25, ge=0, le=1)
    escalation_min_calls: int = Field(
        20,
        ge=1,
        description="requests a route needs before its escalation rate counts (one escalated request is not a trend)",
    )
    idle_threshold: float = Field(0.5, ge=0, le=1, description="utilisation below which a reservation is idle")
    reservations: list[Reservation] = Field(default_factory=list)
    # Finite: .inf loaded, then was refused by the reconcile it feeds as `--tolerance-pct inf`, an option not given.
    billing_tolerance_pct: float = Field(
        5.0,
        ge=0,
        allow_inf_nan=False,
        description="billed cost off the metered cost by more than this % (a day, provider, model) alerts",
    )

    @classmethod
    def from_config(cls, alerts: dict[str, Any] | None, routing: dict[str, Any] | None = None) -> AlertSettings:
        """Validate `alerts:` (expected tier shares may also come from `routing.expected_tier_share`)."""
        data = dict(alerts or {})
        shares = (routing or {}).get("expected_tier_share")
        if "expected_tier_share" not in data and shares:
            data["expected_tier_share"] = shares
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            lines = [f"alerts.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            raise ConfigError("\n".join(lines)) from None


def validate_budgets(items: list[Any]) -> list[dict[str, Any]]:
    """Check `budgets:` items: {scope, match, limit_usd}; errors name the item and key."""
    out = []
    for i, item in enumerate(items):
        if isinstance(item, Budget):
            item = item.model_dump()
        where = f"budgets[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: expected a mapping with scope, match, limit_usd")
        unknown = sorted(set(item) - {"scope", "match", "limit_usd"})
        if unknown:  # e.g. `period: day` or `usd: 5` would otherwise be ignored and the budget read as monthly
            raise ConfigError(
                f"{where}.{unknown[0]}: not a budget key; a budget is {{scope, match, limit_usd}} per calendar month"
            )
        scope = item.get("scope")
        if scope not in SCOPES:
            raise ConfigError(f"{where}.scope: {scope!r} is not one of {', '.join(sorted(SCOPES))}")
        if not item.get("match"):
            raise ConfigError(f"{where}.match: required (the {scope} value, or key=value for a tag)")
        if item.get("limit_usd") is None:
            raise ConfigError(f"{where}.limit_usd: required; give the monthly limit in dollars, e.g. limit_usd: 500")
        try:
            limit = Decimal(str(item.get("limit_usd")))
        except Exception:
            limit = Decimal("NaN")
        if limit.is_finite() and limit < 0:
            raise ConfigError(
                f"{where}.limit_usd: {item.get('limit_usd')!r} is negative; give the monthly limit, 0 or more, "
                "e.g. limit_usd: 500"
            )
        if not limit.is_finite():  # NaN used to crash the comparison with a traceback
            raise ConfigError(
                f"{where}.limit_usd: {item.get('limit_usd')!r} is not a number of dollars; "
                "give the monthly limit, e.g. limit_usd: 500"
            ) from None
        if scope == "tag" and "=" not in str(item["match"]):
            raise ConfigError(f"{where}.match: a tag budget matches key=value, e.g. team=search")
        out.append({"scope": scope, "match": str(item["match"]), "limit_usd": limit})
    return out
