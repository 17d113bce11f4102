"""The price catalog: curated data files, user overrides, LiteLLM imports, genai-prices fallback.

Every price is a `Decimal` in USD per million tokens and carries the `source` it came from and
the `as_of` date of that source. Lookups say which layer priced the model (`priced_by`). A price file is read
and checked by `pricing.price_document`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from tokenomy.errors import ConfigError, UnknownModelError, price_file, read_utf8, yaml_problem
from tokenomy.pricing.entry import PRICE_FIELDS, TERMS, PriceEntry
from tokenomy.pricing.identifiers import (
    PROFILE_PREFIXES,
    ModelRef,
    alias_candidates,
    parse_model_id,
    split_inference_profile,
)
from tokenomy.pricing.price_document import decimal_price, parse_aliases, parse_price_document, whole_count
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
    "set_default_catalog",
    "split_inference_profile",
]

FOUND_CACHE_SIZE = 4096  # resolved (model, region) pairs a catalog keeps
DEFAULT_REGION = {"aws.bedrock": "us-east-1", "openai": "global", "anthropic": "global", "local": "local"}


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
        """Import LiteLLM's model_prices_and_context_window.json for the models this catalog does not price.

        An entry is skipped where a lookup of its id here would find a model (its `us.`/`eu.`/`global.` profile
        resolved to the base model, an alias, in any region): LiteLLM files every price under region `global`, and
        its `anthropic.…` or `us.anthropic.…` entry would otherwise be found before the per-region prices."""
        imported = load_litellm_prices(path)
        known = self.entries()
        # Its Claude models get the catalog's tool use system prompt counts, as genai-prices' do.
        extra = [with_claude_tool_prompt(e, known, LITELLM_LACKS) for e in imported if not self._candidates(e.model)]
        return PriceCatalog(known + extra, dict(self.batch_quotas), self.use_fallback, self.aliases)

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
                f"model id {model!r} is empty; name a model such as 'local' or "
                "'anthropic.claude-haiku-4-5-20251001-v1:0'"
            )
        asked = model
        ref = parse_model_id(self.aliases.get(model, model))
        for candidate in self._candidates(model):
            entry = self._pick_region(
                candidate, self._by_model[candidate], region or ref.region, ref if region is None else None
            )
            return entry if candidate == asked else replace(entry, resolved_from=asked)
        if self.use_fallback:
            from tokenomy.pricing.library import library_entry

            found = library_entry(ref, region)
            if found is not None:
                found = with_claude_tool_prompt(found, self.entries())
                return replace(found, resolved_from=asked if ref.base != asked else None)
        close = [m for m in self.models() if ref.base.split(".")[-1][:12] in m][:3]
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {asked!r}: not in the price catalog nor in genai-prices.{hint} "
            f"Run `tokenomy prices` to list models, or add it with {price_file()}."
        )

    def _candidates(self, model: str) -> list[str]:
        """The priced ids `model` may stand for here, best first: itself or its profile's base model, else aliases."""
        ref = parse_model_id(self.aliases.get(model, model))
        candidates = [c for c in (ref.profiled, ref.base) if c in self._by_model]
        if not candidates:
            known = list(self._by_model)
            # A profile's own entries first (global. prices differ from in-region ones), then the bare id's.
            candidates = alias_candidates(ref.profiled, known) if ref.profile else []
            candidates += [c for c in alias_candidates(ref.base, known) if c not in candidates]
        return [c for c in candidates if self._by_model.get(c)]

    def knows(self, model: str) -> bool:
        """Whether `model` has a price here or in the library, in some region (a probe: nothing is logged)."""
        try:
            self.lookup(model)
        except UnknownModelError:
            return False
        return True

    def _pick_region(
        self, model: str, regions: dict[str, PriceEntry], region: str | None, profiled: ModelRef | None = None
    ) -> PriceEntry:
        """`profiled`: the id asked, where `region` is only its inference profile's assumed source region."""
        if region and region in regions:
            return regions[region]
        # One price everywhere: a global profile, a first-party API, the local model.
        for anywhere in ("global", "local"):
            if anywhere in regions:
                return regions[anywhere]
        if region and profiled is not None and profiled.profile is not None and profiled.region == region:
            raise UnknownModelError(_profile_unpriced(model, regions, profiled))
        if region:
            raise UnknownModelError(
                f"model {model!r} has no price for region {region!r}; priced regions: {sorted(regions)}. "
                f"If it is sold there, add the price with {price_file()}."
            )
        provider = next(iter(regions.values())).provider
        default = DEFAULT_REGION.get(provider)
        if default in regions:
            return regions[default]
        return regions[sorted(regions)[0]]

    def quotas_for(self, provider: str) -> dict:
        return self.batch_quotas.get(provider, {})


