"""Anthropic document blocks with citations, context, a URL or a content source through `POST /v1/messages`: carried
to Anthropic's API as sent, the answer's citations back whole and streamed (citations_delta), and refused by name,
with the model, for a model whose API has no place for them. The anthropic SDK drives a real gateway in front of the
Messages API emulator (which answers a cited document with a fixture) and a recording upstream."""

from __future__ import annotations

import base64

import anthropic
import pytest

from helpers import stand_in_aws_keys
from helpers.scripted_anthropic import ScriptedAnthropic
from tokenomy.config import parse_config
from tokenomy.emulate.anthropic_api import create_app as create_claude
from tokenomy.emulate.server import ServerThread
from tokenomy.gateway.app import create_app
from tokenomy.providers.anthropic_inbound import request_from_anthropic
from tokenomy.providers.converse_mapping import to_converse_params
from tokenomy.providers.openai_wire import to_openai_messages

SONNET = "claude-sonnet-4-5-20250929"
CITED = {"enabled": True}
TEXT_DOC = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "The grass is green. The sky is blue."},
    "title": "Colours",
    "context": "A field guide.",
    "citations": CITED,
}
CONTENT_DOC = {
    "type": "document",
    "title": "Chunks",
    "citations": CITED,
    "source": {
        "type": "content",
        "content": [{"type": "text", "text": "First chunk."}, {"type": "text", "text": "Second chunk."}],
    },
}
URL_DOC = {"type": "document", "source": {"type": "url", "url": "https://example.com/report.pdf"}, "citations": CITED}
QUESTION = {"type": "text", "text": "What colour is the grass?"}
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")


def ask(*documents: dict) -> list[dict]:
    return [{"role": "user", "content": [*documents, QUESTION]}]


@pytest.fixture(scope="module")
def upstreams():
    scripted = ScriptedAnthropic()
    with ServerThread(create_claude()) as claude, ServerThread(scripted.app) as recorded:
        yield claude, recorded, scripted


@pytest.fixture(scope="module")
def gateway(upstreams):
    claude, recorded, _ = upstreams
    models = {
        "claude": {"provider": "anthropic", "model": SONNET, "base_url": claude},
        "scripted": {"provider": "anthropic", "model": SONNET, "base_url": recorded},
        # Never called (port 9 has no server): what they cannot take is refused before any call.
        "bedrock": {
            "provider": "bedrock",
            "region": "us-east-1",
            "endpoint_url": "http://127.0.0.1:9",
            "model": "anthropic.claude-3-haiku-20240307-v1:0",
        },
        "gpt": {
            "provider": "openai",
            "model": "gpt",
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "GPT_KEY",
            "price_as": "gpt-4o-mini",
        },
    }
    routes = {name: {"model": name} for name in models}
    config = parse_config({"models": models, "routes": routes})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GPT_KEY", "unused")
        stand_in_aws_keys(env)
        with ServerThread(create_app(config, None), lifespan="on") as url:
            yield url


@pytest.fixture
def sdk(gateway):
    return anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0)


@pytest.fixture
def scripted(upstreams):
    upstreams[2].requests.clear()
    return upstreams[2]


def cited(message) -> list[dict]:
    return [c.model_dump(exclude_none=True) for block in message.content for c in (block.citations or [])]


@pytest.mark.parametrize(
    ("document", "citation"),
    [
        (
            TEXT_DOC,
            {
                "type": "char_location",
                "cited_text": "The grass is green.",
                "document_index": 0,
                "document_title": "Colours",
                "start_char_index": 0,
                "end_char_index": 19,
            },
        ),
        (
            CONTENT_DOC,
            {
                "type": "content_block_location",
                "cited_text": "First chunk.",
                "document_index": 0,
                "document_title": "Chunks",
                "start_block_index": 0,
                "end_block_index": 1,
            },
        ),
        (
            URL_DOC,
            {
                "type": "page_location",
                "cited_text": "",
                "document_index": 0,
                "start_page_number": 1,
                "end_page_number": 2,
            },
        ),
    ],
)
def test_a_cited_document_is_answered_with_its_citations_whole_and_streamed(sdk, document, citation) -> None:
    whole = sdk.messages.create(model="claude", max_tokens=50, messages=ask(document))
    assert cited(whole) == [citation]
    assert [block.text for block in whole.content] == ["The document says so."]

    deltas = []
    with sdk.messages.stream(model="claude", max_tokens=50, messages=ask(document)) as stream:
        for event in stream:
            if event.type == "content_block_delta":
                deltas.append(event.delta.type)
        streamed = stream.get_final_message()
    assert "citations_delta" in deltas
    assert cited(streamed) == [citation]
    assert [b.model_dump(exclude_none=True) for b in streamed.content] == [
        b.model_dump(exclude_none=True) for b in whole.content
    ]


