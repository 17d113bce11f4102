"""OpenAI-compatible upstreams' dialects through the gateway: the official openai SDK → gateway → an upstream that
replays what each server documents sending (RecordingOpenAI's `answer` / `chunks`). The caller gets every piece in
OpenAI's shape, and the ledger row has the tokens the server billed, at the model's price.
"""

from __future__ import annotations

import json
import re

import openai
import pytest

from helpers.ledger_rows import written_rows
from helpers.recording_openai import RecordingOpenAI
from tokenomy.config import parse_config
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.pricing.catalog import default_catalog

USER = {"role": "user", "content": "Weather in Paris?"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def served(ledger_path):
    with RecordingOpenAI() as upstream:
        config = {
            "models": {
                "grok": {"provider": "openai", "model": "grok-4", "base_url": upstream.url, "price_as": "grok-4"},
                "mistral": {
                    "provider": "openai",
                    "model": "mistral-large-latest",
                    "base_url": upstream.url,
                    "price_as": "mistral-large-latest",
                },
            }
        }
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            yield upstream, openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


def priced(model: str, row) -> object:
    entry = default_catalog().lookup(model, None)
    return (
        row.input_tokens * entry.input
        + row.output_tokens * entry.output
        + row.cache_read_tokens * (entry.cache_read or entry.input)
    ) / 10**6


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None, **top) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "grok-4",
        "choices": choices,
        **({"usage": usage} if usage else {}),
        **top,
    }


def answer(message: dict, finish: str, usage: dict) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "grok-4",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        "usage": usage,
    }


# xAI's documented usage: reasoning beside completion_tokens, counted in total_tokens (32 + 9 + 310 = 351).
XAI_USAGE = {
    "prompt_tokens": 32,
    "completion_tokens": 9,
    "total_tokens": 351,
    "prompt_tokens_details": {"text_tokens": 32, "cached_tokens": 6},
    "completion_tokens_details": {"reasoning_tokens": 310},
}


def test_xai_reasoning_tokens_beside_completion_tokens_are_billed_as_output(served, ledger_path):
    """xAI's completion_tokens leave out the reasoning tokens its total_tokens adds: they were not in the ledger
    (grok-4's 310 reasoning tokens, 97% of its output, recorded free) nor in the caller's completion_tokens."""
    upstream, client = served
    upstream.answer = answer({"content": "Sunny.", "reasoning_content": "Paris..."}, "stop", XAI_USAGE)
    upstream.chunks = [
        chunk({"role": "assistant", "reasoning_content": "Paris..."}),
        chunk({"content": "Sunny."}),
        chunk({}, "stop"),
        chunk(usage=XAI_USAGE),
    ]
    whole = client.chat.completions.create(model="grok", messages=[USER])
    streamed = list(
        client.chat.completions.create(
            model="grok", messages=[USER], stream=True, stream_options={"include_usage": True}
        )
    )
    for usage in (whole.usage, streamed[-1].usage):
        assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (32, 319, 351)
        assert usage.completion_tokens_details.reasoning_tokens == 310
        assert usage.prompt_tokens_details.cached_tokens == 6
    for row in written_rows(ledger_path, 2, answered_only=False):
        assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (26, 6, 319)
        assert row.cost_usd == priced("grok-4", row)


