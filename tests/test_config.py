"""Config errors read as one sentence naming the key and the fix."""

from __future__ import annotations

import pytest

from tokenomy.config import parse_config
from tokenomy.errors import ConfigError


def test_a_setting_the_provider_never_reads_is_named_without_pydantic_s_prefix() -> None:
    # "tokenomy.yaml: models.m: Value error, base_url applies to ...": the prefix is pydantic's wording for a
    # ValueError raised by a validator, noise before the message a user needs.
    with pytest.raises(ConfigError) as refused:
        parse_config(
            {"models": {"m": {"provider": "bedrock", "model": "amazon.nova-micro-v1:0", "base_url": "http://x"}}},
            "tokenomy.yaml",
        )
    message = str(refused.value)
    assert message.startswith("tokenomy.yaml: models.m: base_url applies to provider "), message
    assert "Value error" not in message and "set endpoint_url" in message
