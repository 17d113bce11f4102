"""The OpenAI Chat Completions request: ChatRequest → JSON body (the answer is read by `openai_wire_read`, a stream's
chunks by `openai_stream`; tools, tool choice and response format are written by `openai_wire_tools`).

One module for every OpenAI-format path (the SDK-based provider and the gateway's pooled
upstream), so a field is mapped once. Mapping rules:
- a user turn's ToolResultBlocks become `tool` role messages (placed first: OpenAI wants them right
  after the assistant message that made the calls); its other blocks stay in a user message; a failed
  call's result (`is_error`, which a tool message has no field for) starts with "Error: "; a tool message takes
  text only, so a result's images and documents open that user message, labelled with their call's id;
- images are `image_url` parts (bytes as a data URL, or the URL as given), documents `file` parts;
- an assistant's ToolUseBlocks are `tool_calls`, sending the provider's exact `arguments` text back
  when we have it; a freeform tool (ToolSpec.freeform) is a `custom` tool, its calls `custom` tool calls whose
  `input` is the raw text, both ways (a whole answer's message, and a stream's deltas: `{"index", "id", "type":
  "custom", "custom": {"name", "input"}}`, the input in pieces);
  unsigned ReasoningBlocks are not sent back (OpenAI has no field for them and OpenAI-compatible reasoning
  servers such as DeepSeek refuse `reasoning_content` in requests);
- signed or redacted reasoning (Anthropic's thinking, Gemini's thought signatures), which the model checks when
  the turn comes back, travels in the two conventions OpenAI-format clients and servers use (`openai_reasoning`):
  LiteLLM's `thinking_blocks` on the message, and Google's `extra_content.google.thought_signature` on the tool
  call a signature belongs to;
- for a Mistral model (its name says so) tool call ids that are not 9 letters or digits go as such ids, derived from
  them (`openai_dialects.mistral_call_id`): Mistral refuses any other, and an agent's earlier calls may come from
  another model;
- cache points go as `cache_control` on content parts for a Claude model only (`openai_dialects.takes_cache_control`);
  any other OpenAI-format model caches by itself and gets none;
- a choice among some of the tools (ToolChoice.allowed) is OpenAI's `allowed_tools` tool choice, every tool still
  listed;
- `request.extra` is merged into the body as-is (logprobs, n, user, metadata, service_tier, ...).
- OpenAI's own API (api.openai.com, Azure OpenAI) refuses some of what compatible servers take (`top_k`, a `file`
  part that is no PDF): `openai_dialects.openai_proper_refusal` refuses it by name for those before sending.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from tokenomy.errors import ProviderError
from tokenomy.messages import (
    Block,
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    ProviderBlock,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers.openai_dialects import (
    CACHE_CONTROL,
    is_mistral,
    mistral_call_id,
    mistral_call_ids,
    takes_cache_control,
)
from tokenomy.providers.openai_reasoning import put_signed_reasoning
from tokenomy.providers.openai_wire_tools import response_format_body, tool_call, tool_choice_body, wire_tool
from tokenomy.providers.refusals import Unsupported, without_gemini_own
from tokenomy.request_views import system_parts

DOCUMENT_MEDIA_TYPES = {
    "pdf": "application/pdf",
    "txt": "text/plain",
    "csv": "text/csv",
    "html": "text/html",
    "md": "text/markdown",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

# A file part's media type -> the document's format: every type the mappings send (an office file among them, which
# was taken for a PDF when it came without a file name and went upstream labelled application/pdf). The chat and
# Responses ingresses and `tokenomy batch validate` read a file part by it.
DOCUMENT_FORMATS = {media_type: fmt for fmt, media_type in DOCUMENT_MEDIA_TYPES.items()}


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


# Gemini's inline audio part (what the gateway's chat ingress, openai_blocks._audio_block, makes of an `input_audio`
# part, and what google-genai sends) is Chat Completions' `input_audio` (OpenAI's audio models, and compatible servers
# that take audio): wav or mp3.
_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mp3": "mp3",
    "audio/mpeg": "mp3",
}


def input_audio(block: ProviderBlock) -> dict[str, Any] | None:
    """`block` as an `input_audio` content part, when it is inline wav or mp3 audio (Gemini's part); else None."""
    inline = block.data.get("inline_data") if block.api == "gemini" and block.kind == "audio" else None
    audio_format = _AUDIO_FORMATS.get(inline.get("mime_type", "")) if isinstance(inline, dict) else None
    if audio_format is None or not isinstance(inline, dict):
        return None
    data = inline.get("data")
    if isinstance(data, bytes):
        data = base64.b64encode(data).decode()
    if not isinstance(data, str) or not data:
        return None
    return {"type": "input_audio", "input_audio": {"data": data, "format": audio_format}}


def _part(block: Block, message: int, inside: str = "", index: int | None = None) -> dict[str, Any]:
    """`block` as a content part of `messages[message]` (`inside`: of its tool result; `index`: its place in the
    content). The place is spelled out only in the error for a block that cannot be a part."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ImageBlock):
        if block.openai_part is not None:  # the caller's own part (shared: nothing changes a body's parts)
            return block.openai_part
        if block.url is not None:
            url = block.url
        elif block.base64 is not None:
            url = f"data:{block.media_type or 'image/png'};base64,{block.base64}"
        else:
            url = data_url(block.media_type or "image/png", block.data or b"")
        image: dict[str, Any] = {"url": url}
        if block.detail is not None:
            image["detail"] = block.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(block, DocumentBlock):
        if block.file_id is not None:
            return {
                "type": "file",
                "file": {"file_id": block.file_id, **({"filename": block.name} if block.name else {})},
            }
        media_type = DOCUMENT_MEDIA_TYPES.get(block.format, "application/octet-stream")
        data = data_url(media_type, block.data or b"")
        return {"type": "file", "file": {"filename": block.name or "document", "file_data": data}}
    if isinstance(block, ProviderBlock) and not inside:
        audio = input_audio(block)
        if audio is not None:
            return audio
    where = f"messages[{message}]{inside}.content" + ("" if index is None else f"[{index}]")
    raise ProviderError(
        f"{where}: a {type(block).__name__} cannot be sent as an OpenAI content part", kind="client_error", status=400
    )


def _content(blocks: list[Block], message: int, inside: str = "") -> str | list[dict[str, Any]]:
    """A lone text block is sent as a plain string (what most callers send); anything else as parts."""
    if len(blocks) == 1 and isinstance(blocks[0], TextBlock):
        return blocks[0].text
    return [_part(b, message, inside, i) for i, b in enumerate(blocks)]


def _failed(blocks: list[Block]) -> list[Block]:
    """A failed tool call's result (Anthropic's `is_error`): a tool message has no such flag, so its text says so."""
    if blocks and isinstance(blocks[0], TextBlock):
        return [TextBlock(f"Error: {blocks[0].text}"), *blocks[1:]]
    return [TextBlock("Error"), *blocks]


def to_openai_messages(
    request: ChatRequest,
    empty_call_content: bool = False,
    call_id: Callable[[str], str] | None = None,
    cache_points: bool = False,
) -> list[dict[str, Any]]:
    """The Chat Completions messages (`empty_call_content`: see `_turn`; `call_id`: the id a call is sent under, where
    the model takes only its own kind (Mistral's), for the label of a tool result's media; `cache_points`: the
    request's cache points go as `cache_control` on content parts, `takes_cache_control`)."""
    messages: list[dict[str, Any]] = []
    if request.system:
        if cache_points and (request.system_cache_point or request.system_breaks):
            parts = [_text_part(text, point) for text, point in system_parts(request) if text or point]
            messages.append({"role": "system", "content": parts})
        else:
            messages.append({"role": "system", "content": request.system})
    for i, message in enumerate(request.messages):
        turn = _turn(message, i, empty_call_content, call_id)
        if cache_points and message.block_points:
            _mark_inside(message, turn)
        if cache_points and message.cache_point:
            turn[-1] = _marked(turn[-1])
        messages += turn
    return messages


def _mark_inside(message: Message, turn: list[dict[str, Any]]) -> None:
    """Put `message`'s inner cache points (`block_points`) on `turn`, its OpenAI messages: on the part of a user
    message's block (a part a block), on a tool result's tool message (each its own, in order, first), else at the
    end of the message that holds the block (an assistant's text is one string)."""
    results = [j for j, block in enumerate(message.content) if isinstance(block, ToolResultBlock)]
    for j, _ in message.block_points:
        parts = turn[-1].get("content")
        if message.role == "user" and not results and isinstance(parts, list):  # (copies: a caller's part is shared)
            turn[-1] = {
                **turn[-1],
                "content": [p if k != j else {**p, "cache_control": CACHE_CONTROL} for k, p in enumerate(parts)],
            }
        elif j in results:
            turn[results.index(j)] = _marked(turn[results.index(j)])
        else:
            turn[-1] = _marked(turn[-1])


def _text_part(text: str, point: object) -> dict[str, Any]:
    return {"type": "text", "text": text, "cache_control": CACHE_CONTROL} if point else {"type": "text", "text": text}


def _marked(message: dict[str, Any]) -> dict[str, Any]:
    """`message` with a cache point at its end: on its last content part (a copy: a caller's image part is shared),
    or, for an assistant's tool calls without text, on the message, LiteLLM's convention for it."""
    content = message.get("content")
    if isinstance(content, str) and content:
        return {**message, "content": [_text_part(content, True)]}
    if isinstance(content, list) and content:
        return {**message, "content": [*content[:-1], {**content[-1], "cache_control": CACHE_CONTROL}]}
    return {**message, "cache_control": CACHE_CONTROL}


def _turn(
    message: Message, index: int, empty_call_content: bool = False, call_id: Callable[[str], str] | None = None
) -> list[dict[str, Any]]:
    """The OpenAI messages for `request.messages[index]`. An assistant turn with tool calls and no text has
    `content: null`, as OpenAI sends it; `empty_call_content` (the model's `empty_tool_call_content` setting) sends
    `""` instead, for servers that fail on null (llama-cpp-python answers 500), never by default: OpenAI-compatible
    proxies in front of Bedrock refuse an empty text."""
    if message.role == "system":  # a system message in mid-conversation, kept where the caller put it
        return [{"role": "system", "content": message.text}]
    if message.role == "assistant":
        calls: list[ToolUseBlock] = []
        rest: list[Block] = []  # what the content says (reasoning is not sent back)
        plain = True  # `rest` holds text blocks only
        signed = False  # a reasoning block is signed or redacted: it goes back (`put_signed_reasoning`)
        for block in message.content:  # one pass: this runs for every assistant turn of a conversation
            if isinstance(block, ToolUseBlock):
                calls.append(block)
            elif isinstance(block, ReasoningBlock):
                signed = signed or bool(block.signature) or block.redacted is not None
            else:
                rest.append(block)
                plain = plain and isinstance(block, TextBlock)
        out: dict[str, Any] = {"role": "assistant", "name": message.name} if message.name else {"role": "assistant"}
        if plain:
            text = "".join([b.text for b in rest if isinstance(b, TextBlock)])
            out["content"] = text if text or not calls else ("" if empty_call_content else None)
        else:
            out["content"] = [_part(b, index) for b in rest]
        if calls:
            out["tool_calls"] = [tool_call(c) for c in calls]
        if signed:
            put_signed_reasoning(message.content, out)
        if message.openai_fields:
            out.update(message.openai_fields)
        return [out]
    turns: list[dict[str, Any]] = []
    others: list[Block] = []
    lifted: list[dict[str, Any]] = []  # the tool results' images and documents, as user content parts
    for j, result in enumerate(message.content):  # tool results become tool messages, first; the rest one user turn
        if not isinstance(result, ToolResultBlock):
            others.append(result)
            continue
        content = result.content
        if len(content) == 1 and not result.is_error and isinstance(content[0], TextBlock):  # most results: a text
            turns.append({"role": "tool", "tool_call_id": result.tool_use_id, "content": content[0].text})
            continue
        if result.is_error:
            content = _failed(content)
        said: list[Block] = [b for b in content if isinstance(b, TextBlock)]
        if len(said) < len(content):
            # A tool message takes text only (OpenAI refuses an image part there): the result's media follow in the
            # user message after the run of tool messages, labelled with the call they came from, as agents'
            # OpenAI-format adapters carry a screenshot tool's answer.
            sent_id = call_id(result.tool_use_id) if call_id else result.tool_use_id  # as its tool message names it
            lifted.append({"type": "text", "text": f"Tool call {sent_id} returned:"})
            inside = f".content[{j}].tool_result"
            lifted += [_part(b, index, inside, k) for k, b in enumerate(content) if not isinstance(b, TextBlock)]
            said = said or [TextBlock("(images or documents: in the next message)")]
        turns.append(
            {
                "role": "tool",
                "tool_call_id": result.tool_use_id,
                "content": "" if not said else _content(said, index, ".tool_result"),
            }
        )
    if lifted:
        own = [_part(b, index, "", i) for i, b in enumerate(others)]
        turns.append(_user_turn(message, [*lifted, *own]))
    elif others or not turns:
        turns.append(_user_turn(message, _content(others, index) if others else ""))
    return turns


def _user_turn(message: Message, content: str | list[dict[str, Any]]) -> dict[str, Any]:
    if message.name:
        return {"role": "user", "name": message.name, "content": content}
    return {"role": "user", "content": content}


def request_body(
    request: ChatRequest,
    stream: bool = False,
    ask_usage: bool = True,
    empty_call_content: bool = False,
    completion_cap: bool = False,
) -> dict[str, Any]:
    """The Chat Completions body for a ChatRequest (`ask_usage`: see `openai_dialects.asks_for_usage`;
    `empty_call_content`: see
    `_turn`; `completion_cap`: the cap goes as `max_completion_tokens` whatever the caller named it, for OpenAI's own
    API, whose reasoning models refuse `max_tokens` and whose reference deprecates it for the same cap under that
    name; a compatible server may know only `max_tokens`, and gets the caller's name)."""
    mistral = is_mistral(request.model)
    cached = takes_cache_control(request.model)
    messages = to_openai_messages(request, empty_call_content, mistral_call_id if mistral else None, cached)
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if mistral:
        mistral_call_ids(messages)
    options = {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "top_k": request.top_k,
        "seed": request.seed,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
        "parallel_tool_calls": request.parallel_tool_calls,
    }
    body.update({k: v for k, v in options.items() if v is not None})
    if request.stop:
        body["stop"] = list(request.stop)
    if request.tools:
        body["tools"] = [wire_tool(tool) for tool in request.tools]
        if cached and request.tools_cache_point:  # on the last tool, as LiteLLM takes it (a copy: tools are shared)
            body["tools"][-1] = {**body["tools"][-1], "cache_control": CACHE_CONTROL}
    if request.tool_choice is not None:
        body["tool_choice"] = tool_choice_body(request.tool_choice, request.tools)
    if request.response_format is not None:
        body["response_format"] = response_format_body(request.response_format)
    if request.reasoning is not None and request.reasoning.effort is not None:
        body["reasoning_effort"] = request.reasoning.effort
    if request.user is not None:
        body["user"] = request.user
    if request.prompt_cache_key is not None:
        body["prompt_cache_key"] = request.prompt_cache_key
    body.update(without_gemini_own(request.extra))  # pass-through fields, as the caller named them
    # The caller's name for the cap wins (o-series models refuse max_tokens); a library caller may also
    # have put max_completion_tokens in extra.
    if completion_cap or request.max_tokens_name == "max_completion_tokens" or "max_completion_tokens" in body:
        body.pop("max_tokens", None)
        if request.max_tokens is not None:
            body["max_completion_tokens"] = request.max_tokens
    if stream:
        body["stream"] = True
    if stream and ask_usage:
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True  # usage is needed for the ledger whatever the caller asked
        body["stream_options"] = options
    return body


def refusal(request: ChatRequest) -> Unsupported | None:
    """What of `request` Chat Completions cannot express (a token budget for reasoning), or None."""
    if request.reasoning is not None and request.reasoning.display is not None:
        return Unsupported(
            "a thinking display (`{where}`; Chat Completions has no switch for showing reasoning: remove "
            "thinking.display)",
            field="thinking.display",
        )
    if request.reasoning is not None and request.reasoning.adaptive and request.reasoning.effort is None:
        return Unsupported(
            "adaptive thinking without an effort (`{where}`; OpenAI's reasoning models take reasoning_effort: low, "
            "medium or high)",
            field="thinking",
        )
    if (
        request.reasoning is not None
        and request.reasoning.budget_tokens is not None
        and not request.reasoning.off  # off: an OpenAI-format model reasons only at an effort asked, none is
        and request.reasoning.effort is None
    ):
        return Unsupported(
            "a reasoning token budget (`{where}`; OpenAI takes reasoning_effort: low, medium or high)",
            field="reasoning.budget_tokens",  # the ChatRequest's own slot: no OpenAI field carries it
        )
    return None
