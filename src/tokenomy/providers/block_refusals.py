"""What of a request's content blocks a provider cannot take, found before any call: a block a model cannot read,
a message with no content where the API refuses one, a document's citations, context, url or content source, a
file id another API issued, and a tool result or call without its pair, which no provider takes (`tool_pairs_refusal`,
asked of every request by the gateway, or by the client of a library caller's: `tool_pairs_error`). Each check answers
with an `Unsupported` (`refusals`) naming the block's place; each provider asks them in `Provider.refusal`, and a
mapping walks the blocks it checks itself with `placed_blocks`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from tokenomy.errors import ProviderError
from tokenomy.messages import (
    Block,
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    ProviderBlock,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers.refusals import Unsupported, with_article

# The content model's own blocks, which every provider maps; a ProviderBlock goes back only to its own API (the
# providers of that API accept it in `accepts_blocks`).
ALL_BLOCKS = (TextBlock, ImageBlock, DocumentBlock, ToolUseBlock, ToolResultBlock, ReasoningBlock)
BLOCK_NAMES = {
    TextBlock: "text",
    ImageBlock: "image",
    DocumentBlock: "document",
    ToolUseBlock: "tool use",
    ToolResultBlock: "tool result",
    ReasoningBlock: "reasoning",
}


def placed_blocks(request: ChatRequest, kinds: frozenset[type]) -> Iterator[tuple[Block, int, int, int | None]]:
    """Each block of `request` of one of `kinds` and its place, (i, j, None) for `messages[i].content[j]` and (i, j, k)
    for a tool result's part `...content[k]`, as the caller sent it, mid-conversation system messages counted (a
    mapping that hoists them out names its blocks after that): for the checks a mapping makes of each block, asked
    before any call (`Provider.mapping_refusal`). `place` spells it out, only for a refusal (most blocks pass)."""
    for i, message in enumerate(request.messages):
        for j, block in enumerate(message.content):
            if type(block) in kinds:
                yield block, i, j, None
            elif type(block) is ToolResultBlock:
                for k, part in enumerate(block.content):
                    if type(part) in kinds:
                        yield part, i, j, k


def place(i: int, j: int, k: int | None) -> str:
    """A block's place as a mapping names it: `messages[i].content[j]`, a tool result's part `...content[k]`."""
    return f"messages[{i}].content[{j}]" if k is None else f"messages[{i}].content[{j}].content[{k}]"


def refuse_image_detail(image: ImageBlock, model: str, where: str, refuse: Callable[..., ProviderError]) -> None:
    """Raise `refuse`'s 400 for an image detail setting (OpenAI's), which Claude's and Converse's APIs lack."""
    if image.detail not in (None, "auto"):
        raise refuse(model, f"{where}.detail", f"has no image detail setting ({image.detail!r}); remove it")


def provider_block_kind(block: ProviderBlock) -> str:
    """What a block of one API's own (`ProviderBlock`) is, for an error: Gemini's audio and video by what they hold
    ("audio part"), as a chat completions `input_audio` part is held as Gemini's audio too, and its caller sent no
    Gemini block; any other by its API and type ("anthropic web_search_tool_result block")."""
    if block.api == "gemini" and block.kind in ("audio", "video"):
        return f"{block.kind} part"
    return f"{block.api} {block.kind} block"


def empty_text(block: object) -> bool:
    """A text block with nothing in it (Gemini's `{"text": ""}` beside a message's other parts, an OpenAI content
    part's ""): an API that refuses one (Anthropic's, Converse) is sent the message without it, as it carries
    nothing; a message left with nothing is refused (`empty_message_refusal`)."""
    return type(block) is TextBlock and not block.text and block.citations is None


def empty_message_refusal(request: ChatRequest, final_assistant: bool) -> Unsupported | None:
    """The first message with no content once its empty text is left out, for an API that refuses one (system
    messages aside: they join the system prompt). `final_assistant`: the API takes an empty last assistant message
    (Anthropic's, whose answer then starts afresh)."""
    last = len(request.messages) - 1
    for i, message in enumerate(request.messages):
        # Asked of every message of every request to these APIs (an agent's run sends hundreds): a message's first
        # block nearly always carries something, so it is looked at before the rest.
        content = message.content
        if (content and not empty_text(content[0])) or message.role == "system":
            continue
        if not all(empty_text(block) for block in content):
            continue
        if not (final_assistant and i == last and message.role == "assistant"):
            return Unsupported(
                "`{where}`, a message with no content (nothing but empty text, which this API refuses; put text in it)",
                i,
            )
    return None


def first_unaccepted(content: list, accepted: tuple[type, ...]) -> tuple[int, int | None, object] | None:
    """(block, part or None, the block or part) of the first block of `content`, or part of a tool result in it,
    that is none of the `accepted` types (an isinstance check: this runs on every request)."""
    for j, block in enumerate(content):
        if not isinstance(block, accepted):
            return j, None, block
        if isinstance(block, ToolResultBlock):
            for k, part in enumerate(block.content):
                if not isinstance(part, accepted):
                    return j, k, part
    return None


def inputs_refusal(inputs: tuple[str, ...] | None, request: ChatRequest) -> Unsupported | None:
    """The first image or document block a model that reads only `inputs` (e.g. ("text",)) cannot take."""
    if inputs is None:
        return None
    unread = {ImageBlock: "image", DocumentBlock: "document"}
    accepted = (*(kind for kind in ALL_BLOCKS if kind not in unread or unread[kind] in inputs), ProviderBlock)
    for i, message in enumerate(request.messages):
        found = first_unaccepted(message.content, accepted)
        if found is not None:
            j, k, part = found
            return Unsupported(
                f"{with_article(unread[type(part)])} block ({{where}}): it reads {', '.join(inputs)} only", i, j, k
            )
    return None


# A document's fields beyond its bytes, by the name the refusal gives them: Anthropic's Messages API takes them all.
# Another mapping would send the document with the ask left out: no citations in the answer the caller's app reads
# them from, no context, or (a URL or a content document with images) no document at all. (Bedrock's Converse has
# citations and context for Claude, answered as citationsContent blocks whose locations' `end` its reference leaves
# undefined, so no exact Anthropic citation is known for them: not mapped yet, so refused.)
DOCUMENT_FIELDS = frozenset({"citations", "context", "source.url", "source.content"})
DOCUMENT_WHY = {
    "citations": "citations of a document (`{where}`), which the gateway carries to Anthropic's Messages API only",
    "context": "a document's context (`{where}`), which the gateway carries to Anthropic's Messages API only",
    "source.url": (
        "a document by URL (`{where}`), which only Anthropic's Messages API (a PDF) and Gemini fetch; send the "
        "document's bytes"
    ),
    "source.content": (
        "a content document with images (`{where}`), which only Anthropic's Messages API takes; send its text "
        "blocks only (a text document), or the images as their own blocks"
    ),
}


def document_field(block: DocumentBlock) -> str | None:
    """The first field of a document only some APIs take (DOCUMENT_FIELDS), or None for bytes or a file id alone.
    A content document of text blocks is none: its joined text (`data`) is an exact text document anywhere."""
    if block.citations:
        return "citations"
    if block.context is not None:
        return "context"
    if block.url is not None:
        return "source.url"
    if block.content is not None and block.data is None:
        return "source.content"
    return None


# The Files APIs a document's file id may come from (DocumentBlock.file_api), by what a refusal calls them. An id is
# only an id to the API that issued it: another API would read it as one of its own (a Gemini fileUri or an OpenAI
# file id sent to Claude as an Anthropic file id), or not at all. Azure OpenAI's Files API is its own, apart from
# OpenAI's.
FILE_APIS = {
    "openai": "OpenAI's Files API",
    "azure": "Azure OpenAI's Files API",
    "anthropic": "Anthropic's Files API",
    "gemini": "the Gemini API",  # a fileData URI of its Files API, or of Cloud Storage
}
FILE_ID = "source.file_id"  # a file id's place in a document, as a refusal names it (each ingress: as its caller)


def foreign_file(block: DocumentBlock | ImageBlock, file_apis: frozenset[str]) -> str | None:
    """The API that issued the document's file id (or the image's file URI) when it is none of `file_apis` (those a
    provider reads), else None: no file id, or one of a library caller (no issuer said), for whichever provider gets
    it."""
    api = block.file_api
    held = block.file_id if isinstance(block, DocumentBlock) else block.url
    return api if held is not None and api is not None and api not in file_apis else None


def document_refusal(
    request: ChatRequest, accepted: frozenset[str], file_apis: frozenset[str] = frozenset()
) -> Unsupported | None:
    """The first document field of `request` (also in a tool result) not among the `accepted` DOCUMENT_FIELDS, or
    file id (a document's, an image's file URI) issued by an API other than `file_apis` (the APIs whose ids the
    provider reads)."""
    for i, message in enumerate(request.messages):
        for j, block in enumerate(message.content):
            parts = block.content if isinstance(block, ToolResultBlock) else (block,)
            for k, part in enumerate(parts):
                if not isinstance(part, (DocumentBlock, ImageBlock)):
                    continue
                inside = k if isinstance(block, ToolResultBlock) else None
                field = document_field(part) if isinstance(part, DocumentBlock) else None
                if field is not None and field not in accepted:
                    return Unsupported(DOCUMENT_WHY[field], i, j, inside, field=field)
                api = foreign_file(part, file_apis)
                if api is not None:
                    issuer = FILE_APIS.get(api, api)
                    why = f"a file id of {issuer} (`{{where}}`), which only that API's models read: send the "
                    return Unsupported(why + "file's content instead", i, j, inside, field=FILE_ID)
    return None


# Why a tool result or call without its pair is refused before any call, whatever the model: Anthropic's Messages API,
# Bedrock's Converse, OpenAI's chat completions and Gemini each answer it with a 400, so sent on it would be refused
# there (and each fallback tried in turn), the place in the provider's terms, not the caller's.
UNPAIRED_RESULT = (
    "a tool result (`{where}`) answering tool call `{id}`, which the assistant turn right before it did not make; no "
    "provider takes a result without its call (Anthropic's, Bedrock's, OpenAI's and Gemini's APIs refuse it): send "
    "the assistant message with that call right before its result, or remove the result"
)
UNANSWERED_CALL = (
    "tool call `{id}` (`{where}`) with no result in the turn right after it; Anthropic's, Bedrock's and OpenAI's "
    "APIs refuse a call left unanswered: send its result (a tool result with its id) right after the call, or remove "
    "the call"
)


def tool_pairs_refusal(request: ChatRequest) -> Unsupported | None:
    """The first tool result that answers no call of the assistant turn right before it, else the first tool call of
    an assistant turn that another turn follows without its result, or None. Messages in a row of one role are one
    turn, as Anthropic's API merges them (a run of OpenAI tool messages, a user's text after the results); a
    mid-conversation system message is left out, as the APIs that take none hoist it. A call in the last turn has
    nothing after it to check."""
    # Asked of every request the gateway serves, most of which carry no tool call or result: those are done in a pass.
    if not any(type(b) is ToolUseBlock or type(b) is ToolResultBlock for m in request.messages for b in m.content):
        return None
    turns: list[list[int]] = []  # each turn's message indices
    roles: list[str] = []
    for i, message in enumerate(request.messages):
        if message.role == "system":
            continue
        if roles and roles[-1] == message.role:
            turns[-1].append(i)
        else:
            turns.append([i])
            roles.append(message.role)
    messages = request.messages

    def placed(turn: list[int], kind: type) -> list[tuple[int, int, Any]]:
        return [(i, j, b) for i in turn for j, b in enumerate(messages[i].content) if type(b) is kind]

    for t, turn in enumerate(turns):
        if roles[t] != "user":
            continue
        results = placed(turn, ToolResultBlock)
        if not results:  # (most turns: no tool result, nothing to look up)
            continue
        before = turns[t - 1] if t and roles[t - 1] == "assistant" else []
        called = {b.id for _, _, b in placed(before, ToolUseBlock)}
        for i, j, result in results:
            if result.tool_use_id not in called:
                text = UNPAIRED_RESULT.replace("{id}", result.tool_use_id)
                return Unsupported(text, i, j, field="tool_use_id", malformed=True)
    for t, turn in enumerate(turns[:-1]):
        if roles[t] != "assistant":
            continue
        calls = placed(turn, ToolUseBlock)
        if not calls:
            continue
        answered = {b.tool_use_id for _, _, b in placed(turns[t + 1], ToolResultBlock)}
        for i, j, call in calls:
            if call.id not in answered:
                return Unsupported(UNANSWERED_CALL.replace("{id}", call.id), i, j, malformed=True)
    return None


def tool_pairs_error(request: ChatRequest) -> ProviderError | None:
    """The 400 for `request`'s first tool result or call without its pair (`tool_pairs_refusal`), raised before any
    attempt, or None. Once a request passed, it is marked (`ChatRequest.tools_paired`), so the client does not walk
    the gateway's request again."""
    unpaired = tool_pairs_refusal(request)
    if unpaired is None:
        request.tools_paired = True
        return None
    return ProviderError(unpaired.error_text(unpaired.where), kind="client_error", status=400, refused=unpaired)
