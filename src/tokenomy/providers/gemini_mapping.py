"""A ChatRequest as a Gemini `generateContent` request: its `contents` and `GenerateContentConfig` fields (the
`google-genai` SDK's snake_case dicts). An answer is read back by `gemini_parts_read`.

Carried: text, images (inline bytes or a URL as `file_data`), documents (PDF and text types inline, a
file id as `file_data`), Gemini's own parts the content model has no block for (audio, video: a "gemini"
ProviderBlock, as they came), tool use / tool result (`function_call` / `function_response`, matched by the
tool's name; a result's images and documents as the response's `parts`), reasoning (`thought` parts with
their `thought_signature`), tools, tool_choice
(auto/any/none; a named tool as ANY with `allowed_function_names`; strict tools as VALIDATED; a choice among some
of the tools as ANY, or VALIDATED for auto, with their `allowed_function_names`), JSON
and JSON-schema output (Gemini always holds it to the schema; the format's name is only a label),
temperature, top_p, top_k, stop, seed, penalties, a thinking budget or an effort level, and every
`extra` key that is a `GenerateContentConfig` field (e.g. `cached_content`, `safety_settings`).
Refused with an error naming the field: `parallel_tool_calls: false`, extra fields whose results a
ChatResponse cannot hold (`candidate_count`, `response_modalities`, `logprobs`, …), an image `detail`,
documents Gemini cannot read inline (office formats), a tool result for a tool use the conversation
lacks, a response-format description, and extra keys Gemini has no field for.

Cache points are hints: Gemini caches repeated prefixes implicitly and reports the tokens read from
a cache as `cached_content_token_count` (explicit caches are named with `extra["cached_content"]`).
A thought signature that Gemini put on a non-thought part (e.g. a function call) came back as an
empty ReasoningBlock right before that part (`gemini_parts_read`), and is attached to the next part on the way out.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from typing import Any

from tokenomy.errors import ProviderError
from tokenomy.messages import (
    GEMINI_SIGNED,
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    ProviderBlock,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers.block_refusals import FILE_APIS
from tokenomy.providers.claude_effort import BUDGET
from tokenomy.providers.gemini_thinking import (
    EFFORT_BUDGETS,
    can_turn_thinking_off,
    is_gemini_3_or_later,
    lowest_budget,
    takes_budget_only,
)
from tokenomy.providers.reasoning_signers import foreign
from tokenomy.providers.refusals import GEMINI_OWN, fields_to_carry
from tokenomy.request_views import system_hoisted

DOCUMENT_TYPES = {
    "pdf": "application/pdf",
    "txt": "text/plain",
    "md": "text/md",
    "csv": "text/csv",
    "html": "text/html",
}
EFFORT_LEVELS = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
# GenerateContentConfig fields a ChatRequest maps itself; `extra` may carry any other config field, and `tools`:
# Tools beside the request's function declarations (Gemini's built-in googleSearch, urlContext), added to them.
# `response_mime_type` is mapped from response_format, and rides in `extra` for what no format says ("text/x.enum").
MAPPED_CONFIG = frozenset(
    {
        "system_instruction",
        "temperature",
        "top_p",
        "top_k",
        "max_output_tokens",
        "stop_sequences",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_json_schema",
        "tool_config",
        "thinking_config",
    }
)
# What of a request says what each mapped field does (a library caller's ChatRequest field, an OpenAI caller's alike),
# for one put among the pass-through fields by the SDK's name.
OWN_FIELDS = {
    "system_instruction": "system prompt",
    "max_output_tokens": "max_tokens",
    "stop_sequences": "stop",
    "response_json_schema": "response_format (json_schema)",
    "tool_config": "tool_choice",
    "thinking_config": "reasoning settings (reasoning_effort, or a thinking budget)",
}
# Config fields that only make sense inside the SDK process (callables, transport settings).
SDK_ONLY = frozenset({"http_options", "automatic_function_calling", "should_return_http_response"})
# Config fields whose results a ChatResponse has no place for (more candidates, audio, log probabilities):
# refused, so an answer is never silently cut down to what fits.
UNCARRIED = frozenset(
    {"candidate_count", "response_modalities", "speech_config", "image_config", "response_logprobs", "logprobs"}
)
GENERATED_ID = "gemini-call-"  # ids Tokenomy made up for function calls Gemini sent without one
# Gemini 3 answers 400 ("Function call is missing a thought_signature") to a model turn whose first function call has
# no signature, which every call another model made (a fallback, a cascade, a turn routed elsewhere) lacks; Google's
# thought-signature guide names this stand-in for history Gemini did not write. Bytes whose base64, as the SDK writes
# them (URL-safe), is the stand-in's text.
STAND_IN_SIGNATURE = base64.urlsafe_b64decode("skip_thought_signature_validator")
_FOREIGN_FILE = "reads no file id of {}, which only that API's models read; send the file's content instead"


def refuse(model: str, field: str, why: str) -> ProviderError:
    return ProviderError(f"{field}: Gemini (model {model}) {why}", kind="client_error", status=400, param=field)


def config_fields() -> frozenset[str]:
    """The `extra` keys Gemini can carry: GenerateContentConfig's fields the request does not map itself."""
    from google.genai import types

    return frozenset(types.GenerateContentConfig.model_fields) - MAPPED_CONFIG - SDK_ONLY - UNCARRIED


