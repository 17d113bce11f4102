"""Virtual API keys, stored hashed in the ledger database, with budgets per key and per team."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tokenomy.errors import ConfigError, usd_figure
from tokenomy.ledger.store import LedgerStore
from tokenomy.money import typed

PERIODS = ("day", "month", "total")
KEYS_DDL = """CREATE TABLE IF NOT EXISTS gateway_keys (
  key_id TEXT PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, name TEXT, team TEXT, budget_usd DECIMAL(20,12),
  period TEXT NOT NULL, rpm INTEGER, created_at TIMESTAMPTZ NOT NULL, revoked BOOLEAN NOT NULL DEFAULT FALSE)"""
TEAMS_DDL = """CREATE TABLE IF NOT EXISTS gateway_teams (
  team TEXT PRIMARY KEY, budget_usd DECIMAL(20,12) NOT NULL, period TEXT NOT NULL)"""


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def period_start(period: str, now: datetime | None = None) -> datetime:
    """Start of the budget window containing `now` (UTC calendar day or month; epoch for 'total')."""
    now = now or datetime.now(UTC)
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class VirtualKey:
    key_id: str
    name: str | None
    team: str | None
    budget_usd: Decimal | None
    period: str
    rpm: int | None
    revoked: bool = False


MAX_RPM = 2**31 - 1  # the keys table's rpm column is an INTEGER
BUDGET_QUANTUM = Decimal("1e-12")  # the budget columns are DECIMAL(20,12)


def check_budget(budget_usd: Decimal) -> None:
    """A finite amount >= 0 that the column holds: NaN crashed the comparison, and Infinity or 1e8 the database
    insert, with tracebacks."""
    # the Python API may pass a float or an int; MAX_USD is also what the budget columns hold (MAX_MONEY)
    budget_usd = usd_figure("--budget-usd", budget_usd, "an amount in dollars", "--budget-usd 50")
    if budget_usd != budget_usd.quantize(BUDGET_QUANTUM):  # the column would round 4e-13 to a $0 budget, silently
        raise ConfigError(
            f"--budget-usd {typed(budget_usd)}: budgets are kept to 12 decimal places (1e-12 USD); round it to those"
        )


def check_limits(
    budget_usd: Decimal | None = None, period: str = "month", rpm: int | None = None, team: str | None = None
) -> None:
    """A key's or team's limits, checked before the ledger is opened (a bad option then creates no ledger file)."""
    if budget_usd is not None:
        check_budget(budget_usd)
    if period not in PERIODS:
        raise ConfigError(f"--period {period!r}: use one of {', '.join(PERIODS)}")
    if rpm is not None and not 1 <= rpm <= MAX_RPM:  # above MAX_RPM the INTEGER column refused it, with a traceback
        raise ConfigError(f"--rpm {rpm}: give requests per minute from 1 to {MAX_RPM:,}, or leave it out for none")
    if team is not None and not team.strip():  # a team "" was stored, and printed as "team : $5.00 per month"
        raise ConfigError(f"team {team!r}: give a team name, e.g. research")


class KeyStore:
    """Create, look up (by hash), list and revoke keys; team budgets beside them."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        store.execute(KEYS_DDL)
        store.execute(TEAMS_DDL)

    def create(
        self,
        budget_usd: Decimal | None = None,
        period: str = "month",
        rpm: int | None = None,
        team: str | None = None,
        name: str | None = None,
    ) -> tuple[str, VirtualKey]:
        """Return the secret (shown once) and the stored key record."""
        check_limits(budget_usd, period, rpm, team)
        secret = "tk-" + secrets.token_urlsafe(24)
        digest = hash_key(secret)
        key = VirtualKey(digest[:12], name, team, budget_usd, period, rpm)
        p = self.store.placeholder
        self.store.execute(
            f"INSERT INTO gateway_keys (key_id, key_hash, name, team, budget_usd, period, rpm, created_at, revoked) "
            f"VALUES ({', '.join([p] * 9)})",
            (key.key_id, digest, name, team, budget_usd, period, rpm, datetime.now(UTC), False),
        )
        return secret, key

    def lookup(self, secret: str) -> VirtualKey | None:
        p = self.store.placeholder
        rows = self.store.query(
            f"SELECT key_id, name, team, budget_usd, period, rpm, revoked FROM gateway_keys WHERE key_hash = {p}",
            (hash_key(secret),),
        )
        return _key(rows[0]) if rows else None

    def list(self) -> list[VirtualKey]:
        return [
            _key(r)
            for r in self.store.query(
                "SELECT key_id, name, team, budget_usd, period, rpm, revoked FROM gateway_keys ORDER BY created_at"
            )
        ]

    def revoke(self, key_id: str) -> bool:
        p = self.store.placeholder
        found = self.store.query(f"SELECT key_id FROM gateway_keys WHERE key_id = {p}", (key_id,))
        if not found:
            return False
        self.store.execute(f"UPDATE gateway_keys SET revoked = TRUE WHERE key_id = {p}", (key_id,))
        return True

    def set_team_budget(self, team: str, budget_usd: Decimal, period: str = "month") -> None:
        check_limits(budget_usd, period, team=team)
        p = self.store.placeholder
        self.store.execute(f"DELETE FROM gateway_teams WHERE team = {p}", (team,))
        self.store.execute(
            f"INSERT INTO gateway_teams (team, budget_usd, period) VALUES ({p}, {p}, {p})", (team, budget_usd, period)
        )

    def team_budget(self, team: str) -> tuple[Decimal, str] | None:
        p = self.store.placeholder
        rows = self.store.query(f"SELECT budget_usd, period FROM gateway_teams WHERE team = {p}", (team,))
        return (Decimal(str(rows[0]["budget_usd"])), rows[0]["period"]) if rows else None

    def snapshot(self) -> tuple[dict[str, VirtualKey], dict[str, tuple[Decimal, str]]]:
        """Every key by its hash and every team budget: what the gateway holds in memory."""
        keys = {
            r["key_hash"]: _key(r)
            for r in self.store.query(
                "SELECT key_hash, key_id, name, team, budget_usd, period, rpm, revoked FROM gateway_keys"
            )
        }
        return keys, self.team_budgets()

    def team_budgets(self) -> dict[str, tuple[Decimal, str]]:
        """Every team budget: {team: (budget in USD, period)}."""
        return {
            r["team"]: (Decimal(str(r["budget_usd"])), r["period"])
            for r in self.store.query("SELECT team, budget_usd, period FROM gateway_teams ORDER BY team")
        }

    def spent(self, column: str, value: str, since: datetime) -> Decimal:
        """What the ledger says a key (column key_id) or team (column tenant) spent since `since`."""
        p = self.store.placeholder
        rows = self.store.query(
            f"SELECT COALESCE(SUM(cost_usd), 0) AS spent FROM usage_events WHERE {column} = {p} AND ts >= {p}",
            (value, since),
        )
        return Decimal(str(rows[0]["spent"]))


def _key(row: dict) -> VirtualKey:
    budget = row["budget_usd"]
    return VirtualKey(
        row["key_id"],
        row["name"],
        row["team"],
        None if budget is None else Decimal(str(budget)),
        row["period"],
        row["rpm"],
        bool(row["revoked"]),
    )
