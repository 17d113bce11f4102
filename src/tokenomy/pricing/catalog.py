"""The price catalog: curated data files, user overrides, LiteLLM imports, genai-prices fallback.

Every price is a `Decimal` in USD per million tokens and carries the `source` it came from and
the `as_of` date of that source. Lookups say which layer priced the model (`priced_by`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tokenomy.errors import ConfigError, UnknownModelError, read_utf8, yaml_problem
from tokenomy.pricing.entry import (
    INT_FIELDS,
    LONG_CONTEXT_PRICE_FIELDS,
    PRICE_FIELDS,
    SERVICE_TIERS,
    TERMS,
    TEXT_FIELDS,
    TIER_PRICE_FIELDS,
    LongContextPrice,
    PriceEntry,
    TierPrice,
)
from tokenomy.pricing.identifiers import PROFILE_PREFIXES, alias_candidates, parse_model_id, split_inference_profile
from tokenomy.yaml_text import load_yaml

# Re-exported: callers import these from the catalog.
__all__ = [
    "PRICE_FIELDS",
    "PROFILE_PREFIXES",
    "TERMS",
    "PriceCatalog",
    "PriceEntry",
    "default_catalog",
    "load_litellm_prices",
    "parse_price_document",
    "set_default_catalog",
    "split_inference_profile",
]

FOUND_CACHE_SIZE = 4096  # resolved (model, region) pairs a catalog keeps
DEFAULT_REGION = {"aws.bedrock": "us-east-1", "openai": "global", "anthropic": "global", "local": "local"}


def _decimal(value: Any, where: str, example: str = '"0.25"') -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ConfigError(f"{where}: {value!r} is not a number; write prices like {example}") from exc
    if not result.is_finite():  # NaN/Infinity parse as Decimals but price nothing (and NaN < 0 raises)
        raise ConfigError(f"{where}: {value!r} is not a finite number; write prices like {example}")
    if result < 0:
        raise ConfigError(f"{where}: price {value} is negative; prices must be >= 0")
    return result


def _whole(value: Any, where: str) -> int:
    """A count from a price file (cache_min_tokens, context_window, ...): a whole number 0 or more. int() turned
    "abc" into a traceback, 1.5 and true into 1, and kept -5."""
    if not isinstance(value, bool):
        try:
            number = Decimal(str(value))
        except (InvalidOperation, ValueError):
            number = None
        if number is not None and number.is_finite() and number >= 0 and number == number.to_integral_value():
            return int(number)
    raise ConfigError(f"{where}: {value!r} is not a whole number 0 or more; write counts like 1024")


def _entry_from_block(
    provider: str,
    model: str,
    region: str,
    block: dict[str, Any],
    model_info: dict[str, Any],
    source: str,
    as_of: str,
    priced_by: str,
    where: str,
) -> PriceEntry:
    kwargs: dict[str, Any] = {}
    known = (
        set(PRICE_FIELDS)
        | set(INT_FIELDS)
        | set(TEXT_FIELDS)
        | {"provisioned_hourly", "source", "as_of", "family", "service_tiers", "long_context"}
    )
    unknown = set(block) - known
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known fields are {sorted(known)}")
    for name in PRICE_FIELDS:
        if block.get(name) is not None:
            kwargs[name] = _decimal(block[name], f"{where}.{name}")
    places: dict[str, str] = {}
    for name in INT_FIELDS:
        value = block.get(name, model_info.get(name))
        if value is not None:
            place = places[name] = f"{where}.{name}" if name in block else f"{where.rsplit('.regions.', 1)[0]}.{name}"
            kwargs[name] = _whole(value, place)
    _check_limits(kwargs.get("max_output_tokens"), kwargs.get("context_window"), places.get("max_output_tokens"))
    for name in TEXT_FIELDS:  # per-region text wins over the model's (e.g. a batch note for one region)
        value = block.get(name, model_info.get(name))
        if value is not None:
            kwargs[name] = str(value)
    hourly = block.get("provisioned_hourly") or {}
    bad_terms = set(map(str, hourly)) - set(TERMS)
    if bad_terms:
        raise ConfigError(f"{where}.provisioned_hourly: unknown term(s) {sorted(bad_terms)}; use none, 1m or 6m")
    kwargs["provisioned_hourly"] = {str(k): _decimal(v, f"{where}.provisioned_hourly.{k}") for k, v in hourly.items()}
    tiers = block.get("service_tiers", model_info.get("service_tiers")) or {}
    kwargs["service_tiers"] = {
        str(name): _tier_prices(str(name), spec, f"{where}.service_tiers.{name}") for name, spec in tiers.items()
    }
    long_context = block.get("long_context", model_info.get("long_context"))
    if long_context is not None:
        kwargs["long_context"] = _long_context_from_block(long_context, f"{where}.long_context")
    return PriceEntry(
        provider=provider,
        model=model,
        region=region,
        family=str(block.get("family") or model_info.get("family") or model),
        source=str(block.get("source") or model_info.get("source") or source),
        as_of=str(block.get("as_of") or model_info.get("as_of") or as_of),
        priced_by=priced_by,
        **kwargs,
    )


def _check_limits(most: int | None, window: int | None, where: str | None) -> None:
    """A model's maximum output (which a budget reserves an uncapped call at) is 1 token or more, and no more than its
    context window: the prompt and the answer share the window."""
    if most is None:
        return
    if most < 1:
        raise ConfigError(
            f"{where}: {most} is not a number of tokens above 0; write the most output one call may write, as the "
            "provider documents it, or leave the field out"
        )
    if window is not None and most > window:
        raise ConfigError(
            f"{where}: {most} is more than the model's context_window ({window}), which the prompt and the answer "
            "share; check both figures against the provider's documentation"
        )


def _long_context_from_block(spec: Any, where: str) -> LongContextPrice:
    """Prices over a prompt-size threshold: above_tokens, input, output, source and as_of are required."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping such as {{above_tokens: 200000, input: ..., output: ...}}")
    known = {"above_tokens", "source", "as_of", *LONG_CONTEXT_PRICE_FIELDS}
    unknown = set(spec) - known
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known fields are {sorted(known)}")
    missing = [key for key in ("above_tokens", "input", "output", "source", "as_of") if spec.get(key) in (None, "")]
    if missing:
        raise ConfigError(
            f"{where}: {', '.join(missing)} required (a long-context price carries its threshold, figures, "
            "source and date)"
        )
    threshold = spec["above_tokens"]
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold <= 0:
        raise ConfigError(f"{where}.above_tokens: {threshold!r} is not a whole number of tokens above 0")
    optional = {
        key: _decimal(spec[key], f"{where}.{key}")
        for key in ("cache_read", "cache_write", "cache_write_1h")
        if spec.get(key) is not None
    }
    return LongContextPrice(
        above_tokens=threshold,
        input=_decimal(spec["input"], f"{where}.input"),
        output=_decimal(spec["output"], f"{where}.output"),
        source=str(spec["source"]),
        as_of=str(spec["as_of"]),
        **optional,
    )


