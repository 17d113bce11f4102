"""The `gateway:` section of tokenomy.yaml, validated with errors that name the key."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tokenomy.errors import ConfigError


class GatewaySettings(BaseModel):
    """Overload bounds and caches of `tokenomy serve`."""

    model_config = ConfigDict(extra="forbid")
    max_inflight: int = Field(256, ge=1, description="calls running upstream at once, per worker")
    max_queue: int = Field(1024, ge=0, description="requests waiting for a slot; beyond this: 503 at once")
    key_cache_seconds: float = Field(30.0, ge=0, description="how long a looked-up key is trusted (revocation lag)")


def gateway_settings(raw: dict[str, Any] | None, origin: str = "<config>") -> GatewaySettings:
    """Validate `gateway:`; a bad value raises ConfigError naming gateway.<key>."""
    try:
        return GatewaySettings.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{origin}: gateway.{where}: {first['msg']}") from None
