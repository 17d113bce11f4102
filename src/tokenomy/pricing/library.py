"""genai-prices, the maintained price library: the fallback for models the curated catalog lacks.

Its data is the bundled snapshot of the installed package, or — after `tokenomy prices update` — the
copy saved in the user's data directory (fetched from the library's published data file, or read
from a file given offline). Bedrock ids are looked up in the library's `aws` provider with their
inference-profile prefix (it keys regional vs global prices that way); batch prices are kept where
the library has them, and so is a model's web search price (`web_searches_kcount`, USD per 1,000).
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from tokenomy.errors import ConfigError, read_utf8
from tokenomy.pricing.entry import FAST_MODE_TIER, SERVICE_TIERS, LongContextPrice, PriceEntry, TierPrice
from tokenomy.pricing.identifiers import ModelRef, is_bedrock_id, library_refs

BATCH_CONTEXT = {"processing": "batch"}
# The library's request context of a tier not named by `service_tier`: Anthropic's fast mode is `speed: "fast"`.
TIER_CONTEXTS = {FAST_MODE_TIER: {"speed": "fast"}}
SAVED_NAME = "genai-prices.json"
PROVIDER_NAMES = {"aws": "aws.bedrock"}


def user_data_dir() -> Path:
    """$TOKENOMY_HOME, else the platform's user data directory (XDG on Linux)."""
    home = os.environ.get("TOKENOMY_HOME")
    if home:
        return Path(home).expanduser()
    from platformdirs import user_data_dir as platform_dir

    return Path(platform_dir("tokenomy", appauthor=False))


def saved_path() -> Path:
    return user_data_dir() / "prices" / SAVED_NAME


def _providers_from_payload(payload: Any, origin: str) -> list:
    """The library's provider objects from its published JSON (a list of providers)."""
    if not isinstance(payload, list) or not payload:
        raise ConfigError(
            f"{origin}: expected genai-prices' data file (a JSON list of providers, as published at "
            "https://github.com/pydantic/genai-prices prices/new_data/v2/data.json)"
        )
    from genai_prices import types

    parse = getattr(types, "_providers_from_raw", None)  # what genai-prices' own updater uses
    if parse is None:  # pragma: no cover - a genai-prices without it cannot load fetched data
        raise ConfigError(
            "the installed genai-prices cannot load a data file; upgrade it (pip install -U genai-prices)"
        )
    try:
        return parse(payload)
    except Exception as exc:
        raise ConfigError(f"{origin}: not valid genai-prices data ({str(exc).splitlines()[0]})") from None


@lru_cache(maxsize=1)
def _snapshot() -> tuple[Any, str, str]:
    """(snapshot, as_of, origin): the saved copy if there is one, else the bundled data."""
    from genai_prices import data_snapshot

    path = saved_path()
    if path.exists():
        try:
            saved = json.loads(path.read_text())
            providers = _providers_from_payload(saved["providers"], str(path))
            return (
                data_snapshot.DataSnapshot(providers, from_auto_update=True),
                str(saved["as_of"]),
                f"genai-prices data saved {saved['as_of']} from {saved['origin']}",
            )
        except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
            raise ConfigError(
                f"{path}: cannot read the saved price data ({exc}); run `tokenomy prices update` "
                "again or delete the file to use the bundled data"
            ) from None
    snapshot = data_snapshot.get_snapshot()
    return snapshot, _bundled_as_of(snapshot.providers), f"genai-prices {_version()} bundled data"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("genai-prices")
    except Exception:  # pragma: no cover
        return "(unknown version)"


def _installed_on() -> date:
    """The day the bundled data file was written to disk: the data is no newer than that."""
    from genai_prices import data

    return datetime.fromtimestamp(Path(data.__file__).stat().st_mtime, tz=UTC).date()


def _bundled_as_of(providers: list) -> str:
    """The newest price change the bundled data knows that was in effect by the day it was installed: its prices
    are current to at least that date. Bounded by the install day, not today: a change the data scheduled ahead
    would otherwise move the date forward when its day came, and data never updated would never look stale."""
    today, installed = datetime.now(tz=UTC).date(), _installed_on()
    # A file dated before genai-prices existed (Nix and some image builders set every mtime to 1970) says nothing.
    limit = min(today, installed) if installed.year >= 2024 else today
    newest = date(2000, 1, 1)
    for provider in providers:
        for model in provider.models:
            for price in model.prices if isinstance(model.prices, list) else ():
                start = getattr(getattr(price, "constraint", None), "start_date", None)
                if isinstance(start, date) and newest < start <= limit:
                    newest = start
    return newest.isoformat()


def library_as_of() -> str:
    return _snapshot()[1]


def reset() -> None:
    """Forget the loaded data (after an update, or in tests)."""
    _snapshot.cache_clear()


def _flat(prices: Any, name: str) -> Decimal | None:
    value = getattr(prices, name, None)
    value = getattr(value, "base", value)  # tiered prices: the base tier (below the first threshold)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    return None