def _tier_prices(name: str, spec: Any, where: str) -> TierPrice:
    """A service tier's prices: one mapping, or a list of them where the provider announced a change ahead: the
    first in effect now, each later one with the day it `starts` (after the one before it)."""
    if not isinstance(spec, list):
        return _tier_from_block(name, dict(spec or {}), where)
    if not spec or not all(isinstance(item, dict) for item in spec):
        raise ConfigError(
            f"{where}: expected a mapping of prices, or a list of them with `starts` on each after the first, "
            f"not {spec!r}"
        )
    prices = [_tier_from_block(name, dict(item), f"{where}[{i}]") for i, item in enumerate(spec)]
    if prices[0].starts is not None:
        raise ConfigError(f"{where}[0].starts: the first price is the one in effect now; leave starts out of it")
    for i, price in enumerate(prices[1:], start=1):
        before = prices[i - 1].starts
        if price.starts is None:
            raise ConfigError(f"{where}[{i}]: starts required (the UTC day this price replaces the one before it)")
        if before is not None and price.starts <= before:
            raise ConfigError(f"{where}[{i}].starts: {price.starts} is not after {before}; list prices in date order")
    return replace(prices[0], changes=tuple(prices[1:]))


def _tier_from_block(name: str, spec: dict[str, Any], where: str) -> TierPrice:
    """One service tier's prices: input and output are required, and so are its own source and as_of."""
    if name not in SERVICE_TIERS:
        raise ConfigError(f"{where}: unknown service tier {name!r}; use one of {', '.join(SERVICE_TIERS)}")
    unknown = set(spec) - set(TIER_PRICE_FIELDS) - {"source", "as_of", "starts"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown field(s) {sorted(unknown)}; known fields are "
            f"{sorted(set(TIER_PRICE_FIELDS) | {'source', 'as_of', 'starts'})}"
        )
    starts = spec.get("starts")
    if starts is not None:
        try:
            starts = (starts if isinstance(starts, date) else date.fromisoformat(str(starts))).isoformat()
        except ValueError:
            raise ConfigError(
                f"{where}.starts: {starts!r} is not a date; write the day the price takes effect as YYYY-MM-DD"
            ) from None
    missing = [key for key in ("input", "output", "source", "as_of") if spec.get(key) in (None, "")]
    if missing:
        raise ConfigError(f"{where}: {', '.join(missing)} required (a tier price carries its figures, source and date)")
    optional = {
        key: _decimal(spec[key], f"{where}.{key}") for key in ("cache_read", "cache_write") if spec.get(key) is not None
    }
    return TierPrice(
        input=_decimal(spec["input"], f"{where}.input"),
        output=_decimal(spec["output"], f"{where}.output"),
        source=str(spec["source"]),
        as_of=str(spec["as_of"]),
        cache_read=optional.get("cache_read"),
        cache_write=optional.get("cache_write"),
        starts=starts,
    )