def test_document_fields_reach_anthropic_as_sent(sdk, scripted) -> None:
    documents = [TEXT_DOC, CONTENT_DOC, URL_DOC]
    sdk.messages.create(model="scripted", max_tokens=5, messages=ask(*documents))
    assert scripted.requests[-1][1]["messages"] == ask(*documents)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (TEXT_DOC, "citations"),
        ({k: v for k, v in TEXT_DOC.items() if k != "citations"}, "context"),
        ({k: v for k, v in URL_DOC.items() if k != "citations"}, "source.url"),
    ],
)
@pytest.mark.parametrize("route", ["bedrock", "gpt"])
def test_a_model_without_the_field_refuses_it_by_name(sdk, document, field, route) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(model=route, max_tokens=5, messages=ask(document))
    message = caught.value.body["error"]["message"]
    assert f"messages.0.content.0.{field}" in message
    assert message.startswith(f"model `{route}` cannot take")


@pytest.mark.parametrize("route", ["bedrock", "gpt"])
def test_an_anthropic_file_id_reaches_anthropic_only(sdk, scripted, route) -> None:
    """A `file` source is an id of Anthropic's Files API: Claude gets it as sent; an OpenAI-format model got it as an
    OpenAI file id, which it is not, and Bedrock refused it in other words. Both now name it and where it is."""
    document = {"type": "document", "source": {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}}
    sdk.messages.create(model="scripted", max_tokens=5, messages=ask(document))
    assert scripted.requests[-1][1]["messages"] == ask(document)
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(model=route, max_tokens=5, messages=ask(document))
    assert caught.value.body["error"]["message"].startswith(
        f"model `{route}` cannot take a file id of Anthropic's Files API (`messages.0.content.0.source.file_id`)"
    )


def test_a_content_document_of_text_goes_to_another_api_as_its_text() -> None:
    """No citations asked: the content source's text blocks are a text document of their text, joined as Anthropic
    joins a cited range, to any API (here Converse and an OpenAI-format server), under the caller's title."""
    plain = {k: v for k, v in CONTENT_DOC.items() if k != "citations"}
    call = request_from_anthropic({"model": "m", "max_tokens": 5, "messages": ask(plain)})
    sent = to_converse_params(call)["messages"][0]["content"][0]["document"]
    assert (sent["format"], sent["name"], sent["source"]) == ("txt", "Chunks", {"bytes": b"First chunk.Second chunk."})
    part = to_openai_messages(call)[0]["content"][0]["file"]
    assert part["filename"] == "Chunks"
    assert base64.b64decode(part["file_data"].split(",", 1)[1]) == b"First chunk.Second chunk."


def test_a_content_document_with_an_image_is_refused_by_another_api(sdk) -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    document = {"type": "document", "source": {"type": "content", "content": [image]}}
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(model="gpt", max_tokens=5, messages=ask(document))
    assert "messages.0.content.0.source.content" in caught.value.body["error"]["message"]


def test_a_citations_field_the_gateway_cannot_carry_is_refused(sdk) -> None:
    document = {**TEXT_DOC, "citations": {"enabled": True, "mode": "strict"}}
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(model="scripted", max_tokens=5, messages=ask(document))
    assert "messages.0.content.0.citations.mode" in caught.value.body["error"]["message"]


def test_a_cited_document_in_a_tool_result_is_named_where_the_caller_sent_it(sdk) -> None:
    use = {"type": "tool_use", "id": "t1", "name": "fetch", "input": {}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "Found:"}, TEXT_DOC]}
    turns = [
        {"role": "user", "content": "Fetch it."},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
    ]
    tool = {"name": "fetch", "input_schema": {"type": "object", "properties": {}}}
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(model="gpt", max_tokens=5, messages=turns, tools=[tool])
    assert "`messages.2.content.0.content.1.citations`" in caught.value.body["error"]["message"]
