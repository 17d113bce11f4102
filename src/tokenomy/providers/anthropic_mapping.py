"""Anthropic Messages wire shapes <-> Tokenomy's content model, in both directions.

The provider uses `to_anthropic_params` / `blocks_from_anthropic` / `AnthropicStreamAssembler`;
the gateway's `POST /v1/messages` uses the same block functions in reverse (`anthropic_inbound`), so one
table of block shapes serves both.

Carried: text, image (base64 or url source), document (base64 PDF, plain-text, a file id, a PDF's url, or a content
source of text and image blocks; with its title, context and `citations: {"enabled": true}`), tool_use / tool_result
(is_error), thinking / redacted_thinking with signatures, tools (cache_control on the last one when the tools are a
cache point), tool_choice auto/any/tool/none (a choice among some of the tools: only those tools sent, with auto or
any), `parallel_tool_calls: false` as `disable_parallel_tool_use`, thinking
budget, top_p, top_k, stop sequences, and `extra` keys as-is in the body; a json_schema response format becomes
`output_config.format` (Claude's structured output) and a reasoning effort `output_config.effort` on the models that
take one. What is refused, naming the field, is in `anthropic_refusals`. A 1-hour cache point is cache_control ttl
"1h" (its writes come back in usage.cache_creation, priced at the 1-hour write price). An answer's blocks Tokenomy
has no type for (a server tool's call and result: server_tool_use, web_search_tool_result, web_fetch_tool_result,
...) are ProviderBlocks in their place, carried back as they came, and a text block keeps its `citations`; server
tools (ToolSpec.server: web search, web fetch) go as their caller defined them."""

from __future__ import annotations

import base64
import json
from typing import Any

from tokenomy.messages import (
    CLAUDE_SIGNED,
    ONE_HOUR,
    Block,
    CachePoint,
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    ProviderBlock,
    ReasoningBlock,
    StreamChunk,
    TextBlock,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)
from tokenomy.providers.anthropic_refusals import (
    BLOCK_KEYS,
    UNSIGNED,
    document_text,
    free_effort,
    refuse,
    refuse_uncarried_fields,
    refuse_unsupported,
    refuse_url_document,
    unsigned,
)
from tokenomy.providers.claude_effort import takes_effort, thinks
from tokenomy.providers.json_text import call_input
from tokenomy.providers.reasoning_signers import foreign, unsealed_block
from tokenomy.providers.refusals import (
    FILE_APIS,
    allowed_tools_only,
    empty_text,
    provider_block_kind,
    refuse_image_detail,
)
from tokenomy.request_views import system_hoisted, system_parts

EPHEMERAL = {"type": "ephemeral"}
DEFAULT_MAX_TOKENS = 1024  # the Messages API requires max_tokens; used when a request sets no cap


def default_max_tokens(request: ChatRequest) -> int:
    """The cap for a request that sets none: DEFAULT_MAX_TOKENS past a thinking budget, which Claude requires to be
    below max_tokens (a Gemini caller sends thinkingBudget 8192 with no maxOutputTokens; Gemini's cap is its own)."""
    budget = request.reasoning.budget_tokens if request.reasoning is not None else None
    return DEFAULT_MAX_TOKENS + (budget or 0)


FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
    # A long turn of server tools (web searches) paused: the caller sends the answer back to let Claude go on. No
    # OpenAI reason says so; as "stop" the gateway answered end_turn, and the caller's agent loop ended midway.
    "pause_turn": "pause_turn",
}
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "pause_turn": "pause_turn",
}


def cache_control(point: CachePoint) -> dict[str, Any]:
    """The cache_control of a cache point: ephemeral (5 minutes), with ttl "1h" for a 1-hour one."""
    return {**EPHEMERAL, "ttl": ONE_HOUR} if point == ONE_HOUR else dict(EPHEMERAL)


