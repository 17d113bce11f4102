"""The Anthropic Messages API emulator driven by the official `anthropic` SDK: token counting."""

from __future__ import annotations

import json

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
    asks = [
        {"messages": [{"role": "user", "content": "Count these words."}]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image", "source": PNG}, {"type": "text", "text": "Count these words."}],
                }
            ],
            "system": "Be brief.",
            "tools": [tool],
        },
    ]
    counts = []
    for ask in asks:
        counts.append(sdk.messages.count_tokens(model=SONNET, **ask).input_tokens)
        assert counts[-1] == sdk.messages.create(model=SONNET, max_tokens=2, **ask).usage.input_tokens
    assert counts[1] > counts[0]


def test_tools_bill_claudes_tool_use_system_prompt_by_tool_choice(sdk) -> None:
    """Anthropic adds a system prompt to a call that sends tools and bills it as input: 496 tokens on Sonnet 4.5 for
    tool_choice auto or none, 588 for any or tool (the catalog's tool_prompt_tokens_auto / _any, from its table).
    The emulator billed only the tools' JSON, so a test saw input_tokens no real call reports."""
    from tokenomy.emulate.anthropic_request import parse_messages
    from tokenomy.emulate.engine import Engine

    tool = {"name": "weather", "description": "The weather in a city.", "input_schema": {"type": "object"}}
    ask = {"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [tool]}
    system, turns, _ = parse_messages({"model": SONNET, **ask}, 300, counting=True)
    rendered = Engine().count_input(system, turns)  # the tools and the prompt as the local model reads them
    for choice, tool_prompt in (
        ({"type": "auto"}, 496),
        ({"type": "none"}, 496),
        ({"type": "any"}, 588),
        ({"type": "tool", "name": "weather"}, 588),
    ):
        reply = sdk.messages.create(model=SONNET, max_tokens=2, tool_choice=choice, **ask)
        assert reply.usage.input_tokens == rendered + tool_prompt, choice
        assert sdk.messages.count_tokens(model=SONNET, tool_choice=choice, **ask).input_tokens == rendered + tool_prompt
    plain = {"messages": ask["messages"]}
    system, turns, _ = parse_messages({"model": SONNET, **plain}, 300, counting=True)
    assert sdk.messages.create(model=SONNET, max_tokens=2, **plain).usage.input_tokens == Engine().count_input(
        system, turns
    )


def test_count_tokens_refuses_what_the_api_refuses(sdk) -> None:
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Extra inputs are not permitted"):
        sdk.messages.count_tokens(
            model=SONNET, messages=[{"role": "user", "content": "x"}], extra_body={"max_tokens": 5}
        )
    with pytest.raises(anthropic.BadRequestError, match="messages"):
        sdk.messages.count_tokens(model=SONNET, messages=[])
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.count_tokens(model="claude-nope", messages=[{"role": "user", "content": "x"}])


def test_a_top_level_cache_control_caches_up_to_the_last_block_as_the_api_does() -> None:
    # Anthropic's automatic caching, which langchain-anthropic's `cache_control` option sends: the emulator refused
    # it ("cache_control: Extra inputs are not permitted") where the API caches the prompt up to its last block.
    from tokenomy.emulate.instant_engine import InstantEngine
    from tokenomy.emulate.prompt_cache import PromptCache

    with ServerThread(create_app(engine=InstantEngine(cache=PromptCache()))) as url:
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        ask = {
            "model": SONNET,
            "max_tokens": 4,
            "system": "doc " * 1500,
            "messages": [{"role": "user", "content": "Sum it up."}],
        }
        auto = {"cache_control": {"type": "ephemeral", "ttl": "1h"}}
        first, second = (client.messages.create(**ask, extra_body=auto).usage for _ in range(2))
        assert first.cache_creation_input_tokens > 0 and first.cache_creation.ephemeral_1h_input_tokens > 0
        assert second.cache_read_input_tokens == first.cache_creation_input_tokens
        assert client.messages.create(**ask).usage.cache_creation_input_tokens == 0  # none asked: none written
        with pytest.raises(anthropic.BadRequestError, match=r"cache_control\.ttl"):
            client.messages.create(**ask, extra_body={"cache_control": {"type": "ephemeral", "ttl": "2h"}})


def test_a_matched_stop_sequence_is_the_stop_reason_and_named_as_the_api_does() -> None:
    # The emulator answered `stop_reason: end_turn, stop_sequence: null` when a stop sequence ended the text; the
    # API answers "stop_sequence" and names the sequence that matched (its text not in the content).
    from tokenomy.emulate.instant_engine import InstantEngine

    with ServerThread(create_app(engine=InstantEngine())) as url:
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        ask = {
            "model": SONNET,
            "max_tokens": 50,
            "stop_sequences": ["zzz", "ta ST", "STOP"],
            "messages": [{"role": "user", "content": "alpha beta STOP gamma"}],
        }
        reply = client.messages.create(**ask)
        with client.messages.stream(**ask) as stream:
            streamed = stream.get_final_message()
        for message in (reply, streamed):
            assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "ta ST")
            assert [block.text for block in message.content] == ["Re: alpha be"]
            assert message.usage.output_tokens > 0
        plain = client.messages.create(**{**ask, "stop_sequences": ["zzz"]})
        assert (plain.stop_reason, plain.stop_sequence) == ("end_turn", None)
        assert plain.content[0].text == "Re: alpha beta STOP gamma"


