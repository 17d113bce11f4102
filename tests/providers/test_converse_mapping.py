"""Tools, images and documents through Bedrock Converse: boto3 against the emulator (botocore validates
the shapes), then Tokenomy's BedrockProvider mapping both ways, streamed and not."""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import replace

import boto3
import jsonschema
import pytest
from botocore.exceptions import ClientError

from tokenomy.caching.placement import IMAGE_TOKENS
from tokenomy.emulate.bedrock_runtime import create_app
from tokenomy.emulate.server import ServerThread
from tokenomy.errors import ProviderError
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
from tokenomy.providers.bedrock import BedrockProvider
from tokenomy.providers.converse_mapping import blocks_from_converse, to_converse_params
from tokenomy.request_options import Reasoning, ResponseFormat, ToolChoice, ToolSpec

SONNET = "anthropic.claude-3-7-sonnet-20250219-v1:0"
OPUS = "anthropic.claude-opus-4-5-20251101-v1:0"  # takes an effort level (Sonnet 3.7 does not)
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "Oslo"]}, "metric": {"type": "boolean"}},
    "required": ["city", "metric"],
    "additionalProperties": False,
}


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


@pytest.fixture(scope="module")
def url():
    with ServerThread(create_app()) as base:
        yield base


@pytest.fixture(scope="module")
def runtime(url):
    return boto3.client(
        "bedrock-runtime", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )


TOOLS = {
    "tools": [
        {"toolSpec": {"name": "get_weather", "description": "Weather for a city", "inputSchema": {"json": WEATHER}}}
    ]
}


def first_turn() -> dict:
    return {
        "role": "user",
        "content": [
            {"text": "What is the weather in the city in this picture?"},
            {"image": {"format": "png", "source": {"bytes": png_bytes()}}},
        ],
    }


def test_boto3_tool_round_trip_with_an_image(runtime) -> None:
    forced = {**TOOLS, "toolChoice": {"tool": {"name": "get_weather"}}}
    reply = runtime.converse(
        modelId=SONNET, messages=[first_turn()], toolConfig=forced, inferenceConfig={"maxTokens": 64}
    )
    assert reply["stopReason"] == "tool_use"
    (block,) = reply["output"]["message"]["content"]
    use = block["toolUse"]
    assert use["name"] == "get_weather" and use["toolUseId"]
    jsonschema.validate(use["input"], WEATHER)  # grammar-constrained: always valid against the schema
    # The image counts at the emulator's fixed estimate, on top of the text tokens.
    assert reply["usage"]["inputTokens"] > IMAGE_TOKENS
    follow = runtime.converse(
        modelId=SONNET,
        toolConfig=TOOLS,
        inferenceConfig={"maxTokens": 8},
        messages=[
            first_turn(),
            reply["output"]["message"],
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": use["toolUseId"],
                            "status": "success",
                            "content": [{"json": {"temp_c": 18, "sky": "sunny"}}],
                        }
                    }
                ],
            },
        ],
    )
    assert follow["stopReason"] in ("end_turn", "max_tokens")
    assert follow["output"]["message"]["content"][0]["text"]


def test_boto3_streamed_tool_call_arrives_as_input_fragments(runtime) -> None:
    forced = {**TOOLS, "toolChoice": {"any": {}}}
    events = list(
        runtime.converse_stream(
            modelId=SONNET, messages=[first_turn()], toolConfig=forced, inferenceConfig={"maxTokens": 64}
        )["stream"]
    )
    starts = [e["contentBlockStart"]["start"]["toolUse"] for e in events if "contentBlockStart" in e]
    assert [s["name"] for s in starts] == ["get_weather"]
    fragments = [e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events if "contentBlockDelta" in e]
    assert len(fragments) > 1
    jsonschema.validate(json.loads("".join(fragments)), WEATHER)
    assert next(e["messageStop"] for e in events if "messageStop" in e)["stopReason"] == "tool_use"


