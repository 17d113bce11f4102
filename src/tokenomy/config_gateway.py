"""The `gateway:` section of tokenomy.yaml (typed in the config model, validated when the config loads).

`tokenomy.gateway` reads it; it lives in the config layer, below the gateway, because `config.py` composes it and the
config imports no package that reads it."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class GatewaySettings(BaseModel):
    """Overload bounds and caches of `tokenomy serve`."""

    model_config = ConfigDict(extra="forbid")
    max_inflight: int = Field(256, ge=1, description="calls running upstream at once, per worker")
    max_queue: int = Field(1024, ge=0, description="requests waiting for a slot; beyond this: 503 at once")
    key_cache_seconds: float = Field(
        30.0,
        ge=0,
        description="keys and team budgets are reloaded from the database "
        "this often: a revocation or budget change takes effect within this time",
    )
    budget_hold_seconds: float = Field(
        3600.0,
        ge=1,
        description="with redis_url: a budget reservation its worker never settled (killed mid-call) is released "
        "after this long; keep it above your longest call, whose reservation would otherwise be released early",
    )
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="larger request bodies get 413")
    read_timeout_seconds: float = Field(
        30.0, gt=0, description="a request body not received in this time: 408, connection closed"
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="a request's headers not complete in this "
        "time after connecting (or starting it): connection closed",
    )
    keep_alive_seconds: float = Field(5.0, gt=0, description="idle keep-alive connections are closed after this")
    shutdown_grace_seconds: int = Field(
        30,
        ge=1,
        description="on SIGTERM, requests still running get this long to finish; a stream still going then ends with "
        "its API's error event saying the gateway shut down (keep it below your orchestrator's kill timeout)",
    )
    journal: bool = Field(
        True,
        description="write every ledger event to a local journal before answering "
        "(replayed on start): a crash loses no answered call",
    )
    journal_sync: Literal["write", "fsync"] = Field(
        "write",
        description="write: the event is in the OS before the answer leaves (a killed process loses nothing; "
        "a power loss can lose the last journal_fsync_seconds); fsync: the answer also waits until it is on disk",
    )
    journal_fsync_seconds: float = Field(
        0.2, gt=0, le=60, description="with journal_sync: write, how often the journal is fsynced"
    )
    ledger_flush_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="how often answered calls are written from memory to the ledger database (the journal holds "
        "them meanwhile); each write has a fixed cost (~75 ms of CPU on DuckDB with its rollups), so rarer writes "
        "leave more CPU for requests and reports see calls that much later",
    )
    ledger_writer: Literal["process", "thread"] = Field(
        "process",
        description="process: a child process writes the ledger database (its CPU never pauses a request: measured "
        "p99 at concurrency 32 ~55 -> ~20 ms); thread: a thread of the gateway's own process does (always so for "
        "an embedded chdb: ledger, which one process owns)",
    )
    journal_dir: Optional[str] = Field(
        None,
        description="where the journal lives (default: beside a DuckDB ledger, "
        "or .tokenomy/journal-<hash of the URL> for PostgreSQL)",
    )
    metrics_key_env: Optional[str] = Field(
        None,
        description="environment variable holding a key that GET /metrics requires as `Authorization: Bearer <key>`",
    )