def _media(block: ImageBlock | DocumentBlock, where: str, model: str) -> dict[str, Any]:
    if isinstance(block, ImageBlock):
        if block.detail not in (None, "auto"):
            raise refuse(model, f"{where}.detail", f"has no image detail setting ({block.detail!r}); remove it")
        if block.inline:
            return {"inline_data": {"mime_type": block.media_type or "image/png", "data": block.payload()}}
        if block.media_type is None and block.file_api == "gemini":  # its own file, typeless as its caller sent it
            return {"file_data": {"file_uri": block.url}}
        mime = block.media_type or mimetypes.guess_type(block.url or "")[0] or "image/jpeg"
        return {"file_data": {"file_uri": block.url, "mime_type": mime}}
    doc_mime = DOCUMENT_TYPES.get(block.format)
    named = {"display_name": block.name} if block.name else {}
    if block.file_id is not None:
        if block.file_api not in (None, "gemini"):  # another API's id: no file of Gemini's
            raise refuse(model, f"{where}.source.file_id", _FOREIGN_FILE.format(FILE_APIS.get(block.file_api)))
        return {"file_data": {"file_uri": block.file_id, "mime_type": doc_mime or "application/pdf", **named}}
    if block.url is not None:  # a document Gemini fetches by its URL, as it does an image's
        return {"file_data": {"file_uri": block.url, "mime_type": doc_mime or "application/pdf", **named}}
    if doc_mime is None:
        raise refuse(
            model,
            where,
            f"reads PDF and text documents ({', '.join(DOCUMENT_TYPES)}), not {block.format!r}; convert it first",
        )
    return {"inline_data": {"mime_type": doc_mime, "data": block.data or b"", **named}}


def _signature_bytes(signature: str, where: str, model: str) -> bytes:
    """A thought signature's bytes (Tokenomy holds them as base64 text); one that is not base64 was not Gemini's."""
    try:
        return base64.b64decode(signature.replace("-", "+").replace("_", "/"), validate=True)  # either alphabet
    except ValueError:  # binascii.Error: reached the caller as a 500
        raise refuse(
            model, where, "takes back only thought signatures it issued, and this one is not base64; drop the block"
        ) from None


