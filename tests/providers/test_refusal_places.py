"""Provider.refusal names the first block a provider cannot take where it is: in a turn, or among a tool result's
parts; a turn of blocks it takes, or a tool result of parts it takes, passes."""

from __future__ import annotations

from tokenomy.messages import (
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    ProviderBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers.base import Provider
from tokenomy.request_options import ToolSpec


class TextAndTools(Provider):
    accepts_blocks = (TextBlock, ToolUseBlock, ToolResultBlock)


def request(*turns: Message, tools: list[ToolSpec] | None = None) -> ChatRequest:
    return ChatRequest(messages=list(turns), tools=tools or [])


IMAGE = ImageBlock(media_type="image/png", base64="iVBORw0KGgo=")
CALL = Message("assistant", [TextBlock("looking"), ToolUseBlock("c1", "shot")])


def test_blocks_and_tool_results_it_takes_pass():
    ok = request(Message("user", "hi"), CALL, Message("user", [ToolResultBlock("c1", [TextBlock("done")])]))
    assert TextAndTools().refusal(ok) is None and Provider().refusal(ok) is None


def test_a_block_it_cannot_take_is_named_in_its_turn():
    refused = TextAndTools().refusal(request(Message("user", "hi"), Message("user", [TextBlock("see"), IMAGE])))
    assert (refused.message, refused.block, refused.part) == (1, 1, None)
    assert "an image block" in refused.describe("messages[1].content[1]")


def test_a_part_of_a_tool_result_it_cannot_take_is_named_inside_it():
    result = ToolResultBlock("c1", [TextBlock("screenshot:"), IMAGE])
    refused = TextAndTools().refusal(request(Message("user", "hi"), CALL, Message("user", [result])))
    assert (refused.message, refused.block, refused.part) == (2, 0, 1)
    assert Provider().refusal(request(Message("user", "hi"), CALL, Message("user", [result]))) is None


def test_another_apis_block_is_named_by_its_type():
    block = ProviderBlock("anthropic", {"type": "web_search_tool_result", "content": []})
    refused = Provider().refusal(request(Message("assistant", [TextBlock("found"), block])))
    assert (refused.message, refused.block) == (0, 1)
    assert "an anthropic web_search_tool_result block" in refused.describe("here")


def test_a_server_tool_or_anthropic_tool_field_is_refused_among_plain_tools():
    plain = ToolSpec("get_time")
    search = ToolSpec("web_search", server={"type": "web_search_20250305", "name": "web_search"})
    refused = Provider().refusal(request(Message("user", "hi"), tools=[plain, search]))
    assert refused.field == "tools[1].type"
    deferred = ToolSpec("get_weather", anthropic={"defer_loading": True})
    assert Provider().refusal(request(Message("user", "hi"), tools=[plain, deferred])).field == "tools[1].defer_loading"
    hinted = ToolSpec("get_weather", anthropic={"eager_input_streaming": True})
    assert Provider().refusal(request(Message("user", "hi"), tools=[plain, hinted])) is None


def test_a_documents_citations_context_url_or_image_content_are_named_by_a_provider_without_them():
    """A library caller's document asks for what only Anthropic's mapping carries: another provider names the field
    where it is (a tool result's part included), rather than send the document without it."""
    from tokenomy.providers.anthropic_provider import AnthropicProvider
    from tokenomy.providers.block_refusals import DOCUMENT_FIELDS

    text = b"The sky is blue."
    cases = [
        (DocumentBlock("txt", text, citations=True), "citations"),
        (DocumentBlock("txt", text, context="a guide"), "context"),
        (DocumentBlock("pdf", url="https://example.com/a.pdf"), "source.url"),
        (DocumentBlock("txt", content=[IMAGE]), "source.content"),
    ]
    for document, field in cases:
        refused = Provider().refusal(request(Message("user", [TextBlock("read"), document])))
        assert (refused.message, refused.block, refused.part, refused.field) == (0, 1, None, field)
        nested = Provider().refusal(request(CALL, Message("user", [ToolResultBlock("c1", [TextBlock("a"), document])])))
        assert (nested.message, nested.block, nested.part, nested.field) == (1, 0, 1, field)
        assert field in str(nested)
    assert AnthropicProvider.accepts_document_fields == DOCUMENT_FIELDS
    plain = DocumentBlock("txt", b"a.b.", content=[TextBlock("a."), TextBlock("b.")])  # its text is a text document
    assert Provider().refusal(request(Message("user", [plain]))) is None


def test_a_file_id_is_refused_by_every_provider_but_those_of_the_api_that_issued_it():
    """A file id goes to its issuer's API only (Provider.file_apis): another provider names it where it is, a tool
    result's part included; one without an issuer (a library caller's) is the receiving provider's own."""
    from tokenomy.providers.anthropic_provider import AnthropicProvider
    from tokenomy.providers.azure_provider import AzureOpenAIProvider
    from tokenomy.providers.gemini_provider import GeminiProvider
    from tokenomy.providers.openai_provider import OpenAIProvider

    readers = {
        "openai": OpenAIProvider,
        "azure": AzureOpenAIProvider,
        "anthropic": AnthropicProvider,
        "gemini": GeminiProvider,
    }
    for api, reader in readers.items():
        document = DocumentBlock("pdf", file_id="f-1", file_api=api)
        for other, provider in readers.items():
            for turns in (
                [Message("user", [TextBlock("read"), document])],
                [CALL, Message("user", [ToolResultBlock("c1", [TextBlock("a"), document])])],
            ):
                refused = Provider.refusal(provider.__new__(provider), request(*turns))
                if other == api:
                    assert refused is None
                    continue
                assert refused.field == "source.file_id" and "a file id of" in str(refused), (api, other)
                assert (refused.message, refused.block, refused.part) == (
                    (0, 1, None) if len(turns) == 1 else (1, 0, 1)
                )
        assert reader.file_apis == frozenset({api})
    assert Provider().refusal(request(Message("user", [DocumentBlock("pdf", file_id="f-1")]))) is None
    own_file = ImageBlock("image/png", url="gs://b/cat.png", file_api="gemini")  # a Gemini fileData image
    for turns in (
        [Message("user", [TextBlock("see"), own_file])],
        [CALL, Message("user", [ToolResultBlock("c1", [TextBlock("a"), own_file])])],
    ):
        assert Provider.refusal(GeminiProvider.__new__(GeminiProvider), request(*turns)) is None
        refused = Provider.refusal(AnthropicProvider.__new__(AnthropicProvider), request(*turns))
        assert refused.field == "source.file_id" and "a file id of the Gemini API" in str(refused)
        assert (refused.message, refused.block, refused.part) == ((0, 1, None) if len(turns) == 1 else (1, 0, 1))
    assert Provider().refusal(request(Message("user", [ImageBlock("image/png", url="https://e.com/a.png")]))) is None


def test_a_tool_allowed_that_no_tool_sent_has_is_a_400_from_each_api_that_narrows_the_tools():
    """A library caller's choice among some tools naming one it did not send: Claude, Bedrock and Gemini (and the
    local model) would have been sent the others with no word of it; each refuses it by name."""
    import pytest

    from tokenomy.errors import ProviderError
    from tokenomy.providers.anthropic_mapping import to_anthropic_params
    from tokenomy.providers.converse_mapping import to_converse_params
    from tokenomy.providers.gemini_mapping import config_from_request
    from tokenomy.providers.local import LocalProvider
    from tokenomy.request_options import ToolChoice

    call = ChatRequest(
        messages=[Message("user", "hi")],
        tools=[ToolSpec("get_time"), ToolSpec("get_weather")],
        tool_choice=ToolChoice("any", allowed=("get_time", "get_date")),
    )
    for mapping in (to_anthropic_params, to_converse_params, config_from_request, LocalProvider().count_tokens):
        with pytest.raises(ProviderError) as refused:
            mapping(call)
        assert refused.value.status == 400 and "get_date" in str(refused.value), mapping
    assert [
        t["name"]
        for t in to_anthropic_params(call.replaced(tool_choice=ToolChoice("any", allowed=("get_time",))))["tools"]
    ] == ["get_time"]
