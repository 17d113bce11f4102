"""An assistant's tool calls without text, sent back in a tool loop's second turn: OpenAI's shape is `content: null`,
which llama-cpp-python's server answers with a 500 (its chat template reads the content). A model configured with
`empty_tool_call_content: true` sends `""` instead; every other keeps null (proxies in front of Bedrock refuse "")."""

from __future__ import annotations

import openai
import pytest

from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

pytestmark = pytest.mark.slow
TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
TURN_TWO = [
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
]


def test_a_tool_loops_second_turn_reaches_llama_cpp_python_with_the_setting(llama_server, ledger_path) -> None:
    with RecordingOpenAI() as recording:
        config = parse_config(
            {
                "models": {
                    "llama": {
                        "provider": "openai",
                        "model": "smollm2",
                        "base_url": llama_server,
                        "price_as": "gpt-4o-mini",
                        "empty_tool_call_content": True,
                    },
                    "llama-as-openai": {
                        "provider": "openai",
                        "model": "smollm2",
                        "base_url": llama_server,
                        "price_as": "gpt-4o-mini",
                    },
                    "proxy": {"provider": "openai", "model": "gpt-4o-mini", "base_url": recording.url},
                }
            }
        )
        with ServerThread(create_app(config, str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            for stream in (False, True):
                answer = client.chat.completions.create(
                    model="llama", messages=TURN_TWO, tools=[TOOL], max_tokens=4, stream=stream
                )
                if stream:
                    answer = list(answer)
                assert answer  # the server answered: before, every such turn was a 500 from llama-cpp-python
            with pytest.raises(openai.APIStatusError):  # without the setting, the server's own failure
                client.chat.completions.create(model="llama-as-openai", messages=TURN_TWO, tools=[TOOL], max_tokens=4)
            client.chat.completions.create(model="proxy", messages=TURN_TWO, tools=[TOOL], max_tokens=4)
            assert recording.bodies[-1]["messages"][1]["content"] is None  # OpenAI's shape, by default


def test_the_setting_is_for_openai_compatible_models_only() -> None:
    with pytest.raises(Exception, match="empty_tool_call_content applies to provider openai"):
        parse_config(
            {
                "models": {
                    "claude": {
                        "provider": "anthropic",
                        "model": "claude-sonnet-4-5-20250929",
                        "empty_tool_call_content": True,
                    }
                }
            }
        )
