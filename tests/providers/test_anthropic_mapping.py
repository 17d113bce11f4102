"""Tools, images, documents and thinking through Anthropic's Messages API: the official SDK against the
emulator, Tokenomy's AnthropicProvider mapping both ways, and the gateway's `POST /v1/messages`."""

from __future__ import annotations

import base64
import json
import zlib
from decimal import Decimal

import anthropic
import httpx
import jsonschema
import pytest

from tokenomy.caching.placement import IMAGE_TOKENS
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app
from tokenomy.emulate.server import ServerThread
from tokenomy.errors import ProviderError
from tokenomy.gateway.app import create_app as gateway_app
from tokenomy.ledger.store import open_store
from tokenomy.messages import (
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers.anthropic_inbound import request_from_anthropic
from tokenomy.providers.anthropic_mapping import to_anthropic_params
from tokenomy.providers.anthropic_provider import AnthropicProvider
from tokenomy.request_options import Reasoning, ToolChoice, ToolSpec

SONNET = "claude-sonnet-4-5-20250929"
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}, "metric": {"type": "boolean"}},
    "required": ["city", "metric"],
    "additionalProperties": False,
}
TOOLS = [{"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER}]


def png_bytes() -> bytes:
    """A real 2x2 red PNG, built here so the test reads nothing outside the repository."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", (2).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00")
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def image_turn() -> dict:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is the weather in the city in this picture?"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png_bytes()).decode()},
            },
        ],
    }


@pytest.fixture(scope="module")
def url():
    with ServerThread(create_app()) as base:
        yield base


@pytest.fixture(scope="module")
def sdk(url):
    return anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)


def test_sdk_tool_round_trip_with_an_image(sdk) -> None:
    reply = sdk.messages.create(
        model=SONNET,
        max_tokens=64,
        tools=TOOLS,
        messages=[image_turn()],
        tool_choice={"type": "tool", "name": "get_weather"},
    )
    assert reply.stop_reason == "tool_use"
    (use,) = reply.content
    assert use.type == "tool_use" and use.name == "get_weather" and use.id.startswith("toolu_")
    jsonschema.validate(use.input, WEATHER)
    assert reply.usage.input_tokens > IMAGE_TOKENS
    follow = sdk.messages.create(
        model=SONNET,
        max_tokens=8,
        tools=TOOLS,
        messages=[
            image_turn(),
            {"role": "assistant", "content": reply.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C, sunny"}]},
        ],
    )
    assert follow.content[0].type == "text" and follow.content[0].text
    # Streamed: the SDK assembles input_json_delta fragments into the same kind of input.
    with sdk.messages.stream(
        model=SONNET, max_tokens=64, tools=TOOLS, messages=[image_turn()], tool_choice={"type": "any"}
    ) as stream:
        kinds = [e.delta.type for e in stream if e.type == "content_block_delta"]
        final = stream.get_final_message()
    assert kinds.count("input_json_delta") > 1
    jsonschema.validate(final.content[0].input, WEATHER)


def test_sdk_thinking_passes_back_with_its_signature(sdk) -> None:
    ask = {"role": "user", "content": "Is 7 prime? Answer yes or no."}
    # stop_sequences keep the small local model's answers short on a shared CPU.
    reply = sdk.messages.create(
        model=SONNET,
        max_tokens=1100,
        messages=[ask],
        stop_sequences=["."],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    thinking, text = reply.content
    assert thinking.type == "thinking" and thinking.thinking and thinking.signature
    assert text.type == "text"
    again = sdk.messages.create(
        model=SONNET,
        max_tokens=1100,
        thinking={"type": "enabled", "budget_tokens": 1024},
        stop_sequences=["."],
        messages=[ask, {"role": "assistant", "content": reply.content}, {"role": "user", "content": "Why?"}],
    )
    assert again.content[0].signature
    forged = [{"type": "thinking", "thinking": thinking.thinking + " (edited)", "signature": thinking.signature}, text]
    with pytest.raises(anthropic.BadRequestError, match="signature"):
        sdk.messages.create(
            model=SONNET,
            max_tokens=1100,
            stop_sequences=["."],
            messages=[ask, {"role": "assistant", "content": forged}, {"role": "user", "content": "Why?"}],
        )


def test_sdk_invalid_blocks_are_400s_naming_the_block(sdk) -> None:
    bad_image = {
        "role": "user",
        "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "AAAA"}}],
    }
    with pytest.raises(anthropic.BadRequestError, match=r"messages\.0\.content\.0\.source\.media_type"):
        sdk.messages.create(model=SONNET, max_tokens=8, messages=[bad_image])
    with pytest.raises(anthropic.BadRequestError, match=r"tool_choice\.name"):
        sdk.messages.create(
            model=SONNET,
            max_tokens=8,
            tools=TOOLS,
            messages=[image_turn()],
            tool_choice={"type": "tool", "name": "nope"},
        )


# -- the provider's mapping ---------------------------------------------------------------------------------
def test_request_maps_every_block_and_option_and_back() -> None:
    request = ChatRequest(
        messages=[
            Message(
                "user",
                [
                    TextBlock("see"),
                    ImageBlock("image/png", b"\x89PNG"),
                    ImageBlock(url="https://x/a.png"),
                    DocumentBlock("pdf", b"%PDF", "report"),
                    DocumentBlock("txt", b"hello", "notes"),
                ],
            ),
            Message(
                "assistant",
                [
                    ReasoningBlock("hm", "sig", signer="claude"),
                    ReasoningBlock(redacted="opaque", signer="claude"),
                    ToolUseBlock("t1", "get_weather", {"city": "Oslo", "metric": True}),
                ],
            ),
            Message("user", [ToolResultBlock("t1", [TextBlock("boom")], is_error=True)], cache_point=True),
        ],
        model=SONNET,
        max_tokens=2000,
        top_p=0.95,  # with thinking on, Claude takes a top_p from 0.95 and no top_k (a request without it below)
        stop=["END"],
        reasoning=Reasoning(budget_tokens=1024),
        tools=[ToolSpec("get_weather", None, WEATHER)],
        tool_choice=ToolChoice("auto"),
        parallel_tool_calls=False,
    )
    params = to_anthropic_params(request)
    user, assistant, result = params["messages"]
    assert user["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": base64.b64encode(b"\x89PNG").decode(),
    }
    assert user["content"][2]["source"] == {"type": "url", "url": "https://x/a.png"}
    assert user["content"][3] == {
        "type": "document",
        "title": "report",
        "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(b"%PDF").decode()},
    }
    assert user["content"][4]["source"] == {"type": "text", "media_type": "text/plain", "data": "hello"}
    assert assistant["content"][:2] == [
        {"type": "thinking", "thinking": "hm", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
    ]
    assert result["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "t1",
            "is_error": True,
            "content": [{"type": "text", "text": "boom"}],
            "cache_control": {"type": "ephemeral"},
        }
    ]
    assert params["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert params["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert (params["top_p"], params["stop_sequences"]) == (0.95, ["END"])
    assert to_anthropic_params(ChatRequest.simple("hi", model=SONNET, max_tokens=5, top_k=40))["top_k"] == 40
    # The gateway's reverse mapping reads the same body back into the same request.
    back = request_from_anthropic(params)
    assert back.messages == request.messages
    assert (back.tool_choice, back.parallel_tool_calls, back.reasoning.budget_tokens) == (
        ToolChoice("auto"),
        False,
        1024,
    )  # (a forced tool with thinking is refused)
    assert back.tools == request.tools and back.extra == {}


@pytest.mark.parametrize("field", ["seed", "presence_penalty", "frequency_penalty"])
def test_fields_anthropic_lacks_are_refused(field) -> None:
    request = ChatRequest.simple("hi", model=SONNET, **{field: 1})
    with pytest.raises(ProviderError, match=f"^{field}: .*{SONNET}"):
        to_anthropic_params(request)


def test_an_image_detail_inside_a_content_document_is_refused_before_any_call() -> None:
    # A content document's images were looked at only by the mapping, at call time: the gateway's up-front check
    # (`mapping_refusal`) passed one with OpenAI's detail setting, which Claude has no place for. (The gateway's own
    # callers cannot send one: the Messages API's image block has no detail field, so this is a library caller's.)
    image = ImageBlock("image/png", png_bytes(), detail="high")
    document = DocumentBlock("txt", None, content=[TextBlock("A chart:"), image])
    request = ChatRequest([Message("user", [TextBlock("Read this"), document])], model=SONNET)
    provider = AnthropicProvider(base_url="http://127.0.0.1:9", api_key="x")
    refused = provider.mapping_refusal(request, SONNET)
    assert refused is not None and (refused.status, refused.param) == (400, "messages[0].content[1].content[1].detail")
    assert str(refused) == (
        f"messages[0].content[1].content[1].detail: the Anthropic Messages API (model {SONNET}) "
        "has no image detail setting ('high'); remove it"
    )
    with pytest.raises(ProviderError) as caught:  # what the mapping raises at call time, at the same place
        to_anthropic_params(request)
    assert str(caught.value) == str(refused)
    image.detail = "auto"  # what every API does anyway: carried as no setting
    assert provider.mapping_refusal(request, SONNET) is None


@pytest.mark.parametrize(
    "extra, field, why",
    [
        ({"speed": "fast"}, "speed", "has no fast mode"),  # Sonnet 4.5's; a model's that has it is priced
        ({"inference_geo": "us"}, "inference_geo", "price"),
    ],
)
def test_pass_through_fields_anthropic_bills_apart_are_refused(extra, field, why) -> None:
    # They reached Anthropic (from /v1/messages, or a library caller's extra), which bills fast mode and US-only
    # inference at other prices than the ledger recorded the call at. Refused before any call: nothing listens on
    # port 9, so a request that went out would be a server error, not this.
    provider = AnthropicProvider(base_url="http://127.0.0.1:9", api_key="x")
    with pytest.raises(ProviderError) as caught:
        provider.chat(ChatRequest.simple("hi", model=SONNET, extra=extra))
    assert (caught.value.kind, caught.value.status, caught.value.param) == ("client_error", 400, field)
    assert str(caught.value).startswith(f"{field}: ") and why in str(caught.value)
    # The standard values are billed at the standard price: carried as sent.
    standard = {"speed": "standard", "inference_geo": "global", "cache_control": {"type": "ephemeral"}}
    body = provider._params(ChatRequest.simple("hi", model=SONNET, extra=standard))["extra_body"]
    assert body == standard


def test_provider_streams_tool_call_deltas_and_thinking(url) -> None:
    provider = AnthropicProvider(base_url=url)
    try:
        request = ChatRequest(
            messages=[Message("user", "Weather in Oslo?")],
            model=SONNET,
            max_tokens=64,
            tools=[ToolSpec("get_weather", "Weather", WEATHER)],
            tool_choice=ToolChoice("tool", "get_weather"),
        )
        chunks = list(provider.stream(request))
        deltas = [c.tool_call for c in chunks if c.tool_call is not None]
        assert deltas[0].name == "get_weather" and deltas[0].id and len(deltas) > 2
        final = chunks[-1].response
        assert final.finish_reason == "tool_calls"
        assert final.tool_calls[0].input == json.loads("".join(d.arguments for d in deltas))
        thinking = ChatRequest(
            messages=[Message("user", "Is 7 prime?")],
            model=SONNET,
            max_tokens=1100,
            stop=[".", "\n"],
            reasoning=Reasoning(budget_tokens=1024),
        )
        pieces = list(provider.stream(thinking))
        assert any(c.reasoning for c in pieces) and any(c.signature for c in pieces)
        block = pieces[-1].response.content[0]
        assert isinstance(block, ReasoningBlock) and block.signature
        # The signed reasoning goes back verbatim: the emulator checks the signature as the API does.
        thinking.messages += [Message("assistant", pieces[-1].response.content), Message("user", "Why?")]
        assert provider.chat(thinking).content[0].signature
    finally:
        provider.close()


# -- the gateway's /v1/messages -----------------------------------------------------------------------------
def test_anthropic_sdk_through_the_gateway_with_tools_images_and_streams(url, tmp_path) -> None:
    ledger = tmp_path / "ledger.duckdb"
    config = parse_config({"models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": url}}})
    with ServerThread(gateway_app(config, str(ledger)), lifespan="on") as gateway:
        client = anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0)
        reply = client.messages.create(
            model="claude",
            max_tokens=64,
            tools=TOOLS,
            messages=[image_turn()],
            tool_choice={"type": "tool", "name": "get_weather"},
            extra_headers={"x-tokenomy-task": "weather"},
        )
        assert reply.stop_reason == "tool_use" and reply.model == "claude"
        use = reply.content[0]
        jsonschema.validate(use.input, WEATHER)
        with client.messages.stream(
            model="claude",
            max_tokens=8,
            tools=TOOLS,
            messages=[
                image_turn(),
                {"role": "assistant", "content": reply.content},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": use.id,
                            "content": [{"type": "text", "text": "18C, sunny"}],
                        }
                    ],
                },
            ],
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert text and final.content[0].text == text and final.usage.output_tokens > 0
        with client.messages.stream(
            model="claude", max_tokens=64, tools=TOOLS, messages=[image_turn()], tool_choice={"type": "any"}
        ) as stream:
            streamed_call = stream.get_final_message()
        jsonschema.validate(streamed_call.content[0].input, WEATHER)
        # Thinking streams through the gateway with its signature, and goes back accepted.
        ask = {"role": "user", "content": "Is 7 prime?"}
        with client.messages.stream(
            model="claude",
            max_tokens=1100,
            stop_sequences=[".", "\n"],
            messages=[ask],
            thinking={"type": "enabled", "budget_tokens": 1024},
        ) as stream:
            deltas = {e.delta.type for e in stream if e.type == "content_block_delta"}
            thought = stream.get_final_message()
        assert {"thinking_delta", "signature_delta"} <= deltas
        assert thought.content[0].type == "thinking" and thought.content[0].signature
        again = client.messages.create(
            model="claude",
            max_tokens=1100,
            stop_sequences=[".", "\n"],
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[ask, {"role": "assistant", "content": thought.content}, {"role": "user", "content": "Why?"}],
        )
        assert again.content[0].type == "thinking"
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="nope", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        # A field the Messages API lacks is carried to the upstream, whose 400 names it (nothing dropped).
        bad = httpx.post(
            gateway + "/v1/messages",
            json={"model": "claude", "max_tokens": 8, "seed": 1, "messages": [{"role": "user", "content": "x"}]},
        )
        assert bad.status_code == 400 and bad.json()["type"] == "error" and "seed" in bad.json()["error"]["message"]
        unauthenticated = httpx.post(gateway + "/v1/messages", content=b"{nope")
        assert unauthenticated.status_code == 400 and "not valid JSON" in unauthenticated.json()["error"]["message"]
    rows = [r for r in open_store(ledger).events() if r.outcome == "ok"]
    assert len(rows) == 5 and {r.route for r in rows} == {"claude"}
    assert any(r.task == "weather" for r in rows)
    assert all(Decimal(str(r.cost_usd)) > 0 for r in rows)
    assert max(r.input_tokens for r in rows) > IMAGE_TOKENS  # the image was priced


def test_gateway_messages_use_the_same_keys_and_budgets(url, tmp_path) -> None:
    from tokenomy.gateway.keys import KeyStore

    ledger = tmp_path / "ledger.duckdb"
    secret, key = KeyStore(open_store(ledger)).create(budget_usd=Decimal("0.01"), period="month", name="agent")
    config = parse_config(
        {"auth": True, "models": {"claude": {"provider": "anthropic", "model": SONNET, "base_url": url}}}
    )
    ask = [{"role": "user", "content": "Say hi."}]
    with ServerThread(gateway_app(config, str(ledger)), lifespan="on") as gateway:
        by_header = anthropic.Anthropic(base_url=gateway, api_key=secret, max_retries=0)  # x-api-key
        assert by_header.messages.create(model="claude", max_tokens=4, messages=ask).usage.output_tokens > 0
        by_bearer = anthropic.Anthropic(base_url=gateway, auth_token=secret, max_retries=0)  # Authorization: Bearer
        assert by_bearer.messages.create(model="claude", max_tokens=4, messages=ask).content
        with pytest.raises(anthropic.AuthenticationError, match="Invalid or revoked"):
            anthropic.Anthropic(base_url=gateway, api_key="wrong", max_retries=0).messages.create(
                model="claude", max_tokens=4, messages=ask
            )
        # 20k output tokens at $15 per million could cost $0.30: more than the key's $0.01 budget.
        with pytest.raises(anthropic.RateLimitError, match="Budget exhausted"):
            by_header.messages.create(model="claude", max_tokens=20_000, messages=ask)
    rows = open_store(ledger).events()
    assert len(rows) == 2 and {r.key_id for r in rows} == {key.key_id}


@pytest.mark.parametrize(
    "change, named",
    [
        ({"temperature": "hot"}, "temperature"),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"tools": [{"description": "no name"}]}, "tools"),
        ({"messages": [{"role": "user", "content": [7]}]}, r"messages\.0\.content\.0"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "t",
                                "content": [
                                    {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
                                    {"type": "text", "text": "b"},
                                ],
                            }
                        ],
                    }
                ]
            },
            r"messages\.0\.content\.0\.content\.0\.cache_control: the gateway sets the cache point of a tool_result at",
        ),
        ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "'audio'"),
    ],
)
def test_malformed_messages_requests_are_refused_naming_the_field(change, named) -> None:
    body = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}], **change}
    with pytest.raises(ValueError, match=named):
        request_from_anthropic(body)


def test_thinking_off_goes_to_a_claude_model_that_thinks_only() -> None:
    """`thinking: {"type": "disabled"}` turns thinking off on the models that accept it (Anthropic's docs): a Claude
    model before 3.7 Sonnet has no thinking, and is sent no thinking field."""
    off = Reasoning(budget_tokens=0)
    for model, sent in (
        ("claude-3-haiku-20240307", None),
        ("claude-3-5-sonnet-20241022", None),
        ("claude-3-7-sonnet-20250219", {"type": "disabled"}),
        (SONNET, {"type": "disabled"}),
    ):
        params = to_anthropic_params(
            ChatRequest(messages=[Message("user", [TextBlock("hi")])], model=model, max_tokens=20, reasoning=off)
        )
        assert params.get("thinking") == sent, model
