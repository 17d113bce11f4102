"""`tokenomy serve`: the OpenAI-compatible gateway."""

from __future__ import annotations

import os
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    config: Optional[str] = typer.Option(None, "--config", help="tokenomy.yaml (models, routes, auth, budgets). "
                                         "Without it the local model is served."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (share limits through redis_url)."),
    ledger: Optional[str] = typer.Option(None, "--ledger", help="Ledger path or postgresql:// URL."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve POST /v1/chat/completions, GET /v1/models, /healthz, /metrics (and /dashboard when available)."""
    import uvicorn

    from tokenomy.config import load_config
    from tokenomy.gateway.settings import gateway_settings

    loaded = load_config(config)  # fail fast, with the key named, before any worker starts
    gateway_settings(loaded.gateway, loaded.source or "<config>")
    if loaded.redis_url:  # limits shared through Redis: an unreachable server is a start-up error, not 500s later
        import redis

        from tokenomy.errors import ConfigError

        try:
            redis.Redis.from_url(loaded.redis_url, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            raise ConfigError(f"{loaded.source}: redis_url: cannot reach {loaded.redis_url.split('@')[-1]} ({exc}); "
                              "start redis-server there or remove redis_url for per-process limits") from None
    _check_routing(loaded)
    from tokenomy.commands._common import open_existing_ledger

    # The ledger too, here: inside the worker a bad one is a uvicorn startup traceback.
    open_existing_ledger(ledger or loaded.ledger, must_exist=False)
    if config:
        os.environ["TOKENOMY_CONFIG"] = config
    if ledger:
        os.environ["TOKENOMY_LEDGER"] = ledger
    uvicorn.run("tokenomy.gateway.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, access_log=False, timeout_graceful_shutdown=30)


def _check_routing(loaded) -> None:  # noqa: ANN001
    """Tier models, checked at start: otherwise every request to a routed route gets a 400 that names a
    server-side mistake the client cannot fix (the policies themselves are validated when the config loads)."""
    from tokenomy.errors import ConfigError, TokenomyError
    from tokenomy.providers.registry import resolve_model

    specs = loaded.model_specs()
    for tier, models in loaded.tiers.items():
        for model in models:
            try:
                resolve_model(model, specs)
            except TokenomyError as exc:
                raise ConfigError(f"{loaded.source}: tiers.{tier}: {exc}") from None
