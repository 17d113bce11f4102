"""`tokenomy serve`: the OpenAI-compatible gateway."""

from __future__ import annotations

import os
from typing import Optional

import typer

from tokenomy.commands._common import ConfigLedgerOption
from tokenomy.commands._options import bind_host


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _log_level(value: str) -> str:
    """--log-level: one uvicorn knows (any other was a KeyError traceback from inside uvicorn)."""
    if value.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"{value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return value.lower()


def serve(
    config: Optional[str] = typer.Option(
        None,
        "--config",
        help="tokenomy.yaml (models, routes, auth, budgets) "
        "\\[default: $TOKENOMY_CONFIG, else ./tokenomy.yaml if present, else the local model alone]",
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to listen on (0.0.0.0: every one).", callback=bind_host
    ),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (share limits through redis_url)."),
    ledger: Optional[str] = ConfigLedgerOption,
    log_level: str = typer.Option(
        "warning", "--log-level", help=f"uvicorn log level: {', '.join(LOG_LEVELS)}.", callback=_log_level
    ),
) -> None:
    """Serve the gateway: OpenAI's, Anthropic's, Bedrock's and Gemini's APIs, models, health, metrics, dashboard.

    POST /v1/chat/completions, /v1/responses and /v1/embeddings (OpenAI), /v1/messages (Anthropic),
    /model/{modelId}/converse[-stream] and /invoke[-with-response-stream] (Bedrock; Claude's body on invoke),
    /v1beta/models/{model}:generateContent (Gemini); token counts on /v1/messages/count_tokens,
    /v1/responses/input_tokens, /model/{modelId}/count-tokens and :countTokens; GET /v1/models, /healthz, /metrics,
    /dashboard. Azure OpenAI's paths (/openai/deployments/{deployment}/..., /openai/v1/...) reach the same
    endpoints, so AzureOpenAI clients work with the gateway as their endpoint. Vertex AI's: Claude's
    /v1/projects/{p}/locations/{r}/publishers/anthropic/models/{model}:rawPredict and :streamRawPredict
    (AnthropicVertex, answered as /v1/messages) and Gemini's .../publishers/google/models/{model}:generateContent,
    :streamGenerateContent and :countTokens (google-genai with vertexai=True, the Gemini API's endpoints).
    """
    import uvicorn

    from tokenomy.config import load_config
    from tokenomy.emulate.server import check_listen
    from tokenomy.errors import ConfigError

    loaded = load_config(config)  # fail fast, with the key named, before any worker starts
    settings = loaded.gateway
    if settings.metrics_key_env and not os.environ.get(settings.metrics_key_env):
        raise ConfigError(
            f"{loaded.source or '<config>'}: gateway.metrics_key_env: ${settings.metrics_key_env} is not "
            "set; export the key /metrics should require, or remove metrics_key_env"
        )
    if workers > 1 and loaded.auth and not loaded.redis_url:
        # Each worker would hold its own budget and rate counters: every limit silently multiplied by N.
        raise ConfigError(
            f"{loaded.source or '<config>'}: --workers {workers} with auth needs redis_url, so that "
            "budgets and rate limits are shared by the workers; set redis_url (e.g. "
            "redis://127.0.0.1:6379/0) or run one worker"
        )
    if loaded.redis_url:  # limits shared through Redis: an unreachable server is a start-up error, not 500s later
        import redis

        try:
            client = redis.Redis.from_url(loaded.redis_url, socket_connect_timeout=3)
        except ValueError as exc:  # a URL redis-py cannot read (a port that is not a number): no server to start
            raise ConfigError(
                f"{loaded.source}: redis_url: {exc}; write it as redis://HOST:6379/0 (rediss:// for TLS)"
            ) from None
        try:
            client.ping()
        except (redis.RedisError, ValueError) as exc:
            # Several workers with auth need Redis (checked above): removing redis_url alone would not start.
            several = workers > 1 and loaded.auth
            other = "run one worker (--workers 1) without redis_url" if several else "remove redis_url"
            raise ConfigError(
                f"{loaded.source}: redis_url: cannot reach {loaded.redis_url.split('@')[-1]} ({exc}); "
                f"start redis-server there or {other} for per-process limits"
            ) from None
    _check_routing(loaded)
    from tokenomy.call_policy import check_rate_split

    for name, route in loaded.routes.items():  # here, not as a worker's start-up traceback
        check_rate_split(route, name, workers)
    _check_models(loaded)
    # The address before the ledger: opening a new ledger creates its file, which a refused start would leave behind.
    check_listen(host, port)  # a port in use: one line naming --port, not uvicorn's log line and exit status 3
    from tokenomy.commands._common import open_existing_ledger

    # The ledger too, here: inside the worker a bad one is a uvicorn startup traceback.
    ledger = ledger or loaded.ledger  # --ledger, else the config's `ledger:` (as `keys` picks it), else the default
    store = open_existing_ledger(ledger, must_exist=False)
    if loaded.auth:  # its key tables too: a ledger that cannot hold them (ClickHouse) says so here, not in a worker
        from tokenomy.gateway.keys import KeyStore

        KeyStore(store)
    if settings.journal:
        _check_journal_dir(settings, store)
    if config:
        os.environ["TOKENOMY_CONFIG"] = config
    if ledger:  # the worker reads it from here: the one checked above, not an exported TOKENOMY_LEDGER
        os.environ["TOKENOMY_LEDGER"] = ledger
    os.environ["TOKENOMY_WORKERS"] = str(workers)  # each worker keeps 1/N of a route's rate_limit
    if workers > 1:
        _multiprocess_metrics()
        os.environ["TOKENOMY_WORKER_OF"] = str(os.getpid())  # workers exit when this supervisor dies
    os.environ["TOKENOMY_HEADER_TIMEOUT"] = str(settings.header_timeout_seconds)
    uvicorn.run(
        "tokenomy.gateway.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        timeout_keep_alive=int(max(1, settings.keep_alive_seconds)),
        http=_http_protocol(),
    )