def _check_shape(doc: dict[str, Any], origin: str) -> None:
    """`models:`, each model's `regions:` and each region's prices are mappings: a list or a text there was an
    AttributeError ('list' object has no attribute 'items') or ValueError traceback, not a line naming the place."""
    models = doc.get("models")
    models = {} if models is None else models  # `models: []` or `""` is not "no models": it is named below
    if not isinstance(models, dict):
        raise ConfigError(f"{origin}: models: expected a mapping of model id -> {{regions: ...}}, not {models!r}")
    for model, info in models.items():
        if not isinstance(info, dict):
            continue  # parse_price_document names it ("expected a mapping with regions:")
        regions = info.get("regions") or {}
        if not isinstance(regions, dict):
            raise ConfigError(
                f"{origin}: models.{model}.regions: expected a mapping of region -> {{input: ..., output: ...}}, "
                f"not {regions!r}"
            )
        for region, block in regions.items():
            if block is not None and not isinstance(block, dict):
                raise ConfigError(
                    f"{origin}: models.{model}.regions.{region}: expected a mapping of prices "
                    f'({{input: "0.25", output: "1.25"}}), not {block!r}'
                )
            for where, tiers in ((f"models.{model}", info), (f"models.{model}.regions.{region}", block or {})):
                if tiers.get("service_tiers") is not None and not isinstance(tiers["service_tiers"], dict):
                    raise ConfigError(
                        f"{origin}: {where}.service_tiers: expected a mapping of tier -> prices, "
                        f"not {tiers['service_tiers']!r}"
                    )


