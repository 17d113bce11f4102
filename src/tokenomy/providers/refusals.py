"""What a provider cannot take, found before any call: `Unsupported` names it and its place in the request, and the
shared checks find it (a block a model cannot read, a 1-hour cache point, a freeform tool, Anthropic's server tools
and tool fields, a document's citations, context, url or content source, a message with no content where the
API refuses one). Each provider asks them in
`Provider.refusal`; the gateway and the client ask them for every model a route may reach, so nothing is sent to a
model that would drop it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from tokenomy import request_views
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


# Pass-through fields at a value that asks nothing of an API without them. OpenAI-format servers get them as sent;
# every other API leaves them out rather than refusing a request it can serve as asked:
# - `store: false` (OpenAI's default for chat completions: nothing is kept), which the OpenAI Agents SDK sends from
#   ModelSettings(store=False);
# - `service_tier` "default" or "auto": the standard tier, which is what Claude, Bedrock and Gemini serve when no tier
#   is named (Anthropic's own "auto" is its default too); a dearer or cheaper tier (flex, priority, ...) still
#   reaches the provider's mapping, which carries it or refuses it by name;
# - `prompt_cache_retention` "in_memory": OpenAI's default retention (minutes), which is what Claude's and Bedrock's
#   5-minute cache points keep; "24h" still asks for what they have no setting for, and is refused by name.
ASK_NOTHING_AT: dict[str, tuple[Any, ...]] = {
    "store": (False,),
    "service_tier": ("default", "auto"),
    "prompt_cache_retention": ("in_memory",),
}


def blocks_nothing(settings: Any) -> bool:
    """Whether Gemini's `safetySettings` only turn its filters off (OFF or BLOCK_NONE for each category it names).
    Instructor's `from_genai` sends one with every category OFF on each call."""
    return isinstance(settings, list) and all(
        isinstance(s, dict) and s.get("threshold") in ("OFF", "BLOCK_NONE") for s in settings
    )


# Gemini's own pass-through fields at a value that asks nothing of a model without them: Gemini's mapping carries
# them as sent (`GEMINI_OWN`), and every other API leaves them out, an OpenAI-format one too (OpenAI's API has no
# such field). `safety_settings` that turn every filter they name off: the other providers have no such filters to
# turn off (OFF is the default threshold Google documents for its current models; older ones block some by default,
# which is why Gemini still gets the settings).
GEMINI_ASKING_NOTHING: dict[str, Callable[[Any], bool]] = {"safety_settings": blocks_nothing}
GEMINI_OWN: Mapping[str, tuple[Any, ...] | Callable[[Any], bool]] = GEMINI_ASKING_NOTHING


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


def refuse_openai_options(
    request: ChatRequest, model: str, refuse: Callable[..., ProviderError], json_instead: str
) -> None:
    """Raise `refuse`'s 400 for OpenAI's options Claude's APIs have no place for: a seed, penalties, and a json_object
    response format (`json_instead`: what to send in its place)."""
    for field in ("seed", "presence_penalty", "frequency_penalty"):
        if getattr(request, field) is not None:
            raise refuse(model, field, "has no such parameter; remove it or route to an OpenAI model")
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        raise refuse(model, "response_format", f"has no json_object output mode, only a JSON schema; {json_instead}")


def fields_to_carry(
    extra: dict[str, Any], own: Mapping[str, tuple[Any, ...] | Callable[[Any], bool]] | None = None
) -> dict[str, Any]:
    """The pass-through fields an API other than OpenAI's must carry or refuse: all but those asking nothing, save
    the values `own` names (a tuple of them, or a test of one), which the API has a field of its own for and gets as
    sent (Anthropic's service_tier "auto", Gemini's safety settings that turn filters off)."""
    own = own or {}
    return {k: v for k, v in extra.items() if not _asks_nothing(k, v) or _named(v, own.get(k, ()))}