def _first_tier(prices: Any, name: str) -> tuple[int, Decimal] | None:
    """(threshold, price) of the first tier above the base of a tiered price, or None for a flat one."""
    tiers = getattr(getattr(prices, name, None), "tiers", None)
    if not tiers:
        return None
    return int(tiers[0].start), Decimal(str(tiers[0].price))


def _long_context(prices: Any, source: str, as_of: str) -> LongContextPrice | None:
    """The library's prices over a prompt-size threshold (its tiered prices: over the threshold the whole call is
    billed at the tier price), when input and output are both tiered at one threshold."""
    tier_in, tier_out = _first_tier(prices, "input_mtok"), _first_tier(prices, "output_mtok")
    if tier_in is None or tier_out is None or tier_in[0] != tier_out[0]:
        return None
    extra: dict[str, Decimal | None] = {}
    for field, name in (
        ("cache_read", "cache_read_mtok"),
        ("cache_write", "cache_write_mtok"),
        ("cache_write_1h", "cache_write_1h_mtok"),
    ):
        tier = _first_tier(prices, name)
        if tier is not None and tier[0] == tier_in[0]:
            extra[field] = tier[1]
        elif tier is None and _flat(prices, name) is not None:
            extra[field] = None  # flat below, unknown above: refused rather than priced at the short-prompt rate
    return LongContextPrice(
        above_tokens=tier_in[0], input=tier_in[1], output=tier_out[1], source=source, as_of=as_of, **extra
    )


def _tiers(info: Any, now: datetime, source: str, as_of: str) -> dict[str, TierPrice]:
    """The service-tier prices the library publishes for a model (its `service_tier` price variants, and `speed: fast`
    ones as the fast_mode tier): the one in effect now, with the changes it dates ahead (a variant whose start date is
    to come) as `changes`."""
    tiers: dict[str, TierPrice] = {}
    for name in SERVICE_TIERS:
        context = TIER_CONTEXTS.get(name, {"service_tier": name})
        variants = [v for v in info.price_variants or () if v.when == context]
        active = [v for v in variants if v.constraint is None or v.constraint.active(now)]
        current = _tier_price(info, now, context, source, as_of) if active else None
        if current is None:
            continue
        ahead = sorted(
            {
                start
                for v in variants
                if isinstance(start := getattr(v.constraint, "start_date", None), date) and start > now.date()
            }
        )
        changes = [
            _tier_price(info, datetime(d.year, d.month, d.day, tzinfo=UTC), context, source, as_of, d) for d in ahead
        ]
        tiers[name] = replace(current, changes=tuple(change for change in changes if change is not None))
    return tiers


def _tier_price(
    info: Any, when: datetime, context: dict[str, str], source: str, as_of: str, starts: date | None = None
) -> TierPrice | None:
    """The library's price of one service tier on `when`, or None where it lacks an input or output price."""
    prices = info.get_prices(when, dict(context))
    tier_in, tier_out = _flat(prices, "input_mtok"), _flat(prices, "output_mtok")
    if tier_in is None or tier_out is None:
        return None
    return TierPrice(
        input=tier_in,
        output=tier_out,
        source=source,
        as_of=as_of,
        cache_read=_flat(prices, "cache_read_mtok"),
        cache_write=_flat(prices, "cache_write_mtok"),
        cache_write_1h=_flat(prices, "cache_write_1h_mtok"),
        starts=starts.isoformat() if starts is not None else None,
        long_context=_long_context(prices, source, as_of),
    )


def _embedding_model(info: Any) -> bool:
    """An embedding model (gemini-embedding-001, amazon.titan-embed-text-v2:0, ...), which the library lists with an
    input price only. Named by its id: a chat model missing its output price must stay unpriced, not write for $0."""
    return "embed" in str(info.id).lower()


def _priced_region(library_model: str, region: str | None) -> str:
    """The region an entry's label names: "global" for the library's global-profile price (one price wherever the
    call runs; a `global.` id's assumed source region, us-east-1, is not what was priced), else the region asked or
    the profile's source region."""
    if library_model.startswith("global."):
        return "global"
    return region or "global"