@pytest.mark.parametrize(
    "content, needle",
    [
        ([{"image": {"format": "png", "source": {"s3Location": {"uri": "s3://b/k.png"}}}}], "s3Location"),
        ([{"text": "read"}, {"document": {"format": "pdf", "name": " ", "source": {"bytes": b"%PDF"}}}], "name"),
        ([{"toolResult": {"toolUseId": "t1", "content": [{"text": "x"}]}}], "toolConfig"),
    ],
)
def test_boto3_invalid_blocks_are_validation_errors(runtime, content, needle) -> None:
    with pytest.raises(ClientError) as caught:
        runtime.converse(modelId=SONNET, messages=[{"role": "user", "content": content}])
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert needle in caught.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    "documents",
    [
        [{"format": "pdf", "name": "report.pdf", "source": {"bytes": b"%PDF"}}],
        [
            {"format": "txt", "name": "notes", "source": {"bytes": b"a"}},
            {"format": "txt", "name": "notes", "source": {"bytes": b"b"}},
        ],
    ],
    ids=["a file name", "a name twice"],
)
def test_boto3_document_names_follow_bedrocks_rules(runtime, documents) -> None:
    # Bedrock: a name of alphanumerics, single spaces, hyphens, parentheses and brackets, unique in the request.
    content = [{"text": "read"}, *({"document": d} for d in documents)]
    with pytest.raises(ClientError) as caught:
        runtime.converse(modelId=SONNET, messages=[{"role": "user", "content": content}])
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "document name" in caught.value.response["Error"]["Message"]


def test_provider_sends_file_names_and_untitled_documents_bedrock_accepts(url) -> None:
    # A caller's file name ("Q3 report.pdf", as the OpenAI SDK's file part sends it) and two untitled documents
    # (both were named "document") were each a ValidationException from Bedrock for the whole conversation.
    request = ChatRequest(
        messages=[
            Message(
                "user",
                [
                    TextBlock("Summarise these."),
                    DocumentBlock("txt", b"alpha", "Q3 report.pdf"),
                    DocumentBlock("txt", b"beta"),
                    DocumentBlock("txt", b"gamma"),
                ],
            )
        ],
        model=SONNET,
        max_tokens=4,
    )
    names = [b["document"]["name"] for b in to_converse_params(request)["messages"][0]["content"][1:]]
    assert names == ["Q3 report-pdf", "document", "document (2)"]
    provider = BedrockProvider(region="us-east-1", endpoint_url=url)
    try:
        assert provider.chat(request).usage.output_tokens > 0
    finally:
        provider.close()


@pytest.mark.parametrize(
    "name, taken, expected",
    [
        ("my_file  v2.final.PDF", set(), "my-file v2-final-PDF"),
        ("  ..  ", set(), "document"),
        ("Report", {"report"}, "Report (2)"),
        ("x" * 250, set(), "x" * 200),
        ("x" * 250, {"x" * 200}, "x" * 196 + " (2)"),
        ("résumé (v1) [draft]", set(), "r-sum- (v1) [draft]"),
    ],
)
def test_document_names_are_made_valid_and_unique(name, taken, expected) -> None:
    from tokenomy.emulate.bedrock_blocks import DOCUMENT_NAME
    from tokenomy.providers.converse_mapping import document_name

    out = document_name(name, set(taken))
    assert out == expected and DOCUMENT_NAME.fullmatch(out) and len(out) <= 200


def test_a_tool_choice_naming_an_unknown_tool_is_refused(runtime) -> None:
    with pytest.raises(ClientError, match=r"not among toolConfig\.tools"):
        runtime.converse(
            modelId=SONNET, messages=[first_turn()], toolConfig={**TOOLS, "toolChoice": {"tool": {"name": "nope"}}}
        )


# -- the provider's mapping -------------------------------------------------------------------------------
def weather_request(**kwargs) -> ChatRequest:
    return ChatRequest(
        messages=[Message("user", [TextBlock("Weather in this city?"), ImageBlock("image/png", png_bytes())])],
        model=SONNET,
        max_tokens=64,
        tools=[ToolSpec("get_weather", "Weather for a city", WEATHER)],
        **{"tool_choice": ToolChoice("tool", "get_weather"), **kwargs},
    )