def to_anthropic_tools(tools: list[ToolSpec], cache_last: CachePoint) -> list[dict[str, Any]]:
    """Anthropic's tool definitions; the last one carries cache_control when the tools are a cache point."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        if tool.server is not None:  # a server tool (web search): its definition as its caller sent it
            out.append(dict(tool.server))
            continue
        item: dict[str, Any] = {"name": tool.name, "input_schema": tool.input_schema}
        if tool.described:
            item["description"] = tool.described
        if tool.strict is not None:
            item["strict"] = tool.strict  # Anthropic's structured-outputs tool flag, carried as sent
        item.update(tool.anthropic or {})  # eager_input_streaming, defer_loading, ...: as the caller sent them
        out.append(item)
    if cache_last and out:
        out[-1]["cache_control"] = cache_control(cache_last)
    return out


def block_to_anthropic(block: Block, where: str, model: str = "") -> dict[str, Any]:
    """One block in the Messages API's content-block shape."""
    if isinstance(block, TextBlock):
        if block.citations is not None:
            return {"type": "text", "text": block.text, "citations": block.citations}
        return {"type": "text", "text": block.text}
    if isinstance(block, ProviderBlock):
        if block.api != "anthropic":
            raise refuse(model, where, f"takes no {provider_block_kind(block)}; remove it")
        return dict(block.data)  # a server tool's call or result, as Anthropic sent it (encrypted content included)
    if isinstance(block, ImageBlock):
        refuse_image_detail(block, model, where, refuse)
        if block.inline:
            return {
                "type": "image",
                "source": {
                    "type": "base64",
                    "media_type": block.media_type or "image/png",
                    "data": block.base64 if block.base64 is not None else base64.b64encode(block.data or b"").decode(),
                },
            }
        return {"type": "image", "source": {"type": "url", "url": block.url}}
    if isinstance(block, DocumentBlock):
        if block.url is not None:
            refuse_url_document(block, model, where)
            source: dict[str, Any] = {"type": "url", "url": block.url}
        elif block.content is not None:  # a content document: its blocks, in order (the chunks a citation names)
            source = {"type": "content", "content": blocks_to_anthropic(block.content, f"{where}.content", model)}
        elif block.file_id is not None:
            if block.file_api not in (None, "anthropic"):  # another API's id: no file of Anthropic's
                raise refuse(
                    model,
                    f"{where}.source.file_id",
                    f"reads no file id of {FILE_APIS.get(block.file_api)}, which only that API's models read; "
                    "send the file's content instead",
                )
            source = {"type": "file", "file_id": block.file_id}
        elif block.format == "pdf":
            source = {
                "type": "base64",
                "media_type": "application/pdf",
                "data": base64.b64encode(block.data or b"").decode(),
            }
        else:  # a text source, or the 400 for a document Claude cannot read
            source = {"type": "text", "media_type": "text/plain", "data": document_text(block, model, where)}
        return _document_item(block, source)
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ToolResultBlock):
        item: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": block.tool_use_id,
            "content": blocks_to_anthropic(block.content, f"{where}.content", model),
        }
        if block.is_error:
            item["is_error"] = True
        return item
    if isinstance(block, ReasoningBlock):
        if block.redacted is not None:
            return {"type": "redacted_thinking", "data": block.redacted}
        if unsigned(block):
            raise refuse(model, where, UNSIGNED)
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    raise refuse(model, where, f"has no content block for {type(block).__name__}")


def _document_item(block: DocumentBlock, source: dict[str, Any]) -> dict[str, Any]:
    """A document block: its source, and the title, context and citations the caller gave it."""
    item: dict[str, Any] = {"type": "document", "source": source}
    if block.name:
        item["title"] = block.name
    if block.context is not None:
        item["context"] = block.context
    if block.citations:
        item["citations"] = {"enabled": True}
    return item


def blocks_to_anthropic(blocks: list[Block], where: str, model: str = "") -> list[dict[str, Any]]:
    return [block_to_anthropic(b, f"{where}[{i}]", model) for i, b in enumerate(blocks)]


IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


def _str(item: dict[str, Any], key: str, where: str, required: bool = True) -> Any:
    value = item.get(key)
    if (value is None and required) or (value is not None and not isinstance(value, str)):
        raise ValueError(f"{where}.{key}: Input should be a string")
    return value