# Why a Claude model's tool prompt counts were borrowed from the catalog's (with_claude_tool_prompt).
LIBRARY_LACKS = "genai-prices has none"
# LiteLLM's file has one `tool_use_system_prompt_tokens` figure on some Claude models: no count for tool_choice any or
# tool (the larger one), and older than Anthropic's current table; the catalog's figures are read instead.
LITELLM_LACKS = "LiteLLM's price file has none by tool_choice"
# A Claude model's line: "opus" of claude-3-opus-latest, claude-opus-4-7 and claude-3.5-opus alike; none of claude-2.
_CLAUDE_LINE = re.compile(r"claude-(?:\d+(?:[.-]\d+)*-)?([a-z]+)")


def with_claude_tool_prompt(
    entry: PriceEntry, entries: Iterable[PriceEntry], lacking: str = LIBRARY_LACKS
) -> PriceEntry:
    """`entry`, a model priced by a source without Claude's tool use system prompt counts (genai-prices, a LiteLLM
    import), with them where it is a Claude model: a budget would otherwise reserve a call with tools without the
    ~300-800 tokens Anthropic and Bedrock bill for it. The counts are the largest of `entries`' Claude models of its
    line (Anthropic's table gives them per model; a model it does not list has its line's largest), or of every
    Claude model when none of its line has one. (Never the same model's: both sources reach only models the catalog's
    own lookup does not find, under any profile or alias.) `lacking` says why they were borrowed. Another model, or
    one with counts, is returned as it is."""
    if "claude" not in entry.family or entry.tool_prompt_tokens_any is not None:
        return entry
    asked = _CLAUDE_LINE.search(entry.family)
    line = asked.group(1) if asked else None
    counted = [e for e in entries if "claude" in e.family and e.tool_prompt_tokens_any is not None]
    own = [e for e in counted if (found := _CLAUDE_LINE.search(e.family)) and found.group(1) == line]
    pool = own or counted
    if not pool:
        return entry
    best = max(pool, key=lambda e: (e.tool_prompt_tokens_any or 0, e.tool_prompt_tokens_auto or 0))
    group = f"Claude {line} models" if own else "Claude models"
    whose = f"the largest of the catalog's {group}"
    return replace(
        entry,
        tool_prompt_tokens_auto=best.tool_prompt_tokens_auto,
        tool_prompt_tokens_any=best.tool_prompt_tokens_any,
        tool_prompt_source=f"{lacking}: {whose} ({best.model}'s: {best.tool_prompt_source})",
    )


def _profile_unpriced(model: str, regions: dict[str, PriceEntry], ref: ModelRef) -> str:
    """Why a geographic inference profile (`eu.`, `apac.`, ...) of a model the catalog prices in other regions is
    refused: AWS bills a profile's call at the price of the region it is sent from and publishes prices region by
    region (London's Llama 3 is dearer than the US regions), so the US figure (the one genai-prices keeps) may
    misprice it."""
    return (
        f"model {model!r} has no price for region {ref.region!r}; priced regions: {sorted(regions)}. "
        f"{ref.asked!r} is the {ref.profile}. cross-region inference profile: AWS bills its calls at the price of the "
        f"region they are sent from (the source region; {ref.region} is assumed when none is given), AWS publishes "
        "its prices region by region, and the catalog has no verified figure for this model in that one, so it is "
        "not priced at another region's. Name the region you call from (--region REGION; the gateway reads the "
        "model's region in tokenomy.yaml) if it is priced, or add that region's price from "
        f"https://aws.amazon.com/bedrock/pricing/ with {price_file()}: "
        f"models.{model}.regions.<region>: {{input, output, source, as_of}}."
    )


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
                None
                if value is None
                else (decimal_price(value, f"{path}: {name}.{key}", "1.5e-07") * million).normalize()
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
    return whole_count(value, where) or None


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