def without_gemini_own(extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` without Gemini's own fields at a value that asks nothing (`GEMINI_ASKING_NOTHING`): what an
    OpenAI-format model gets."""
    if not any(key in GEMINI_ASKING_NOTHING for key in extra):
        return extra
    return {k: v for k, v in extra.items() if not (k in GEMINI_ASKING_NOTHING and GEMINI_ASKING_NOTHING[k](v))}


def _asks_nothing(key: str, value: Any) -> bool:
    test = GEMINI_ASKING_NOTHING.get(key)
    return _named(value, ASK_NOTHING_AT.get(key, ())) or (test is not None and test(value))


def _named(value: Any, values: tuple[Any, ...] | Callable[[Any], bool]) -> bool:
    if callable(values):
        return values(value)
    return any(value is kept or (isinstance(value, str) and value == kept) for kept in values)


# Claude cannot think before a call it is forced to make (tool_choice any or tool: Anthropic prefills its answer with
# the call), and its API answers 400 "Thinking may not be enabled when tool_choice forces tool use" (Anthropic's
# extended-thinking docs: with thinking, tool_choice auto and none only). Refused by the mapping before any call,
# naming both fields (ProviderError.also), so a fallback that takes the request is tried instead.
FORCED_WITH_THINKING = (
    "cannot force a tool call while thinking is on (`thinking`): let the model choose whether to call a tool (auto), "
    "or turn thinking off"
)


def forces_tool_while_thinking(request: ChatRequest) -> bool:
    """A tool call forced (tool_choice any or tool) with a thinking budget (Claude's thinking enabled)."""
    choice, reasoning = request.tool_choice, request.reasoning
    forced = choice is not None and choice.mode in ("any", "tool")
    return forced and reasoning is not None and not reasoning.off and reasoning.budget_tokens is not None


def with_article(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def provider_block_kind(block: ProviderBlock) -> str:
    """What a block of one API's own (`ProviderBlock`) is, for an error: Gemini's audio and video by what they hold
    ("audio part"), as a chat completions `input_audio` part is held as Gemini's audio too, and its caller sent no
    Gemini block; any other by its API and type ("anthropic web_search_tool_result block")."""
    if block.api == "gemini" and block.kind in ("audio", "video"):
        return f"{block.kind} part"
    return f"{block.api} {block.kind} block"


@dataclass(frozen=True, slots=True)
class Unsupported:
    """What of a ChatRequest a provider cannot send, and where it sits in the request.

    The place is kept as indices, not only as text, because the content model is not what a gateway's caller
    sent (opening system messages are lifted out, a run of tool messages is one turn): an ingress translates it
    to the caller's own path (`describe`); `str()` names it in the content model's terms."""

    text: str  # what it is, `{where}` standing for its place: "an image block ({where})", "field `{where}`"
    message: int | None = None  # index in request.messages
    block: int | None = None  # index in that message's content
    part: int | None = None  # index in that block's content (the parts of a tool result)
    # With `message`: a field of that message ("name"). Without: a pass-through key of request.extra, or a request
    # option by its OpenAI name (reasoning_effort) or, lacking one, its ChatRequest slot (reasoning.budget_tokens).
    field: str | None = None
    by: str = "the model"  # who cannot take it, as the error names it: "model `gpt-4o` (openai)"

    @property
    def where(self) -> str:
        """The place in the content model's terms: `messages[0].content[1]`, `messages[2].name`, `logit_bias`."""
        if self.message is None:
            return self.field or "the request"
        path = f"messages[{self.message}]"
        if self.block is not None:
            path += f".content[{self.block}]"
            if self.part is not None:
                path += f".content[{self.part}]"
        return f"{path}.{self.field}" if self.field else path

    def describe(self, where: str) -> str:
        """The text with its place named as `where` (an ingress's path for its caller)."""
        return self.text.replace("{where}", where)

    def __str__(self) -> str:
        return self.describe(self.where)

    def error_text(self, where: str) -> str:
        """The whole error, its place named as `where` (the content model's, or an ingress's path for its caller)."""
        what = self.describe(where)
        return f"{self.by} cannot take {what}; remove it or send the request to a model that supports it"


def raise_refusal(request: ChatRequest, provider: str, why: Unsupported | None) -> None:
    """Raise the client error (HTTP 400 at the gateway) for what `request`'s model cannot take, if anything.
    Nothing was sent: the error carries the refusal, so the attempt plan moves on to a model that can take it."""
    if why is not None:
        why = replace(why, by=f"model `{request.model}` ({provider})")
        raise ProviderError(
            why.error_text(why.where),
            kind="client_error",
            status=400,
            refused=why,
        )


def undeclared_allowed_tool(request: ChatRequest, api: str) -> ProviderError | None:
    """The 400 for a tool choice allowing a tool no tool sent has (`ToolChoice.allowed`), or None: it could not be
    called, and left out unsaid the choice would not be the caller's. The gateway's ingresses refuse it first at the
    caller's place; this is the library caller's."""
    choice = request.tool_choice
    undeclared = choice.undeclared(request.tools) if choice is not None and choice.allowed else None
    if undeclared is None:
        return None
    return ProviderError(
        f"tool_choice: {api} (model {request.model}) is asked to allow tool `{undeclared}`, which is not among the "
        "tools sent; declare it in tools, or leave it out of the allowed tools",
        kind="client_error",
        status=400,
        param="tool_choice",
    )


def allowed_tools_only(request: ChatRequest, api: str) -> ChatRequest:
    """`request` with only the tools its choice allows, for an API with no way to allow some of the tools sent
    (`request_views.allowed_tools_only`); a name no tool has is its 400."""
    choice = request.tool_choice
    if choice is None or not choice.allowed:
        return request
    refused = undeclared_allowed_tool(request, api)
    if refused is not None:
        raise refused
    return request_views.allowed_tools_only(request)


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


def zero_output_refusal(request: ChatRequest) -> Unsupported | None:
    """`max_tokens: 0` for a model whose API has no call that generates nothing: Anthropic's Messages API takes it
    (a call that only writes the prompt cache); OpenAI-format servers, Bedrock's Converse (maxTokens is at least 1)
    and Gemini have none, and any default cap sent instead would generate, and bill, an answer nobody asked for."""
    if request.max_tokens != 0:
        return None
    return Unsupported(
        "`{where}` 0 (a call that only writes the prompt cache, which only Anthropic's Messages API makes; "
        "ask for 1 token or more)",
        field="max_tokens",
    )


def one_hour_cache_refusal(request: ChatRequest, why: str) -> Unsupported | None:
    """The request's first 1-hour cache point, refused for `why` (what the model lacks), or None if it has none.
    Never sent as a 5-minute point instead: it would be billed, and expire, as one the caller did not ask for."""
    place = request_views.one_hour_cache_point(request)
    if place is None:
        return None
    message, field = place
    return Unsupported(f'a 1-hour cache point (ttl "1h" at `{{where}}`): {why}', message, field=field)


# Why a model other than an OpenAI-format one is refused a freeform tool or call, and what to send instead: raw text
# under a grammar has no counterpart in its API, and turning it into a function tool would change what the model
# writes and what the caller's tool receives.
FREEFORM_FIX = (
    "it has no freeform tools; declare a function tool taking a string instead (Codex: `[features] "
    "apply_patch_freeform = false`)"
)