def _check_journal_dir(settings, store) -> None:
    """The journal's folder must be writable: inside the worker an unwritable one is a uvicorn startup traceback."""
    import tempfile
    from pathlib import Path

    from tokenomy.errors import ConfigError
    from tokenomy.ledger.journal import claim, journal_dir

    folder = Path(settings.journal_dir) if settings.journal_dir else journal_dir(store)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
        if settings.journal_dir:
            claim(folder, store)
    except ConfigError as exc:
        raise ConfigError(f"gateway.journal_dir: {exc}") from None
    except OSError as exc:
        where = "gateway.journal_dir" if settings.journal_dir else "the journal beside the ledger"
        raise ConfigError(
            f"{where}: cannot write the ledger journal in {folder} ({exc.strerror or exc}); set gateway.journal_dir "
            "to a writable directory (or gateway.journal: false to answer without a crash-safe journal)"
        ) from None


def _http_protocol() -> str:
    """httptools with a header-read timeout when httptools is installed; uvicorn's choice otherwise."""
    import importlib.util

    if importlib.util.find_spec("httptools") is None:
        return "auto"
    return "tokenomy.gateway.edge_protocol:HeaderTimeoutProtocol"


def _multiprocess_metrics() -> None:
    """Workers write their metrics to one directory and /metrics sums them (prometheus_client multiprocess)."""
    import shutil
    import tempfile

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = tempfile.mkdtemp(prefix="tokenomy-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        import atexit

        atexit.register(shutil.rmtree, folder, True)


def _check_models(loaded) -> None:
    """Unknown model ids (recorded at $0) and unset key variables (every call fails): warned, each on one line;
    a price_as the catalog does not know is an error (the config asks for a price that cannot be given)."""
    from tokenomy.commands._output import err_console
    from tokenomy.config_checks import check_config
    from tokenomy.errors import ConfigError

    found = check_config(loaded)
    for warning in found.warnings:
        err_console.print(f"warning: {warning}", markup=False, highlight=False)
    if found.errors:
        raise ConfigError("; ".join(found.errors))


def _check_routing(loaded) -> None:
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
