"""Provider-neutral content blocks, messages and requests: the one content model every provider maps both ways.

A message is a list of content blocks — text, image, document, tool use, tool result, reasoning —
so tool calling, vision, document extraction and extended thinking pass through Tokenomy intact.
Each provider maps these blocks to its own wire format and back; a block a model cannot take is
refused with an error naming the model and the block, never dropped. What a request asks for beyond its messages
(tools, tool choice, response format, reasoning) is `request_options`'s; the answer (response, usage, stream chunks)
is `chat_response`'s.

Conventions:
- roles are `user` and `assistant`; a tool's result is a `ToolResultBlock` in a user turn (as in
  Anthropic Messages and Bedrock Converse). OpenAI's `tool` role maps to and from that.
- A cache point (`CachePoint`) is False (none), True (the provider's default lifetime, 5 minutes) or `ONE_HOUR`.
- A document asking for citations (`DocumentBlock.citations`) is answered with text blocks whose `citations` are
  Anthropic's own dicts (char_location, page_location, content_block_location), carried back as they came.
"""

from __future__ import annotations

import binascii
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal, Union

from tokenomy.request_options import Reasoning, ResponseFormat, ToolChoice, ToolSpec

ROLES = ("user", "assistant")


# -- content blocks ------------------------------------------------------------------------------
@dataclass(slots=True)
class TextBlock:
    text: str
    # What the text cites, as the provider's API sent it (Claude's web search and document citations): carried back
    # to that API (Anthropic's); other APIs have no place for them.
    citations: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class ImageBlock:
    """An image inline (bytes, or the base64 text it arrived as, with its media type) or as a URL the provider
    fetches itself. Read an inline image's bytes with `payload()`."""

    media_type: str | None = None  # image/png, image/jpeg, image/gif, image/webp
    data: bytes | None = None
    url: str | None = None
    detail: str | None = None  # OpenAI's low/high/auto; other providers have no such knob
    # The base64 text the image arrived as (a data URL's payload). The gateway keeps only this text: APIs that
    # take base64 (OpenAI, Anthropic) get the caller's own text byte for byte, and an image is decoded only for
    # an API that takes bytes (decoding costs ~2.5 ms a megabyte on the request path). Not part of equality.
    base64: str | None = field(default=None, repr=False, compare=False)
    # The content part this image arrived as from an OpenAI-format caller, when it is what an OpenAI-format upstream
    # is sent for it (`openai_images.image_block`): sent as it came, not built again. Not an argument, so a copy made
    # with other fields (`dataclasses.replace`) has none; nothing changes a block, or a part, in place.
    openai_part: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    # Whose file the `url` names, when only that API reads it: "gemini" for a fileData URI of the Gemini API's Files
    # API or of Cloud Storage, which another API would try to fetch as a link and fail
    # (`block_refusals.document_refusal` refuses it there by name, as a document's file id). None: a link any provider
    # may fetch.
    file_api: str | None = None

    @property
    def inline(self) -> bool:
        return self.data is not None or self.base64 is not None

    def payload(self) -> bytes | None:
        """The image's bytes (decoded from `base64` when only the text is held); None for an image by URL."""
        if self.data is None and self.base64 is not None:
            return binascii.a2b_base64(self.base64)
        return self.data


@dataclass(slots=True)
class DocumentBlock:
    """A document (PDF, text, CSV, …) as bytes, a file id (`file_id`, issued by the Files API of `file_api`), a URL
    the provider fetches (`url`), or a list of content blocks (`content`: Anthropic's custom-content document, whose
    blocks are the chunks a citation names).

    A file id is only an id to the API that issued it: it is carried to that API's providers, and refused by every
    other (`block_refusals.document_refusal`), which would read it as an id of its own. Without a `file_api` (a library
    caller's block) it is an id of whichever provider the request is sent to.

    A content document of text blocks only also holds their text, joined, as `data` (format txt): what an API
    without content documents is sent, the same text. With images among its blocks it has no `data`, and only an
    API that takes content documents can carry it (`block_refusals.document_refusal`)."""

    format: str  # pdf, txt, csv, html, md, doc, docx, xls, xlsx
    data: bytes | None = None
    name: str | None = None  # the caller's title or file name (an API that requires one gets "document")
    file_id: str | None = None
    url: str | None = None  # a document the provider fetches itself (Anthropic's url source: a PDF; Gemini's fileUri)
    content: list[Block] | None = None  # Anthropic's content source: text (and image) blocks, in order
    context: str | None = None  # what the model reads about the document, never cited (Anthropic's `context`)
    citations: bool = False  # the caller asks the model to cite it: the answer's text blocks carry `citations`
    # Whose Files API issued `file_id`: "openai", "azure" (Azure OpenAI's own), "anthropic" or "gemini" (a fileData
    # URI of Gemini's: its Files API, Cloud Storage); None: the id of whichever provider gets the request.
    file_api: str | None = None


