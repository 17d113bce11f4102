"""What the demo's steps share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from tokenomy.client import Tokenomy
from tokenomy.ledger.store import LedgerStore


@dataclass
class DemoContext:
    """What steps share: the client (recording to the demo ledger), the store, a console."""

    client: Tokenomy
    store: LedgerStore
    console: Console
    workdir: Path
    notes: list[str] = field(default_factory=list)