def _check_dates(doc: dict[str, Any], origin: str) -> None:
    """Every `as_of` in a price document is a date (YYYY-MM-DD): a price's age is read from it, and "as of
    notadate" would say nothing about how current the price is."""
    places = [("as_of", doc.get("as_of"))]
    for model, info in (doc.get("models") or {}).items():
        info = info if isinstance(info, dict) else {}
        places.append((f"models.{model}.as_of", info.get("as_of")))
        if isinstance(info.get("long_context"), dict):
            places.append((f"models.{model}.long_context.as_of", info["long_context"].get("as_of")))
        for region, block in (info.get("regions") or {}).items():
            block = block if isinstance(block, dict) else {}
            places.append((f"models.{model}.regions.{region}.as_of", block.get("as_of")))
            if isinstance(block.get("long_context"), dict):
                places.append(
                    (f"models.{model}.regions.{region}.long_context.as_of", block["long_context"].get("as_of"))
                )
            for tier, spec in (block.get("service_tiers") or info.get("service_tiers") or {}).items():
                where = f"models.{model}.regions.{region}.service_tiers.{tier}"
                if isinstance(spec, dict):
                    places.append((f"{where}.as_of", spec.get("as_of")))
                elif isinstance(spec, list):  # a price that changes on a date ahead: each was read by today
                    places += [
                        (f"{where}[{i}].as_of", p.get("as_of")) for i, p in enumerate(spec) if isinstance(p, dict)
                    ]
    latest = datetime.now(UTC).date() + timedelta(days=1)  # a day's grace for a file written east of UTC
    for where, value in places:
        if value in (None, ""):
            continue
        try:
            day = value if isinstance(value, date) else date.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(
                f"{origin}: {where}: {value!r} is not a date; write the day the price was read as YYYY-MM-DD"
            ) from None
        if day > latest:  # a date to come would make the price look current for years (no stale-price warning)
            raise ConfigError(f"{origin}: {where}: {day} is in the future; write the day the price was read")


def parse_price_document(doc: dict[str, Any], priced_by: str, origin: str) -> tuple[list[PriceEntry], dict]:
    """Parse one catalog document (the shipped files and user overrides share this format)."""
    if not isinstance(doc, dict) or "models" not in doc:
        raise ConfigError(f"{origin}: expected a mapping with 'provider', 'source', 'as_of' and 'models'")
    provider = doc.get("provider")
    source = doc.get("source")
    as_of = doc.get("as_of")
    for key, value in (("provider", provider), ("source", source), ("as_of", as_of)):
        if not value:
            raise ConfigError(f"{origin}: top-level '{key}' is required (every price carries its source and date)")
        if isinstance(value, (dict, list)):  # would be priced by "['openai']", its Python repr
            raise ConfigError(f"{origin}: top-level '{key}' {value!r} must be text, e.g. {key}: openai")
    _check_shape(doc, origin)
    _check_dates(doc, origin)
    entries = []
    model_fields = set(INT_FIELDS) | set(TEXT_FIELDS)
    model_fields |= {"family", "source", "as_of", "regions", "service_tiers", "long_context"}
    for model, info in (doc.get("models") or {}).items():
        info = info or {}
        if not isinstance(info, dict):
            raise ConfigError(f"{origin}: models.{model}: expected a mapping with regions:, not {info!r}")
        unknown = set(info) - model_fields
        if unknown:
            # A price written beside `regions:` instead of inside a region would be dropped, and the model priced at $0.
            raise ConfigError(
                f"{origin}: models.{model}: unknown field(s) {sorted(unknown)}; prices go in a region block "
                f"(models.{model}.regions.<region>: {{input: ..., output: ...}}); fields of a model are "
                f"{sorted(model_fields)}"
            )
        regions = info.get("regions")
        if not regions:
            raise ConfigError(f"{origin}: models.{model}.regions is missing; give at least one region block")
        for region, block in regions.items():
            entries.append(
                _entry_from_block(
                    str(provider),
                    str(model),
                    str(region),
                    dict(block or {}),
                    info,
                    str(source),
                    str(as_of),
                    priced_by,
                    f"{origin}: models.{model}.regions.{region}",
                )
            )
    return entries, _batch_quotas(doc.get("batch_quotas"), origin)