def library_entry(ref: ModelRef, region: str | None) -> PriceEntry | None:
    """Price `ref` from the library, or None if it does not know the model."""
    snapshot, as_of, origin = _snapshot()
    bedrock = is_bedrock_id(ref)
    for candidate in library_refs(ref) if bedrock else [ref.base]:
        try:
            provider, info = snapshot.find_provider_model(candidate, None, "aws" if bedrock else None, None)
        except Exception:
            continue
        now = datetime.now(tz=UTC)
        prices = info.get_prices(now)
        output = _flat(prices, "output_mtok")
        if output is None and _embedding_model(info):
            output = Decimal(0)  # it writes no tokens: the library lists its input price only
        if _flat(prices, "input_mtok") is None or output is None:
            continue
        has_batch = any(v.when == BATCH_CONTEXT for v in info.price_variants or ())
        batch = info.get_prices(now, dict(BATCH_CONTEXT)) if has_batch else None
        url = provider.pricing_urls[0] if getattr(provider, "pricing_urls", None) else provider.id
        return PriceEntry(
            provider=PROVIDER_NAMES.get(str(provider.id), str(provider.id)),
            model=ref.base,
            region=_priced_region(str(info.id), region or ref.region),
            family=str(info.id),
            source=f"{origin} ({url})",
            as_of=as_of,
            priced_by="genai-prices",
            input=_flat(prices, "input_mtok"),
            output=output,
            batch_input=_flat(batch, "input_mtok") if batch else None,
            batch_output=_flat(batch, "output_mtok") if batch else None,
            batch_cache_read=_flat(batch, "cache_read_mtok") if batch else None,
            cache_read=_flat(prices, "cache_read_mtok"),
            cache_write=_flat(prices, "cache_write_mtok"),
            cache_write_1h=_flat(prices, "cache_write_1h_mtok"),
            web_search=_flat(prices, "web_searches_kcount"),  # USD per 1,000 searches
            input_audio=_flat(prices, "input_audio_mtok"),
            cache_read_audio=_flat(prices, "cache_audio_read_mtok"),
            output_audio=_flat(prices, "output_audio_mtok"),
            context_window=info.context_window,
            service_tiers=_tiers(info, now, f"{origin} ({url})", as_of),
            long_context=_long_context(prices, f"{origin} ({url})", as_of),
            batch_long_context=_long_context(batch, f"{origin} ({url})", as_of) if batch else None,
            batch_note=None if has_batch else "genai-prices lists no batch price for this model",
            note=(f"genai-prices model {info.id!r}; its prices are not region-specific" if bedrock else None),
        )
    return None


def library_figures(provider_id: str, model_ref: str) -> dict[str, Any] | None:
    """The library's per-token figures for one model (for comparing the curated catalog with it)."""
    snapshot = _snapshot()[0]
    try:
        _, info = snapshot.find_provider_model(model_ref, None, provider_id, None)
    except Exception:
        return None
    now = datetime.now(tz=UTC)
    prices = info.get_prices(now)
    batch = (
        info.get_prices(now, dict(BATCH_CONTEXT))
        if any(v.when == BATCH_CONTEXT for v in info.price_variants or ())
        else None
    )
    return {
        "library_model": info.id,
        "input": _flat(prices, "input_mtok"),
        "output": _flat(prices, "output_mtok"),
        "cache_read": _flat(prices, "cache_read_mtok"),
        "cache_write": _flat(prices, "cache_write_mtok"),
        "cache_write_1h": _flat(prices, "cache_write_1h_mtok"),
        "web_search": _flat(prices, "web_searches_kcount"),
        "input_audio": _flat(prices, "input_audio_mtok"),
        "cache_read_audio": _flat(prices, "cache_audio_read_mtok"),
        "output_audio": _flat(prices, "output_audio_mtok"),
        "batch_input": _flat(batch, "input_mtok") if batch else None,
        "batch_output": _flat(batch, "output_mtok") if batch else None,
        "batch_cache_read": _flat(batch, "cache_read_mtok") if batch else None,
        "service_tiers": _tiers(info, now, "genai-prices", _snapshot()[1]),
        "long_context": _long_context(prices, "genai-prices", _snapshot()[1]),
    }


def update_library(from_file: str | None = None, url: str | None = None, timeout: float = 30) -> dict[str, Any]:
    """Refresh the library's data into the user's data directory, from its published URL or a file."""
    if from_file:
        origin = str(from_file)
        if not Path(from_file).exists():
            raise ConfigError(f"--from {from_file}: file not found")
        # read_utf8: a byte-order mark (Windows editors write one) is skipped, not "Unexpected UTF-8 BOM"
        text = read_utf8(from_file, "genai-prices' data.json as UTF-8 JSON")
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--from {from_file}: not a JSON file ({exc})") from None
    else:
        from genai_prices.update_prices import DEFAULT_UPDATE_URL

        origin = url or DEFAULT_UPDATE_URL
        try:
            with urllib.request.urlopen(origin, timeout=timeout) as response:
                payload = json.loads(response.read())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"cannot fetch {origin} ({exc}); offline, download that file elsewhere and run "
                "`tokenomy prices update --from FILE`"
            ) from None
    providers = _providers_from_payload(payload, origin)
    as_of = datetime.now(tz=UTC).date().isoformat()
    path = saved_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"as_of": as_of, "origin": origin, "providers": payload}))
    tmp.replace(path)  # a half-written file never replaces a good one
    reset()
    return {
        "path": str(path),
        "as_of": as_of,
        "origin": origin,
        "providers": len(providers),
        "models": sum(len(p.models) for p in providers),
    }