def test_request_maps_every_block_and_option_to_converse() -> None:
    request = ChatRequest(
        messages=[
            Message(
                "user",
                [
                    TextBlock("see"),
                    ImageBlock("image/jpeg", b"\xff\xd8"),
                    DocumentBlock("pdf", b"%PDF-1.4", "Q3 report"),
                ],
            ),
            Message(
                "assistant",
                [
                    ReasoningBlock("think", "sig"),
                    ReasoningBlock(redacted=base64.b64encode(b"\x01\x02").decode()),
                    ToolUseBlock("t1", "get_weather", arguments='{"city": "Oslo", "metric": true}'),
                ],
            ),
            Message("user", [ToolResultBlock("t1", [TextBlock("boom")], is_error=True)]),
        ],
        model=SONNET,
        top_p=0.95,  # with thinking on, Claude takes a top_p from 0.95 and no top_k
        reasoning=Reasoning(budget_tokens=2048),
        extra={"anthropic_beta": ["x"]},
        # (a forced tool with thinking is refused)
        tools=[ToolSpec("get_weather", None, WEATHER)],
        tool_choice=ToolChoice("auto"),
    )
    params = to_converse_params(request)
    user, assistant, result = params["messages"]
    assert user["content"][1] == {"image": {"format": "jpeg", "source": {"bytes": b"\xff\xd8"}}}
    assert user["content"][2] == {"document": {"format": "pdf", "name": "Q3 report", "source": {"bytes": b"%PDF-1.4"}}}
    assert assistant["content"][0] == {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sig"}}}
    assert assistant["content"][1] == {"reasoningContent": {"redactedContent": b"\x01\x02"}}
    assert assistant["content"][2]["toolUse"]["input"] == {"city": "Oslo", "metric": True}
    assert result["content"][0]["toolResult"] == {"toolUseId": "t1", "content": [{"text": "boom"}], "status": "error"}
    assert params["toolConfig"]["toolChoice"] == {"auto": {}}
    assert params["inferenceConfig"] == {"topP": 0.95}
    assert params["additionalModelRequestFields"] == {
        "anthropic_beta": ["x"],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
    }
    plain = to_converse_params(ChatRequest.simple("hi", model=SONNET, top_k=40))
    assert plain["additionalModelRequestFields"] == {"top_k": 40}
    # And back: the same blocks come out of Converse's shape (redacted bytes round-trip byte-identical).
    back = blocks_from_converse(assistant["content"] + result["content"])
    assert back[1].redacted == request.messages[1].content[1].redacted
    assert back[3].is_error and back[3].text == "boom"


def test_passed_through_converse_fields_go_where_converse_reads_them() -> None:
    # They all went into additionalModelRequestFields, the model's own parameters, where Bedrock refuses or ignores
    # them: a guardrail the caller asked for was not applied.
    import botocore.session
    from botocore.validate import ParamValidator

    from tokenomy.providers.converse_mapping import CONVERSE_TOP_LEVEL_FIELDS
    from tokenomy.providers.converse_refusals import CONVERSE_OWN_FIELDS, CONVERSE_UNPRICED_FIELDS

    extra = {
        "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
        "requestMetadata": {"team": "search"},
        "additionalModelResponseFieldPaths": ["/stop_sequence"],
        "additionalModelRequestFields": {"top_k": 5},
        "anthropic_beta": ["x"],
    }
    params = to_converse_params(ChatRequest(messages=[Message("user", "hi")], model=SONNET, extra=extra))
    assert params["guardrailConfig"] == extra["guardrailConfig"] and params["requestMetadata"] == {"team": "search"}
    assert params["additionalModelResponseFieldPaths"] == ["/stop_sequence"]
    assert params["additionalModelRequestFields"] == {"top_k": 5, "anthropic_beta": ["x"]}
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    for operation in ("Converse", "ConverseStream"):
        shape = model.operation_model(operation).input_shape
        assert not ParamValidator().validate(params, shape).has_errors()
        # Every top-level field of the API is placed, made from the request, or refused: none lands in the wrong place.
        placed = {*CONVERSE_TOP_LEVEL_FIELDS, *CONVERSE_OWN_FIELDS, *CONVERSE_UNPRICED_FIELDS}
        assert set(shape.members) == placed | {"additionalModelRequestFields"}


@pytest.mark.parametrize("field", ["serviceTier", "performanceConfig", "inferenceConfig", "messages"])
def test_passed_through_fields_that_would_be_mispriced_or_clash_are_refused(field) -> None:
    with pytest.raises(ProviderError) as caught:
        to_converse_params(ChatRequest(messages=[Message("user", "hi")], model=SONNET, extra={field: {"type": "x"}}))
    assert caught.value.status == 400 and caught.value.param == field and str(caught.value).startswith(field)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"seed": 7}, "seed"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": 0.5}, "frequency_penalty"),
        ({"response_format": ResponseFormat("json_object")}, "response_format"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"reasoning": Reasoning(effort="minimal")}, "reasoning_effort"),
    ],
)
def test_fields_converse_lacks_are_refused_naming_field_and_model(kwargs, field) -> None:
    with pytest.raises(ProviderError) as caught:
        to_converse_params(weather_request(**kwargs))
    assert caught.value.kind == "client_error" and caught.value.status == 400
    assert str(caught.value).startswith(field) and SONNET in str(caught.value)


