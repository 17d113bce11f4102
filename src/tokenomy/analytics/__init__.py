"""Cost analytics: reports over the usage ledger (DuckDB or PostgreSQL)."""