def test_max_tokens_0_writes_the_cache_and_generates_nothing_as_the_api_does() -> None:
    # Pre-warming the prompt cache: the API answers `content: []`, stop_reason "max_tokens", no output tokens, and
    # bills the cache write. The emulator refused it ("Input should be a positive integer").
    from tokenomy.emulate.instant_engine import InstantEngine
    from tokenomy.emulate.prompt_cache import PromptCache

    with ServerThread(create_app(engine=InstantEngine(cache=PromptCache()))) as url:
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        system = [{"type": "text", "text": "doc " * 1500, "cache_control": {"type": "ephemeral"}}]
        ask = {"model": SONNET, "system": system, "messages": [{"role": "user", "content": "Sum it up."}]}
        warm = client.messages.create(max_tokens=0, **ask)
        assert (warm.content, warm.stop_reason, warm.usage.output_tokens) == ([], "max_tokens", 0)
        assert warm.usage.cache_creation_input_tokens > 0
        assert (
            client.messages.create(max_tokens=4, **ask).usage.cache_read_input_tokens
            == warm.usage.cache_creation_input_tokens
        )
        # What asks for output is refused with it, as the API refuses it.
        tool = {"name": "f", "input_schema": {"type": "object"}}
        for extra, named in [
            ({"stream": True}, "stream"),
            ({"thinking": {"type": "adaptive"}}, "thinking"),
            ({"tools": [tool], "tool_choice": {"type": "any"}}, "tool_choice"),
            (
                {"output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}},
                "output_config.format",
            ),
        ]:
            with pytest.raises(anthropic.BadRequestError, match=rf"{named}: not supported with `max_tokens: 0`"):
                client.messages.create(max_tokens=0, **ask, extra_body=extra)
        with pytest.raises(anthropic.BadRequestError, match="max_tokens: Input should be a non-negative integer"):
            client.messages.create(max_tokens=-1, **ask)


def test_max_tokens_over_the_models_maximum_output_is_refused_as_the_api_refuses_it(tmp_path, monkeypatch) -> None:
    # The API refuses a max_tokens over the model's maximum output (64,000 for Sonnet 4.5) with a 400 naming both; the
    # emulator answered it, so a caller's cap the live API refuses passed every test against the emulator. Through the
    # gateway the caller gets the API's 400, streamed or not, and the refused call is in the ledger at no cost.
    from tokenomy.config import parse_config
    from tokenomy.emulate.instant_engine import InstantEngine
    from tokenomy.gateway.app import create_app as create_gateway
    from tokenomy.ledger.store import open_store

    monkeypatch.setenv("ANTHROPIC_API_KEY", "unused")
    ledger = tmp_path / "ledger.duckdb"
    ask = {"max_tokens": 64_001, "messages": [{"role": "user", "content": "hi"}]}
    with ServerThread(create_app(engine=InstantEngine())) as upstream:
        config = parse_config(
            {
                "models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": upstream}},
                # The route is the model's own name: the caller names the model, so its cap goes as sent (a cap
                # over the maximum of a model the gateway chose is held to it: test_held_output_caps).
                "routes": {"claude": {"model": "claude", "retry": {"max_attempts": 1}}},
            }
        )
        direct = anthropic.Anthropic(base_url=upstream, api_key="unused", max_retries=0)
        said = f"max_tokens: 64001 > 64000, which is the maximum allowed number of output tokens for {SONNET}"
        with pytest.raises(anthropic.BadRequestError, match=said):
            direct.messages.create(model=SONNET, **ask, timeout=30)
        assert direct.messages.create(model=SONNET, **{**ask, "max_tokens": 64_000}, timeout=30).content
        with ServerThread(create_gateway(config, str(ledger)), lifespan="on") as url:
            sdk = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
            with pytest.raises(anthropic.BadRequestError) as whole:
                sdk.messages.create(model="claude", **ask, timeout=30)
            with pytest.raises(anthropic.BadRequestError) as streamed:
                with sdk.messages.stream(model="claude", **ask) as stream:
                    stream.get_final_message()
    for refused in (whole.value, streamed.value):
        assert refused.body["error"]["type"] == "invalid_request_error" and said in refused.body["error"]["message"]
    ids = {whole.value.response.headers["request-id"], streamed.value.response.headers["request-id"]}
    rows = [e for e in open_store(str(ledger)).events() if e.request_id in ids]
    assert [(e.outcome, e.output_tokens, e.cost_usd) for e in rows] == [("client_error", 0, 0)] * 2