@dataclass(slots=True)
class ToolUseBlock:
    """The model asks to call a tool. `arguments` keeps the provider's exact JSON text when it sent one.

    A freeform call (`freeform`: a call of a freeform tool, OpenAI's custom tools, see ToolSpec) is raw text rather
    than a JSON object: the text is `arguments`, exactly as the model wrote it, and `input` stays empty."""

    id: str
    name: str
    input: dict[str, Any] = field(default_factory=dict)
    arguments: str | None = None
    freeform: bool = False


@dataclass(slots=True)
class ToolResultBlock:
    """The caller's answer to a ToolUseBlock (`tool_use_id` names it)."""

    tool_use_id: str
    content: list[Block] = field(default_factory=list)
    is_error: bool = False

    @property
    def text(self) -> str:
        content = self.content
        if len(content) == 1:  # most results: one text (no list built to join)
            only = content[0]
            return only.text if isinstance(only, TextBlock) else ""
        return "".join([b.text for b in content if isinstance(b, TextBlock)])


# Who signed a reasoning block (ReasoningBlock.signer): only the family that signed it can check its signature or
# read its redacted data. Claude's hold on Anthropic's API, Bedrock and Vertex AI alike (Anthropic's docs).
CLAUDE_SIGNED: Final = "claude"
GEMINI_SIGNED: Final = "gemini"


