"""The price catalog: curated data files, user overrides, LiteLLM imports, genai-prices fallback.

Every price is a `Decimal` in USD per million tokens and carries the `source` it came from and
the `as_of` date of that source. Lookups say which layer priced the model (`priced_by`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tokenomy.errors import ConfigError, UnknownModelError

TERMS = ("none", "1m", "6m")
PRICE_FIELDS = ("input", "output", "batch_input", "batch_output", "cache_read", "cache_write")
INT_FIELDS = ("cache_min_tokens", "cache_max_checkpoints", "cache_ttl_seconds", "context_window",
              "provisioned_tpm_per_unit")

# Bedrock cross-region inference profile prefixes and the source region we assume for each when
# the caller names none (the price is that of the source region).
PROFILE_PREFIXES = {
    "us": "us-east-1", "us-gov": "us-gov-west-1", "eu": "eu-central-1", "apac": "ap-northeast-1",
    "jp": "ap-northeast-1", "au": "ap-southeast-2", "ca": "ca-central-1", "global": "us-east-1",
}
DEFAULT_REGION = {"aws.bedrock": "us-east-1", "openai": "global", "anthropic": "global", "local": "local"}


@dataclass(frozen=True)
class PriceEntry:
    """Prices of one model in one region (USD per million tokens; provisioned per hour)."""

    provider: str
    model: str
    region: str
    family: str
    source: str
    as_of: str
    priced_by: str = "tokenomy-catalog"
    currency: str = "USD"
    input: Decimal | None = None
    output: Decimal | None = None
    batch_input: Decimal | None = None
    batch_output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_min_tokens: int | None = None
    cache_max_checkpoints: int | None = None
    cache_ttl_seconds: int | None = None
    context_window: int | None = None
    provisioned_hourly: dict[str, Decimal] = field(default_factory=dict)
    provisioned_tpm_per_unit: int | None = None
    resolved_from: str | None = None  # the id the caller asked for, when it was an alias/profile

    @property
    def has_batch(self) -> bool:
        return self.batch_input is not None and self.batch_output is not None

    @property
    def has_cache(self) -> bool:
        return self.cache_read is not None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: Decimals as strings so no precision is lost."""
        out = asdict(self)
        for key, value in list(out.items()):
            if isinstance(value, Decimal):
                out[key] = str(value)
        out["provisioned_hourly"] = {k: str(v) for k, v in self.provisioned_hourly.items()}
        out["unit"] = "USD per 1M tokens (provisioned_hourly: USD per model unit per hour)"
        return out


