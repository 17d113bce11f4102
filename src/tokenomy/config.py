"""`tokenomy.yaml`: models, routes, tiers and policies, validated with errors that name the key.

Secrets never appear here: a model names the environment variable that holds its key
(`api_key_env`), and the variable is read when the provider is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tokenomy.caching.tokens import TokenPolicy
from tokenomy.config_alerts import AlertSettings, Budget, validate_budgets
from tokenomy.config_gateway import GatewaySettings
from tokenomy.config_routing import RoutingConfig, RoutingPolicy
from tokenomy.errors import ConfigError, yaml_problem
from tokenomy.providers.registry import ModelSpec
from tokenomy.resilience.retry import RetryPolicy
from tokenomy.yaml_text import load_yaml

DEFAULT_CONFIG_FILES = ("tokenomy.yaml", "tokenomy.yml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Model settings only some providers read, with the fix to suggest (by the model's provider; '' for any other).
PROVIDER_SETTINGS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "api_version": (("azure",), {"": "remove it"}),
    "project": (
        ("vertex",),
        {"gemini": "for Gemini on Vertex AI set provider: vertex; the Gemini API takes no project", "": "remove it"},
    ),
    "endpoint_url": (("bedrock",), {"": "set the server's URL with base_url"}),
    "profile": (("bedrock",), {"": "remove it (an AWS profile is for Bedrock's credentials)"}),
    "base_url": (
        ("openai", "azure", "anthropic", "gemini", "vertex"),
        {
            "bedrock": "set endpoint_url for a Bedrock Runtime endpoint",
            "local": "provider local is Tokenomy's built-in model; for an OpenAI-compatible server (Ollama, vLLM, "
            "llama.cpp, LM Studio) at that URL set provider: openai",
            "": "remove it",
        },
    ),
    "api_key_env": (
        ("openai", "azure", "anthropic", "gemini"),
        {
            "vertex": "Vertex AI takes Google Cloud credentials (gcloud auth application-default login); for a "
            "Gemini API key set provider: gemini",
            "bedrock": "Bedrock takes AWS credentials (set profile: or the AWS_* variables)",
            "": "remove it",
        },
    ),
    "empty_tool_call_content": (
        ("openai",),
        {"": "it shapes OpenAI-compatible servers' requests (provider: openai); remove it"},
    ),
    "omit_end_user_id": (
        ("gemini", "vertex", "local"),
        {"": "this provider carries the end-user id in a field of its own API; remove it"},
    ),
    "timeout_s": (
        ("openai", "azure", "bedrock", "anthropic", "gemini", "vertex"),
        {"": "the built-in model runs in this process, with no upstream to wait for; remove it"},
    ),
}


class ModelConfig(_Strict):
    """One callable model. The key under `models:` is the name clients send."""

    provider: Literal["local", "openai", "azure", "bedrock", "anthropic", "gemini", "vertex"]
    model: Optional[str] = None
    region: Optional[str] = None
    base_url: Optional[str] = None
    api_key_env: Optional[str] = None
    endpoint_url: Optional[str] = None
    profile: Optional[str] = None
    project: Optional[str] = Field(None, description="Google Cloud project of a `vertex` model (region: its location)")
    price_as: Optional[str] = Field(None, description="catalog model id that prices this model")
    api_version: Optional[str] = Field(
        None, description="Azure OpenAI api-version (default: OPENAI_API_VERSION, else the latest GA version)"
    )
    inputs: Optional[list[Literal["text", "image", "document"]]] = Field(
        None,
        description="what the model reads, e.g. [text] for a text-only model (default: whatever its provider "
        "can send); the gateway refuses other content with a 400 naming the model and the block",
    )
    system_prompt: Optional[str] = Field(
        None, description="instructions added before every system prompt (house style, or a benchmark variant)"
    )
    empty_tool_call_content: Optional[bool] = Field(
        None,
        description="send an assistant's tool calls without text as content \"\" instead of null: llama-cpp-python's "
        "server answers 500 to null (the second turn of every tool loop); OpenAI and Bedrock-fronting proxies refuse "
        '"", so only set it for a server that needs it',
    )
    omit_end_user_id: Optional[bool] = Field(
        None,
        description="send requests that carry an end-user id (Claude Code's metadata.user_id, OpenAI's user) to this "
        "model without it: the Gemini API and the built-in model have no field for one, so such a request is "
        "refused by name unless this is set",
    )
    timeout_s: Optional[float] = Field(
        None,
        gt=0,
        le=3600,
        description="seconds the upstream may stay silent (to connect, before the answer starts, between stream "
        "chunks) before the attempt fails as a timeout (default 120); raise it for long answers that are not "
        "streamed, such as a reasoning model's",
    )

    @model_validator(mode="after")
    def _provider_settings(self) -> ModelConfig:
        """Refuse a setting this model's provider never reads: it would be ignored, and the calls go elsewhere."""
        for key, (owner, fix) in PROVIDER_SETTINGS.items():
            if getattr(self, key) is not None and self.provider not in owner:
                raise ValueError(
                    f"{key} applies to provider {' or '.join(owner)} only (this model's provider is "
                    f"{self.provider}): {fix.get(self.provider, fix[''])}"
                )
        if self.provider == "azure" and self.base_url and "/openai" in urlsplit(self.base_url).path:
            raise ValueError(
                "base_url: an Azure OpenAI endpoint is the resource's root (https://RESOURCE.openai.azure.com), "
                "without /openai/...: the deployment (`model:`) and api_version make the rest of the path"
            )
        return self

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: Optional[str]) -> Optional[str]:
        if value and (value.startswith("sk-") or len(value) > 64 or not value.replace("_", "").isalnum()):
            raise ValueError("must be the NAME of an environment variable holding the key, not the key itself")
        return value


