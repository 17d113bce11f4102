"""Which model ids the Bedrock emulator accepts: catalog models, cross-region profiles, ARNs, prompt routers."""

from __future__ import annotations

from dataclasses import dataclass

from tokenomy.pricing.catalog import PROFILE_PREFIXES, PriceEntry, default_catalog, split_inference_profile

DEFAULT_ACCOUNT = "123456789012"

# Bedrock's default prompt routers and the two models each chooses between (large, small); the
# router sends short, simple prompts to the small model (Bedrock user guide, "Prompt routing").
DEFAULT_ROUTERS = {
    "anthropic.claude:1": ("anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"),
    "meta.llama:1": ("meta.llama3-1-70b-instruct-v1:0", "meta.llama3-1-8b-instruct-v1:0"),
    "amazon.nova:1": ("amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0"),
}
# Prompts at least this long (tokens) go to the router's large model.
ROUTER_LARGE_PROMPT_TOKENS = 400


class ModelIdError(Exception):
    """Not a model Bedrock would run: `code` is ValidationException or ResourceNotFoundException."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ResolvedModel:
    """The catalog entry that describes the model (cache minimum, TTL), and the router, if any."""

    model_id: str
    entry: PriceEntry | None
    router: tuple[str, str] | None = None
    router_region: str | None = None
    router_account: str = DEFAULT_ACCOUNT

    @property
    def namespace(self) -> str:
        return self.entry.model if self.entry else self.model_id


def bedrock_entry(model: str) -> PriceEntry | None:
    """The aws.bedrock catalog entry for a model id or profile id (any priced region; us-east-1 first)."""
    base, _ = split_inference_profile(model)
    entries = [e for e in default_catalog().entries() if e.provider == "aws.bedrock" and e.model in (model, base)]
    if not entries:
        return None
    entries.sort(key=lambda e: (e.model != model, e.region != "us-east-1", e.region))
    return entries[0]


def resolve(model_id: str) -> ResolvedModel:
    """Accept what Bedrock accepts; raise ModelIdError the way Bedrock answers otherwise."""
    if model_id.startswith("arn:"):
        parts = model_id.split(":", 5)
        if len(parts) < 6 or parts[2] != "bedrock" or "/" not in parts[5]:
            raise ModelIdError("ValidationException", "The provided model identifier is invalid.")
        region, account = parts[3], parts[4] or DEFAULT_ACCOUNT
        kind, resource = parts[5].split("/", 1)
        if kind in ("default-prompt-router", "prompt-router"):
            pair = DEFAULT_ROUTERS.get(resource) if kind == "default-prompt-router" else None
            if pair is None:
                raise ModelIdError(
                    "ResourceNotFoundException",
                    f"Prompt router {model_id} not found. The emulator knows the default routers: "
                    f"{', '.join(sorted(DEFAULT_ROUTERS))}.",
                )
            return ResolvedModel(model_id, None, pair, region or None, account)
        if kind not in ("foundation-model", "inference-profile"):
            raise ModelIdError("ResourceNotFoundException", f"The resource {model_id} was not found.")
        entry = bedrock_entry(resource)
        if entry is None:
            raise ModelIdError("ResourceNotFoundException", f"The resource {model_id} was not found.")
        return ResolvedModel(model_id, entry)
    entry = bedrock_entry(model_id)
    if entry is None:
        raise ModelIdError("ValidationException", "The provided model identifier is invalid.")
    return ResolvedModel(model_id, entry)


def route(resolved: ResolvedModel, prompt_tokens: int, client_region: str) -> tuple[ResolvedModel, str]:
    """Pick the router's model for this prompt; return it and the invokedModelId ARN Bedrock reports."""
    assert resolved.router is not None
    large, small = resolved.router
    chosen = large if prompt_tokens >= ROUTER_LARGE_PROMPT_TOKENS else small
    region = resolved.router_region or client_region
    geo = next((p for p, r in PROFILE_PREFIXES.items() if r == region and p not in ("global", "jp")), "us")
    geo = region.split("-")[0] if region.split("-")[0] in PROFILE_PREFIXES else geo
    arn = f"arn:aws:bedrock:{region}:{resolved.router_account}:inference-profile/{geo}.{chosen}"
    return ResolvedModel(arn, bedrock_entry(chosen)), arn
