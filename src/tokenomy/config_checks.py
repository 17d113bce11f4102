"""Start-up checks of a loaded config that pydantic cannot make: model ids the price catalog does not know (whose
calls would be recorded at $0), `api_key_env` variables, a Vertex AI project or an Azure endpoint that are not
set (whose calls would all fail), and models their provider has retired or will retire (pricing/lifecycle.py).

Used by `tokenomy serve` before the gateway starts, and by any command that runs a config's models.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from tokenomy.config import TokenomyConfig
from tokenomy.errors import TokenomyError
from tokenomy.pricing.catalog import PriceCatalog, default_catalog
from tokenomy.pricing.entry import PriceEntry
from tokenomy.pricing.identifiers import parse_model_id
from tokenomy.pricing.lifecycle import LIFECYCLE_PROVIDERS, is_retired


@dataclass
class ConfigFindings:
    """`errors`: the config cannot be honoured as written; `warnings`: it runs, but not as the author likely meant."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def did_you_mean(model: str, catalog: PriceCatalog) -> str:
    """' Did you mean X?' for the closest catalog ids (compared without a Bedrock profile prefix), or ''."""
    known = catalog.models()
    base = parse_model_id(model, strict=False).base
    close = difflib.get_close_matches(model, known, n=3, cutoff=0.6) or difflib.get_close_matches(
        base, known, n=3, cutoff=0.6
    )
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def check_config(
    config: TokenomyConfig,
    catalog: PriceCatalog | None = None,
    environ: Mapping[str, str] | None = None,
    today: date | None = None,
) -> ConfigFindings:
    """Every configured model: its price (model id or price_as in the catalog), its key variable, and whether its
    provider retired it (on or before `today`, UTC) or has announced the day it will."""
    catalog = catalog or default_catalog()
    environ = os.environ if environ is None else environ
    origin = config.source or "<config>"
    found = ConfigFindings()
    for name, model in config.models.items():
        if model.api_key_env and not environ.get(model.api_key_env):
            found.warnings.append(
                f"{origin}: models.{name}.api_key_env: ${model.api_key_env} is not set; every call "
                f"to {name} will fail until you export it"
            )
        # Where a provider's target is named by a setting or its variable: without either, every call fails.
        target = {
            "vertex": ("project", "GOOGLE_CLOUD_PROJECT", "the Google Cloud project"),
            "azure": ("base_url", "AZURE_OPENAI_ENDPOINT", "the resource endpoint https://RESOURCE.openai.azure.com"),
        }
        if model.provider in target:
            key, variable, what = target[model.provider]
            if not getattr(model, key) and not environ.get(variable):
                found.warnings.append(
                    f"{origin}: models.{name}.{key}: not set, nor is ${variable}; every call to {name} will fail "
                    f"until you set {key}: to {what}"
                )
        if model.price_as:
            try:
                catalog.lookup(model.price_as, model.region)
            except TokenomyError:
                found.errors.append(
                    f"{origin}: models.{name}.price_as: {model.price_as!r} is not in the price "
                    f"catalog.{did_you_mean(model.price_as, catalog)} Run `tokenomy prices` for ids"
                )
            continue
        if model.provider == "local":
            continue  # the local model is free and needs no price
        model_id = model.model or name
        try:
            entry = catalog.lookup(model_id, model.region)
        except TokenomyError as exc:
            unknown = (
                "not in the price catalog"
                if str(exc).startswith("unknown model")
                else f"not priced in region {model.region!r}"
            )
            if model.provider == "azure":  # a deployment name: only the config can say which model it serves
                found.errors.append(
                    f"{origin}: models.{name}: Azure deployment {model_id!r} is {unknown}; set price_as: to "
                    "the model the deployment serves (e.g. gpt-4o-mini)"
                )
                continue
            found.warnings.append(
                f"{origin}: models.{name}.model: {model_id!r} is {unknown}, so its calls would be "
                f"recorded at $0.{did_you_mean(model_id, catalog)} Fix the id, or set price_as: to "
                "the catalog model it should be priced as"
            )
            continue
        if LIFECYCLE_PROVIDERS.get(model.provider) == entry.provider:
            retiring = _lifecycle_warning(config, name, model_id, entry, today)
            if retiring:
                found.warnings.append(f"{origin}: models.{name}.model: {retiring}")
    return found


def _lifecycle_warning(config: TokenomyConfig, name: str, model_id: str, entry: PriceEntry, today: date | None) -> str:
    """Why calls to model `name` fail or will (its provider retired `model_id`, or has said the day it will), naming
    the routes and tiers that send to it; "" for a model without a retirement date."""
    if entry.retired_on is None:
        return ""
    used = [f"routes.{route}" for route, spec in config.routes.items() if name in (spec.model, *spec.fallback)]
    used += [f"tiers.{tier}" for tier, models in config.tiers.items() if name in models]
    uses = f"used by {', '.join(used)}" if used else f"called by its name {name!r}"
    if is_retired(entry, today):
        return (
            f"{model_id!r} was retired on {entry.retired_on} ({entry.lifecycle_source}): every call to it fails "
            f"({uses}). Move them to a current model (`tokenomy prices` lists the catalog's)"
        )
    since = f", deprecated since {entry.deprecated_on}" if entry.deprecated_on else ""
    return (
        f"{model_id!r} retires on {entry.retired_on}{since} ({entry.lifecycle_source}): every call to it will fail "
        f"from that day ({uses}). Move them to a current model before then"
    )