class CachingPolicy(_Strict):
    enabled: bool = True


class RateLimitPolicy(_Strict):
    """Client-side quota for a route (requests and/or tokens per minute, in any 60 s): a limiter in each process,
    which `tokenomy serve --workers N` gives 1/N of it each (whole requests: at least one a minute each), so that
    together they stay within it."""

    requests_per_minute: Optional[float] = Field(None, gt=0)
    tokens_per_minute: Optional[float] = Field(None, gt=0)


class RouteConfig(_Strict):
    """A name clients send as `model`: one model, a fallback chain, or a routing policy."""

    model: Optional[str] = None
    fallback: list[str] = Field(default_factory=list)
    policy: Optional[str] = Field(None, description="name of a routing policy under `routing.policies`")
    caching: CachingPolicy = Field(default_factory=CachingPolicy)
    tokens: TokenPolicy = Field(default_factory=TokenPolicy)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    rate_limit: Optional[RateLimitPolicy] = None
    task: Optional[str] = None


class TokenomyConfig(_Strict):
    auth: bool = False
    ledger: Optional[str] = None
    store_prompts: bool = False
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    tiers: dict[str, list[str]] = Field(default_factory=dict)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    budgets: list[Budget] = Field(default_factory=list)
    alerts: AlertSettings = Field(
        default_factory=AlertSettings, description="alert thresholds and provisioned reservations"
    )
    redis_url: Optional[str] = None
    source: Optional[str] = Field(None, exclude=True)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: Optional[str]) -> Optional[str]:
        # redis-py's from_url raised a ValueError that `serve` let through as a traceback.
        if value == "":  # as if not set, as before: per-process limits
            return None
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"{value!r} is not a Redis URL; write redis://HOST:6379/0 (rediss:// for TLS, unix:// for a socket)"
            )
        return value

    @field_validator("budgets", mode="before")
    @classmethod
    def _budgets(cls, value: Any) -> Any:
        # The budget checks' own messages name the item and the fix (ConfigError passes through pydantic).
        return validate_budgets(value) if isinstance(value, list) else value

    def alert_settings(self) -> AlertSettings:
        """`alerts:`, with the expected tier shares taken from `routing.expected_tier_share` when not set there."""
        shares = self.routing.expected_tier_share
        if shares and not self.alerts.expected_tier_share:
            return self.alerts.model_copy(update={"expected_tier_share": dict(shares)})
        return self.alerts

    def model_specs(self) -> dict[str, ModelSpec]:
        """Every configured model as a ModelSpec (plus `local`, always available)."""
        specs = {"local": ModelSpec(name="local", provider="local", model="local", region="local")}
        for name, m in self.models.items():
            specs[name] = ModelSpec(
                name=name,
                provider=m.provider,
                model=m.model or name,
                region=m.region,
                base_url=m.base_url,
                api_key_env=m.api_key_env,
                endpoint_url=m.endpoint_url,
                profile=m.profile,
                price_as=m.price_as,
                api_version=m.api_version,
                options=_options(m),
            )
        return specs

    def routing_policy(self, name: str) -> RoutingPolicy:
        """`routing.policies.<name>` (validated at load); a missing one is an error naming the key."""
        policy = self.routing.policies.get(name)
        if policy is None:
            raise ConfigError(
                f"routing.policies.{name}: no such policy; define it under routing.policies "
                f"(defined: {', '.join(self.routing.policies) or 'none'})"
            )
        return policy

    def route_for(self, name: str) -> RouteConfig | None:
        """The route a client's `model` names; a bare model name becomes a one-model route."""
        if name in self.routes:
            return self.routes[name]
        if name in self.models or name == "local":
            return RouteConfig(model=name)
        return None


