"""From a model name to a provider instance: config entries, prefixes, then the price catalog."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from tokenomy.errors import ConfigError, UnknownModelError
from tokenomy.providers.base import DEFAULT_TIMEOUT_S, Provider

PROVIDER_ALIASES = {
    "bedrock": "bedrock",
    "aws.bedrock": "bedrock",
    "openai": "openai",
    "anthropic": "anthropic",
    "azure": "azure",
    "local": "local",
    "gemini": "gemini",  # the Gemini API (AI Studio); the catalog's Gemini entries say `google`
    "google": "gemini",
    "vertex": "vertex",  # Gemini on Vertex AI (region = location, `project` option)
    "vertex_ai": "vertex",
}


@dataclass(frozen=True)
class ModelSpec:
    """How to reach one model. `price_as` names the catalog entry that prices it (default: `model`)."""

    name: str
    provider: str
    model: str
    region: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    price_as: str | None = None
    api_version: str | None = None  # Azure OpenAI's api-version
    options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    @property
    def pricing_model(self) -> str:
        return self.price_as or self.model

    @property
    def inputs(self) -> tuple[str, ...] | None:
        """What the model reads (text, image, document) when the config says; None: whatever its provider sends."""
        return dict(self.options).get("inputs")

    @property
    def empty_tool_call_content(self) -> bool:
        """Send an assistant's tool-calling turn without text as content "" (the config's `empty_tool_call_content`)."""
        return bool(dict(self.options).get("empty_tool_call_content"))

    @property
    def omit_end_user_id(self) -> bool:
        """Send a request's end-user id nowhere (the config's `omit_end_user_id`), its API having no field for it."""
        return bool(dict(self.options).get("omit_end_user_id"))

    @property
    def timeout_s(self) -> float:
        """Seconds the upstream may stay silent before an attempt fails (the config's `timeout_s`)."""
        return float(dict(self.options).get("timeout_s", DEFAULT_TIMEOUT_S))


def resolve_model(name: str, configured: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """Find how to call `name`: a configured model, `provider/model`, `local`, or a catalog id."""
    if configured and name in configured:
        return configured[name]
    if name == "local":
        return ModelSpec(name="local", provider="local", model="local", region="local")
    head, sep, rest = name.partition("/")
    if sep and head == "azure":
        return _azure_deployment(name, rest)
    if sep and head in PROVIDER_ALIASES and not name.startswith("arn:"):
        return ModelSpec(name=name, provider=PROVIDER_ALIASES[head], model=rest)
    if name.startswith("arn:aws:bedrock"):
        return ModelSpec(name=name, provider="bedrock", model=name)
    from tokenomy.pricing.catalog import default_catalog

    try:
        entry = default_catalog().lookup(name)
    except UnknownModelError as exc:
        raise UnknownModelError(f"{exc} Or configure it under `models:` with a provider (--config).") from None
    provider = PROVIDER_ALIASES.get(entry.provider)
    if provider is None:
        raise ConfigError(
            f"model {name!r} is priced (by {entry.priced_by}) but Tokenomy has no provider "
            f"'{entry.provider}'; call it through an OpenAI-compatible base URL in the config"
        )
    return ModelSpec(name=name, provider=provider, model=name)


def _azure_deployment(name: str, deployment: str) -> ModelSpec:
    """`azure/<deployment>` without a config entry: the deployment must be named after its model (the
    usual practice), since nothing else says which model's price applies."""
    from tokenomy.pricing.catalog import default_catalog

    try:
        default_catalog().lookup(deployment)
    except UnknownModelError:
        raise ConfigError(
            f"model {name!r}: Azure deployment {deployment!r} is not named after a model, so its price is unknown; "
            f"configure it under `models:` in tokenomy.yaml with `provider: azure`, `model: {deployment}` and "
            "`price_as: <the deployed model, e.g. gpt-4o-mini>`"
        ) from None
    return ModelSpec(name=name, provider="azure", model=deployment)


_INSTANCES: dict[tuple, Provider] = {}
_LOCK = threading.Lock()


def get_provider(spec: ModelSpec) -> Provider:
    """One provider instance per connection target, shared across calls and threads."""
    key = (
        spec.provider,
        spec.base_url,
        spec.api_key_env,
        spec.region,
        spec.endpoint_url,
        # Without a `profile:`, boto3 reads AWS_PROFILE when the client is made: a client made under another one
        # holds other credentials (or would have named a missing profile).
        spec.profile or (os.environ.get("AWS_PROFILE") if spec.provider == "bedrock" else None),
        spec.api_version,
        dict(spec.options).get("project"),  # a Vertex project is part of the target
        spec.timeout_s,
        spec.empty_tool_call_content,  # how the server takes a tool call's empty text is part of the target
        spec.omit_end_user_id,
    )
    with _LOCK:
        instance = _INSTANCES.get(key)
        if instance is None:
            instance = _build(spec)
            instance.omits_user = spec.omit_end_user_id
            _INSTANCES[key] = instance
        return instance


def _build(spec: ModelSpec) -> Provider:
    if spec.provider == "local":
        from tokenomy.providers.local import LocalProvider

        return LocalProvider()
    if spec.provider == "openai":
        from tokenomy.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(
            base_url=spec.base_url,
            api_key_env=spec.api_key_env,
            timeout=spec.timeout_s,
            empty_call_content=spec.empty_tool_call_content,
        )
    if spec.provider == "azure":
        from tokenomy.providers.azure_provider import AzureOpenAIProvider

        return AzureOpenAIProvider(
            base_url=spec.base_url, api_key_env=spec.api_key_env, api_version=spec.api_version, timeout=spec.timeout_s
        )
    if spec.provider == "bedrock":
        from tokenomy.providers.bedrock import BedrockProvider

        return BedrockProvider(
            region=spec.region, endpoint_url=spec.endpoint_url, profile=spec.profile, read_timeout=spec.timeout_s
        )
    if spec.provider == "anthropic":
        from tokenomy.providers.anthropic_provider import AnthropicProvider

        return AnthropicProvider(base_url=spec.base_url, api_key_env=spec.api_key_env, timeout=spec.timeout_s)
    if spec.provider in ("gemini", "vertex"):
        from tokenomy.providers.gemini_provider import GeminiProvider

        return GeminiProvider(
            vertex=spec.provider == "vertex",
            base_url=spec.base_url,
            api_key_env=spec.api_key_env,
            project=dict(spec.options).get("project"),
            location=spec.region,
            timeout=spec.timeout_s,
        )
    raise ConfigError(
        f"model {spec.name!r}: unknown provider {spec.provider!r}; use local, openai, azure, bedrock, anthropic, "
        "gemini or vertex"
    )
