"""Reading one price document (the YAML format of the shipped catalog files and of user overrides) into price
entries, checked as it loads: every place a figure, a date or a shape is wrong is an error naming it and the fix.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from tokenomy.errors import ConfigError
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
from tokenomy.pricing.lifecycle import LIFECYCLE_FIELDS, parse_lifecycle


def decimal_price(value: Any, where: str, example: str = '"0.25"') -> Decimal:
    """A price as written in a price file (LiteLLM's too): a finite number 0 or more, or an error naming `where`."""
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ConfigError(f"{where}: {value!r} is not a number; write prices like {example}") from exc
    if not result.is_finite():  # NaN/Infinity parse as Decimals but price nothing (and NaN < 0 raises)
        raise ConfigError(f"{where}: {value!r} is not a finite number; write prices like {example}")
    if result < 0:
        raise ConfigError(f"{where}: price {value} is negative; prices must be >= 0")
    return result


def whole_count(value: Any, where: str) -> int:
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
        | {"provisioned_hourly", "source", "as_of", "family", "service_tiers", *LONG_CONTEXT_BLOCKS}
        | set(LIFECYCLE_FIELDS)
    )
    unknown = set(block) - known
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known fields are {sorted(known)}")
    for name in PRICE_FIELDS:
        if block.get(name) is not None:
            kwargs[name] = decimal_price(block[name], f"{where}.{name}")
    places: dict[str, str] = {}
    for name in INT_FIELDS:
        value = block.get(name, model_info.get(name))
        if value is not None:
            place = places[name] = f"{where}.{name}" if name in block else f"{where.rsplit('.regions.', 1)[0]}.{name}"
            kwargs[name] = whole_count(value, place)
    _check_limits(kwargs.get("max_output_tokens"), kwargs.get("context_window"), places.get("max_output_tokens"))
    kwargs.update(parse_lifecycle(block, model_info, where))  # a region's dates win over the model's, as text does
    for name in TEXT_FIELDS:  # per-region text wins over the model's (e.g. a batch note for one region)
        value = block.get(name, model_info.get(name))
        if value is not None:
            kwargs[name] = str(value)
    hourly = block.get("provisioned_hourly") or {}
    bad_terms = set(map(str, hourly)) - set(TERMS)
    if bad_terms:
        raise ConfigError(f"{where}.provisioned_hourly: unknown term(s) {sorted(bad_terms)}; use none, 1m or 6m")
    kwargs["provisioned_hourly"] = {
        str(k): decimal_price(v, f"{where}.provisioned_hourly.{k}") for k, v in hourly.items()
    }
    tiers = block.get("service_tiers", model_info.get("service_tiers")) or {}
    kwargs["service_tiers"] = {
        str(name): _tier_prices(str(name), spec, f"{where}.service_tiers.{name}") for name, spec in tiers.items()
    }
    for name in LONG_CONTEXT_BLOCKS:
        spec = block.get(name, model_info.get(name))
        if spec is not None:
            kwargs[name] = _long_context_from_block(spec, f"{where}.{name}")
    batch_long = kwargs.get("batch_long_context")
    if batch_long is not None and batch_long.above_tokens != getattr(kwargs.get("long_context"), "above_tokens", None):
        # Used only over the long_context threshold (pricing/rates.long_batch_rates): one without it, or at another
        # threshold, would be read and silently never applied.
        raise ConfigError(
            f"{where}.batch_long_context: its above_tokens ({batch_long.above_tokens}) must be the long_context "
            "threshold's (the batch prices of the same long prompts); give long_context with the same above_tokens"
        )
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


# The prices over a prompt-size threshold: on demand, and in a batch where the provider publishes them (else the batch
# discount applies to the on-demand long-context prices field by field).
LONG_CONTEXT_BLOCKS = ("long_context", "batch_long_context")


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
        key: decimal_price(spec[key], f"{where}.{key}")
        for key in ("cache_read", "cache_write", "cache_write_1h")
        if spec.get(key) is not None
    }
    return LongContextPrice(
        above_tokens=threshold,
        input=decimal_price(spec["input"], f"{where}.input"),
        output=decimal_price(spec["output"], f"{where}.output"),
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
    known = {*TIER_PRICE_FIELDS, "source", "as_of", "starts", "long_context"}
    unknown = set(spec) - known
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}; known fields are {sorted(known)}")
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
        key: decimal_price(spec[key], f"{where}.{key}")
        for key in ("cache_read", "cache_write", "cache_write_1h")
        if spec.get(key) is not None
    }
    return TierPrice(
        input=decimal_price(spec["input"], f"{where}.input"),
        output=decimal_price(spec["output"], f"{where}.output"),
        source=str(spec["source"]),
        as_of=str(spec["as_of"]),
        cache_read=optional.get("cache_read"),
        cache_write=optional.get("cache_write"),
        cache_write_1h=optional.get("cache_write_1h"),
        starts=starts,
        long_context=(
            _long_context_from_block(spec["long_context"], f"{where}.long_context")
            if spec.get("long_context") is not None
            else None
        ),
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
        for name in LONG_CONTEXT_BLOCKS:
            if isinstance(info.get(name), dict):
                places.append((f"models.{model}.{name}.as_of", info[name].get("as_of")))
        for region, block in (info.get("regions") or {}).items():
            block = block if isinstance(block, dict) else {}
            places.append((f"models.{model}.regions.{region}.as_of", block.get("as_of")))
            for name in LONG_CONTEXT_BLOCKS:
                if isinstance(block.get(name), dict):
                    places.append((f"models.{model}.regions.{region}.{name}.as_of", block[name].get("as_of")))
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
    model_fields |= {"family", "source", "as_of", "regions", "service_tiers", *LONG_CONTEXT_BLOCKS, *LIFECYCLE_FIELDS}
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
        out[key] = whole_count(value, f"{origin}: batch_quotas.{key}")
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