def test_structured_output_holds_to_a_pydantic_schema_so_the_sdks_parse_reads_it() -> None:
    # The instant engine wrote {} for a `$ref` (pydantic puts an enum or a nested model in `$defs`) and for an
    # Optional field's anyOf, "x" for a datetime or UUID and [] under minItems: answers the schema refuses, which the
    # API, holding the model to it, never gives, so every `parse` of such a model raised pydantic's ValidationError.
    import datetime
    import enum
    import uuid
    from typing import Literal

    import pydantic

    from tokenomy.emulate.instant_engine import InstantEngine

    class Colour(enum.Enum):
        red = "red"
        blue = "blue"

    class Line(pydantic.BaseModel):
        sku: str
        colour: Colour

    class Order(pydantic.BaseModel):
        id: uuid.UUID
        placed: datetime.datetime
        kind: Literal["retail", "trade"]
        note: str | None
        lines: list[Line] = pydantic.Field(min_length=1)  # minItems 1: the most Claude's structured outputs take

    with ServerThread(create_app(engine=InstantEngine())) as url:
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        ask = {"model": SONNET, "max_tokens": 400, "messages": [{"role": "user", "content": "An order"}]}
        order = client.messages.parse(**ask, output_format=Order).parsed_output
        call = client.messages.create(
            **ask,
            tools=[{"name": "place", "input_schema": Order.model_json_schema()}],
            tool_choice={"type": "tool", "name": "place"},
        )
    assert order is not None and order.lines[0].colour is Colour.red and order.kind == "retail"
    assert order.note is None
    assert Order.model_validate(call.content[0].input) == order


def test_sampling_changes_with_thinking_on_are_refused_as_the_api_refuses_them() -> None:
    # With thinking on, the API takes no temperature but 1, no top_k and a top_p only from 0.95 ("`temperature` may
    # only be set to 1 when thinking is enabled"); the emulator answered, so a client (or a gateway mapping) that
    # sends them passed its tests and failed against Claude.
    from tokenomy.emulate.instant_engine import InstantEngine

    ask = {
        "model": SONNET,
        "max_tokens": 2000,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": "hi"}],
    }
    with ServerThread(create_app(engine=InstantEngine())) as url:
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        for sampling, said in (
            ({"temperature": 0.2}, "`temperature` may only be set to 1 when thinking is enabled"),
            ({"top_k": 5}, "`top_k` may not be set"),
            ({"top_p": 0.5}, "`top_p` must be between 0.95 and 1"),
        ):
            with pytest.raises(anthropic.BadRequestError, match=said):
                client.messages.create(**ask, extra_body=sampling)
        for sampling in ({"temperature": 1, "top_p": 0.95}, {}):
            assert client.messages.create(**ask, extra_body=sampling).content[0].type == "thinking"
        plain = {key: value for key, value in ask.items() if key != "thinking"}
        assert client.messages.create(**plain, extra_body={"temperature": 0.2, "top_k": 5, "top_p": 0.5}).content


def test_an_answer_under_a_top_level_array_schema_is_a_list_not_a_server_error() -> None:
    # The answer's text under output_config's schema was generated as a tool's input, which must be an object: a
    # schema for a list made the emulator answer 500.
    from tokenomy.emulate.instant_engine import InstantEngine

    schema = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    with ServerThread(create_app(engine=InstantEngine())) as url:
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        answer = client.messages.create(
            model=SONNET,
            max_tokens=100,
            messages=[{"role": "user", "content": "Three colours"}],
            extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}},
        )
    value = json.loads(answer.content[0].text)
    assert isinstance(value, list) and value and all(isinstance(v, str) for v in value), value


def test_a_thinking_budget_above_max_tokens_is_taken_under_the_interleaved_thinking_beta() -> None:
    # With interleaved thinking (a beta header) the budget is the whole turn's and may exceed max_tokens; the API
    # takes it. The emulator refused it as it refuses it without the beta, so a gateway test had to script Claude.
    from tokenomy.emulate.instant_engine import InstantEngine

    ask = {
        "model": SONNET,
        "max_tokens": 2000,
        "thinking": {"type": "enabled", "budget_tokens": 4096},
        "messages": [{"role": "user", "content": "hi"}],
    }
    with ServerThread(create_app(engine=InstantEngine())) as url:
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        with pytest.raises(anthropic.BadRequestError, match="`max_tokens` must be greater than"):
            client.messages.create(**ask)
        betas = {"anthropic-beta": "fine-grained-tool-streaming-2025-05-14,interleaved-thinking-2025-05-14"}
        answer = client.messages.create(**ask, extra_headers=betas)
        assert [block.type for block in answer.content] == ["thinking", "text"]
        streamed = client.beta.messages.create(**ask, stream=True, betas=["interleaved-thinking-2025-05-14"])
        assert "thinking" in [event.content_block.type for event in streamed if event.type == "content_block_start"]


