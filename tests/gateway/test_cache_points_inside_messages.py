"""Cache points inside a message (`Message.block_points`): a large document marked with cache_control and the short
question after it in the same user turn, as Anthropic's prompt-caching docs show it. The gateway refused every such
request ("move cache_control to the last block", "move the cachePoint to the end"); the point now reaches Claude
where the caller put it, on Anthropic's API (the Messages API emulator, which caches) and on Bedrock (the emulator,
through Converse), from /v1/messages, Converse and chat completions (LiteLLM's cache_control on a part); a point past
the 4 a request takes is a 400 naming it, before anything is sent."""

from __future__ import annotations

import anthropic
import boto3
import httpx
import openai
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers.converse_capture import record_converse
from helpers.recording_openai import RecordingOpenAI
from helpers.scripted_anthropic import ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_claude
from tokenomy.emulate.bedrock_runtime import create_app as create_bedrock
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.prompt_cache import PromptCache
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app

SONNET = "claude-sonnet-4-5-20250929"
BEDROCK_SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"
CACHED = {"type": "ephemeral"}
POINT = {"cachePoint": {"type": "default"}}
DOCUMENT = "The handbook says: " + "every clause binds. " * 600  # past Sonnet's 1,024-token minimum for a point
READ = {"type": "function", "function": {"name": "read", "parameters": {"type": "object"}}}
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def ask(question: str) -> list[dict]:
    """A user turn of the document, cached, then the question (Anthropic's docs' shape)."""
    document = {"type": "text", "text": DOCUMENT, "cache_control": CACHED}
    return [{"role": "user", "content": [document, {"type": "text", "text": question}]}]