def test_parallel_tool_calls_off_without_tools_asks_for_nothing() -> None:
    # Codex sends `parallel_tool_calls: false` with every request, whatever its tools: one offering none cannot
    # call tools in parallel, so it asks for nothing Converse lacks (Anthropic's mapping sends nothing for it too).
    params = to_converse_params(ChatRequest(messages=[Message("user", "hi")], model=SONNET, parallel_tool_calls=False))
    assert "toolConfig" not in params and "additionalModelRequestFields" not in params


def test_image_detail_has_no_converse_field() -> None:
    detailed = ChatRequest(messages=[Message("user", [ImageBlock("image/png", b"x", detail="high")])], model=SONNET)
    with pytest.raises(ProviderError, match=r"^messages\[0\]\.content\[0\]\.detail"):
        to_converse_params(detailed)


def test_strict_tools_reach_converse(url) -> None:
    # Converse's ToolSpecification has `strict` (calls held to the schema): a strict tool, which the OpenAI Agents
    # SDK sends by default, was refused ("has no strict tool-schema mode") on every Bedrock route.
    import botocore.session
    from botocore.validate import ParamValidator

    request = weather_request()
    request.tools = [
        ToolSpec("get_weather", "Weather for a city", WEATHER, strict=True),
        ToolSpec("get_time", None, {"type": "object"}, strict=False),
    ]
    params = to_converse_params(request)
    assert [t["toolSpec"].get("strict") for t in params["toolConfig"]["tools"]] == [True, False]
    shape = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse").input_shape
    assert not ParamValidator().validate(params, shape).has_errors()
    provider = BedrockProvider(region="us-east-1", endpoint_url=url)
    try:
        (call,) = provider.chat(request).tool_calls
        jsonschema.validate(call.input, WEATHER)
    finally:
        provider.close()


def test_url_image_and_tool_choice_none_with_tool_history() -> None:
    url_image = ChatRequest(messages=[Message("user", [ImageBlock(url="https://example.com/a.png")])], model=SONNET)
    with pytest.raises(ProviderError, match=r"messages\[0\]\.content\[0\].*not by URL"):
        to_converse_params(url_image)
    # tool_choice none without tool history: the tools are not shown, so the model cannot call them.
    assert "toolConfig" not in to_converse_params(
        ChatRequest(
            messages=[Message("user", "hi")], model=SONNET, tools=[ToolSpec("t")], tool_choice=ToolChoice("none")
        )
    )
    history = ChatRequest(
        messages=[
            Message("user", "hi"),
            Message("assistant", [ToolUseBlock("a", "t")]),
            Message("user", [ToolResultBlock("a", [TextBlock("ok")])]),
        ],
        model=SONNET,
        tools=[ToolSpec("t")],
        tool_choice=ToolChoice("none"),
    )
    with pytest.raises(ProviderError, match="tool_choice"):
        to_converse_params(history)


def test_provider_answers_a_forced_tool_streamed_and_not_then_reads_the_result(url) -> None:
    provider = BedrockProvider(region="us-east-1", endpoint_url=url)
    try:
        reply = provider.chat(weather_request())
        assert reply.finish_reason == "tool_calls"
        (call,) = reply.tool_calls
        jsonschema.validate(call.input, WEATHER)
        chunks = list(provider.stream(weather_request()))
        deltas = [c.tool_call for c in chunks if c.tool_call is not None]
        assert deltas[0].id and deltas[0].name == "get_weather" and {d.index for d in deltas} == {0}
        assert len([d for d in deltas if d.arguments]) > 1
        final = chunks[-1].response
        assert final.tool_calls[0].input == json.loads("".join(d.arguments for d in deltas))
        assert final.finish_reason == "tool_calls"
        follow = weather_request(tool_choice=ToolChoice("auto"))
        follow.max_tokens = 8
        follow.messages += [
            Message("assistant", reply.content),
            Message("user", [ToolResultBlock(call.id, [TextBlock("18C, sunny")])]),
        ]
        answer = provider.chat(follow)
        assert answer.text and answer.finish_reason in ("stop", "length")
        assert answer.usage.input_tokens > IMAGE_TOKENS
    finally:
        provider.close()