def test_thinking_and_answer_together_stay_within_max_tokens() -> None:
    # The thinking was cut at min(48, budget) tokens and the answer at max_tokens, so under the interleaved-thinking
    # beta (a budget above max_tokens) a response said more output than its max_tokens: max_tokens bounds a
    # response's thinking and text together. The instant engine echoes 12 words, one token each, thinking included.
    from tokenomy.emulate.instant_engine import ANSWER_WORDS, InstantEngine

    words = " ".join(f"w{n}" for n in range(40))
    betas = ["interleaved-thinking-2025-05-14"]
    with ServerThread(create_app(engine=InstantEngine())) as url:
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        for cap in (5, ANSWER_WORDS + 3, 2 * ANSWER_WORDS + 5):
            ask = {
                "model": SONNET,
                "max_tokens": cap,
                "thinking": {"type": "enabled", "budget_tokens": 4096},
                "messages": [{"role": "user", "content": words}],
                "betas": betas,
            }
            answer = client.beta.messages.create(**ask)
            assert answer.usage.output_tokens == min(cap, 2 * ANSWER_WORDS), (cap, answer.usage)
            assert answer.stop_reason == ("end_turn" if cap > 2 * ANSWER_WORDS else "max_tokens"), cap
            kinds = [block.type for block in answer.content]
            assert kinds == (["thinking"] if cap <= ANSWER_WORDS else ["thinking", "text"]), (cap, kinds)
            with client.beta.messages.stream(**ask) as stream:
                assert stream.get_final_message().usage.output_tokens == answer.usage.output_tokens


def test_fast_mode_is_said_in_usage_and_refused_on_a_model_without_it_as_the_api_does() -> None:
    # `speed` was taken and left unused: usage said no speed, so a gateway priced a fast call at the standard price
    # against the emulator, and fast mode on a model without it was answered, where Claude refuses it. The models are
    # the gateway's own list (providers/claude_speed.py).
    from tokenomy.emulate.instant_engine import InstantEngine

    ask = {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "speed": "fast"}
    with ServerThread(create_app(engine=InstantEngine())) as url:
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)
        assert client.messages.create(model="claude-opus-5-5", **ask).usage.speed == "fast"
        with client.messages.stream(model="claude-opus-5-5", **ask) as stream:
            assert stream.get_final_message().usage.speed == "fast"  # message_start's usage, where the SDK reads it
        # Opus 5's fast mode is a research preview: without its beta header the API runs the call at standard speed.
        assert client.messages.create(model="claude-opus-5", **ask).usage.speed == "standard"
        beta = client.beta.messages.create(model="claude-opus-5", **ask, betas=["fast-mode-2026-02-01"])
        assert beta.usage.speed == "fast"
        for model, said in (("claude-opus-4-8", "removed it on 2026-11-30"), (SONNET, "has no fast mode")):
            with pytest.raises(anthropic.BadRequestError, match=f"speed: model {model} .*{said}"):
                client.messages.create(model=model, **ask)
        with pytest.raises(anthropic.BadRequestError, match="speed: Input should be 'standard' or 'fast'"):
            client.messages.create(model="claude-opus-5-5", **{**ask, "speed": "ludicrous"})
        assert client.messages.create(model=SONNET, **{**ask, "speed": "standard"}).usage.speed == "standard"


@pytest.mark.slow
def test_top_k_and_top_p_reach_the_local_model() -> None:
    # top_p and top_k were checked and ignored: an answer sampled at temperature 1 was drawn from all tokens.
    with ServerThread(create_app()) as url:  # the real local model
        client = anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0)

        def said(**sampling) -> str:
            ask = {"model": SONNET, "max_tokens": 16, "messages": [{"role": "user", "content": "Tell me a story"}]}
            return client.messages.create(**ask, extra_body=sampling).content[0].text

        greedy, sampled = said(temperature=0), said(temperature=1)
        assert sampled != greedy, sampled
        assert said(temperature=1, top_k=1) == greedy
        assert said(temperature=1, top_p=0) == greedy
        with pytest.raises(anthropic.BadRequestError, match="top_k: Input should be a valid integer"):
            said(top_k=2.5)  # the local model takes a whole number of tokens, as the API does