def _tool_result(block: ToolResultBlock, names: dict[str, str], where: str, model: str) -> dict[str, Any]:
    name = names.get(block.tool_use_id)
    if name is None:
        raise refuse(
            model,
            f"{where}.tool_use_id",
            f"answers a function call by its name; no tool use with id {block.tool_use_id!r} precedes this result",
        )
    media: list[dict[str, Any]] = []  # images and documents the function returned: its response's parts
    for k, part in enumerate(block.content):
        if isinstance(part, (ImageBlock, DocumentBlock)):
            media.append(_media(part, f"{where}.content[{k}]", model))
        elif not isinstance(part, TextBlock):
            raise refuse(model, f"{where}.content[{k}]", "takes text, images and documents in tool results only")
    text = block.text
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    response = {"error" if block.is_error else "output": value}
    out: dict[str, Any] = {"name": name, "response": response}
    if media:
        out["parts"] = media
    if not block.tool_use_id.startswith(GENERATED_ID):
        out["id"] = block.tool_use_id
    return {"function_response": out}


def _own_part(block: ProviderBlock, where: str, model: str) -> dict[str, Any]:
    """A part of Gemini's own the content model has no block for (audio, video: gemini_fields), as it came; its inline
    bytes, held as base64 text, as the bytes the SDK takes."""
    if block.api != "gemini":  # GeminiProvider.refusal refuses it before any call
        raise refuse(model, where, f"takes no {block.api} {block.kind} block; remove it")
    part = {key: value for key, value in block.data.items() if key != "type"}
    inline = part.get("inline_data")
    if isinstance(inline, dict):
        part["inline_data"] = {**inline, "data": base64.b64decode(inline["data"])}
    return part


def contents_from_request(request: ChatRequest) -> list[dict[str, Any]]:
    """The request's turns as Gemini `contents` (roles user / model)."""
    request = system_hoisted(request)  # one system instruction (config_from_request)
    names: dict[str, str] = {}
    contents: list[dict[str, Any]] = []
    checks_signatures = is_gemini_3_or_later(request.model)  # 2.5 only warns of a call without a signature
    for i, message in enumerate(request.messages):
        parts: list[dict[str, Any]] = []
        pending: bytes | None = None  # a thought signature for the next part
        unsigned_turn = checks_signatures and message.role == "assistant"  # until a part of it carries Gemini's
        for j, block in enumerate(message.content):
            where = f"messages[{i}].content[{j}]"
            if isinstance(block, ReasoningBlock):
                if foreign(block, GEMINI_SIGNED):  # another family's signature Gemini cannot check: reasoning_signers
                    continue
                if block.redacted is not None:
                    raise refuse(request.model, where, "has no redacted reasoning; drop the block")
                signature = _signature_bytes(block.signature, where, request.model) if block.signature else None
                unsigned_turn = unsigned_turn and not signature
                if block.text:
                    part: dict[str, Any] = {"text": block.text, "thought": True}
                    if signature:
                        part["thought_signature"] = signature
                    parts.append(part)
                else:
                    pending = signature
                continue
            if isinstance(block, TextBlock):
                part = {"text": block.text}
            elif isinstance(block, (ImageBlock, DocumentBlock)):
                part = _media(block, where, request.model)
            elif isinstance(block, ToolUseBlock):
                names[block.id] = block.name
                call: dict[str, Any] = {"name": block.name, "args": block.input}
                if not block.id.startswith(GENERATED_ID):
                    call["id"] = block.id
                part = {"function_call": call}
            elif isinstance(block, ToolResultBlock):
                part = _tool_result(block, names, where, request.model)
            elif isinstance(block, ProviderBlock):
                part = _own_part(block, where, request.model)
            else:  # pragma: no cover - every Block type is handled above
                raise refuse(request.model, where, f"has no part for {type(block).__name__}")
            if pending:
                part["thought_signature"], pending = pending, None
            if "thought_signature" in part:
                unsigned_turn = False
            elif unsigned_turn and "function_call" in part:  # a call another model made: STAND_IN_SIGNATURE
                part["thought_signature"], unsigned_turn = STAND_IN_SIGNATURE, False
            parts.append(part)
        if pending:  # Gemini ended the turn with a part holding only a signature: it goes back as it came
            parts.append({"text": "", "thought_signature": pending})
        contents.append({"role": "model" if message.role == "assistant" else "user", "parts": parts})
    return contents