def freeform_refusal(request: ChatRequest) -> Unsupported | None:
    """The request's first freeform tool (`tools[0].type`) or freeform call, for a model without freeform tools."""
    for i, tool in enumerate(request.tools):
        if tool.freeform is not None:
            return Unsupported(f"a freeform (custom) tool (`{{where}}`): {FREEFORM_FIX}", field=f"tools[{i}].type")
    for i, message in enumerate(request.messages):
        if message.role != "assistant":
            continue
        for j, block in enumerate(message.content):
            if isinstance(block, ToolUseBlock) and block.freeform:
                return Unsupported(f"a freeform (custom) tool call ({{where}}): {FREEFORM_FIX}", i, j)
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


def server_tools_refusal(request: ChatRequest) -> Unsupported | None:
    """The first server tool of `request` (ToolSpec.server: Anthropic's web search), for a provider whose API runs
    none: another API's mapping would send it as a function the caller never implemented."""
    for i, tool in enumerate(request.tools):
        if tool.server is not None:
            return Unsupported(
                f"Anthropic's server tool {tool.server.get('type')!r} (`{{where}}`), which only Anthropic's API runs",
                field=f"tools[{i}].type",
            )
    return None


# A tool field of Anthropic's that asks only for what every other API does anyway: a tool's input streamed as the
# model writes it, unbuffered. Another provider answers it without the field.
STREAMING_HINTS = frozenset({"eager_input_streaming"})


def anthropic_tool_fields_refusal(request: ChatRequest) -> Unsupported | None:
    """The first tool field only Anthropic's API reads (ToolSpec.anthropic: `defer_loading`, `input_examples`), for
    a provider whose API has no such field; a streaming hint is not one (`STREAMING_HINTS`)."""
    for i, tool in enumerate(request.tools):
        for key in tool.anthropic or {}:
            if key not in STREAMING_HINTS:
                return Unsupported("a tool field only Anthropic's API reads (`{where}`)", field=f"tools[{i}].{key}")
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