def test_anthropic_sdk_through_the_gateway_to_bedrock(url, tmp_path) -> None:
    """Anthropic's shape in, Converse out: tools, an image and a tool result cross both mappings."""
    import anthropic

    from tokenomy.config import parse_config
    from tokenomy.gateway.app import create_app as gateway_app
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "ledger.duckdb"
    config = parse_config(
        {"models": {"sonnet": {"provider": "bedrock", "model": SONNET, "region": "us-east-1", "endpoint_url": url}}}
    )
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png_bytes()).decode()},
    }
    tools = [{"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER}]
    ask = {"role": "user", "content": [{"type": "text", "text": "Weather in this city?"}, image]}
    with ServerThread(gateway_app(config, str(ledger)), lifespan="on") as gateway:
        client = anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0)
        with client.messages.stream(
            model="sonnet",
            max_tokens=64,
            tools=tools,
            messages=[ask],
            tool_choice={"type": "tool", "name": "get_weather"},
        ) as stream:
            reply = stream.get_final_message()
        assert reply.stop_reason == "tool_use"
        use = reply.content[0]
        jsonschema.validate(use.input, WEATHER)
        answer = client.messages.create(
            model="sonnet",
            max_tokens=8,
            tools=tools,
            messages=[
                ask,
                {"role": "assistant", "content": reply.content},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": use.id, "content": "18C, sunny", "is_error": False}
                    ],
                },
            ],
        )
        assert answer.content[0].text and answer.usage.input_tokens > IMAGE_TOKENS
        refused = client.messages.with_raw_response.create  # a URL image cannot reach Converse: a 400 naming it
        with pytest.raises(anthropic.BadRequestError, match=r"messages\.0\.content\.0: .*not by URL"):
            refused(
                model="sonnet",
                max_tokens=8,
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}],
                    }
                ],
            )
    rows = [r for r in open_store(ledger).events() if r.outcome == "ok"]
    assert len(rows) == 2 and all(r.provider == "aws.bedrock" for r in rows)


def test_provider_streams_signed_reasoning_that_goes_back_accepted(url) -> None:
    provider = BedrockProvider(region="us-east-1", endpoint_url=url)
    try:
        request = ChatRequest(
            messages=[Message("user", "Is 7 prime?")],
            model=SONNET,
            max_tokens=1100,
            stop=[".", "\n"],
            reasoning=Reasoning(budget_tokens=1024),
        )
        chunks = list(provider.stream(request))
        assert any(c.reasoning for c in chunks) and any(c.signature for c in chunks)
        answer = chunks[-1].response
        reasoning = answer.content[0]
        assert isinstance(reasoning, ReasoningBlock) and reasoning.text and reasoning.signature
        request.messages += [Message("assistant", answer.content), Message("user", "Why?")]
        again = provider.chat(request)
        assert isinstance(again.content[0], ReasoningBlock) and again.content[0].signature
        request.messages[1] = Message(
            "assistant", [ReasoningBlock(reasoning.text + " (edited)", reasoning.signature), *answer.content[1:]]
        )
        with pytest.raises(ProviderError, match="invalid signature"):
            provider.chat(request)
    finally:
        provider.close()


