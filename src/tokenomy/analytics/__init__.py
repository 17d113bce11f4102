"""Cost analytics: reports over the usage ledger (DuckDB or PostgreSQL)."""

from decimal import Decimal

# `report reconcile`'s default tolerance. Kept here, not in reconcile.py, so the command line's help can show it
# without importing the ledger at every start (every command module is imported to build the CLI).
DEFAULT_TOLERANCE_PCT = Decimal(5)
