"""The gateway in front of Gemini: the OpenAI SDK talks to `tokenomy serve`, which calls the Gemini emulator
through the Gemini provider — tools, streaming and a named context cache arrive, and the ledger has each call."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from google import genai
from google.genai import types

from tokenomy.config import RouteConfig, parse_config
from tokenomy.emulate.gemini_api import create_app as create_gemini
from tokenomy.emulate.instant_engine import InstantEngine
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.ledger.store import open_store
from tokenomy.pricing.catalog import default_catalog

MODEL = "gemini-2.5-flash"
MILLION = Decimal(1_000_000)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch):
    for key in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(key, raising=False)


def test_openai_sdk_through_the_gateway_to_gemini(ledger_path: Path) -> None:
    with ServerThread(create_gemini(engine=InstantEngine())) as upstream:
        config = {"models": {"g": {"provider": "gemini", "model": MODEL, "base_url": upstream}}}
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
            messages = [{"role": "user", "content": "Weather in Paris?"}]
            reply = client.chat.completions.create(model="g", messages=messages, tools=TOOLS, tool_choice="required")
            call = reply.choices[0].message.tool_calls[0]
            assert reply.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
            assert set(json.loads(call.function.arguments)) == {"city"}
            messages += [reply.choices[0].message, {"role": "tool", "tool_call_id": call.id, "content": "18C sunny"}]
            answer = client.chat.completions.create(model="g", messages=messages, tools=TOOLS)
            assert "18C" in answer.choices[0].message.content  # the tool result reached Gemini
            stream = client.chat.completions.create(
                model="g",
                messages=[{"role": "user", "content": "Say hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = list(stream)
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Re: Say hi"

            sdk = genai.Client(api_key="x", http_options={"base_url": upstream})
            cache = sdk.caches.create(model=MODEL, config=types.CreateCachedContentConfig(contents=["term " * 1500]))
            cached = client.chat.completions.create(
                model="g", messages=[{"role": "user", "content": "Sum up"}], extra_body={"cached_content": cache.name}
            )
            assert cached.usage.prompt_tokens_details.cached_tokens == cache.usage_metadata.total_token_count
            with pytest.raises(openai.BadRequestError, match="logit_bias"):
                client.chat.completions.create(
                    model="g", messages=[{"role": "user", "content": "x"}], logit_bias={"1": 1}
                )
    events = open_store(ledger_path).events()
    assert [e.provider for e in events] == ["gcp.gemini"] * 4 and {e.outcome for e in events} == {"ok"}
    last = events[-1]
    entry = default_catalog().lookup(MODEL)
    assert last.cache_read_tokens == cache.usage_metadata.total_token_count
    assert (
        last.cost_usd
        == (
            last.input_tokens * entry.input
            + last.cache_read_tokens * entry.cache_read
            + last.output_tokens * entry.output
        )
        / MILLION
    )


@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
def test_a_streamed_gemini_answer_keeps_its_thought_signatures(ledger_path: Path) -> None:
    # Gemini wants each thought signature back on the part it came with; a stream through /v1/messages dropped them,
    # so the thinking block an Anthropic-SDK caller sends back had none (the whole answer had it).
    import anthropic

    with ServerThread(create_gemini(engine=InstantEngine())) as upstream:
        config = {"models": {"g": {"provider": "gemini", "model": MODEL, "base_url": upstream}}}
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            ask = {"model": "g", "max_tokens": 256, "thinking": {"type": "enabled", "budget_tokens": 128}}
            messages = [{"role": "user", "content": "Weather in Paris?"}]
            whole = client.messages.create(**ask, messages=messages)
            with client.messages.stream(**ask, messages=messages) as stream:
                streamed = stream.get_final_message()
            assert [b.type for b in streamed.content] == [b.type for b in whole.content] == ["thinking", "text"]
            assert streamed.content[0].signature == whole.content[0].signature != ""
            messages += [{"role": "assistant", "content": streamed.content}, {"role": "user", "content": "And Rome?"}]
            assert client.messages.create(**ask, messages=messages).content  # the emulator checks the signature


def test_a_signature_on_a_streamed_function_call_is_its_own_thinking_block_before_it() -> None:
    from tokenomy.gateway.anthropic_events import EventWriter
    from tokenomy.providers.gemini_provider import GeminiProvider

    writer = EventWriter("msg_1", "g")
    events = [
        event
        for part in (
            {"thought": True, "text": "Look it up."},
            {"function_call": {"name": "get_weather", "args": {}}, "thought_signature": b"sig"},
        )
        for event in writer.chunk(GeminiProvider._chunk(part, 0))
    ]
    shapes = []
    for event in events:
        data = json.loads(event.decode().split("data: ", 1)[1])
        shapes.append((data["type"], (data.get("content_block") or data.get("delta") or {}).get("type")))
    assert shapes == [
        ("message_start", None),  # sent with the first piece (it may carry the upstream's counts)
        ("content_block_start", "thinking"),
        ("content_block_delta", "thinking_delta"),
        ("content_block_stop", None),
        ("content_block_start", "thinking"),
        ("content_block_delta", "signature_delta"),
        ("content_block_stop", None),
        ("content_block_start", "tool_use"),
        ("content_block_delta", "input_json_delta"),
    ]


def test_an_openai_sdk_tool_loop_with_gemini_thinking_sends_the_signatures_back(ledger_path: Path) -> None:
    # Chat completions carried Gemini's thoughts as `reasoning_content`, which has no place for a signature: the
    # next turn sent them back unsigned, and Gemini (here its emulator) refused the conversation.
    with ServerThread(create_gemini(engine=InstantEngine())) as upstream:
        config = {"models": {"g": {"provider": "gemini", "model": MODEL, "base_url": upstream}}}
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            ask = {
                "model": "g",
                "max_tokens": 256,
                "tools": TOOLS,
                "extra_body": {"thinking": {"type": "enabled", "budget_tokens": 128}},
            }
            messages = [{"role": "user", "content": "Weather in Paris?"}]
            whole = client.chat.completions.create(messages=messages, tool_choice="required", **ask).choices[0]
            with client.chat.completions.stream(messages=messages, tool_choice="required", **ask) as stream:
                streamed = stream.get_final_completion().choices[0]
            for message in (whole.message, streamed.message):
                blocks = message.model_extra["thinking_blocks"]
                assert [b["type"] for b in blocks] == ["thinking"] and blocks[0]["signature"]
                assert blocks[0]["thinking"] == message.model_extra["reasoning_content"]
                turn = [
                    *messages,
                    message,
                    {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "18C sunny"},
                ]
                assert "18C" in client.chat.completions.create(messages=turn, **ask).choices[0].message.content
            assert streamed.message.model_extra["thinking_blocks"] == whole.message.model_extra["thinking_blocks"]


def test_a_thought_signature_on_a_function_call_rides_on_that_tool_call_through_chat_completions() -> None:
    # Gemini 3 refuses a function call sent back without the signature it came with; the stream and the whole
    # answer carry it on the call (Google's OpenAI-compatible `extra_content`), and it comes back on the same part.
    from tokenomy.chat_response import ChatResponse, Usage
    from tokenomy.gateway.openai_ingress import to_chat_request
    from tokenomy.gateway.responses import chunk_delta, message_body, signed_reasoning_delta
    from tokenomy.gateway.schemas import ChatCompletionRequest
    from tokenomy.providers.gemini_mapping import contents_from_request
    from tokenomy.providers.gemini_parts_read import blocks_from_parts
    from tokenomy.providers.gemini_provider import GeminiProvider

    parts = [
        {"text": "Checking."},
        {"function_call": {"name": "get_weather", "args": {"city": "Paris"}}, "thought_signature": b"sig"},
    ]
    answer = ChatResponse(
        content=blocks_from_parts(parts),
        model=MODEL,
        provider="gcp.gemini",
        usage=Usage(1, 1),
        finish_reason="tool_calls",
        latency_ms=1,
    )
    message = message_body(answer)
    assert message["tool_calls"][0]["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert "thinking_blocks" not in message and "reasoning_content" not in message
    streamed = chunk_delta(GeminiProvider._chunk(parts[1], 0))
    assert (
        streamed is not None
        and streamed[0]["tool_calls"][0]["extra_content"] == message["tool_calls"][0]["extra_content"]
    )
    assert signed_reasoning_delta(answer, {0}) == {}  # already said with the call
    late = signed_reasoning_delta(answer, set())  # a call streamed without it gets it before the stream ends
    assert late == {"tool_calls": [{"index": 0, "extra_content": message["tool_calls"][0]["extra_content"]}]}
    body = ChatCompletionRequest.model_validate(
        {
            "model": "g",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                message,
                {"role": "tool", "tool_call_id": message["tool_calls"][0]["id"], "content": "18C"},
            ],
        }
    )
    sent = contents_from_request(to_chat_request(body, {}, None, RouteConfig()))
    assert sent[1]["parts"] == [
        {"text": "Checking."},
        {"function_call": {"name": "get_weather", "args": {"city": "Paris"}}, "thought_signature": b"sig"},
    ]


def test_litellms_copy_of_the_answers_fields_comes_back_with_the_message_and_is_read_as_them(ledger_path) -> None:
    # LiteLLM's Message keeps the answer's thinking_blocks in `provider_specific_fields` too, and an agent appending
    # `response.choices[0].message` sends both: every tool loop with thinking through `openai/<route>` was a 400.
    with ServerThread(create_gemini(engine=InstantEngine())) as upstream:
        config = {"models": {"g": {"provider": "gemini", "model": MODEL, "base_url": upstream}}}
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            ask = {"model": "g", "max_tokens": 256, "tools": TOOLS, "reasoning_effort": "low"}
            messages = [{"role": "user", "content": "Weather in Paris?"}]
            answer = client.chat.completions.create(messages=messages, tool_choice="required", **ask).choices[0]
            blocks = answer.message.model_extra["thinking_blocks"]
            call = answer.message.tool_calls[0].model_dump(exclude_none=True)
            sent = {
                "role": "assistant",
                "tool_calls": [call],
                "reasoning_content": blocks[0]["thinking"],
                "thinking_blocks": blocks,
                "provider_specific_fields": {"thinking_blocks": blocks},
            }
            result = {"role": "tool", "tool_call_id": call["id"], "content": "18C sunny"}
            copy_only = {
                "role": "assistant",
                "tool_calls": [call],
                "provider_specific_fields": {"thinking_blocks": blocks},
            }
            for assistant in (sent, copy_only):  # the copy alone still carries the signature Gemini checks
                reply = client.chat.completions.create(messages=[*messages, assistant, result], **ask)
                assert "18C" in reply.choices[0].message.content
            for fields, param in (
                (
                    {"thinking_blocks": [{**blocks[0], "signature": "b3RoZXI="}]},
                    "messages[1].provider_specific_fields.thinking_blocks",
                ),
                ({"citations": []}, "messages[1].provider_specific_fields.citations"),
            ):
                with pytest.raises(openai.BadRequestError) as refused:
                    client.chat.completions.create(
                        messages=[*messages, {**sent, "provider_specific_fields": fields}, result], **ask
                    )
                assert refused.value.body["param"] == param


@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
def test_the_ids_made_up_for_geminis_function_calls_are_unique_across_a_conversation(ledger_path: Path) -> None:
    # Gemini sends function calls without ids; the ids the gateway made up were their place in the answer
    # (gemini-call-0), so every turn of an agent's tool loop had the same one. Anthropic's API refuses a conversation
    # that repeats a tool_use id (a route falling back to Claude, an agent switching model), and an agent pairs
    # tool results to calls by id. Sent back, they still reach Gemini without an id.
    import anthropic

    tool = {"name": "get_weather", "input_schema": TOOLS[0]["function"]["parameters"]}
    with ServerThread(create_gemini(engine=InstantEngine())) as upstream:
        config = {"models": {"g": {"provider": "gemini", "model": MODEL, "base_url": upstream}}}
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            messages: list = [{"role": "user", "content": "Weather in Paris?"}]
            ids = []
            for stream in (False, True, False):
                ask = {
                    "model": "g",
                    "max_tokens": 256,
                    "messages": messages,
                    "tools": [tool],
                    "tool_choice": {"type": "any"},
                }
                if stream:
                    with client.messages.stream(**ask) as streamed:
                        reply = streamed.get_final_message()
                else:
                    reply = client.messages.create(**ask)
                (use,) = [block for block in reply.content if block.type == "tool_use"]
                ids.append(use.id)
                messages += [
                    {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C"}]},
                ]
    assert len(set(ids)) == 3 and all(i.startswith("gemini-call-") for i in ids)