@pytest.mark.parametrize("stream", [False, True])
def test_openai_sdk_through_the_gateway_to_bedrock(url, tmp_path, stream) -> None:
    """OpenAI's shape in, Converse out: a forced tool call on an image, then the tool's result, streamed and not."""
    import openai

    from tokenomy.config import parse_config
    from tokenomy.gateway.app import create_app as gateway_app
    from tokenomy.ledger.store import open_store

    ledger = tmp_path / "ledger.duckdb"
    config = parse_config(
        {"models": {"sonnet": {"provider": "bedrock", "model": SONNET, "region": "us-east-1", "endpoint_url": url}}}
    )
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER},
        }
    ]
    ask = {
        "role": "user",
        "content": [
            {"type": "text", "text": "Weather in the city in this picture?"},
            {"type": "image_url", "image_url": {"url": data_url}},
        ],
    }
    forced = {"type": "function", "function": {"name": "get_weather"}}
    with ServerThread(gateway_app(config, str(ledger)), lifespan="on") as gateway:
        client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
        if stream:
            calls: dict[int, dict] = {}
            finish = None
            for chunk in client.chat.completions.create(
                model="sonnet", max_tokens=64, tools=tools, tool_choice=forced, messages=[ask], stream=True
            ):
                for choice in chunk.choices:
                    finish = choice.finish_reason or finish
                    for delta in choice.delta.tool_calls or []:
                        call = calls.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                        call["id"] = delta.id or call["id"]
                        call["name"] = (delta.function and delta.function.name) or call["name"]
                        call["arguments"] += (delta.function and delta.function.arguments) or ""
            assert finish == "tool_calls" and len(calls) == 1
            call_id, name, arguments = calls[0]["id"], calls[0]["name"], calls[0]["arguments"]
        else:
            reply = client.chat.completions.create(
                model="sonnet", max_tokens=64, tools=tools, tool_choice=forced, messages=[ask]
            )
            assert reply.choices[0].finish_reason == "tool_calls"
            (tool_call,) = reply.choices[0].message.tool_calls
            call_id, name, arguments = tool_call.id, tool_call.function.name, tool_call.function.arguments
        assert name == "get_weather" and call_id
        jsonschema.validate(json.loads(arguments), WEATHER)
        answer = client.chat.completions.create(
            model="sonnet",
            max_tokens=8,
            tools=tools,
            messages=[
                ask,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                    ],
                },
                {"role": "tool", "tool_call_id": call_id, "content": "18C, sunny"},
            ],
            extra_body={"requestMetadata": {"app": "weather"}},
        )  # a Converse field, passed through at its top level
        assert answer.choices[0].message.content and answer.usage.prompt_tokens > IMAGE_TOKENS
        with pytest.raises(openai.BadRequestError) as refused:  # billed at a price the catalog lacks: refused
            client.chat.completions.create(
                model="sonnet", max_tokens=8, messages=[ask], extra_body={"serviceTier": {"type": "priority"}}
            )
        assert refused.value.body["param"] == "serviceTier" and "wrong price" in refused.value.body["message"]
    rows = [r for r in open_store(ledger).events() if r.outcome == "ok"]
    assert len(rows) == 2 and all(r.provider == "aws.bedrock" and r.image_count == 1 for r in rows)
    assert [r.tool_call_count for r in rows] == [1, 0]


@pytest.mark.parametrize("kwargs, param", [({"n": 2}, "n"), ({"logprobs": True}, "logprobs")])
def test_openai_choices_and_logprobs_are_refused_for_bedrock_not_dropped(url, tmp_path, kwargs, param) -> None:
    """OpenAI's n and logprobs went into additionalModelRequestFields, where a model may ignore them: the caller got
    one choice without log probabilities, as if it had asked for that."""
    import openai

    from tokenomy.config import parse_config
    from tokenomy.gateway.app import create_app as gateway_app

    config = parse_config(
        {"models": {"sonnet": {"provider": "bedrock", "model": SONNET, "region": "us-east-1", "endpoint_url": url}}}
    )
    with ServerThread(gateway_app(config, str(tmp_path / "ledger.duckdb")), lifespan="on") as gateway:
        client = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="sonnet", max_tokens=4, messages=[{"role": "user", "content": "hi"}], **kwargs
            )
        assert caught.value.body["param"] == param and "Converse" in caught.value.body["message"]
        # n=1 and logprobs false ask for nothing Converse lacks: answered.
        reply = client.chat.completions.create(
            model="sonnet", max_tokens=4, n=1, logprobs=False, messages=[{"role": "user", "content": "hi"}]
        )
        assert len(reply.choices) == 1
    assert (
        to_converse_params(ChatRequest.simple("hi", model=SONNET, extra={"n": 1, "logprobs": False})).get(
            "additionalModelRequestFields"
        )
        is None
    )