def test_a_tool_call_id_and_name_repeated_on_every_piece_reach_the_caller_once(served, ledger_path):
    """Servers that repeat the call's id and name on every piece of its arguments (and send no index): the gateway
    passed each repeat on, and the openai SDK's stream helper joins what comes again, so the caller's agent got the
    call `call_9call_9call_9` of `get_weatherget_weatherget_weather`, which no tool and no tool message matches."""
    upstream, client = served
    pieces = ['{"city"', ': "Par', 'is"}']
    upstream.chunks = [
        chunk({"role": "assistant", "content": None}),
        *(
            chunk(
                {
                    "tool_calls": [
                        {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": p}}
                    ]
                }
            )
            for p in pieces
        ),
        chunk({}, "tool_calls"),
        chunk(usage={"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32}),
    ]
    with client.chat.completions.stream(model="grok", messages=[USER], tools=[WEATHER]) as stream:
        final = stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls
    assert (call.id, call.function.name, call.function.arguments) == ("call_9", "get_weather", '{"city": "Paris"}')
    assert final.choices[0].finish_reason == "tool_calls"
    [row] = written_rows(ledger_path, 1, answered_only=False)
    assert (row.input_tokens, row.output_tokens) == (20, 12) and row.cost_usd == priced("grok-4", row)


def test_groqs_usage_under_x_groq_is_the_streams_usage(served, ledger_path):
    """Groq's stream carries its usage in the last chunk's `x_groq.usage` (with its timings), not in `usage`: the
    stream was taken for one without usage, estimated (4 + 2 tokens for 812 + 95 billed) and labelled so."""
    upstream, client = served
    groq = {
        "queue_time": 0.07,
        "prompt_tokens": 812,
        "prompt_time": 0.006,
        "completion_tokens": 95,
        "completion_time": 0.02,
        "total_tokens": 907,
        "total_time": 0.03,
    }
    upstream.chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Sunny"}),
        chunk({"content": "."}),
        chunk({}, "stop", x_groq={"id": "req_01", "usage": groq}),
    ]
    streamed = list(
        client.chat.completions.create(
            model="grok", messages=[USER], stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "Sunny."
    assert (streamed[-1].usage.prompt_tokens, streamed[-1].usage.completion_tokens) == (812, 95)
    [row] = written_rows(ledger_path, 1, answered_only=False)
    assert (row.input_tokens, row.output_tokens) == (812, 95) and row.cost_usd == priced("grok-4", row)


def test_mistrals_model_length_finish_is_length(served):
    """Mistral finishes an answer that filled the model's context with `model_length`, outside OpenAI's vocabulary:
    it reached the caller as is, and an OpenAI-format agent did not know its answer was cut off."""
    upstream, client = served
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    upstream.answer = answer({"content": "The weather in"}, "model_length", usage)
    upstream.chunks = [chunk({"role": "assistant", "content": "The weather in"}), chunk({}, "model_length", usage)]
    whole = client.chat.completions.create(model="grok", messages=[USER])
    streamed = list(client.chat.completions.create(model="grok", messages=[USER], stream=True))
    assert whole.choices[0].finish_reason == "length"
    assert [c.choices[0].finish_reason for c in streamed if c.choices and c.choices[0].finish_reason] == ["length"]


# An agent's conversation so far, its tool call made by Claude (an Anthropic-format id).
CLAUDE_TURNS = [
    USER,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "toolu_01A09q90qw90lq917835lq9",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "18C, sunny"},
]


def test_a_conversation_with_claudes_tool_call_ids_goes_to_mistral_with_ids_it_takes(served, ledger_path):
    """Mistral refuses a tool call id that is not 9 letters or digits (a 400: "Tool call id was toolu_01... but must
    be a-z, A-Z, 0-9, with a length of 9"), so a conversation whose earlier calls another model made (Claude's
    toolu_..., OpenAI's call_...) could not fall back or move to a Mistral model. Its ids go as 9 letters and
    digits, the call's and its result's the same, and the same in the next turn; Mistral's own ids as they are."""
    upstream, client = served
    upstream.answer = answer(
        {"content": "Sunny, 18C."}, "stop", {"prompt_tokens": 60, "completion_tokens": 6, "total_tokens": 66}
    )
    reply = client.chat.completions.create(model="mistral", messages=CLAUDE_TURNS, tools=[WEATHER])
    assert reply.choices[0].message.content == "Sunny, 18C."
    mistral_turn = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "D7xq2Lp9a",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Lyon"}'},
            }
        ],
    }
    client.chat.completions.create(
        model="mistral",
        tools=[WEATHER],
        messages=[
            *CLAUDE_TURNS,
            {"role": "assistant", "content": "Sunny, 18C."},
            {"role": "user", "content": "And Lyon?"},
            mistral_turn,
            {"role": "tool", "tool_call_id": "D7xq2Lp9a", "content": "20C"},
        ],
    )
    first, second = upstream.bodies
    [call] = first["messages"][1]["tool_calls"]
    assert re.fullmatch(r"[A-Za-z0-9]{9}", call["id"]) and first["messages"][2]["tool_call_id"] == call["id"]
    assert second["messages"][1]["tool_calls"][0]["id"] == call["id"] == second["messages"][2]["tool_call_id"]
    assert second["messages"][5]["tool_calls"][0]["id"] == "D7xq2Lp9a" == second["messages"][6]["tool_call_id"]
    assert [
        r.cost_usd == priced("mistral-large-latest", r) for r in written_rows(ledger_path, 2, answered_only=False)
    ] == [True, True]


