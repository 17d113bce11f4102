"""What the Bedrock provider sends: each Converse request's parameters, as `to_converse_params` made them, recorded
while the call goes on to the emulator (with made-up AWS credentials, which the emulator does not check)."""

from __future__ import annotations

from typing import Any

import pytest

from helpers import stand_in_aws_keys


def record_converse(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The list the Bedrock provider's Converse parameters are appended to, one per request, from now on."""
    from tokenomy.providers import converse_mapping

    stand_in_aws_keys(monkeypatch)
    sent: list[dict[str, Any]] = []
    original = converse_mapping.to_converse_params

    def recorded(request: Any) -> dict[str, Any]:
        sent.append(original(request))
        return sent[-1]

    monkeypatch.setattr("tokenomy.providers.bedrock.to_converse_params", recorded)
    return sent
