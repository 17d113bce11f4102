"""A model's lifecycle in the price catalog: the day its provider deprecated it (`deprecated_on`) and the day it is
retired (`retired_on`: every call to it fails from that day), with the page and day they were read
(`lifecycle_source`). A price file's entry carries them beside its prices; they are checked as the file loads, and
read by the config checks (a route to a retired model) and the model review (no retired model proposed).

The dates are the provider's for its own platform: Bedrock and Vertex AI retire Claude on their own schedules, so an
Anthropic entry's dates say nothing of a Bedrock model, nor of an Azure deployment of an OpenAI model.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from tokenomy.errors import ConfigError

LIFECYCLE_DATES = ("deprecated_on", "retired_on")
# A provider a call runs on (a config's, as the ledger records it) -> the catalog provider whose lifecycle dates apply
# to its calls. Azure deployments and Vertex AI models are retired on their platform's own schedule, which the
# catalog's (the model maker's API's) dates are not.
LIFECYCLE_PROVIDERS = {"anthropic": "anthropic", "openai": "openai", "bedrock": "aws.bedrock", "gemini": "google"}
LIFECYCLE_FIELDS = (*LIFECYCLE_DATES, "lifecycle_source")


def parse_lifecycle(block: dict[str, Any], model_info: dict[str, Any], where: str) -> dict[str, str]:
    """The lifecycle fields of a region block, else of its model (`where` names the region block), as ISO dates and
    text; {} where none is given. A date that is not one, a date without its source, a source without a date, or a
    retirement before the deprecation is refused: a wrong date would warn of a retirement that is not, or miss one."""
    found: dict[str, str] = {}
    model_place = where.rsplit(".regions.", 1)[0]
    for name in LIFECYCLE_FIELDS:
        value = block.get(name, model_info.get(name))
        if value in (None, ""):
            continue
        place = f"{where}.{name}" if name in block else f"{model_place}.{name}"
        if name == "lifecycle_source":
            found[name] = str(value)
            continue
        try:
            day = value if isinstance(value, date) else date.fromisoformat(str(value))
        except ValueError:
            raise ConfigError(
                f"{place}: {value!r} is not a date; write the day the provider gives as YYYY-MM-DD, quoted "
                '(e.g. "2026-04-20")'
            ) from None
        found[name] = day.isoformat()
    dated = [name for name in LIFECYCLE_DATES if name in found]
    if dated and "lifecycle_source" not in found:
        raise ConfigError(
            f"{model_place}: {' and '.join(dated)} given without lifecycle_source; add the provider's deprecations "
            'page and the day it was read (lifecycle_source: "https://... ; read 2026-12-06")'
        )
    if "lifecycle_source" in found and not dated:
        raise ConfigError(
            f"{model_place}.lifecycle_source: given without deprecated_on or retired_on; add the dates the page "
            "gives, or remove it"
        )
    deprecated, retired = found.get("deprecated_on"), found.get("retired_on")
    if deprecated and retired and retired < deprecated:
        raise ConfigError(
            f"{model_place}.retired_on: {retired} is before deprecated_on ({deprecated}); a model is retired after "
            "it is deprecated: check both dates against the provider's page"
        )
    return found


def utc_today() -> date:
    return datetime.now(UTC).date()


def is_retired(entry: Any, today: date | None = None) -> bool:
    """Whether `entry`'s model was retired on or before `today` (UTC): every call to it fails."""
    retired = getattr(entry, "retired_on", None)
    return retired is not None and date.fromisoformat(retired) <= (today or utc_today())


def lifecycle_label(entry: Any, today: date | None = None) -> str | None:
    """The entry's lifecycle in a few words: "retired 2026-04-20", "retires 2026-12-11", "deprecated 2026-06-11"
    (no retirement date given); None for a model with no lifecycle dates (active, or not known)."""
    retired, deprecated = getattr(entry, "retired_on", None), getattr(entry, "deprecated_on", None)
    if retired is not None:
        return f"{'retired' if is_retired(entry, today) else 'retires'} {retired}"
    return f"deprecated {deprecated}" if deprecated else None