def test_an_upstreams_own_400_reaches_the_caller_with_its_message(served):
    """A server that refuses what OpenAI takes (here Mistral's check of a tool call id, where Tokenomy does not know
    the model is Mistral's) answers 400: the caller gets that 400 and the server's words, not a 5xx."""
    upstream, client = served
    refused = "Tool call id was toolu_01A09q90qw90lq917835lq9 but must be a-z, A-Z, 0-9, with a length of 9."
    upstream.error = (
        400,
        {"object": "error", "message": refused, "type": "invalid_request_error", "param": None, "code": "3280"},
    )
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            list(client.chat.completions.create(model="grok", messages=CLAUDE_TURNS, tools=[WEATHER], stream=stream))
        assert caught.value.status_code == 400 and refused in str(caught.value)


def test_llama_cpp_pythons_function_call_beside_its_tool_calls_is_not_passed_on(served):
    """llama-cpp-python (chatml-function-calling) sends the legacy `function_call` beside each tool call, whole
    answer and stream pieces alike (recorded from its server): the gateway passed it on, so the caller's message
    held the call twice (streamed, the SDK's helper joined its name: get_weatherget_weather...), and sending that
    message back, as an agent does, was refused (a 400 on messages[1].function_call)."""
    upstream, client = served
    call = {
        "id": "call__0_get_weather_cmpl-77df",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{ "city": "Paris" }'},
    }
    upstream.answer = answer(
        {"content": None, "tool_calls": [call], "function_call": call["function"]},
        "tool_calls",
        {"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28},
    )
    pieces = ['{ "', "city", '": "Paris" }']
    empty = {"role": None, "content": None, "function_call": None, "tool_calls": None}
    upstream.chunks = [
        chunk({**empty, "role": "assistant"}),
        *(
            chunk(
                {
                    **empty,
                    "function_call": {"name": "get_weather", "arguments": p},
                    "tool_calls": [{"index": 0, **call, "function": {"name": "get_weather", "arguments": p}}],
                }
            )
            for p in pieces
        ),
        chunk(empty, "tool_calls"),
    ]
    whole = client.chat.completions.create(model="grok", messages=[USER], tools=[WEATHER])
    with client.chat.completions.stream(model="grok", messages=[USER], tools=[WEATHER]) as stream:
        streamed = stream.get_final_completion()
    for message in (whole.choices[0].message, streamed.choices[0].message):
        assert message.function_call is None
        assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
            (call["id"], "get_weather", '{ "city": "Paris" }')
        ]
        result = {"role": "tool", "tool_call_id": call["id"], "content": "18C"}
        turns = [USER, message.model_dump(exclude_none=True), result]
        client.chat.completions.create(model="grok", messages=turns, tools=[WEATHER])
        assert upstream.last["messages"][1]["tool_calls"][0]["id"] == call["id"]


AZURE_FILTERS = {"hate": {"filtered": False, "severity": "safe"}, "violence": {"filtered": False, "severity": "safe"}}