def _source(item: dict[str, Any], where: str) -> dict[str, Any]:
    source = item.get("source")
    if not isinstance(source, dict):
        raise ValueError(f"{where}.source: Input should be an object")
    return source


def _document(item: dict[str, Any], where: str) -> DocumentBlock:
    document = _document_source(_source(item, where), f"{where}.source")
    document.name = _str(item, "title", where, required=False) or None
    document.context = _str(item, "context", where, required=False)
    citations = item.get("citations")
    if citations is not None:
        if not isinstance(citations, dict) or not isinstance(citations.get("enabled", False), bool):
            raise ValueError(f'{where}.citations: Input should be an object such as {{"enabled": true}}')
        for key in citations:
            if key != "enabled":
                raise ValueError(f"{where}.citations.{key}: the gateway cannot carry this field; remove it")
        document.citations = bool(citations.get("enabled"))
    return document


def _document_source(source: dict[str, Any], here: str) -> DocumentBlock:
    kind = source.get("type")
    if kind == "base64":
        if source.get("media_type") != "application/pdf":
            raise ValueError(f"{here}.media_type: base64 documents must be application/pdf")
        return DocumentBlock("pdf", _b64(_str(source, "data", here), f"{here}.data"))
    if kind == "text":
        if source.get("media_type", "text/plain") != "text/plain":  # what a text source is: another would be lost
            raise ValueError(f"{here}.media_type: text documents must be text/plain")
        return DocumentBlock("txt", _str(source, "data", here).encode("utf-8"))
    if kind == "file":  # an id of Anthropic's Files API
        return DocumentBlock("pdf", None, file_id=_str(source, "file_id", here), file_api="anthropic")
    if kind == "url":
        url = _str(source, "url", here)
        if not url:
            raise ValueError(f"{here}.url: a document URL is required")
        return DocumentBlock("pdf", url=url)
    if kind == "content":
        return _content_document(source.get("content"), f"{here}.content")
    raise ValueError(f"{here}.type: expected base64, text, file, url or content (got {kind!r})")


def _content_document(content: Any, where: str) -> DocumentBlock:
    """A content source: text and image blocks, each a chunk a citation may name. Of text alone its text, joined as
    Anthropic joins a cited range (`cited_text`), is also the document's bytes: the same text to any API."""
    if isinstance(content, list):
        for i, part in enumerate(content):
            if isinstance(part, dict) and part.get("cache_control") is not None:  # no place for it in a source
                raise ValueError(
                    f"{where}.{i}.cache_control: a content source's blocks take no cache_control; "
                    "put it on the document block"
                )
    blocks = blocks_from_anthropic(content, where, request=True)
    for i, block in enumerate(blocks):
        if not isinstance(block, (TextBlock, ImageBlock)):
            raise ValueError(f"{where}.{i}.type: a content source holds text and image blocks only")
        if isinstance(block, TextBlock) and block.citations is not None:
            raise ValueError(f"{where}.{i}.citations: a content source's text blocks take no citations; remove them")
    texts = [block.text for block in blocks if isinstance(block, TextBlock)]
    data = "".join(texts).encode("utf-8") if len(texts) == len(blocks) else None
    return DocumentBlock("txt", data, content=blocks)


def _image(item: dict[str, Any], where: str) -> ImageBlock:
    source = _source(item, where)
    here = f"{where}.source"
    if source.get("type") == "base64":
        if source.get("media_type") not in IMAGE_TYPES:
            raise ValueError(f"{here}.media_type: Input should be one of {', '.join(IMAGE_TYPES)}")
        text = _str(source, "data", here)
        return ImageBlock(source["media_type"], _b64(text, f"{here}.data"), base64=text)
    if source.get("type") == "url":
        url = _str(source, "url", here)
        if not url:
            raise ValueError(f"{here}.url: an image URL is required")
        return ImageBlock(url=url)
    raise ValueError(f"{here}.type: expected base64 or url (got {source.get('type')!r})")


