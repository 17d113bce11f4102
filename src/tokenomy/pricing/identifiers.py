"""Model identifiers as callers write them, reduced to the ids the price catalog is keyed by.

Bedrock ids (`anthropic.claude-…-v1:0`), cross-region inference profiles (`us.`, `eu.`, `apac.`, `jp.`,
`au.`, `ca.`, `us-gov.`, `global.`), ARNs (foundation models, inference profiles), Vertex AI's Claude ids
(`claude-sonnet-4-5@20250929`) and provider names with dated aliases (`claude-sonnet-4-5`,
`claude-3-5-haiku-latest`, `gpt-4o-2024-08-06`, `openai/gpt-4o`, `models/gemini-2.5-pro`). ARNs that do not
name a model (application inference profiles, prompt routers, provisioned or custom models) are refused with the
fix, because guessing would misprice every call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tokenomy.errors import UnknownModelError, price_file

# Bedrock cross-region inference profile prefixes and the source region we assume for each when
# the caller names none (a geographic profile is billed at its source region's price).
PROFILE_PREFIXES = {
    "us": "us-east-1",
    "us-gov": "us-gov-west-1",
    "eu": "eu-central-1",
    "apac": "ap-northeast-1",
    "jp": "ap-northeast-1",
    "au": "ap-southeast-2",
    "ca": "ca-central-1",
    "in": "ap-south-1",
    "global": "us-east-1",
}
# Model publishers on Bedrock: `<vendor>.<model>` ids are Bedrock ids.
BEDROCK_VENDORS = (
    "ai21",
    "amazon",
    "anthropic",
    "cohere",
    "deepseek",
    "google",
    "meta",
    "minimax",
    "mistral",
    "moonshotai",
    "nvidia",
    "openai",
    "qwen",
    "stability",
    "twelvelabs",
    "writer",
    "zai",
)
# ARN resource types that name no model: what they are and how to price them.
_OPAQUE_ARNS = {
    "application-inference-profile": "an application inference profile wraps a model or system profile that "
    "its ARN does not name",
    "prompt-router": "a prompt router sends each request to one of several models (the response trace names "
    "the one it invoked)",
    "default-prompt-router": "a prompt router sends each request to one of several models (the response trace "
    "names the one it invoked)",
    "provisioned-model": "provisioned throughput is billed per model unit-hour, not per token (see `tokenomy "
    "plan`, which takes --hourly-usd)",
    "custom-model": "a custom model is served through provisioned throughput or custom-model import",
    "imported-model": "an imported model is billed per Custom Model Unit-minute",
}
_PROVIDER_PREFIXES = (
    "openai/",
    "anthropic/",
    "azure/",
    "gemini/",
    "google/",
    "vertex_ai/",
    "models/",
    "bedrock/",
    "bedrock_converse/",
    "aws/",
)
# LiteLLM-style routes to Bedrock. Stripped before the profile is read: `bedrock/us.anthropic.…` is the `us.` profile
# (alias_candidates' prefix stripping comes after the profile split, so these ids were refused as unknown).
_BEDROCK_ROUTES = ("bedrock/converse/", "bedrock/invoke/", "bedrock_converse/", "bedrock/", "aws/")
_DATE_SUFFIX = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2})$")
_CONTEXT_SUFFIX = re.compile(r":\d+k$|:mm$")  # Bedrock context-window variants: ...-v1:0:200k
_VERSION_SUFFIX = re.compile(r"-v\d+(:\d+)?$")
_CLAUDE_POINT_ZERO = re.compile(r"claude-[a-z]+-\d+-0")
# Vertex AI's Claude ids: `claude-sonnet-4-5@20250929`, `claude-3-5-sonnet-v2@20241022` (its "v2" is Anthropic's
# 20241022 snapshot). The date after `@` is the snapshot's: read as Anthropic's dated id, so the curated entry of that
# snapshot prices it (genai-prices matched these ids itself, without the curated batch prices and limits).
_VERTEX_VERSION = re.compile(r"(.+?)(?:-v\d+)?@(\d{8})")


@dataclass(frozen=True)
class ModelRef:
    """An id as asked, the catalog id it reduces to, and what its profile or ARN says about region."""

    asked: str
    base: str
    profile: str | None = None  # "us", "global", ...
    region: str | None = None  # from the ARN, or the profile's source region

    @property
    def profiled(self) -> str:
        """The id with its profile prefix (global. prices differ from in-region ones)."""
        return f"{self.profile}.{self.base}" if self.profile else self.base


def pricing_region(region: str | None) -> str | None:
    """The region a price is looked up in: none for a model priced the same everywhere ("global": a global profile or a
    first-party API; "local": the local model), so the catalog picks the entry itself, as it does for no region."""
    return None if region in (None, "global", "local") else region


def is_bedrock_id(ref: ModelRef) -> bool:
    return "." in ref.base and ref.base.split(".", 1)[0] in BEDROCK_VENDORS


def parse_model_id(model: str, strict: bool = True) -> ModelRef:
    """Strip an ARN and a cross-region profile prefix; refuse (strict) ARNs that name no model."""
    region = None
    text = next((model[len(route) :] for route in _BEDROCK_ROUTES if model.startswith(route)), model)
    if text.startswith("arn:aws"):
        # arn:aws[-us-gov]:bedrock:REGION:ACCOUNT:TYPE/ID
        parts = text.split(":", 5)
        region = parts[3] if len(parts) > 3 and parts[3] else None
        tail = parts[5] if len(parts) > 5 else ""
        kind, _, text = tail.partition("/")
        if kind in _OPAQUE_ARNS and strict:
            raise UnknownModelError(
                f"{model!r} names no model: {_OPAQUE_ARNS[kind]}. Price it as the model behind it: set "
                "`price_as: <model id>` on that model in tokenomy.yaml, or add `aliases: {<this ARN>: <model id>}` "
                f"to {price_file()}."
            )
        if not text and strict:
            raise UnknownModelError(
                f"{model!r}: not a Bedrock model or inference-profile ARN; expected "
                "arn:aws:bedrock:REGION:ACCOUNT:foundation-model/MODEL_ID"
            )
    head, _, rest = text.partition(".")
    if rest and head in PROFILE_PREFIXES and "." in rest:
        return ModelRef(model, rest, head, region or PROFILE_PREFIXES[head])
    return ModelRef(model, text, None, region)


def split_inference_profile(model: str) -> tuple[str, str | None]:
    """(base model id, source-region guess) of a Bedrock profile id or ARN."""
    ref = parse_model_id(model, strict=False)
    return ref.base, ref.region


def takes_no_tools_cache_point(model: str) -> bool:
    """Amazon Nova (a Bedrock id, profile id or ARN) takes cache points in its system prompt and messages only, not in
    its tools; Claude takes them in all three."""
    return "amazon.nova" in model and split_inference_profile(model)[0].rsplit("/", 1)[-1].startswith("amazon.nova")


def alias_candidates(base: str, known: list[str]) -> list[str]:
    """Catalog ids `base` may stand for, best first: provider prefixes, -latest, undated and dated aliases,
    Bedrock ids without their version or context-window suffix."""
    out: list[str] = []

    def add(name: str) -> None:
        if name and name not in out and name != base:
            out.append(name)

    name = base
    for prefix in _PROVIDER_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            add(name)
    vertex = _VERTEX_VERSION.fullmatch(name)
    if vertex:
        name = f"{vertex[1]}-{vertex[2]}"
        add(name)
    if _CONTEXT_SUFFIX.search(name):
        name = _CONTEXT_SUFFIX.sub("", name)
        add(name)
    if name.endswith("-latest"):
        name = name[: -len("-latest")]
        add(name)
    if _CLAUDE_POINT_ZERO.fullmatch(name):  # Anthropic's claude-opus-4-0 is claude-opus-4-20250514, not a 4.0 line
        name = name[: -len("-0")]
        add(name)
    undated = _DATE_SUFFIX.sub("", name)
    if undated != name:
        add(undated)  # gpt-4o-2024-08-06 -> gpt-4o
    unversioned = _VERSION_SUFFIX.sub("", name)
    if unversioned != name:  # anthropic.claude-opus-4-6-v1:0 -> anthropic.claude-opus-4-6-v1 / ...-sonnet-4-6
        add(unversioned)
        name = unversioned
    # claude-sonnet-4-5 -> claude-sonnet-4-5-20250929; anthropic.claude-3-haiku-20240307 -> ...-v1:0
    dated = sorted(
        (
            k
            for k in known
            if k.startswith(name + "-")
            and (_DATE_SUFFIX.fullmatch(k[len(name) :]) or _VERSION_SUFFIX.fullmatch(k[len(name) :]))
        ),
        reverse=True,
    )
    for key in dated:
        add(key)
    return out


def library_refs(ref: ModelRef) -> list[str]:
    """Ids to try in genai-prices, best first: as profiled (its Bedrock data keys regional vs global
    prices by profile), then the bare id, then without the `-v1:0` / `:200k` suffixes."""
    refs: list[str] = []
    for name in (ref.profiled, ref.base, _CONTEXT_SUFFIX.sub("", ref.base)):
        for candidate in (name, _VERSION_SUFFIX.sub("", _CONTEXT_SUFFIX.sub("", name))):
            if candidate not in refs:
                refs.append(candidate)
    return refs