def test_azures_choiceless_first_chunk_and_content_filter_reach_the_caller(served, ledger_path):
    """Azure OpenAI's stream opens with a chunk without choices carrying `prompt_filter_results`, annotates each
    choice with `content_filter_results` and may finish with content_filter: all reach the caller, billed."""
    upstream, client = served
    usage = {
        "prompt_tokens": 14,
        "completion_tokens": 2,
        "total_tokens": 16,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    first = {
        "id": "",
        "object": "",
        "created": 0,
        "model": "",
        "choices": [],
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": AZURE_FILTERS}],
    }
    filtered = {
        **chunk({"content": "It"}),
        "choices": [
            {"index": 0, "delta": {"content": "It"}, "finish_reason": None, "content_filter_results": AZURE_FILTERS}
        ],
    }
    upstream.chunks = [
        first,
        chunk({"role": "assistant", "content": ""}),
        filtered,
        chunk({}, "content_filter"),
        chunk(usage=usage),
    ]
    streamed = list(
        client.chat.completions.create(
            model="grok", messages=[USER], stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "It"
    assert [c.choices[0].finish_reason for c in streamed if c.choices and c.choices[0].finish_reason] == [
        "content_filter"
    ]
    dumped = [c.model_dump() for c in streamed]
    assert any(c.get("prompt_filter_results") for c in dumped)
    assert any(ch.get("content_filter_results") == AZURE_FILTERS for c in dumped for ch in c["choices"])
    [row] = written_rows(ledger_path, 1, answered_only=False)
    assert (row.input_tokens, row.output_tokens) == (14, 2) and row.cost_usd == priced("grok-4", row)


def test_deepseeks_reasoning_and_cache_hits_and_ollamas_reasoning_reach_the_caller_billed(served, ledger_path):
    """DeepSeek streams `reasoning_content` and counts cache hits as `prompt_cache_hit_tokens`; Ollama's /v1 names
    the reasoning `reasoning`: the caller gets the reasoning as reasoning_content, the ledger the cache reads apart
    and the reasoning as output."""
    upstream, client = served
    deepseek = {
        "prompt_tokens": 100,
        "completion_tokens": 30,
        "total_tokens": 130,
        "prompt_cache_hit_tokens": 64,
        "prompt_cache_miss_tokens": 36,
        "completion_tokens_details": {"reasoning_tokens": 20},
    }
    upstream.chunks = [
        chunk({"role": "assistant", "content": None, "reasoning_content": ""}),
        chunk({"content": None, "reasoning_content": "Paris is "}),
        chunk({"content": None, "reasoning_content": "in France."}),
        chunk({"content": "Sunny."}),
        chunk({"content": ""}, "stop", deepseek),
    ]
    upstream.answer = answer(
        {"content": "Sunny.", "reasoning": "Paris is in France."},
        "stop",
        {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62},
    )
    streamed = list(
        client.chat.completions.create(
            model="grok", messages=[USER], stream=True, stream_options={"include_usage": True}
        )
    )
    whole = client.chat.completions.create(model="grok", messages=[USER])
    said = [c.choices[0].delta.model_dump() for c in streamed if c.choices]
    assert "".join(d.get("reasoning_content") or "" for d in said) == "Paris is in France."
    assert "".join(d.get("content") or "" for d in said) == "Sunny."
    assert streamed[-1].usage.prompt_tokens_details.cached_tokens == 64
    assert whole.choices[0].message.model_dump()["reasoning_content"] == "Paris is in France."
    first, second = written_rows(ledger_path, 2, answered_only=False)
    assert (first.input_tokens, first.cache_read_tokens, first.output_tokens) == (36, 64, 30)
    assert (second.input_tokens, second.output_tokens) == (50, 12)
    assert [r.cost_usd == priced("grok-4", r) for r in (first, second)] == [True, True]


def test_geminis_parallel_calls_in_one_chunk_without_index_stay_apart(served):
    """Gemini's OpenAI-compatible endpoint sends each tool call whole, several in one chunk, without `index`, with
    its thought signature in `extra_content`: two calls, each with its arguments, ids and signature kept."""
    upstream, client = served
    calls = [
        {
            "id": f"function-call-{i}",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
        }
        for i, city in enumerate(("Paris", "Lyon"))
    ]
    calls[0]["extra_content"] = {"google": {"thought_signature": "c2lnbmVk"}}
    upstream.chunks = [
        chunk({"role": "assistant", "tool_calls": calls}, "tool_calls"),
        chunk(usage={"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}),
    ]
    with client.chat.completions.stream(model="grok", messages=[USER], tools=[WEATHER]) as stream:
        final = stream.get_final_completion()
    got = final.choices[0].message.model_dump()["tool_calls"]
    assert [(c["id"], c["function"]["arguments"]) for c in got] == [
        ("function-call-0", '{"city": "Paris"}'),
        ("function-call-1", '{"city": "Lyon"}'),
    ]
    assert got[0]["extra_content"] == {"google": {"thought_signature": "c2lnbmVk"}}


def test_moonshots_usage_in_the_choice_and_top_level_cached_tokens_are_billed(served, ledger_path):
    """Moonshot (Kimi) streams its usage inside the last chunk's choice, not beside it, and counts cache hits as a
    top-level `usage.cached_tokens`: the stream was recorded at an estimate (and the usage passed on as a stray
    choice key), and the cache hits as fresh input, at 4x the cache-read price."""
    upstream, client = served
    kimi = {"prompt_tokens": 1900, "completion_tokens": 21, "total_tokens": 1921, "cached_tokens": 1536}
    upstream.chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Sunny."}),
        {**chunk({}), "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "usage": kimi}]},
    ]
    upstream.answer = answer({"content": "Sunny."}, "stop", kimi)
    streamed = list(
        client.chat.completions.create(
            model="grok", messages=[USER], stream=True, stream_options={"include_usage": True}
        )
    )
    whole = client.chat.completions.create(model="grok", messages=[USER])
    assert all("usage" not in ch for c in streamed for ch in c.model_dump()["choices"])
    for usage in (streamed[-1].usage, whole.usage):
        assert (usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens, usage.completion_tokens) == (
            1900,
            1536,
            21,
        )
    for row in written_rows(ledger_path, 2, answered_only=False):
        assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (364, 1536, 21)
        assert row.cost_usd == priced("grok-4", row)


def test_mistrals_422_for_a_field_it_does_not_take_reaches_the_caller_with_its_words(served):
    """Mistral answers 422 for a request field OpenAI takes and it does not (max_completion_tokens, seed: it names
    its own random_seed): the caller gets a 4xx naming the field, in Mistral's words, not a 5xx."""
    upstream, client = served
    detail = [
        {
            "type": "extra_forbidden",
            "loc": ["body", "max_completion_tokens"],
            "msg": "Extra inputs are not permitted",
            "input": 64,
        }
    ]
    upstream.error = (
        422,
        {
            "object": "error",
            "message": {"detail": detail},
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    )
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="mistral", messages=[USER], max_completion_tokens=64)
    assert 400 <= caught.value.status_code < 500
    assert "max_completion_tokens" in str(caught.value) and "Extra inputs are not permitted" in str(caught.value)
    assert upstream.last["max_completion_tokens"] == 64


# OpenRouter's reasoning as its answers carry it (reasoning.text with Claude's signature, reasoning.encrypted), which
# its docs ask to send back unchanged on the next turn of a tool loop so the model gets its reasoning back.
OPENROUTER_DETAILS = [
    {
        "type": "reasoning.text",
        "text": "Paris: check the weather.",
        "signature": "sig-1",
        "format": "anthropic-claude-v1",
        "index": 0,
    },
    {"type": "reasoning.encrypted", "data": "opaque==", "format": "anthropic-claude-v1", "index": 1},
]


def test_openrouters_reasoning_details_go_back_to_it_with_the_message(ledger_path):
    """OpenRouter answers with `reasoning_details`, which the gateway passed on to the caller and then refused when
    the caller sent the message back (`messages[1].reasoning_details: not supported`): every tool loop of a
    reasoning model through OpenRouter broke at its second turn. It now reaches the OpenAI-format upstream as sent;
    an API that has no such field (Claude's own) refuses it by name, before any call."""
    with RecordingOpenAI() as upstream:
        upstream.message_extra = {"reasoning": "Paris: check the weather.", "reasoning_details": OPENROUTER_DETAILS}
        config = {
            "models": {
                "router": {"provider": "openai", "model": "anthropic/claude-sonnet-4.5", "base_url": upstream.url},
                "claude": {"provider": "anthropic", "model": "claude-sonnet-4-5", "base_url": "http://127.0.0.1:9"},
            }
        }
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            first = client.chat.completions.create(model="router", messages=[USER], tools=[WEATHER])
            message = first.choices[0].message
            assert message.model_extra["reasoning_details"] == OPENROUTER_DETAILS
            history = [
                USER,
                message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "18C sunny"},
            ]
            second = client.chat.completions.create(model="router", messages=history, tools=[WEATHER])
            assert second.choices[0].message.content == "answer after 18C sunny"
            sent = upstream.bodies[-1]["messages"][1]
            assert sent["reasoning_details"] == OPENROUTER_DETAILS
            assert sent["tool_calls"][0]["id"] == message.tool_calls[0].id
            with pytest.raises(openai.BadRequestError) as refused:
                client.chat.completions.create(model="claude", messages=history, tools=[WEATHER])
            assert refused.value.body["param"] == "messages[1].reasoning_details"
            assert len(upstream.bodies) == 2


def test_an_unreadable_answer_holding_a_lone_surrogate_is_the_upstreams_502_not_a_500(served, ledger_path):
    # JSON text may escape a lone surrogate ("\ud800"), which UTF-8 cannot hold. The error quoting such an answer
    # kept it raw, and the gateway's own JSON answer then failed to encode: a 500 with a traceback, not the 502 an
    # unreadable upstream answer gets. It is now quoted escaped, as JSON writes it.
    upstream, client = served
    upstream.answer = {"choices": [{"message": "x\ud800"}]}
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="grok", messages=[USER])
    assert raised.value.status_code == 502 and "\\ud800" in raised.value.message, raised.value.message


def claude_behind(usage: dict, ledger_path) -> list:
    """The rows of one whole and one streamed call to a Claude model behind an OpenAI-format proxy that reports
    `usage`, priced as Claude Sonnet 4.5; the caller's usage of each is checked to be the proxy's."""
    with RecordingOpenAI() as upstream:
        upstream.answer = answer({"content": "Sunny."}, "stop", usage)
        upstream.chunks = [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Sunny."}),
            chunk({}, "stop"),
            chunk(usage=usage),
        ]
        config = {
            "models": {
                "claude": {
                    "provider": "openai",
                    "model": "anthropic/claude-sonnet-4.5",
                    "base_url": upstream.url,
                    "price_as": "claude-sonnet-4-5",
                }
            }
        }
        with ServerThread(create_app(parse_config(config), str(ledger_path)), lifespan="on") as url:
            client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
            whole = client.chat.completions.create(model="claude", messages=[USER])
            streamed = list(
                client.chat.completions.create(
                    model="claude", messages=[USER], stream=True, stream_options={"include_usage": True}
                )
            )
    for got in (whole.usage, streamed[-1].usage):
        assert (got.prompt_tokens, got.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    return written_rows(ledger_path, 2, answered_only=False)


def claude_cost(row) -> object:
    entry = default_catalog().lookup("claude-sonnet-4-5", None)
    return (
        row.input_tokens * entry.input
        + row.cache_read_tokens * entry.cache_read
        + row.cache_write_tokens * entry.cache_write
        + row.output_tokens * entry.output
    ) / 10**6


def test_openrouters_cache_writes_are_priced_as_cache_writes(ledger_path):
    """OpenRouter counts the prompt tokens a Claude model wrote to its cache as `prompt_tokens_details.
    cache_write_tokens`, inside prompt_tokens: they were recorded as fresh input, priced at the input rate (Claude's
    cache writes cost 1.25x it), and the row said nothing was written."""
    router = {
        "prompt_tokens": 9000,
        "completion_tokens": 12,
        "total_tokens": 9012,
        "cost": 0.03,
        "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 7000, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    for row in claude_behind(router, ledger_path):
        assert (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens, row.output_tokens) == (
            1000,
            1000,
            7000,
            12,
        )
        assert row.cost_usd == claude_cost(row)


def test_litellms_cache_creation_tokens_are_priced_as_cache_writes(ledger_path):
    """A LiteLLM proxy in front of Claude counts the cache writes inside prompt_tokens and says how many in the usage's
    top-level `cache_creation_input_tokens` (Anthropic's name): they were billed as fresh input, at the input rate."""
    litellm = {
        "prompt_tokens": 6000,
        "completion_tokens": 8,
        "total_tokens": 6008,
        "prompt_tokens_details": {"cached_tokens": 2000},
        "cache_creation_input_tokens": 3500,
        "cache_read_input_tokens": 2000,
    }
    for row in claude_behind(litellm, ledger_path):
        assert (row.input_tokens, row.cache_read_tokens, row.cache_write_tokens, row.output_tokens) == (
            500,
            2000,
            3500,
            8,
        )
        assert row.cost_usd == claude_cost(row)
