"""What the Bedrock provider sends: each Converse request's parameters, as `to_converse_params` made them, recorded
while the call goes on to the emulator (with made-up AWS credentials, which the emulator does not check)."""

from __future__ import annotations

from typing import Any

import pytest


def record_converse(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The list the Bedrock provider's Converse parameters are appended to, one per request, from now on."""
    from tokenomy.providers import converse_mapping

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    sent: list[dict[str, Any]] = []
    original = converse_mapping.to_converse_params

    def recorded(request: Any) -> dict[str, Any]:
        sent.append(original(request))
        return sent[-1]

    monkeypatch.setattr("tokenomy.providers.bedrock.to_converse_params", recorded)
    return sent