def _options(m: ModelConfig) -> tuple[tuple[str, Any], ...]:
    """A model's provider-specific settings as ModelSpec options."""
    options: list[tuple[str, Any]] = []
    if m.inputs:
        options.append(("inputs", tuple(m.inputs)))
    if m.project:
        options.append(("project", m.project))
    if m.timeout_s is not None:
        options.append(("timeout_s", m.timeout_s))
    if m.empty_tool_call_content:
        options.append(("empty_tool_call_content", True))
    if m.omit_end_user_id:
        options.append(("omit_end_user_id", True))
    return tuple(options)


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"]
        if error["type"] == "value_error":  # our own message: pydantic's "Value error, " prefix only hides it
            message = str(error.get("ctx", {}).get("error", message.removeprefix("Value error, ")))
        if error["type"] == "extra_forbidden":  # "Extra inputs are not permitted" named no fix
            message = _unknown_key(error["loc"])
        lines.append(f"{origin}: {where}: {message}")
    return "\n".join(lines)


def _unknown_key(loc: tuple[Any, ...]) -> str:
    """ "unknown key; did you mean X? (keys here: ...)" for a key the config section at `loc` does not have."""
    import difflib
    import typing

    section: Any = TokenomyConfig
    parts = list(loc[:-1])
    while parts:
        origin = typing.get_origin(section)
        if origin is typing.Union or type(section).__name__ == "UnionType":  # Optional[X] / X | None
            section = next((a for a in typing.get_args(section) if a is not type(None)), None)
        elif origin in (list, dict, tuple):
            section, parts = typing.get_args(section)[-1], parts[1:]  # an index or a key: the element's type
        elif isinstance(section, type) and issubclass(section, BaseModel) and parts[0] in section.model_fields:
            section, parts = section.model_fields[parts[0]].annotation, parts[1:]
        else:
            return "unknown key; remove it"
    while typing.get_origin(section) is typing.Union or type(section).__name__ == "UnionType":
        section = next((a for a in typing.get_args(section) if a is not type(None)), None)
    if not (isinstance(section, type) and issubclass(section, BaseModel)):
        return "unknown key; remove it"
    known = sorted(field.alias or name for name, field in section.model_fields.items() if not field.exclude)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key; {hint}keys here: {', '.join(known)}"


def parse_config(data: dict[str, Any] | None, origin: str = "<config>") -> TokenomyConfig:
    try:
        config = TokenomyConfig.model_validate(data or {})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, origin)) from None
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    config.source = origin
    for name, route in config.routes.items():
        for ref in [route.model, *route.fallback]:
            if ref and ref not in config.models and ref != "local":
                raise ConfigError(f"{origin}: routes.{name}: model {ref!r} is not defined under `models:`")
        policies = config.routing.policies
        if route.policy and route.policy not in policies:  # else every request to the route fails with a 400
            raise ConfigError(
                f"{origin}: routes.{name}.policy: {route.policy!r} is not defined under "
                f"routing.policies (defined: {', '.join(policies) or 'none'})"
            )
        if route.policy and not config.tiers:
            raise ConfigError(
                f"{origin}: routes.{name}.policy: routing needs tiers; list them under `tiers:` "
                "(e.g. tier1: [local], cheapest first)"
            )
    for name, policy in config.routing.policies.items():
        for key, tier in policy.tiers_named():
            if tier not in config.tiers:
                raise ConfigError(
                    f"{origin}: routing.policies.{name}.{key}: tier {tier!r} is not defined under "
                    f"`tiers:` (defined: {', '.join(config.tiers) or 'none'})"
                )
    return config


def config_file(path: str | os.PathLike | None = None) -> str | os.PathLike | None:
    """The config file `load_config(path)` reads: `path`, else $TOKENOMY_CONFIG, else ./tokenomy.yaml if present;
    None when it runs on defaults."""
    if path is None:
        path = os.environ.get("TOKENOMY_CONFIG")
    if path is None:
        path = next((candidate for candidate in DEFAULT_CONFIG_FILES if Path(candidate).exists()), None)
    return path


def load_config(path: str | os.PathLike | None = None) -> TokenomyConfig:
    """Load and validate a config file; with no path, ./tokenomy.yaml if present, else defaults."""
    path = config_file(path)
    if path is None:
        return parse_config({}, "<defaults>")
    file = Path(path)
    try:
        data = load_yaml(file.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML at {yaml_problem(exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text; save the config as UTF-8 YAML") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of keys (models:, routes:, …)")
    return parse_config(data, str(file))