BATCH_QUOTAS = (
    "min_records_per_job",
    "max_records_per_file",
    "max_records_per_job",
    "max_bytes_per_file",
    "max_bytes_per_job",
)


def _batch_quotas(quotas: Any, origin: str) -> dict[str, Any]:
    """`batch_quotas:` checked when the file loads: a count that was not a whole number ended `batch validate` in
    int()'s traceback, long after the file loaded."""
    if quotas is None:
        return {}
    if not isinstance(quotas, dict):
        raise ConfigError(f"{origin}: batch_quotas: expected a mapping of quota name to count, not {quotas!r}")
    out: dict[str, Any] = {}
    for key, value in quotas.items():
        if key == "source":
            out[key] = value
            continue
        if key not in BATCH_QUOTAS:
            raise ConfigError(
                f"{origin}: batch_quotas.{key}: not a batch quota; known quotas are {', '.join(BATCH_QUOTAS)}, source"
            )
        out[key] = _whole(value, f"{origin}: batch_quotas.{key}")
        if key.startswith("max_") and out[key] < 1:
            raise ConfigError(f"{origin}: batch_quotas.{key}: {value!r} must be 1 or more")
    return out


def parse_aliases(doc: dict[str, Any], origin: str) -> dict[str, str]:
    """`aliases: {ID: MODEL}`: ids the catalog should price as another model (application inference
    profile ARNs, deployment names)."""
    aliases = doc.get("aliases") or {}
    if not isinstance(aliases, dict) or not all(isinstance(v, str) and v for v in aliases.values()):
        raise ConfigError(
            f"{origin}: aliases must map an id to the model id to price it as, e.g. "
            "aliases: {{arn:aws:bedrock:...:application-inference-profile/abc: us.anthropic....}}"
        )
    return {str(k): str(v) for k, v in aliases.items()}