def _b64(value: str, where: str) -> bytes:
    if not value:
        raise ValueError(f"{where}: the data is empty")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError(f"{where}: not valid base64") from None


def server_block(kind: str) -> bool:
    """A server tool's call (server_tool_use) or result (web_search_tool_result, web_fetch_tool_result, ...)."""
    return kind == "server_tool_use" or (kind.endswith("_tool_result") and kind != "tool_result")


def blocks_from_anthropic(content: Any, where: str = "content", request: bool = False) -> list[Block]:
    """Messages API content (a string or block dicts, from a response or a request) as Tokenomy blocks.
    Raises ValueError naming the block (`messages.0.content.1.source`) for a shape it does not know; with
    `request`, also for a key the block would lose (Tokenomy's content model has no place for it)."""
    if isinstance(content, str):
        return [TextBlock(content)]
    if not isinstance(content, list):
        raise ValueError(f"{where}: Input should be a string or a list of content blocks")
    blocks: list[Block] = []
    for i, item in enumerate(content):
        here = f"{where}.{i}"
        if not isinstance(item, dict):
            raise ValueError(f"{here}: Input should be a content block object")
        if request:
            refuse_uncarried_fields(item, here)
        kind = item.get("type")
        if kind == "text":
            citations = item.get("citations")
            if citations is not None and not isinstance(citations, list):
                raise ValueError(f"{here}.citations: Input should be a list of citations")
            blocks.append(TextBlock(_str(item, "text", here), citations))
        elif kind == "image":
            blocks.append(_image(item, here))
        elif kind == "document":
            blocks.append(_document(item, here))
        elif kind == "tool_use":
            arguments = item.get("input", {})
            if not isinstance(arguments, dict):
                raise ValueError(f"{here}.input: Input should be an object")
            blocks.append(ToolUseBlock(_str(item, "id", here), _str(item, "name", here), dict(arguments)))
        elif kind == "tool_result":
            inner = item.get("content", [])
            if not isinstance(inner, (str, list)):
                raise ValueError(f"{here}.content: Input should be a string or a list of content blocks")
            if item.get("is_error") is not None and not isinstance(item["is_error"], bool):
                raise ValueError(f"{here}.is_error: Input should be a boolean")  # bool("false") would be True
            blocks.append(
                ToolResultBlock(
                    _str(item, "tool_use_id", here),
                    blocks_from_anthropic(inner, f"{here}.content", request),
                    bool(item.get("is_error")),
                )
            )
        elif kind == "thinking":
            block = ReasoningBlock(_str(item, "thinking", here), _str(item, "signature", here, required=False))
            blocks.append(unsealed_block(block, CLAUDE_SIGNED) if request else block)  # who signed it: sealed
        elif kind == "redacted_thinking":
            block = ReasoningBlock(redacted=_str(item, "data", here))
            blocks.append(unsealed_block(block, CLAUDE_SIGNED) if request else block)
        elif isinstance(kind, str) and (not request or server_block(kind)):
            # An answer is never refused for a block Tokenomy cannot model; a request's server-tool blocks (an earlier
            # answer's, sent back) go back as they came.
            blocks.append(ProviderBlock("anthropic", dict(item)))
        else:
            raise ValueError(
                f"{here}.type: {kind!r} is not a content block Tokenomy carries (text, image, "
                "document, tool_use, tool_result, thinking, redacted_thinking, and server tools' server_tool_use "
                "and *_tool_result blocks)"
            )
    return blocks


def _tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None and request.parallel_tool_calls is not False:
        return None
    if not request.tools and (choice is None or choice.mode in ("auto", "none")):
        return None  # without tools there is nothing to choose or parallelise (the API refuses a bare choice)
    if choice is None or choice.mode == "auto":
        out: dict[str, Any] = {"type": "auto"}
    elif choice.mode == "tool":
        out = {"type": "tool", "name": choice.name}
    else:
        out = {"type": choice.mode}
    if request.parallel_tool_calls is False:
        if out["type"] == "none":
            return out  # nothing to parallelise
        out["disable_parallel_tool_use"] = True
    return out


