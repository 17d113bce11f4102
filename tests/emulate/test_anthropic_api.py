"""The Anthropic Messages API emulator driven by the official `anthropic` SDK: token counting."""

from __future__ import annotations

import anthropic
import pytest

from tokenomy.emulate.anthropic_api import create_app
from tokenomy.emulate.server import ServerThread

SONNET = "claude-sonnet-4-5-20250929"
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


@pytest.fixture(scope="module")
def sdk():
    with ServerThread(create_app()) as url:
        yield anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)


def test_count_tokens_equals_the_input_tokens_a_message_reports(sdk) -> None:
    tool = {"name": "weather", "description": "The weather in a city.", "input_schema": {"type": "object"}}
    asks = [{"messages": [{"role": "user", "content": "Count these words."}]},
            {"messages": [{"role": "user", "content": [{"type": "image", "source": PNG},
                                                       {"type": "text", "text": "Count these words."}]}],
             "system": "Be brief.", "tools": [tool]}]
    counts = []
    for ask in asks:
        counts.append(sdk.messages.count_tokens(model=SONNET, **ask).input_tokens)
        assert counts[-1] == sdk.messages.create(model=SONNET, max_tokens=2, **ask).usage.input_tokens
    assert counts[1] > counts[0]


def test_count_tokens_refuses_what_the_api_refuses(sdk) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Extra inputs are not permitted"):
        sdk.messages.count_tokens(model=SONNET, messages=[{"role": "user", "content": "x"}],
                                  extra_body={"max_tokens": 5})
    with pytest.raises(anthropic.BadRequestError, match="messages"):
        sdk.messages.count_tokens(model=SONNET, messages=[])
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.count_tokens(model="claude-nope", messages=[{"role": "user", "content": "x"}])