def _tool_config(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if not request.tools:
        if choice is not None and choice.mode in ("any", "tool"):  # nothing to call: it would be dropped
            raise refuse(request.model, "tool_choice", f"cannot force a tool ({choice.mode}) when no tools are given")
        return None
    if choice is not None and choice.allowed:
        undeclared = choice.undeclared(request.tools)
        if undeclared is not None:
            raise refuse(request.model, "tool_choice", f"has no function `{undeclared}` declared to allow; declare it")
        # ANY calls one of them; VALIDATED, Gemini's mode that takes names and lets the model answer in text instead
        # (AUTO takes none), also holds a call to its function's schema, as a strict tool is held
        mode = "ANY" if choice.mode == "any" else "VALIDATED"
        return {"function_calling_config": {"mode": mode, "allowed_function_names": list(choice.allowed)}}
    if any(t.strict for t in request.tools) and (choice is None or choice.mode == "auto"):
        # Strict tools: VALIDATED lets the model choose, and holds any call it makes to the schema.
        return {"function_calling_config": {"mode": "VALIDATED"}}
    if choice is None:
        return None
    if choice.mode == "tool":
        return {"function_calling_config": {"mode": "ANY", "allowed_function_names": [choice.name]}}
    return {"function_calling_config": {"mode": choice.mode.upper()}}


def _effort_budget(model: str, effort: str) -> int:
    """The thinking_budget an effort is for a Gemini 2.5 model, which refuses a thinking_level: Google's own mapping
    (gemini_thinking.EFFORT_BUDGETS, from https://ai.google.dev/gemini-api/docs/openai)."""
    budget = EFFORT_BUDGETS.get(effort)
    if budget is None:
        raise refuse(model, "reasoning_effort", f"takes {', '.join(EFFORT_BUDGETS)} (got {effort!r})")
    if budget == 0 and not can_turn_thinking_off(model):
        raise refuse(
            model,
            "reasoning_effort",
            f"cannot turn thinking off, which {effort!r} asks for; send low, medium or high (or a thinking budget of "
            f"at least {lowest_budget(model)} tokens, its least thinking), or leave it out",
        )
    return budget


def _budget_refusal(model: str, budget: int) -> ProviderError | None:
    """The 400 for a thinking budget below the model's range (`gemini_thinking.lowest_budget`: 0, thinking off, on
    2.5 Pro, which always thinks; 1 to 127 on 2.5 Pro, 1 to 511 on 2.5 Flash-Lite), which Google's API answers only
    after the call."""
    lowest = lowest_budget(model)
    if budget == 0 and not can_turn_thinking_off(model):
        return refuse(
            model,
            "thinking",
            f"cannot turn thinking off: it always thinks; send a thinking budget of at least {lowest} tokens "
            f"(`{BUDGET}`), its least thinking, or leave thinking out",
        )
    if 0 < budget < lowest:
        return refuse(
            model,
            BUDGET,
            f"takes a thinking budget of at least {lowest} tokens (got {budget}); raise it to {lowest} or more"
            + (", or turn thinking off (a budget of 0)" if can_turn_thinking_off(model) else ""),
        )
    return None


def config_from_request(request: ChatRequest) -> dict[str, Any]:
    """GenerateContentConfig fields (snake_case) for everything but the contents."""
    request = system_hoisted(request)  # mid-conversation system messages join the system instruction
    model = request.model
    if request.parallel_tool_calls is False:
        raise refuse(model, "parallel_tool_calls", "has no switch for parallel function calls; remove it")
    config: dict[str, Any] = {}
    if request.system:
        config["system_instruction"] = request.system
    for name in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        value = getattr(request, name)
        if value is not None:
            config[name] = float(value)
    for name, value in (("top_k", request.top_k), ("seed", request.seed), ("max_output_tokens", request.max_tokens)):
        if value is not None:
            config[name] = int(value)
    if request.stop:
        config["stop_sequences"] = list(request.stop)
    fmt = request.response_format
    if fmt is not None and fmt.type != "text":
        if fmt.description:
            raise refuse(model, "response_format.description", "has no schema description field; put it in the prompt")
        if "response_mime_type" in request.extra:
            raise refuse(model, "response_mime_type", "is set by response_format as well; send one or the other")
        config["response_mime_type"] = "application/json"
        if fmt.type == "json_schema":
            config["response_json_schema"] = fmt.schema or {"type": "object"}
    if request.tools:
        declarations = []
        for tool in request.tools:
            item: dict[str, Any] = {"name": tool.name, "parameters_json_schema": tool.input_schema}
            if tool.description:
                item["description"] = tool.description
            if tool.output_schema is not None:  # Gemini's own field for it (other providers: ToolSpec.described)
                item["response_json_schema"] = tool.output_schema
            declarations.append(item)
        config["tools"] = [{"function_declarations": declarations}]
    tool_config = _tool_config(request)
    if tool_config is not None:
        config["tool_config"] = tool_config
    reasoning = request.reasoning
    if reasoning is not None and (reasoning.asks_thinking or reasoning.off or reasoning.thoughts is not None):
        # Whether Gemini shows its thoughts: as the caller said (Reasoning.thoughts); else Claude's thinking display
        # (summarized is what Gemini's thought summaries are, omitted leaves them out), shown when not said.
        shown = reasoning.thoughts if reasoning.thoughts is not None else reasoning.display != "omitted"
        thinking: dict[str, Any] = {"include_thoughts": shown}
        if reasoning.budget_tokens == 0 and reasoning.effort is not None:  # no level to give thinking that is off
            raise refuse(model, "reasoning_effort", "sets how hard Gemini thinks, and thinking is off; drop one")
        refused = None if reasoning.budget_tokens is None else _budget_refusal(model, reasoning.budget_tokens)
        if refused is not None:
            raise refused
        if reasoning.budget_tokens == 0:  # thinking off (a model that thinks by default is told not to)
            thinking = {"thinking_budget": 0}
            if reasoning.thoughts is not None:  # said with it: carried as said
                thinking["include_thoughts"] = reasoning.thoughts
        elif reasoning.budget_tokens is not None:
            thinking["thinking_budget"] = int(reasoning.budget_tokens)
        elif reasoning.effort is not None and takes_budget_only(model):
            budget = _effort_budget(model, str(reasoning.effort))
            if budget == 0 and reasoning.thoughts is None:  # thinking off: no thoughts to show, as for a budget of 0
                thinking = {}
            thinking["thinking_budget"] = budget
        elif reasoning.effort is not None:
            level = EFFORT_LEVELS.get(str(reasoning.effort))
            if level is None:
                raise refuse(model, "reasoning_effort", f"takes {', '.join(EFFORT_LEVELS)} (got {reasoning.effort!r})")
            thinking["thinking_level"] = level
        elif reasoning.adaptive:  # Gemini's dynamic budget, the model decides
            thinking["thinking_budget"] = -1
        # else: only whether thoughts are shown, of the thinking the model does unasked (Gemini 2.5's by default)
        config["thinking_config"] = thinking
    for key, value in fields_to_carry(request.extra, own=GEMINI_OWN).items():
        if key == "max_completion_tokens":  # OpenAI's newer name for max_tokens
            config.setdefault("max_output_tokens", int(value))
        elif key == "tools" and isinstance(value, list):  # built-in tools (googleSearch), beside the declarations
            config["tools"] = [*config.get("tools", []), *value]
        else:
            config[key] = value  # refusal() has already checked it is a GenerateContentConfig field
    return config