def _output_config(request: ChatRequest) -> dict[str, Any]:
    """output_config: Claude's structured output (a json_schema response format; Claude always holds the answer to
    the schema, as OpenAI's strict mode does) and the effort of adaptive thinking."""
    config: dict[str, Any] = {}
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema":
        schema = dict(fmt.schema or {"type": "object"})
        if fmt.description:  # the model reads it; the Messages API's place for it is the schema
            schema["description"] = fmt.description
        # The format's name has no field here: OpenAI requires one, as an identifier, not as an instruction.
        config["format"] = {"type": "json_schema", "schema": schema}
    reasoning = request.reasoning
    # An effort guides adaptive thinking, or on its own the models that take one (claude_effort.takes_effort)
    effort = free_effort(reasoning)
    if effort and reasoning is not None and (reasoning.adaptive or takes_effort(request.model)):
        config["effort"] = effort
    return config


def to_anthropic_params(request: ChatRequest) -> dict[str, Any]:
    """Map a ChatRequest to Messages API arguments, with cache_control on the block before each cache point."""
    request = system_hoisted(request)  # the Messages API takes one system prompt: later system messages join it
    refuse_unsupported(request)
    # No way to allow some of the tools: only those are sent (a tool not shown cannot be called)
    request = allowed_tools_only(request, "the Anthropic Messages API")
    cap = default_max_tokens(request) if request.max_tokens is None else request.max_tokens  # 0: cache warming
    params: dict[str, Any] = {"model": request.model, "max_tokens": int(cap)}
    if request.system and (request.system_cache_point or request.system_breaks):
        params["system"] = [
            {"type": "text", "text": text, **({"cache_control": cache_control(point)} if point else {})}
            for text, point in system_parts(request)
        ]
    elif request.system:
        params["system"] = request.system
    messages = []
    for i, message in enumerate(request.messages):
        if message.name:
            raise refuse(request.model, f"messages[{i}].name", "has no participant name; remove it")
        blocks = [  # empty text carries nothing, and the API refuses it (refusals.empty_text); another family's
            # signed reasoning Claude cannot check, and its docs let earlier turns' thinking be left out
            block_to_anthropic(b, f"messages[{i}].content[{j}]", request.model)
            for j, b in enumerate(message.content)
            if not empty_text(b) and not foreign(b, CLAUDE_SIGNED)
        ]
        if message.cache_point and blocks:
            blocks[-1]["cache_control"] = cache_control(message.cache_point)
        if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:  # a plain text turn, as a string
            messages.append({"role": message.role, "content": blocks[0]["text"]})
        else:
            messages.append({"role": message.role, "content": blocks})
    params["messages"] = messages
    for name, value in (("temperature", request.temperature), ("top_p", request.top_p)):
        if value is not None:
            params[name] = float(value)
    if request.top_k is not None:
        params["top_k"] = int(request.top_k)
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.tools:
        params["tools"] = to_anthropic_tools(request.tools, request.tools_cache_point)
    choice = _tool_choice(request)
    if choice is not None:
        params["tool_choice"] = choice
    if request.reasoning is not None and request.reasoning.off:
        # Which Claude models think when `thinking` is left out is the model's to say: the caller's word is sent, but
        # to a model with no thinking (Claude 3 Haiku), which has nothing to turn off.
        if thinks(request.model):
            params["thinking"] = {"type": "disabled"}
    elif request.reasoning is not None and request.reasoning.budget_tokens is not None:
        params["thinking"] = {"type": "enabled", "budget_tokens": int(request.reasoning.budget_tokens)}
    elif request.reasoning is not None and request.reasoning.adaptive:
        params["thinking"] = {"type": "adaptive"}
    display = request.reasoning.claude_display if request.reasoning is not None else None
    if display is not None and params.get("thinking", {}).get("type") in ("enabled", "adaptive"):
        params["thinking"]["display"] = display  # (thinking off, or none asked: no thoughts to show)
    output = _output_config(request)
    if output:
        params["output_config"] = output
    if request.user is not None:
        params["metadata"] = {"user_id": request.user}
    return params


