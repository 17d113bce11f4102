"""`tokenomy caches`: Gemini / Vertex AI explicit context caches whose storage Tokenomy records in the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from tokenomy.commands._common import JsonOption, LedgerOption
from tokenomy.commands._options import http_url
from tokenomy.commands._output import console, print_json, table, usd

EndpointOption = typer.Option(
    None, "--endpoint-url", callback=http_url, help="Gemini API / Vertex AI base URL (emulators)."
)
VertexOption = typer.Option(False, "--vertex", help="Vertex AI (project and location) instead of the Gemini API.")
ProjectOption = typer.Option(None, "--project", help="Google Cloud project (Vertex AI; else GOOGLE_CLOUD_PROJECT).")
LocationOption = typer.Option(None, "--location", help="Vertex AI location (else GOOGLE_CLOUD_LOCATION, else global).")


def _caches(ledger: Optional[str], endpoint: Optional[str], vertex: bool, project, location, must_exist: bool):
    from tokenomy.caching.context_caches import ContextCaches
    from tokenomy.commands._common import open_existing_ledger
    from tokenomy.providers.gemini_client import gemini_client, vertex_location

    store = open_existing_ledger(ledger) if must_exist else None  # "no ledger at" before "no API key"
    client = gemini_client(vertex, endpoint, None, project, location)
    if store is None:  # a new ledger only once there is a client: "no API key" left an empty ledger file behind
        store = open_existing_ledger(ledger, must_exist=False)
    # The location the client uses (gemini_client's own default), so the rows name where the cache was kept.
    region = vertex_location(location) if vertex else None
    return ContextCaches(client, store, vertex=vertex, region=region)


def _row(c: Any) -> dict[str, Any]:
    return {
        "name": c.name,
        "provider": c.provider,
        "model": c.model,
        "tokens": c.tokens,
        "created_at": c.created_at,
        "expires_at": c.expires_at,
        "settled_at": c.settled_at,
    }


def _cells(c: Any) -> list[Any]:
    recorded = "yes" if c.settled_at else "not yet"
    return [c.name, c.model, c.tokens, f"{c.created_at:%Y-%m-%d %H:%M}Z", f"{c.expires_at:%Y-%m-%d %H:%M}Z", recorded]


def _events(events: list, as_json: bool) -> None:
    if as_json:
        print_json([{"cache": e.request_id, "model": e.model, "ts": e.ts, "cost_usd": e.cost_usd, **e.tags}
                    for e in events])  # fmt: skip
        return
    for e in events:
        console.print(
            f"{e.request_id}: {e.tags['cached_tokens']} tokens kept {e.tags['storage_hours']} h = "
            f"{usd(e.cost_usd, 9)} recorded"
        )
    if not events:
        console.print("nothing to record")


def register(app: typer.Typer) -> None:
    """Add the `caches` command group."""
    caches = typer.Typer(
        help="Gemini context caches, with their storage (per token-hour) recorded in the ledger when they end.",
        no_args_is_help=True,
    )
    app.add_typer(caches, name="caches")

    @caches.command("create")
    def create(
        model: str = typer.Option(..., "--model", help="Gemini model id, e.g. gemini-2.5-flash."),
        contents_file: Path = typer.Option(..., "--contents-file", help="Text to cache (one user turn)."),
        system: Optional[str] = typer.Option(None, "--system", help="System instruction to cache with it."),
        ttl: int = typer.Option(3600, "--ttl", min=1, help="Seconds the cache lives."),
        endpoint_url: Optional[str] = EndpointOption,
        vertex: bool = VertexOption,
        project: Optional[str] = ProjectOption,
        location: Optional[str] = LocationOption,
        ledger: Optional[str] = LedgerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Create a cache; its tokens are recorded now at the input price, its storage when it is deleted
        (`caches delete`) or expires (`caches settle`)."""
        from tokenomy.caching.context_caches import storage_price
        from tokenomy.errors import ConfigError, read_utf8
        from tokenomy.providers.gemini_client import vertex_location

        # Before the ledger and the API key: the answer for gpt-4o-mini is "not Gemini", not "no key", and a model
        # whose storage cannot be priced leaves no ledger file behind.
        storage_price(model, vertex_location(location) if vertex else None)
        if contents_file.is_dir():  # read "no such file" for a folder that is there
            raise ConfigError(f"--contents-file {contents_file}: a folder; give the file with the text to cache")
        if not contents_file.is_file():
            raise ConfigError(f"--contents-file {contents_file}: no such file")
        text = read_utf8(contents_file, "the text to cache (UTF-8), e.g. a document or a long system prompt")
        if not text.strip():  # went to the API, which refuses a cache of nothing, after the ledger was made
            raise ConfigError(f"--contents-file {contents_file}: empty; give a file with the text to cache")
        manager = _caches(ledger, endpoint_url, vertex, project, location, must_exist=False)
        cache = manager.create(model, contents=[text], system_instruction=system, ttl_seconds=ttl)
        if as_json:
            print_json(_row(cache))
        else:
            console.print(f"{cache.name}: {cache.tokens} tokens on {cache.model}, expires {cache.expires_at:%H:%M:%S}Z")

    @caches.command("list")
    def list_caches(ledger: Optional[str] = LedgerOption, as_json: bool = JsonOption) -> None:
        """The caches Tokenomy keeps track of, settled (recorded in the ledger) or not yet."""
        from tokenomy.caching.context_caches import DDL, TrackedCache
        from tokenomy.commands._common import open_existing_ledger

        store = open_existing_ledger(ledger)
        store.execute(DDL)
        rows = [TrackedCache.from_row(r) for r in store.query("SELECT * FROM context_caches ORDER BY created_at")]
        if as_json:
            print_json([_row(c) for c in rows])
            return
        console.print(
            table(
                f"{len(rows)} context caches",
                ["name", "model", "tokens", "created", "expires", "recorded"],
                [_cells(c) for c in rows],
                text_columns=("name", "model", "recorded"),
            )
        )

    @caches.command("delete")
    def delete(
        name: str = typer.Argument(..., help="Cache name, e.g. cachedContents/abc123."),
        endpoint_url: Optional[str] = EndpointOption,
        vertex: bool = VertexOption,
        project: Optional[str] = ProjectOption,
        location: Optional[str] = LocationOption,
        ledger: Optional[str] = LedgerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Delete a cache and record what keeping it cost (from its creation until now)."""
        manager = _caches(ledger, endpoint_url, vertex, project, location, must_exist=True)
        event = manager.delete(name)
        _events([event] if event else [], as_json)

    @caches.command("settle")
    def settle(
        endpoint_url: Optional[str] = EndpointOption,
        vertex: bool = VertexOption,
        project: Optional[str] = ProjectOption,
        location: Optional[str] = LocationOption,
        ledger: Optional[str] = LedgerOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Record the storage of every tracked cache whose TTL has ended (run it daily, e.g. from cron)."""
        manager = _caches(ledger, endpoint_url, vertex, project, location, must_exist=True)
        _events(manager.settle(), as_json)