@dataclass(slots=True)
class ReasoningBlock:
    """A model's visible reasoning (with the provider's signature), or an opaque redacted block."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None  # provider-encrypted reasoning, passed back untouched
    # The family that signed it (CLAUDE_SIGNED, GEMINI_SIGNED), None when unknown (an OpenAI-format upstream's, or an
    # unsigned block): a provider of another family cannot check it, and is sent what its docs allow instead.
    signer: str | None = None


@dataclass(slots=True)
class ProviderBlock:
    """A block of one provider's API the content model has no type for (Anthropic's server tools: server_tool_use,
    web_search_tool_result, web_fetch_tool_result, ...), kept whole in its place: carried back to that API
    (`api`, a provider name) as it came, and refused by every other, naming the block."""

    api: str
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.data.get("type"))


Block = Union[TextBlock, ImageBlock, DocumentBlock, ToolUseBlock, ToolResultBlock, ReasoningBlock, ProviderBlock]
_TEXTUAL = (TextBlock, ToolResultBlock)  # blocks with a `.text` (a tuple: isinstance with `A | B` builds it per call)


def blocks_text(blocks: Sequence[Block]) -> str:
    """The plain text of some blocks (text blocks and tool results' text), for estimates and rules."""
    if len(blocks) == 1:  # most turns: one block (no list built to join)
        only = blocks[0]
        return only.text if isinstance(only, _TEXTUAL) else ""
    return "".join([block.text for block in blocks if isinstance(block, _TEXTUAL)])


# A 1-hour cache point (Anthropic's cache_control ttl "1h", Bedrock's cachePoint ttl "1h"): the prefix is kept an
# hour, and its writes cost the 1-hour cache-write price (2x input on Claude, 1.25x for a 5-minute one).
ONE_HOUR: Final = "1h"
# A cache point: False (none), True (one with the provider's default lifetime, 5 minutes) or ONE_HOUR. Plain
# truthiness still says whether there is one, so code that only asks that needs no change.
CachePoint = Union[bool, Literal["1h"]]


@dataclass(slots=True, init=False)
class Message:
    """One conversation turn. `cache_point` marks a cache checkpoint right after this turn, `block_points` the ones
    inside it: (the index in `content` of the block the cached part ends with, its point), in order, each before the
    last block (a document cached before the question that follows it in the same turn, as Anthropic's docs show).

    `content` may be given as a string (one text block) or as blocks; it is always stored as blocks.
    `name` is OpenAI's optional participant name (other providers have none and refuse it).
    """

    role: str
    content: list[Block]
    cache_point: CachePoint
    name: str | None
    # An OpenAI-format message's fields the content model has no type for, as the caller sent them back (OpenRouter's
    # `reasoning_details`: the model's reasoning, signed or encrypted, which it restores on the next turn): carried to
    # OpenAI-format upstreams only, and refused by every other API, naming the field.
    openai_fields: dict[str, Any] | None
    block_points: tuple[tuple[int, CachePoint], ...]

    def __init__(
        self,
        role: str,
        content: str | Sequence[Block],
        cache_point: CachePoint = False,
        name: str | None = None,
        openai_fields: dict[str, Any] | None = None,
        block_points: tuple[tuple[int, CachePoint], ...] = (),
    ) -> None:
        self.role = role
        self.content = [TextBlock(content)] if isinstance(content, str) else list(content)
        self.cache_point = cache_point
        self.name = name
        self.openai_fields = openai_fields
        self.block_points = block_points

    @property
    def text(self) -> str:
        return blocks_text(self.content)

    def blocks_of(self, kind: type) -> list[Any]:
        return [b for b in self.content if isinstance(b, kind)]


# -- requests ------------------------------------------------------------------------------------
@dataclass(slots=True)
class RequestMeta:
    """Who asked and why: lands in the ledger for cost per task, tag, key and tenant."""

    task: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    tenant: str | None = None
    key_id: str | None = None
    route: str | None = None
    tier: str | None = None
    request_id: str | None = None  # the call's ledger request_id, chosen by the caller (the gateway answers with it)


@dataclass(slots=True)
class ChatRequest:
    """A chat call, independent of provider. `system_cache_point` caches the system prompt, `tools_cache_point` the
    tool list (each a `CachePoint`: True, or ONE_HOUR for a 1-hour one).

    `system` is the opening system prompt; a system message later in the conversation is a `Message` with role
    "system" in its place (OpenAI-format upstreams keep it there; the others merge it: `request_views.system_hoisted`,
    where the opening prompt's point and the message's own stay each after its own text).

    `extra` carries provider-specific fields as-is (e.g. OpenAI's logprobs, n, user); a provider that
    cannot send one refuses the request naming the field.
    """

    messages: list[Message]
    model: str = "local"
    system: str | None = None
    max_tokens: int | None = None
    # The name an OpenAI caller gave the cap (o-series models refuse max_tokens); only the OpenAI wire reads it,
    # so other providers never see OpenAI's naming.
    max_tokens_name: str = "max_tokens"
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning: Reasoning | None = None
    # The caller's end user (OpenAI's `user`, Anthropic's `metadata.user_id`), for the provider's abuse monitoring;
    # coding agents send it on every request, so each provider carries it in its own field or refuses it by name.
    user: str | None = None
    # OpenAI's `prompt_cache_key`: which requests share a prefix, a hint for OpenAI's cache routing. OpenAI-format
    # models get it; the others cache by prefix without any key (Claude and Bedrock at the cache points the route's
    # caching places, Gemini implicitly, the local model in its KV cache), so what it asks for happens there unsent.
    prompt_cache_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    system_cache_point: CachePoint = False
    # Cache points inside the system prompt, before its end: (where in `system` the cached part ends, where the next
    # part begins, its point); between the two is the separator that joined the caller's blocks or messages. A
    # Messages API caller may mark any system block (Claude Code marks both of its own); Anthropic and Bedrock get
    # the prompt cut there, without the separator, the other providers cache without points.
    system_breaks: tuple[tuple[int, int, CachePoint], ...] = ()
    tools_cache_point: CachePoint = False
    # A Bedrock model family's own InvokeModel body (Titan Text, Llama, Mistral: `bedrock_prompt_bodies`), which the
    # Bedrock provider sends as written and every other provider refuses; `messages` and `max_tokens` then hold its
    # prompt and cap, which the estimates and the budget read.
    native_body: dict[str, Any] | None = None
    region: str | None = None
    meta: RequestMeta = field(default_factory=RequestMeta)
    # (model spec, provider) that found this very request one it can take, every refusal check passed (the gateway's,
    # before the budget: `Gateway.refusal` with `sent_as_is`): the client then sends it without checking it again
    # for them (`Tokenomy._target`, `Provider.check`). Not an argument, so no copy has it: a changed request
    # (`replace`, `replaced`) is checked anew, but for the client's own copy that only names the model's id.
    cleared: tuple[Any, Any] | None = field(default=None, init=False, repr=False, compare=False)
    # Every tool result of it answers a call of the turn before, and every call is answered (`tool_pairs_error`, asked
    # by the gateway before the budget, and by the client of a request not yet asked): not an argument either, so a
    # copy (whose messages may differ) is asked anew.
    tools_paired: bool = field(default=False, init=False, repr=False, compare=False)

    @classmethod
    def simple(
        cls, prompt: str, model: str = "local", system: str | None = None, max_tokens: int | None = None, **kwargs: Any
    ) -> ChatRequest:
        return cls(messages=[Message("user", prompt)], model=model, system=system, max_tokens=max_tokens, **kwargs)

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The JSON Schema the answer must follow, if the response format names one."""
        fmt = self.response_format
        return fmt.schema if fmt is not None and fmt.type == "json_schema" else None

    @property
    def wants_json(self) -> bool:
        return self.response_format is not None and self.response_format.type != "text"

    def text(self) -> str:
        """System prompt and every turn's text, for token estimates and routing rules."""
        return (self.system or "") + "".join([m.text for m in self.messages])

    def replaced(self, **changes: Any) -> ChatRequest:
        """`dataclasses.replace(self, **changes)`, without its walk over the fields by name: the client copies every
        request it sends (with the model's id, region and tier), and `replace` cost ~850 bytecodes of a gateway
        request's ~13,000, more than reading its body. Same result: every init field copied, the changed ones set."""
        values = dict(zip(_REQUEST_FIELDS, _request_values(self), strict=True))
        values.update(changes)
        return type(self)(**values)


_REQUEST_FIELDS = tuple(f.name for f in fields(ChatRequest) if f.init)
_request_values = operator.attrgetter(*_REQUEST_FIELDS)  # every init field's value, read in one C call