@pytest.fixture
def served(tmp_path, monkeypatch):
    """{url, scripted (a recording Anthropic API), sent (the Converse params the Bedrock provider sent), openai
    (a recording OpenAI-format upstream)}: "claude" is the caching Messages API emulator, "bedrock" the caching
    Bedrock emulator, "claude-openai" Claude behind an OpenAI-compatible proxy, "gpt" an OpenAI-format model."""
    sent = record_converse(monkeypatch)
    scripted = ScriptedAnthropic()
    with (
        ServerThread(create_claude(engine=InstantEngine(cache=PromptCache()))) as claude,
        ServerThread(create_bedrock(engine=InstantEngine(cache=PromptCache()))) as bedrock,
        ServerThread(scripted.app) as recorded,
        RecordingOpenAI() as upstream,
    ):
        config = parse_config(
            {
                "models": {
                    "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
                    "scripted": {"provider": "anthropic", "model": SONNET, "base_url": recorded},
                    "bedrock": {
                        "provider": "bedrock",
                        "region": "us-east-1",
                        "endpoint_url": bedrock,
                        "model": BEDROCK_SONNET,
                    },
                    "claude-openai": {
                        "provider": "openai",
                        "model": "anthropic/claude-sonnet-4.5",
                        "base_url": upstream.url,
                        "price_as": SONNET,
                    },
                    "gpt": {"provider": "openai", "model": "up-model", "base_url": upstream.url, "price_as": SONNET},
                    "text-only": {
                        "provider": "openai",
                        "model": "up-text",
                        "base_url": upstream.url,
                        "price_as": SONNET,
                        "inputs": ["text"],
                    },
                }
            }
        )
        with ServerThread(create_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as url:
            yield {"url": url, "scripted": scripted, "sent": sent, "openai": upstream}


def test_a_cache_point_on_the_document_before_the_question_reaches_claude_and_caches_the_document(served) -> None:
    sdk = anthropic.Anthropic(base_url=served["url"], api_key="unused", max_retries=0)
    sdk.messages.create(model="scripted", max_tokens=5, messages=ask("Who is bound?"))
    assert served["scripted"].requests[-1][1]["messages"] == ask("Who is bound?")  # the point on the document
    first = sdk.messages.create(model="claude", max_tokens=5, messages=ask("Who is bound?")).usage
    second = sdk.messages.create(model="claude", max_tokens=5, messages=ask("Since when?")).usage
    # Another question after the same document reads what the first wrote: the cache ends at the document.
    assert first.cache_creation_input_tokens > 1000 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0


def test_a_cachepoint_between_two_blocks_of_a_converse_message_reaches_bedrock_in_place(served) -> None:
    client = boto3.client("bedrock-runtime", endpoint_url=served["url"], region_name="us-east-1", config=NO_RETRIES)

    def converse(question: str) -> dict:
        content = [{"text": DOCUMENT}, POINT, {"text": question}]
        system = [{"text": "You answer from the handbook."}, POINT, {"text": "Be brief."}]
        return client.converse(modelId="bedrock", system=system, messages=[{"role": "user", "content": content}])[
            "usage"
        ]

    first, second = converse("Who is bound?"), converse("Since when?")
    assert served["sent"][-1]["messages"] == [
        {"role": "user", "content": [{"text": DOCUMENT}, POINT, {"text": "Since when?"}]}
    ]
    assert served["sent"][-1]["system"] == [{"text": "You answer from the handbook."}, POINT, {"text": "Be brief."}]
    assert first["cacheWriteInputTokens"] > 1000 and second["cacheReadInputTokens"] == first["cacheWriteInputTokens"]
    # Any route: an Anthropic model gets the same point as cache_control on the block before it.
    client.converse(
        modelId="scripted", messages=[{"role": "user", "content": [{"text": DOCUMENT}, POINT, {"text": "?"}]}]
    )
    assert served["scripted"].requests[-1][1]["messages"][0]["content"] == [
        {"type": "text", "text": DOCUMENT, "cache_control": CACHED},
        {"type": "text", "text": "?"},
    ]


def test_a_chat_completions_cache_control_on_an_earlier_part_reaches_claude_on_that_part(served) -> None:
    chat = openai.OpenAI(base_url=served["url"] + "/v1", api_key="unused", max_retries=0)
    parts = [{"type": "text", "text": DOCUMENT, "cache_control": CACHED}, {"type": "text", "text": "Who is bound?"}]
    messages = [{"role": "user", "content": parts}]
    chat.chat.completions.create(model="scripted", messages=messages, max_tokens=5)
    assert served["scripted"].requests[-1][1]["messages"] == ask("Who is bound?")
    chat.chat.completions.create(model="claude-openai", messages=messages, max_tokens=5)
    assert served["openai"].bodies[-1]["messages"] == messages  # Claude behind a proxy: the point on its part
    chat.chat.completions.create(model="gpt", messages=messages, max_tokens=5)
    assert "cache_control" not in str(served["openai"].bodies[-1])  # it caches every prefix by itself
    # A run of tool messages is one turn: the first one's point (a 400 before) is after its tool_result block.
    call = {"id": "c1", "type": "function", "function": {"name": "read", "arguments": "{}"}}
    calls = [call, {**call, "id": "c2"}]
    results = [
        {"role": "tool", "tool_call_id": "c1", "content": DOCUMENT, "cache_control": CACHED},
        {"role": "tool", "tool_call_id": "c2", "content": "short"},
    ]
    run = [*messages, {"role": "assistant", "content": None, "tool_calls": calls}, *results]
    chat.chat.completions.create(model="scripted", messages=run, tools=[READ], max_tokens=5)
    sent = served["scripted"].requests[-1][1]["messages"][-1]["content"]
    assert [block.get("cache_control") for block in sent] == [CACHED, None], sent
    chat.chat.completions.create(model="claude-openai", messages=run, tools=[READ], max_tokens=5)
    marked = {
        "role": "tool",
        "tool_call_id": "c1",
        "content": [{"type": "text", "text": DOCUMENT, "cache_control": CACHED}],
    }
    assert served["openai"].bodies[-1]["messages"][-2:] == [marked, results[1]]


def test_a_fifth_cache_point_is_a_400_naming_it_before_anything_is_sent(served) -> None:
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": CACHED} for i in range(5)]
    body = {"model": "scripted", "max_tokens": 5, "messages": [{"role": "user", "content": blocks}]}
    answer = httpx.post(served["url"] + "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert "cache point 5 (`messages.0.content.4.cache_control`; a request takes at most 4" in message, message
    turns = [{"role": ("user", "assistant")[i % 2], "content": blocks[i : i + 1]} for i in range(5)]
    answer = httpx.post(
        served["url"] + "/v1/messages", json={**body, "messages": turns}, headers={"anthropic-version": "2023-06-01"}
    )
    assert answer.status_code == 400 and "`messages.4.content.0.cache_control`" in answer.text, answer.text
    assert served["scripted"].requests == []
    client = boto3.client("bedrock-runtime", endpoint_url=served["url"], region_name="us-east-1", config=NO_RETRIES)
    content = [item for i in range(5) for item in ({"text": f"part {i}"}, POINT)]
    with pytest.raises(ClientError) as refused:
        client.converse(modelId="bedrock", messages=[{"role": "user", "content": content}])
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "cache point 5 (`messages[0].content[9].cachePoint`" in str(refused.value), str(refused.value)
    assert served["sent"] == []
    # Four are carried (the system prompt's counted with the messages').
    system = [{"type": "text", "text": "Rules.", "cache_control": CACHED}]
    anthropic.Anthropic(base_url=served["url"], api_key="unused", max_retries=0).messages.create(
        model="scripted", max_tokens=5, system=system, messages=[{"role": "user", "content": blocks[:3]}]
    )
    assert served["scripted"].requests[-1][1]["messages"][0]["content"] == blocks[:3]


def test_a_converse_refusal_names_a_block_after_a_cachepoint_at_the_callers_index(served) -> None:
    # The content model holds no cachePoint block: a block after one is a place earlier there than in the caller's
    # message, and the 400 named the cachePoint's place instead of the image's.
    client = boto3.client("bedrock-runtime", endpoint_url=served["url"], region_name="us-east-1", config=NO_RETRIES)
    image = {"image": {"format": "png", "source": {"bytes": b"\x89PNG\r\n\x1a\n"}}}
    with pytest.raises(ClientError) as refused:
        client.converse(modelId="text-only", messages=[{"role": "user", "content": [{"text": "a"}, POINT, image]}])
    assert "messages[0].content[2]" in str(refused.value), str(refused.value)


def test_a_mid_conversation_system_messages_cache_control_reaches_claude_and_bedrock_on_its_system_block(
    served,
) -> None:
    # Claude and Bedrock take one system prompt, which a system message in mid-conversation joins: its cache_control
    # was refused ("has no place"), and a library caller's point was dropped in the joining. The joined prompt now ends
    # with the point there, and what it caches is read back.
    chat = openai.OpenAI(base_url=served["url"] + "/v1", api_key="unused", max_retries=0)

    policy = [
        {"role": "system", "content": "You answer from the handbook."},
        {"role": "user", "content": "Ready?"},
        {"role": "assistant", "content": "Ready."},
        {"role": "system", "content": DOCUMENT, "cache_control": CACHED},
    ]

    def ask_after_policy(model: str, question: str) -> openai.types.CompletionUsage:
        messages = [*policy, {"role": "user", "content": question}]
        usage = chat.chat.completions.create(model=model, messages=messages, max_tokens=5).usage
        assert usage is not None
        return usage

    ask_after_policy("scripted", "Who is bound?")
    joined = "You answer from the handbook.\n\n" + DOCUMENT  # the prompt is cut at points only
    assert served["scripted"].requests[-1][1]["system"] == [{"type": "text", "text": joined, "cache_control": CACHED}]
    # The opening system message's own point stays at its end (it was moved to the end of the joined prompt).
    marked = {"role": "system", "content": "You answer from the handbook.", "cache_control": CACHED}
    question = {"role": "user", "content": "Who is bound?"}
    chat.chat.completions.create(model="scripted", messages=[marked, *policy[1:], question], max_tokens=5)
    assert served["scripted"].requests[-1][1]["system"] == [
        {"type": "text", "text": "You answer from the handbook.", "cache_control": CACHED},
        {"type": "text", "text": DOCUMENT, "cache_control": CACHED},
    ]
    first, second = ask_after_policy("claude", "Who is bound?"), ask_after_policy("claude", "Since when?")
    assert first.prompt_tokens_details is not None and second.prompt_tokens_details is not None
    assert second.prompt_tokens_details.cached_tokens > 1000  # what the first call wrote at the point
    ask_after_policy("bedrock", "Who is bound?")
    assert served["sent"][-1]["system"] == [{"text": joined}, POINT]
    ask_after_policy("claude-openai", "Who is bound?")  # Claude behind a proxy: the message in its place, marked
    assert served["openai"].bodies[-1]["messages"][3] == {
        "role": "system",
        "content": [{"type": "text", "text": DOCUMENT, "cache_control": CACHED}],
    }
    # Counted with the others toward the 4 a request takes: the fifth is a 400 naming it, nothing sent.
    parts = [{"type": "text", "text": f"part {i}", "cache_control": CACHED} for i in range(4)]
    crowded = [{"role": "user", "content": parts}, *policy[2:], question]
    sent = len(served["sent"])
    with pytest.raises(openai.BadRequestError) as refused:
        chat.chat.completions.create(model="bedrock", messages=crowded, max_tokens=5)
    assert "cache point 5 (`messages[2].content`;" in str(refused.value), str(refused.value)
    assert len(served["sent"]) == sent


def test_a_top_level_cache_control_past_four_block_points_is_refused_at_the_gateways_first_check(served) -> None:
    # Anthropic's top-level cache_control (its automatic cache point, on the request's last block) counts toward the 4
    # a request takes. The gateway's first check left `extra`, where it sits, out, so 4 block points and it were sent.
    blocks = [{"type": "text", "text": f"part {i}", "cache_control": CACHED} for i in range(4)]
    body = {"model": "scripted", "max_tokens": 5, "messages": [{"role": "user", "content": blocks}]}
    answer = httpx.post(
        served["url"] + "/v1/messages",
        json={**body, "cache_control": CACHED},
        headers={"anthropic-version": "2023-06-01"},
    )
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert "cache point 5 (`cache_control`; a request takes at most 4" in message, message
    assert served["scripted"].requests == []