def _decimal(value: Any, where: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ConfigError(f"{where}: {value!r} is not a number; write prices like \"0.25\"") from exc
    if result < 0:
        raise ConfigError(f"{where}: price {value} is negative; prices must be >= 0")
    return result


def _entry_from_block(provider: str, model: str, region: str, block: dict[str, Any],
                      model_info: dict[str, Any], source: str, as_of: str, priced_by: str,
                      where: str) -> PriceEntry:
    kwargs: dict[str, Any] = {}
    known = set(PRICE_FIELDS) | set(INT_FIELDS) | {"provisioned_hourly", "source", "as_of", "family"}
    unknown = set(block) - known
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known fields are {sorted(known)}")
    for name in PRICE_FIELDS:
        if block.get(name) is not None:
            kwargs[name] = _decimal(block[name], f"{where}.{name}")
    for name in INT_FIELDS:
        value = block.get(name, model_info.get(name))
        if value is not None:
            kwargs[name] = int(value)
    hourly = block.get("provisioned_hourly") or {}
    bad_terms = set(map(str, hourly)) - set(TERMS)
    if bad_terms:
        raise ConfigError(f"{where}.provisioned_hourly: unknown term(s) {sorted(bad_terms)}; use none, 1m or 6m")
    kwargs["provisioned_hourly"] = {str(k): _decimal(v, f"{where}.provisioned_hourly.{k}") for k, v in hourly.items()}
    return PriceEntry(
        provider=provider, model=model, region=region,
        family=str(block.get("family") or model_info.get("family") or model),
        source=str(block.get("source") or model_info.get("source") or source),
        as_of=str(block.get("as_of") or model_info.get("as_of") or as_of),
        priced_by=priced_by, **kwargs,
    )


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
    entries = []
    for model, info in (doc.get("models") or {}).items():
        info = info or {}
        regions = info.get("regions")
        if not regions:
            raise ConfigError(f"{origin}: models.{model}.regions is missing; give at least one region block")
        for region, block in regions.items():
            entries.append(_entry_from_block(str(provider), str(model), str(region), dict(block or {}),
                                             info, str(source), str(as_of), priced_by,
                                             f"{origin}: models.{model}.regions.{region}"))
    return entries, dict(doc.get("batch_quotas") or {})


class PriceCatalog:
    """All known prices, layered: user overrides > curated catalog > LiteLLM import > genai-prices."""

    def __init__(self, entries: list[PriceEntry], batch_quotas: dict[str, dict] | None = None,
                 use_fallback: bool = True) -> None:
        self._by_model: dict[str, dict[str, PriceEntry]] = {}
        for entry in entries:
            self._by_model.setdefault(entry.model, {})[entry.region] = entry
        self.batch_quotas = batch_quotas or {}
        self.use_fallback = use_fallback

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def builtin(cls) -> "PriceCatalog":
        entries, quotas = _builtin_entries()
        return cls(list(entries), dict(quotas))

    def with_overrides(self, path: str | Path) -> "PriceCatalog":
        """Layer a user YAML price file over this catalog (its entries win)."""
        path = Path(path)
        try:
            doc = yaml.safe_load(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: price file not found") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text; save the price file as UTF-8 YAML") from None
        entries, quotas = parse_price_document(doc, "user-override", str(path))
        merged = PriceCatalog(self.entries() + entries, dict(self.batch_quotas), self.use_fallback)
        if quotas:
            merged.batch_quotas[entries[0].provider if entries else doc["provider"]] = quotas
        return merged

    def with_litellm(self, path: str | Path) -> "PriceCatalog":
        """Import LiteLLM's model_prices_and_context_window.json (curated entries keep priority)."""
        imported = load_litellm_prices(path)
        curated = {(e.model, e.region) for e in self.entries()}
        extra = [e for e in imported if (e.model, e.region) not in curated]
        return PriceCatalog(self.entries() + extra, dict(self.batch_quotas), self.use_fallback)

    def entries(self) -> list[PriceEntry]:
        return [e for regions in self._by_model.values() for e in regions.values()]

    def models(self) -> list[str]:
        return sorted(self._by_model)

    # -- lookup -------------------------------------------------------------------------------
    def lookup(self, model: str, region: str | None = None) -> PriceEntry:
        """The price entry for `model` in `region`, resolving Bedrock profiles and ARNs."""
        if not model or not isinstance(model, str):
            raise UnknownModelError(f"model id {model!r} is empty; name a model such as 'local' "
                                    "or 'anthropic.claude-3-haiku-20240307-v1:0'")
        asked = model
        candidates = [model]
        base, profile_region = split_inference_profile(model)
        if base != model:
            candidates.append(base)
        for candidate in candidates:
            regions = self._by_model.get(candidate)
            if not regions:
                continue
            entry = self._pick_region(candidate, regions, region or profile_region)
            return entry if candidate == asked else replace(entry, resolved_from=asked)
        if self.use_fallback:
            entry = genai_prices_lookup(base)
            if entry is not None:
                return replace(entry, resolved_from=asked if base != asked else None)
        close = [m for m in self.models() if base.split(".")[-1][:12] in m][:3]
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {asked!r}: not in the price catalog nor in genai-prices.{hint} "
            "Run `tokenomy prices` to list models, or add it with a price file (--prices FILE).")

    def _pick_region(self, model: str, regions: dict[str, PriceEntry], region: str | None) -> PriceEntry:
        if region and region in regions:
            return regions[region]
        if region and region not in regions and not (len(regions) == 1 and next(iter(regions)) in ("global", "local")):
            raise UnknownModelError(
                f"model {model!r} has no price for region {region!r}; priced regions: {sorted(regions)}")
        provider = next(iter(regions.values())).provider
        default = DEFAULT_REGION.get(provider)
        if default in regions:
            return regions[default]
        return regions[sorted(regions)[0]]

    def quotas_for(self, provider: str) -> dict:
        return self.batch_quotas.get(provider, {})


def split_inference_profile(model: str) -> tuple[str, str | None]:
    """Map a Bedrock cross-region profile id or ARN to (base model id, source-region guess)."""
    if model.startswith("arn:aws"):
        # arn:aws:bedrock:REGION:ACCOUNT:inference-profile/us.anthropic... or foundation-model/...
        parts = model.split(":", 5)
        region = parts[3] if len(parts) > 3 and parts[3] else None
        tail = parts[5] if len(parts) > 5 else ""
        resource = tail.split("/", 1)[1] if "/" in tail else tail
        base, guessed = split_inference_profile(resource)
        return base, region or guessed
    head, _, rest = model.partition(".")
    if rest and head in PROFILE_PREFIXES and "." in rest:
        return rest, PROFILE_PREFIXES[head]
    return model, None