class PriceCatalog:
    """All known prices, layered: user overrides > curated catalog > LiteLLM import > genai-prices."""

    def __init__(
        self,
        entries: list[PriceEntry],
        batch_quotas: dict[str, dict] | None = None,
        use_fallback: bool = True,
        aliases: dict[str, str] | None = None,
    ) -> None:
        self._by_model: dict[str, dict[str, PriceEntry]] = {}
        for entry in entries:
            self._by_model.setdefault(entry.model, {})[entry.region] = entry
        self.batch_quotas = batch_quotas or {}
        self.use_fallback = use_fallback
        self.aliases = dict(aliases or {})
        # (model, region) -> what `lookup` found. A catalog's prices never change after it is built (a price file
        # makes a new one), and resolving an id scans every known model's name: ~15 us, on every priced call.
        self._found: dict[tuple[str, str | None], PriceEntry] = {}

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def builtin(cls) -> PriceCatalog:
        entries, quotas = _builtin_entries()
        return cls(list(entries), dict(quotas))

    def with_overrides(self, path: str | Path) -> PriceCatalog:
        """Layer a user YAML price file over this catalog (its entries win)."""
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: price file not found")
        try:
            doc = load_yaml(read_utf8(path, "a price file as UTF-8 YAML"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML at {yaml_problem(exc)}") from exc
        entries, quotas = parse_price_document(doc, "user-override", str(path))
        merged = PriceCatalog(
            self.entries() + entries,
            dict(self.batch_quotas),
            self.use_fallback,
            {**self.aliases, **parse_aliases(doc, str(path))},
        )
        if quotas:
            merged.batch_quotas[entries[0].provider if entries else doc["provider"]] = quotas
        return merged

    def with_litellm(self, path: str | Path) -> PriceCatalog:
        """Import LiteLLM's model_prices_and_context_window.json (curated entries keep priority)."""
        imported = load_litellm_prices(path)
        curated = {(e.model, e.region) for e in self.entries()}
        extra = [e for e in imported if (e.model, e.region) not in curated]
        return PriceCatalog(self.entries() + extra, dict(self.batch_quotas), self.use_fallback, self.aliases)

    def entries(self) -> list[PriceEntry]:
        return [e for regions in self._by_model.values() for e in regions.values()]

    def models(self) -> list[str]:
        return sorted(self._by_model)

    # -- lookup -------------------------------------------------------------------------------
    def lookup(self, model: str, region: str | None = None) -> PriceEntry:
        """The price entry for `model` in `region`: profiles, ARNs, aliases resolved; the library as fallback."""
        if not isinstance(model, str) or not isinstance(region, (str, type(None))):
            return self._resolve(model, region)  # which names what is wrong
        found = self._found.get((model, region))
        if found is None:
            found = self._resolve(model, region)
            if len(self._found) >= FOUND_CACHE_SIZE:  # a library caller probing many ids: start over, never grow
                self._found.clear()
            self._found[(model, region)] = found
        return found

    def _resolve(self, model: str, region: str | None) -> PriceEntry:
        if not model or not isinstance(model, str):
            raise UnknownModelError(
                f"model id {model!r} is empty; name a model such as 'local' or 'anthropic.claude-3-haiku-20240307-v1:0'"
            )
        asked = model
        ref = parse_model_id(self.aliases.get(model, model))
        candidates = [c for c in (ref.profiled, ref.base) if c in self._by_model]
        if not candidates:
            known = list(self._by_model)
            # A profile's own entries first (global. prices differ from in-region ones), then the bare id's.
            candidates = alias_candidates(ref.profiled, known) if ref.profile else []
            candidates += [c for c in alias_candidates(ref.base, known) if c not in candidates]
        for candidate in candidates:
            regions = self._by_model.get(candidate)
            if regions:
                entry = self._pick_region(candidate, regions, region or ref.region)
                return entry if candidate == asked else replace(entry, resolved_from=asked)
        if self.use_fallback:
            from tokenomy.pricing.library import library_entry

            found = library_entry(ref, region)
            if found is not None:
                return replace(found, resolved_from=asked if ref.base != asked else None)
        close = [m for m in self.models() if ref.base.split(".")[-1][:12] in m][:3]
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {asked!r}: not in the price catalog nor in genai-prices.{hint} "
            "Run `tokenomy prices` to list models, or add it with a price file (TOKENOMY_PRICES=FILE, or --prices FILE "
            "where a command takes it)."
        )

    def knows(self, model: str) -> bool:
        """Whether `model` has a price here or in the library, in some region (a probe: nothing is logged)."""
        try:
            self.lookup(model)
        except UnknownModelError:
            return False
        return True

    def _pick_region(self, model: str, regions: dict[str, PriceEntry], region: str | None) -> PriceEntry:
        if region and region in regions:
            return regions[region]
        # One price everywhere: a global profile, a first-party API, the local model.
        for anywhere in ("global", "local"):
            if anywhere in regions:
                return regions[anywhere]
        if region:
            raise UnknownModelError(
                f"model {model!r} has no price for region {region!r}; priced regions: {sorted(regions)}. "
                "If it is sold there, add the price with a price file (--prices FILE)."
            )
        provider = next(iter(regions.values())).provider
        default = DEFAULT_REGION.get(provider)
        if default in regions:
            return regions[default]
        return regions[sorted(regions)[0]]

    def quotas_for(self, provider: str) -> dict:
        return self.batch_quotas.get(provider, {})


@lru_cache(maxsize=1)
def _builtin_entries() -> tuple[tuple[PriceEntry, ...], dict[str, dict]]:
    entries: list[PriceEntry] = []
    quotas: dict[str, dict] = {}
    data = resources.files("tokenomy.pricing") / "data"
    for item in sorted(data.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".yaml"):
            continue
        doc = load_yaml(item.read_text())
        parsed, provider_quotas = parse_price_document(doc, "tokenomy-catalog", f"catalog/{item.name}")
        entries.extend(parsed)
        if provider_quotas:
            quotas[doc["provider"]] = provider_quotas
    return tuple(entries), quotas


LITELLM_PROVIDERS = {
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "openai": "openai",
    "anthropic": "anthropic",
}


def load_litellm_prices(path: str | Path) -> list[PriceEntry]:
    """Read LiteLLM's model_prices_and_context_window.json into entries (USD per token → per 1M)."""
    path = Path(path)
    text = read_utf8(path, "LiteLLM's model_prices_and_context_window.json as UTF-8 JSON")  # a BOM skipped
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: cannot read LiteLLM price file ({exc})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{path}: a LiteLLM price file is a JSON object of model name -> prices, not a {type(doc).__name__}; "
            "give LiteLLM's model_prices_and_context_window.json"
        )
    as_of = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC).date().isoformat()
    million = Decimal(1_000_000)
    entries = []
    for name, spec in doc.items():
        if name == "sample_spec" or not isinstance(spec, dict):
            continue
        if spec.get("mode") not in (None, "chat", "completion", "embedding"):  # what the gateway serves
            continue
        if spec.get("input_cost_per_token") is None or spec.get("output_cost_per_token") is None:
            continue

        def per_m(key: str, spec: dict[str, Any] = spec, name: str = name) -> Decimal | None:
            # Checked as the YAML price files are: a number, finite, not negative; the error names file and entry.
            value = spec.get(key)
            return (
                None if value is None else (_decimal(value, f"{path}: {name}.{key}", "1.5e-07") * million).normalize()
            )

        model = name.split("/")[-1] if "/" in name else name
        entries.append(
            PriceEntry(
                provider=LITELLM_PROVIDERS.get(
                    str(spec.get("litellm_provider")), str(spec.get("litellm_provider") or "unknown")
                ),
                model=model,
                region="global",
                family=model,
                source=f"litellm:{path.name}",
                as_of=as_of,
                priced_by="litellm-import",
                input=per_m("input_cost_per_token"),
                output=per_m("output_cost_per_token"),
                batch_input=per_m("input_cost_per_token_batches"),
                batch_output=per_m("output_cost_per_token_batches"),
                cache_read=per_m("cache_read_input_token_cost"),
                cache_write=per_m("cache_creation_input_token_cost"),
                context_window=spec.get("max_input_tokens") or spec.get("max_tokens"),
                # LiteLLM's own figure for the most a call writes (its `max_tokens` is older and ambiguous): a budget
                # reserves an uncapped call at it.
                max_output_tokens=_litellm_count(spec, "max_output_tokens", f"{path}: {name}.max_output_tokens"),
                limits_source=f"litellm:{path.name}" if spec.get("max_output_tokens") is not None else None,
            )
        )
    return entries


def _litellm_count(spec: dict[str, Any], key: str, where: str) -> int | None:
    """A token count of a LiteLLM entry, checked as the price files' are (a whole number, not a bool), or None. A
    limit of 0 would reserve no output at all: it is read as not known."""
    value = spec.get(key)
    if value is None:
        return None
    return _whole(value, where) or None


_DEFAULT: PriceCatalog | None = None


def default_catalog() -> PriceCatalog:
    """The process-wide catalog: built-in data plus TOKENOMY_PRICES overrides if set."""
    global _DEFAULT
    if _DEFAULT is None:
        import os

        catalog = PriceCatalog.builtin()
        override = os.environ.get("TOKENOMY_PRICES")
        if override:
            try:
                catalog = catalog.with_overrides(override)
            except ConfigError as exc:  # "x.yaml: price file not found" did not say where x.yaml was named
                raise ConfigError(f"TOKENOMY_PRICES: {exc}; fix the file, or point TOKENOMY_PRICES elsewhere") from None
        _DEFAULT = catalog
    return _DEFAULT


def set_default_catalog(catalog: PriceCatalog | None) -> None:
    """Replace (or reset with None) the process-wide catalog, e.g. after --prices FILE."""
    global _DEFAULT
    _DEFAULT = catalog
