"""An empty text part (Gemini's `{"text": ""}`, which ADK and LangChain send beside other parts; an OpenAI chat
message's `{"type": "text", "text": ""}`) carries nothing, and Anthropic's API and Bedrock's Converse refuse it
("text content blocks must be non-empty", "is blank"): the gateway leaves it out for them, and a message left with no
content at all is a 400 naming the message as the caller sent it, before any call. Before, the upstream's refusal
came back as a failed call."""

from __future__ import annotations

import openai
import pytest
from google import genai
from google.genai import errors, types

from helpers import stand_in_aws_keys
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_anthropic
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

pytestmark = pytest.mark.slow
MODELS = ("claude", "haiku")


@pytest.fixture
def gateway(tmp_path, monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    stand_in_aws_keys(monkeypatch)
    engine = InstantEngine()
    with (
        ServerThread(create_anthropic(engine=engine)) as claude,
        ServerThread(create_bedrock(engine=engine)) as bedrock,
    ):
        config = parse_config(
            {
                "models": {
                    "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "base_url": claude},
                    "haiku": {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": bedrock,
                        "model": "anthropic.claude-3-haiku-20240307-v1:0",
                    },
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            yield url


@pytest.mark.parametrize("model", MODELS)
def test_gemini_empty_text_parts_are_left_out_for_claude_and_converse(gateway, model) -> None:
    client = genai.Client(api_key="unused", http_options={"base_url": gateway})
    contents = [types.Content(role="user", parts=[types.Part(text=""), types.Part(text="Hi there")])]
    answer = client.models.generate_content(
        model=model, contents=contents, config=types.GenerateContentConfig(max_output_tokens=16)
    )
    assert answer.text
    streamed = client.models.generate_content_stream(
        model=model, contents=contents, config=types.GenerateContentConfig(max_output_tokens=16)
    )
    assert "".join(c.text or "" for c in streamed)


@pytest.mark.parametrize("model", MODELS)
def test_a_gemini_content_with_only_empty_text_is_a_400_naming_it(gateway, model) -> None:
    client = genai.Client(api_key="unused", http_options={"base_url": gateway})
    contents = [
        types.Content(role="user", parts=[types.Part(text="Hi")]),
        types.Content(role="model", parts=[types.Part(text="")]),
        types.Content(role="user", parts=[types.Part(text="Again")]),
    ]
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(model=model, contents=contents)
    assert refused.value.code == 400 and "contents[1]" in refused.value.message
    assert "upstream" not in refused.value.message


@pytest.mark.parametrize("model", MODELS)
def test_openai_chat_empty_text_parts_are_left_out_and_an_empty_message_is_named(gateway, model) -> None:
    client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
    parts = [{"type": "text", "text": ""}, {"type": "text", "text": "Hi there"}]
    answer = client.chat.completions.create(model=model, max_tokens=16, messages=[{"role": "user", "content": parts}])
    assert answer.choices[0].message.content
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "Again"},
    ]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=model, max_tokens=16, messages=history)
    assert "messages[1]" in refused.value.message and "upstream" not in refused.value.message