def answer_blocks(content: list[dict[str, Any]]) -> list[Block]:
    """An answer's content blocks (as the SDK dumps them) in their order: a server tool's call and result are
    ProviderBlocks in their place, as Anthropic sent them."""
    return blocks_from_anthropic(content)


class AnthropicStreamAssembler:
    """Folds Messages API stream events (as dicts) into the answer's blocks; numbers tool calls 0, 1, …

    A cited text block and a server tool's block (server_tool_use, web_search_tool_result, ...) are handed on
    whole when they stop (`stop`), so a writer can send each in its own place; other text streams as it comes."""

    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.tool_count = 0

    def start(self, event: dict[str, Any]) -> tuple[int, str, str] | None:
        block = dict(event.get("content_block") or {})
        if block.get("type") == "tool_use":
            block["tool_index"] = self.tool_count
            block["args"] = []
            self.tool_count += 1
        self.blocks[event.get("index", 0)] = block
        if block.get("type") == "tool_use":
            return block["tool_index"], block.get("id", ""), block.get("name", "")
        return None

    def delta(self, event: dict[str, Any]) -> tuple[str, Any]:
        """-> ("text" | "reasoning" | "signature", str) | ("tool", (tool_index, fragment)) | ("", None)."""
        block = self.blocks.setdefault(event.get("index", 0), {"type": "text", "text": ""})
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta.get("text", "")
            if block.get("citations"):  # a cited block goes whole, with its citations, when it stops
                return "", None
            block["sent"] = len(block["text"])
            return "text", delta.get("text", "")
        if kind == "citations_delta":
            block["citations"] = [*(block.get("citations") or []), delta.get("citation")]
            return "", None
        if kind == "input_json_delta":
            block.setdefault("args", []).append(delta.get("partial_json", ""))
            if block.get("type") != "tool_use":  # a server tool's input: not a call the caller makes
                return "", None
            return "tool", (block.get("tool_index", 0), delta.get("partial_json", ""))
        if kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
            return "reasoning", delta.get("thinking", "")
        if kind == "signature_delta":
            block["signature"] = delta.get("signature")
            return "signature", delta.get("signature")
        return "", None

    def stop(self, event: dict[str, Any]) -> StreamChunk | None:
        """The piece a stopped block hands on whole: a cited text block (what of its text was not sent yet, with
        its citations), or a server tool's block; None for the others, which streamed as they came."""
        block = self.blocks.get(event.get("index", 0))
        if block is None:
            return None
        if block.get("type") == "text" and block.get("citations"):
            return StreamChunk(delta=block.get("text", "")[block.get("sent", 0) :], citations=block["citations"])
        if block.get("type") not in BLOCK_KEYS:
            return StreamChunk(block=self._provider_block(block))
        return None

    @staticmethod
    def _provider_block(block: dict[str, Any]) -> ProviderBlock:
        data = {k: v for k, v in block.items() if k not in ("args", "sent")}
        args = "".join(block.get("args") or [])
        if args:
            try:
                data["input"] = json.loads(args)
            except ValueError:
                data["input"] = args
        return ProviderBlock("anthropic", data)

    def content(self) -> list[Block]:
        out: list[Block] = []
        for _, block in sorted(self.blocks.items()):
            if block.get("type") == "tool_use":
                arguments = "".join(block.get("args") or [])
                out.append(
                    ToolUseBlock(
                        block.get("id", ""),
                        block.get("name", ""),
                        call_input(arguments) if arguments else dict(block.get("input") or {}),
                        arguments or None,
                    )
                )
            elif block.get("type") == "text" and not block.get("text"):
                continue
            elif block.get("type") not in BLOCK_KEYS:
                out.append(self._provider_block(block))
            elif block.get("type") == "text":
                out.append(TextBlock(block["text"], block.get("citations") or None))
            else:
                out += blocks_from_anthropic([block])
        return out