@lru_cache(maxsize=1)
def _builtin_entries() -> tuple[tuple[PriceEntry, ...], dict[str, dict]]:
    entries: list[PriceEntry] = []
    quotas: dict[str, dict] = {}
    data = resources.files("tokenomy.pricing") / "data"
    for item in sorted(data.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".yaml"):
            continue
        doc = yaml.safe_load(item.read_text())
        parsed, provider_quotas = parse_price_document(doc, "tokenomy-catalog", f"catalog/{item.name}")
        entries.extend(parsed)
        if provider_quotas:
            quotas[doc["provider"]] = provider_quotas
    return tuple(entries), quotas


LITELLM_PROVIDERS = {"bedrock": "aws.bedrock", "bedrock_converse": "aws.bedrock", "openai": "openai",
                     "anthropic": "anthropic"}


def load_litellm_prices(path: str | Path) -> list[PriceEntry]:
    """Read LiteLLM's model_prices_and_context_window.json into entries (USD per token → per 1M)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read LiteLLM price file ({exc})") from exc
    as_of = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc).date().isoformat()
    million = Decimal(1_000_000)
    entries = []
    for name, spec in doc.items():
        if name == "sample_spec" or not isinstance(spec, dict):
            continue
        if spec.get("mode") not in (None, "chat", "completion"):
            continue
        if spec.get("input_cost_per_token") is None or spec.get("output_cost_per_token") is None:
            continue

        def per_m(key: str) -> Decimal | None:
            value = spec.get(key)
            return None if value is None else (Decimal(str(value)) * million).normalize()

        model = name.split("/")[-1] if "/" in name else name
        entries.append(PriceEntry(
            provider=LITELLM_PROVIDERS.get(str(spec.get("litellm_provider")), str(spec.get("litellm_provider") or "unknown")),
            model=model, region="global", family=model, source=f"litellm:{path.name}", as_of=as_of,
            priced_by="litellm-import", input=per_m("input_cost_per_token"), output=per_m("output_cost_per_token"),
            batch_input=per_m("input_cost_per_token_batches"), batch_output=per_m("output_cost_per_token_batches"),
            cache_read=per_m("cache_read_input_token_cost"), cache_write=per_m("cache_creation_input_token_cost"),
            context_window=spec.get("max_input_tokens") or spec.get("max_tokens"),
        ))
    return entries


def genai_prices_lookup(model: str) -> PriceEntry | None:
    """Price a model the curated catalog lacks from the genai-prices snapshot, if it knows it."""
    try:
        from genai_prices import data_snapshot
    except ImportError:  # pragma: no cover - it is a declared dependency
        return None
    snapshot = data_snapshot.get_snapshot()
    try:
        provider, info = snapshot.find_provider_model(model, None, None, None)
    except Exception:  # genai-prices raises LookupError/ValueError variants for unknown models
        return None
    prices = info.get_prices(datetime.now(tz=timezone.utc))

    def flat(name: str) -> Decimal | None:
        value = getattr(prices, name, None)
        return value if isinstance(value, Decimal) else (Decimal(str(value)) if isinstance(value, (int, float)) else None)

    if flat("input_mtok") is None or flat("output_mtok") is None:
        return None
    return PriceEntry(
        provider=str(provider.id), model=model, region="global", family=info.id,
        source=f"genai-prices {getattr(snapshot, 'version', '') or ''} ({provider.pricing_urls[0] if getattr(provider, 'pricing_urls', None) else provider.id})".replace("  ", " "),
        as_of=_genai_prices_date(), priced_by="genai-prices",
        input=flat("input_mtok"), output=flat("output_mtok"),
        cache_read=flat("cache_read_mtok"), cache_write=flat("cache_write_mtok"),
        context_window=info.context_window,
    )


def _genai_prices_date() -> str:
    try:
        from importlib.metadata import version
        return f"genai-prices {version('genai-prices')} snapshot"
    except Exception:  # pragma: no cover
        return "unknown"


_DEFAULT: PriceCatalog | None = None


def default_catalog() -> PriceCatalog:
    """The process-wide catalog: built-in data plus TOKENOMY_PRICES overrides if set."""
    global _DEFAULT
    if _DEFAULT is None:
        import os
        catalog = PriceCatalog.builtin()
        override = os.environ.get("TOKENOMY_PRICES")
        if override:
            catalog = catalog.with_overrides(override)
        _DEFAULT = catalog
    return _DEFAULT


def set_default_catalog(catalog: PriceCatalog | None) -> None:
    """Replace (or reset with None) the process-wide catalog, e.g. after --prices FILE."""
    global _DEFAULT
    _DEFAULT = catalog