def test_a_json_schema_response_format_and_an_effort_reach_converse(url) -> None:
    # Converse's outputConfig holds the answer to a JSON schema (textFormat) and sets a reasoning effort: both were
    # refused ("has no json_schema output mode", "takes a thinking budget, not an effort level").
    import botocore.session
    from botocore.validate import ParamValidator

    request = ChatRequest(
        messages=[Message("user", "Weather in Oslo, as JSON.")],
        model=OPUS,
        max_tokens=64,
        response_format=ResponseFormat("json_schema", WEATHER, "weather", True, "A forecast"),
        reasoning=Reasoning(effort="high"),
    )
    params = to_converse_params(request)
    sent = json.loads(params["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"])
    # Claude's form (the anthropic SDK's transform_schema): closed already; an enum's values say its type
    city = {"enum": ["Paris", "Oslo"]}
    assert sent == {**WEATHER, "properties": {**WEATHER["properties"], "city": city}}
    assert params["outputConfig"] == {
        "effort": "high",
        "textFormat": {
            "type": "json_schema",
            "structure": {
                "jsonSchema": {
                    "schema": params["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"],
                    "name": "weather",
                    "description": "A forecast",
                }
            },
        },
    }
    shape = botocore.session.get_session().get_service_model("bedrock-runtime").operation_model("Converse").input_shape
    assert not ParamValidator().validate(params, shape).has_errors()
    provider = BedrockProvider(region="us-east-1", endpoint_url=url)
    try:
        for answer in (provider.chat(request), list(provider.stream(request))[-1].response):
            jsonschema.validate(json.loads(answer.text), WEATHER)  # the emulator holds the text to the schema
            assert answer.finish_reason == "stop"
    finally:
        provider.close()
    # outputConfig passed through as well: one or the other, not both silently merged.
    with pytest.raises(ProviderError, match=r"^outputConfig"):
        to_converse_params(replace(request, extra={"outputConfig": {"effort": "low"}}))
    assert to_converse_params(ChatRequest.simple("hi", model=SONNET, extra={"outputConfig": {"effort": "low"}}))[
        "outputConfig"
    ] == {"effort": "low"}


def test_redacted_reasoning_streams_in_its_place_from_bedrock(monkeypatch) -> None:
    """Converse streams redacted reasoning as one reasoningContent delta of bytes, before the text it precedes: it
    is passed on there (StreamChunk.redacted), so each API's stream sends it in Claude's order, not at the end."""
    events = [
        {"messageStart": {"role": "assistant"}},
        {
            "contentBlockDelta": {
                "contentBlockIndex": 0,
                "delta": {"reasoningContent": {"redactedContent": b"\x01\xfe"}},
            }
        },
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"text": "Hi"}}},
        {"contentBlockStop": {"contentBlockIndex": 1}},
        {"messageStop": {"stopReason": "end_turn"}},
        {"metadata": {"usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7}, "metrics": {"latencyMs": 1}}},
    ]

    class Runtime:
        def converse_stream(self, **params):
            return {"stream": iter(events), "ResponseMetadata": {"RequestId": "r1"}}

    provider = BedrockProvider(region="us-east-1")
    monkeypatch.setattr(provider, "_client", lambda region: Runtime())
    chunks = list(provider.stream(ChatRequest(messages=[Message("user", "hi")], model=SONNET, max_tokens=16)))
    redacted = base64.b64encode(b"\x01\xfe").decode()
    assert [(c.redacted, c.delta) for c in chunks[:-1]] == [(redacted, ""), (None, "Hi")]
    assert chunks[-1].response.content == [ReasoningBlock(redacted=redacted), TextBlock("Hi")]


@pytest.mark.parametrize("arguments", ['{"a": NaN}', '{"a": -Infinity}', '{"a": 1e400}'])
def test_tool_call_arguments_that_are_not_json_numbers_are_refused_not_sent(arguments) -> None:
    # Python's decoder reads NaN, Infinity and 1e400 as floats: the call went to Bedrock with no JSON it reads.
    request = ChatRequest(
        messages=[
            Message("user", "hi"),
            Message("assistant", [ToolUseBlock("t1", "get_weather", arguments=arguments)]),
            Message("user", [ToolResultBlock("t1", [TextBlock("18C")])]),
        ],
        model=SONNET,
        tools=[ToolSpec("get_weather", None, WEATHER)],
    )
    with pytest.raises(ProviderError) as caught:
        to_converse_params(request)
    assert caught.value.status == 400 and "t1 (get_weather)" in str(caught.value) and SONNET in str(caught.value)
