"""The reverse direction, for the gateway's Gemini routes (`/v1beta/models/{model}:generateContent` and
`:streamGenerateContent`): a generateContent request received from a caller (the `google-genai` SDK, or any REST
client) becomes a ChatRequest; `gemini_answers` writes the ChatResponse back as Gemini's GenerateContentResponse.

The wire is proto3 JSON: each field is read by its camelCase name or its snake_case one. Carried: text, inline
images and documents (`inlineData`), images and files by URI (`fileData`), `functionCall` / `functionResponse`
(the images and documents a function returned in its `parts`; matched by id, or by name to the latest call of that
name when Gemini sent no id, as its API does), thoughts and
thought signatures, the system instruction, function declarations (`parametersJsonSchema`, or an OpenAPI-style
`parameters` schema read as JSON Schema), `toolConfig.functionCallingConfig`, and generationConfig's sampling,
output cap, stops, seed, penalties, JSON output and thinking. Gemini's other fields (`safetySettings`,
`cachedContent`, `labels`, other generationConfig fields) ride in `extra` under the SDK's snake_case names, which the
gateway carries to Gemini models only. Anything malformed is a ValueError naming its place, as the caller sent it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import replace
from typing import Any

from tokenomy.messages import (
    Block,
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    Message,
    Reasoning,
    ReasoningBlock,
    ResponseFormat,
    TextBlock,
    ToolChoice,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
)
from tokenomy.providers.gemini_answers import REDACTED_MARK, SIGNATURE_MARK, THINKING_MARK
from tokenomy.providers.gemini_mapping import DOCUMENT_TYPES, EFFORT_LEVELS, GENERATED_ID

REQUEST_FIELDS = ("contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model")
PASSED_FIELDS = ("safetySettings", "cachedContent", "labels")  # Gemini's own: to Gemini models, as sent
MAPPED_CONFIG = (
    "temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "seed", "presencePenalty",
    "frequencyPenalty", "responseMimeType", "responseSchema", "responseJsonSchema", "thinkingConfig",
)  # fmt: skip
# Gemini's built-in tools carried to Gemini models as sent (request.extra["tools"]); what they found comes back in
# the candidate's groundingMetadata / urlContextMetadata (gemini_answers). codeExecution is refused: its parts have no
# block.
BUILT_IN_TOOLS = ("googleSearch", "googleSearchRetrieval", "urlContext")
CONTENT_KINDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
PART_FIELDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "thought", "thoughtSignature")
# A document's mime type -> its format: Gemini's names, and the standard ones for the same formats it takes too.
FORMATS = {mime: fmt for fmt, mime in DOCUMENT_TYPES.items()} | {"text/markdown": "md", "text/x-markdown": "md"}
# generationConfig fields set to what the gateway answers anyway (one candidate, text, no log probabilities), as
# clients send them by default (LangChain sends candidateCount 1): dropped, not refused as the fields are otherwise.
ANSWERED = {
    "candidate_count": lambda v: v == 1 and v is not True,
    "response_modalities": lambda v: isinstance(v, list) and [str(m).upper() for m in v] == ["TEXT"],
    "response_logprobs": lambda v: v is False,
}
MAX_TOKENS = 1_000_000
# Gemini's documented stand-ins for a thought signature the caller does not have (a call another model made): Gemini
# skips its check for them. Gemini CLI puts one on the first function call of every model turn that came without a
# signature (every turn of a model other than Gemini's). As `_signature` holds them: the base64 of their ASCII bytes
# (the Python SDK's bytes), or of the bytes their text decodes to (the JS SDK sends the text itself).
_SKIPS = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")
SKIP_SIGNATURES = frozenset(
    [base64.b64encode(s.encode()).decode() for s in _SKIPS] + [base64.b64encode(base64.urlsafe_b64decode(s)).decode()
                                                               for s in _SKIPS]
)  # fmt: skip


def snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def get(obj: dict[str, Any], name: str) -> Any:
    """Field `name` (camelCase) or its snake_case spelling, as proto3 JSON parsers accept both."""
    return obj[name] if name in obj else obj.get(snake(name))


def _object(value: Any, where: str, fields: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object")
    for key in value:
        if key not in fields and key not in {snake(f) for f in fields}:
            raise ValueError(f"{where}.{key}: not carried by the gateway; remove it")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a string")
    return value


def _base64(value: Any, where: str) -> str:
    """Base64 text (proto3 JSON bytes: either alphabet), checked, in the standard alphabet."""
    text = _string(value, where).replace("-", "+").replace("_", "/")
    try:
        binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        raise ValueError(f"{where}: not valid base64") from None
    return text


def _media(part: dict[str, Any], where: str) -> Block:
    inline = get(part, "inlineData")
    if inline is not None:
        here = f"{where}.inlineData"
        inline = _object(inline, here, ("mimeType", "data", "displayName"))
        mime = _string(get(inline, "mimeType"), f"{here}.mimeType")
        data = _base64(get(inline, "data"), f"{here}.data")
        name = _display_name(inline, here)
        if mime.startswith("image/"):
            _unnamed(name, here)
            return ImageBlock(media_type=mime, base64=data)
        if mime not in FORMATS:
            raise ValueError(f"{here}.mimeType: the gateway carries images and {', '.join(FORMATS)}, not {mime!r}")
        return DocumentBlock(FORMATS[mime], base64.b64decode(data), name)
    here = f"{where}.fileData"
    file = _object(get(part, "fileData"), here, ("mimeType", "fileUri", "displayName"))
    uri = _string(get(file, "fileUri"), f"{here}.fileUri")
    mime = get(file, "mimeType")
    if mime is not None:
        _string(mime, f"{here}.mimeType")
    name = _display_name(file, here)
    if (isinstance(mime, str) and mime.startswith("image/")) or (mime is None and uri.startswith("http")):
        _unnamed(name, here)
        return ImageBlock(media_type=mime, url=uri)
    if mime not in FORMATS:
        raise ValueError(f"{here}.mimeType: the gateway carries images and {', '.join(FORMATS)}, not {mime!r}")
    return DocumentBlock(FORMATS[mime], name=name, file_id=uri)


def _display_name(media: dict[str, Any], where: str) -> str | None:
    name = get(media, "displayName")
    return None if name is None else _string(name, f"{where}.displayName")


def _unnamed(name: str | None, where: str) -> None:
    """An image has no name in the gateway's content model (a document's displayName is its name)."""
    if name is not None:
        raise ValueError(f"{where}.displayName: the gateway carries a name for documents only, not images; drop it")


def _signature_bytes(part: dict[str, Any], where: str) -> bytes | None:
    value = get(part, "thoughtSignature")
    if value is None:
        return None
    text = _string(value, f"{where}.thoughtSignature").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(
            text + "=" * (-len(text) % 4), validate=True
        )  # proto3 JSON: either alphabet, padded or not
    except binascii.Error:
        raise ValueError(f"{where}.thoughtSignature: not valid base64") from None


def _thinking(part: dict[str, Any], where: str) -> list[ReasoningBlock] | None:
    """The reasoning blocks a part's thoughtSignature carries (THINKING_MARK, gemini_answers.thinking_out), or None."""
    raw = _signature_bytes(part, where)
    if raw is None or not raw.startswith(THINKING_MARK):
        return None
    try:
        items = json.loads(raw[len(THINKING_MARK) :])
        return [ReasoningBlock(redacted=i["redacted"]) if "redacted" in i else ReasoningBlock(i["text"], i["signature"])
                for i in items]  # fmt: skip
    except (ValueError, TypeError, KeyError):
        raise ValueError(
            f"{where}.thoughtSignature: not a signature the gateway sent; send it back as it came"
        ) from None


def _signature(part: dict[str, Any], where: str) -> tuple[str, bool] | None:
    """A part's thoughtSignature as (the signature's text, whether it is redacted reasoning). One the gateway sent
    comes back as it left; one it did not (Gemini's own, from another client) is its bytes in standard base64."""
    raw = _signature_bytes(part, where)
    if raw is None:
        return None
    for mark, redacted in ((SIGNATURE_MARK, False), (REDACTED_MARK, True)):
        if raw.startswith(mark):
            return raw[len(mark) :].decode("utf-8", "replace"), redacted
    return base64.b64encode(raw).decode(), False


def _has_content(part: dict[str, Any]) -> bool:
    """Whether a part that carries thinking has content of its own (the last part of a turn carries it on "")."""
    return bool(get(part, "text")) or any(get(part, k) is not None for k in CONTENT_KINDS[1:])


def _carries_thinking(parts: list[Any], where: str) -> bool:
    """Whether a part of the turn carries its thinking (`_thinking`): then its unsigned thought parts are the copies
    shown to the caller, not read again."""
    return any(isinstance(p, dict) and _thinking(p, f"{where}.parts[{j}]") is not None for j, p in enumerate(parts))


class _Calls:
    """Function calls seen so far, so a response finds the call it answers: by id, or by name when Gemini sent none
    (google-genai's automatic function calling sends none): the first unanswered call of that name in the latest
    turn that has one, as Gemini answers parallel calls in the order they were made; a call without an id gets one
    (GENERATED_ID, which the Gemini provider leaves out again)."""

    def __init__(self) -> None:
        self.made = 0
        self.turn = 0  # the content (turn) being read, set by _parts
        self.open: list[tuple[str, str, int]] = []  # (id, name, turn) not answered yet

    def call(self, value: Any, where: str) -> ToolUseBlock:
        call = _object(value, where, ("id", "name", "args"))
        name = _string(get(call, "name"), f"{where}.name")
        args = get(call, "args") or {}
        if not isinstance(args, dict):
            raise ValueError(f"{where}.args: expected an object")
        given = get(call, "id")
        call_id = _string(given, f"{where}.id") if given is not None else f"{GENERATED_ID}{self.made}"
        self.made += 1
        self.open.append((call_id, name, self.turn))
        return ToolUseBlock(call_id, name, args, json.dumps(args))

    def response(self, value: Any, where: str) -> ToolResultBlock:
        answer = _object(value, where, ("id", "name", "response", "willContinue", "scheduling", "parts"))
        for key in ("willContinue", "scheduling"):
            if get(answer, key) is not None:
                raise ValueError(f"{where}.{key}: not carried by the gateway; remove it")
        media = get(answer, "parts") or []  # what the function returned beside its response (Gemini CLI's images)
        if not isinstance(media, list):
            raise ValueError(f"{where}.parts: expected a list of parts")
        attached: list[Block] = []
        for k, item in enumerate(media):
            here = f"{where}.parts[{k}]"
            item = _object(item, here, ("inlineData", "fileData"))
            if (get(item, "inlineData") is None) == (get(item, "fileData") is None):
                raise ValueError(f"{here}: expected exactly one of inlineData, fileData")
            attached.append(_media(item, here))
        name = _string(get(answer, "name"), f"{where}.name")
        given = get(answer, "id")
        matches = [c for c in self.open if (c[0] == given if given is not None else c[1] == name)]
        if not matches:
            raise ValueError(
                f"{where}: no earlier functionCall {f'with id {given!r}' if given is not None else f'named {name!r}'} "
                "in this conversation; send the call before its response"
            )
        latest = max(turn for _, _, turn in matches)
        answered = next(c for c in matches if c[2] == latest)  # parallel calls are answered in their order
        call_id = answered[0]
        self.open.remove(answered)
        response = get(answer, "response")
        if not isinstance(response, dict):
            raise ValueError(f"{where}.response: expected an object")
        # {"output": x} / {"error": x} is Gemini's own convention (the provider writes a result so): the value alone.
        only = next(iter(response)) if len(response) == 1 else None
        value = response[only] if only in ("output", "error") else response
        text = value if isinstance(value, str) else json.dumps(value)
        return ToolResultBlock(call_id, [TextBlock(text), *attached], only == "error")


def _parts(content: Any, where: str, calls: _Calls) -> list[Block]:
    parts = get(content, "parts")
    if not isinstance(parts, list) or not parts:
        raise ValueError(f"{where}.parts: expected a non-empty list of parts")
    blocks: list[Block] = []
    shown = _carries_thinking(parts, where)
    for j, part in enumerate(parts):
        here = f"{where}.parts[{j}]"
        part = _object(part, here, PART_FIELDS)
        thinking = _thinking(part, here)
        if thinking is not None:  # the thinking before this part, whole
            blocks += thinking
            if get(part, "thought") or not _has_content(part):
                continue
        elif shown and get(part, "thought") and get(part, "thoughtSignature") is None:
            continue  # a copy of thinking another part carries
        signed = _signature(part, here) if thinking is None else None
        signature, redacted = signed if signed is not None else (None, False)
        if redacted:
            blocks.append(ReasoningBlock(redacted=signature))
            continue
        if get(part, "thought"):
            text = _string(get(part, "text") or "", f"{here}.text")
            last = blocks[-1] if blocks else None
            if isinstance(last, ReasoningBlock) and last.text and last.signature is None and last.redacted is None:
                blocks[-1] = ReasoningBlock(last.text + text, signature)  # a streamed thought, collected part by part
            else:
                blocks.append(ReasoningBlock(text, signature))
            continue
        if signature is not None:  # a signature on a call or text part: a block of its own right before it
            blocks.append(ReasoningBlock("", signature))
        kinds = [k for k in CONTENT_KINDS if get(part, k) is not None]
        if len(kinds) != 1:
            if not kinds and signature is not None:
                continue  # a trailing signature-only part (Gemini ends a turn so): kept above
            raise ValueError(f"{here}: expected exactly one of text, inlineData, fileData, functionCall, "
                             "functionResponse")  # fmt: skip
        kind = kinds[0]
        if kind == "text":
            blocks.append(TextBlock(_string(get(part, "text"), f"{here}.text")))
        elif kind == "functionCall":
            blocks.append(calls.call(get(part, kind), f"{here}.functionCall"))
        elif kind == "functionResponse":
            blocks.append(calls.response(get(part, kind), f"{here}.functionResponse"))
        else:
            blocks.append(_media(part, here))
    return blocks


# Gemini Schema fields as the SDK sends them from a pydantic model (snake_case) -> their JSON Schema names.
SCHEMA_KEYS = {snake(k): k for k in ("anyOf", "maxItems", "minItems", "maxLength", "minLength", "maxProperties",
                                      "minProperties", "propertyOrdering")}  # fmt: skip


def json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-style Schema as JSON Schema, which the other APIs (and Gemini's responseJsonSchema) take:
    `type: "OBJECT"` is `"object"`, `nullable: true` lets null in (a type of its own, an enum value), and
    `propertyOrdering` orders `properties` (JSON Schema has no such keyword; a model writes them in schema order).
    The schema is walked by its structure (properties, items, anyOf), so a property's name is never rewritten."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        key = SCHEMA_KEYS.get(key, key)
        if key == "properties" and isinstance(value, dict):
            value = {name: json_schema(item) for name, item in value.items()}
        elif key == "items":
            value = json_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            value = [json_schema(item) for item in value]
        elif key == "type" and isinstance(value, str):
            value = value.lower()
        out[key] = value
    order = out.pop("propertyOrdering", None)
    properties = out.get("properties")
    if isinstance(order, list) and isinstance(properties, dict):  # the listed ones first, in their order
        out["properties"] = {**{name: properties[name] for name in order if name in properties}, **properties}
    if out.pop("nullable", None) is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif isinstance(out.get("anyOf"), list):
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
    return out


def _tools(value: Any) -> tuple[list[ToolSpec], list[dict[str, Any]]]:
    """Function declarations as ToolSpecs, and Gemini's built-in tools (BUILT_IN_TOOLS) as sent, each its own Tool."""
    if not isinstance(value, list):
        raise ValueError("tools: expected a list")
    tools = []
    built_in: list[dict[str, Any]] = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        tool = _object(tool, where, ("functionDeclarations", *BUILT_IN_TOOLS, "codeExecution"))
        if get(tool, "codeExecution") is not None:
            raise ValueError(
                f"{where}.codeExecution: not carried by the gateway: the code Gemini runs and its result "
                "(executableCode, codeExecutionResult parts) have no place in its answers, which would drop them; "
                "remove it, or call Gemini directly for code execution"
            )
        for name in BUILT_IN_TOOLS:
            if get(tool, name) is not None:
                built_in.append({name: get(tool, name)})
        declarations = get(tool, "functionDeclarations") or []
        if not isinstance(declarations, list):
            raise ValueError(f"{where}.functionDeclarations: expected a list")
        for j, item in enumerate(declarations):
            here = f"{where}.functionDeclarations[{j}]"
            item = _object(item, here, ("name", "description", "parameters", "parametersJsonSchema", "response",
                                        "responseJsonSchema"))  # fmt: skip
            schema = get(item, "parametersJsonSchema")
            if schema is None:
                schema = json_schema(get(item, "parameters") or {"type": "object", "properties": {}})
            if not isinstance(schema, dict):
                raise ValueError(f"{here}.parametersJsonSchema: expected a JSON schema object")
            # What the function returns (the SDK's automatic function calling sends it for every annotated function)
            returns = get(item, "responseJsonSchema")
            if returns is None and get(item, "response") is not None:
                returns = json_schema(get(item, "response"))
            if returns is not None and not isinstance(returns, dict):
                raise ValueError(f"{here}.responseJsonSchema: expected a JSON schema object")
            description = get(item, "description")
            tools.append(ToolSpec(_string(get(item, "name"), f"{here}.name"),
                                  None if description is None else _string(description, f"{here}.description"),
                                  schema, output_schema=returns))  # fmt: skip
    return tools, built_in


def _tool_choice(value: Any) -> ToolChoice | None:
    config = get(_object(value, "toolConfig", ("functionCallingConfig",)), "functionCallingConfig")
    if config is None:
        return None
    where = "toolConfig.functionCallingConfig"
    config = _object(config, where, ("mode", "allowedFunctionNames"))
    mode = str(get(config, "mode") or "AUTO").upper()
    allowed = get(config, "allowedFunctionNames") or []
    if not isinstance(allowed, list):
        raise ValueError(f"{where}.allowedFunctionNames: expected a list of function names")
    if mode in ("AUTO", "MODE_UNSPECIFIED", "VALIDATED") and not allowed:
        return ToolChoice("auto")  # VALIDATED: the tools strict as well (request_from_gemini)
    if mode == "NONE" and not allowed:
        return ToolChoice("none")
    if mode == "ANY" and not allowed:
        return ToolChoice("any")
    if mode == "ANY" and len(allowed) == 1 and isinstance(allowed[0], str):
        return ToolChoice("tool", allowed[0])
    raise ValueError(f"{where}: the gateway carries modes AUTO, ANY, NONE and VALIDATED, and ANY with one allowed "
                     f"function name (got mode {mode!r} with {len(allowed)} names)")  # fmt: skip


def _validated(config: Any) -> bool:
    calling = get(config, "functionCallingConfig") if isinstance(config, dict) else None
    return isinstance(calling, dict) and str(get(calling, "mode") or "").upper() == "VALIDATED"


def _generation(value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options a ChatRequest maps itself, and the other generationConfig fields (snake_case, for `extra`)."""
    if not isinstance(value, dict):
        raise ValueError("generationConfig: expected an object")
    mapped = {name: get(value, name) for name in MAPPED_CONFIG if get(value, name) is not None}
    rest = {
        snake(k): v for k, v in value.items() if k not in MAPPED_CONFIG and k not in {snake(m) for m in MAPPED_CONFIG}
    }
    for key, answered in ANSWERED.items():  # asks for what every answer is: not an option to carry (or refuse)
        if key in rest and answered(rest[key]):
            del rest[key]
    for name in ("temperature", "topP", "presencePenalty", "frequencyPenalty"):
        if name in mapped and (isinstance(mapped[name], bool) or not isinstance(mapped[name], (int, float))):
            raise ValueError(f"generationConfig.{name}: expected a number")
    for name in ("topK", "seed", "maxOutputTokens"):
        if name in mapped and (isinstance(mapped[name], bool) or not isinstance(mapped[name], int)):
            raise ValueError(f"generationConfig.{name}: expected an integer")
    if not 1 <= mapped.get("maxOutputTokens", 1) <= MAX_TOKENS:
        raise ValueError(f"generationConfig.maxOutputTokens: expected an integer from 1 to {MAX_TOKENS}")
    stops = mapped.get("stopSequences", [])
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ValueError("generationConfig.stopSequences: expected a list of strings")
    return mapped, rest


def _output(mapped: dict[str, Any]) -> ResponseFormat | None:
    mime = mapped.get("responseMimeType")
    schema = mapped.get("responseJsonSchema")
    if schema is None and mapped.get("responseSchema") is not None:
        schema = json_schema(mapped["responseSchema"])
    if mime in (None, "text/plain"):
        if schema is not None:
            raise ValueError('generationConfig.responseMimeType: a response schema needs "application/json"')
        return None
    if mime != "application/json":
        raise ValueError(f'generationConfig.responseMimeType: the gateway carries "application/json" and '
                         f'"text/plain", not {mime!r}')  # fmt: skip
    if schema is None:
        return ResponseFormat("json_object")
    if not isinstance(schema, dict):
        raise ValueError("generationConfig.responseJsonSchema: expected a JSON schema object")
    return ResponseFormat("json_schema", schema, "response", True)


def _reasoning(mapped: dict[str, Any]) -> Reasoning | None:
    thinking = mapped.get("thinkingConfig")
    if thinking is None:
        return None
    where = "generationConfig.thinkingConfig"
    thinking = _object(thinking, where, ("thinkingBudget", "thinkingLevel", "includeThoughts"))
    budget, level = get(thinking, "thinkingBudget"), get(thinking, "thinkingLevel")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < -1):
        raise ValueError(f"{where}.thinkingBudget: expected an integer of -1 (dynamic) or more")
    if get(thinking, "includeThoughts") not in (None, True, False):
        raise ValueError(f"{where}.includeThoughts: expected true or false")
    if level is not None:
        efforts = {v: k for k, v in EFFORT_LEVELS.items()}
        # Gemini reads an enum in any case: @ai-sdk/google sends "low", google-genai "LOW".
        if not isinstance(level, str) or level.upper() not in efforts:  # a list or object is no level (nor hashable)
            raise ValueError(f"{where}.thinkingLevel: expected one of {', '.join(efforts)}")
        return Reasoning(effort=efforts[level.upper()])
    if budget == -1:
        return Reasoning(adaptive=True)
    if budget == 0:
        # Thinking off. Gemini 2.5 Flash thinks unless told so (billed as output): kept as a zero budget, which the
        # Gemini provider sends as such; the route drops it for other providers, which think only when asked.
        return Reasoning(budget_tokens=0)
    return Reasoning(budget_tokens=budget) if budget is not None else None


def without_skip_signatures(messages: list[Message]) -> list[Message]:
    """The conversation without Gemini's stand-in signatures (SKIP_SIGNATURES), for a model other than Gemini: it
    checks every signature it is sent, and the stand-in is no signature of its own."""

    def kept(block: Block) -> bool:
        return not (isinstance(block, ReasoningBlock) and not block.text and block.signature in SKIP_SIGNATURES)

    return [replace(m, content=[b for b in m.content if kept(b)]) for m in messages]


def blocks_nothing(settings: Any) -> bool:
    """Whether `safetySettings` only turn Gemini's filters off (OFF or BLOCK_NONE for each category it names), which
    asks nothing of a provider without such filters. Instructor's `from_genai` sends one with every category OFF on
    each call."""
    return isinstance(settings, list) and all(
        isinstance(s, dict) and s.get("threshold") in ("OFF", "BLOCK_NONE") for s in settings
    )


def shows_thoughts(body: Any) -> bool:
    """Whether the answer shows the model's thoughts: not when `thinkingConfig.includeThoughts` is false (their
    signatures still ride on the parts after them, for the next turn)."""
    config = get(body, "generationConfig") if isinstance(body, dict) else None
    thinking = get(config, "thinkingConfig") if isinstance(config, dict) else None
    return not isinstance(thinking, dict) or get(thinking, "includeThoughts") is not False


def request_from_gemini(model: str, body: Any) -> ChatRequest:
    """A generateContent request body (the model is the URL's) as a ChatRequest.
    Raises ValueError naming the field, as the caller sent it, for anything malformed or not carried."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    for key in body:
        if key not in (*REQUEST_FIELDS, *PASSED_FIELDS) and snake(key) not in {
            snake(f) for f in (*REQUEST_FIELDS, *PASSED_FIELDS)
        }:
            raise ValueError(f"{key}: not carried by the gateway; remove it")
    contents = get(body, "contents")
    if not isinstance(contents, list) or not contents:
        raise ValueError("contents: expected a non-empty list")
    calls = _Calls()
    messages = []
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        calls.turn = i
        content = _object(content, where, ("role", "parts"))
        role = get(content, "role") or "user"
        if role not in ("user", "model"):
            raise ValueError(f"{where}.role: expected 'user' or 'model'")
        messages.append(Message("assistant" if role == "model" else "user", _parts(content, where, calls)))
    system = None
    if get(body, "systemInstruction") is not None:
        instruction = _object(get(body, "systemInstruction"), "systemInstruction", ("role", "parts"))
        blocks = _parts(instruction, "systemInstruction", _Calls())
        if not all(isinstance(b, TextBlock) for b in blocks):
            raise ValueError("systemInstruction.parts: the system instruction takes text parts only")
        system = "\n".join(b.text for b in blocks if isinstance(b, TextBlock))
    tools, built_in = _tools(get(body, "tools")) if get(body, "tools") is not None else ([], [])
    choice = _tool_choice(get(body, "toolConfig")) if get(body, "toolConfig") is not None else None
    if _validated(get(body, "toolConfig")):  # the model chooses, and a call it makes holds to its schema: strict tools
        tools = [replace(tool, strict=True) for tool in tools]
    config = get(body, "generationConfig")
    mapped, rest = _generation({} if config is None else config)  # `[]` or `0` is malformed, not an empty config
    extra = {snake(key): get(body, key) for key in PASSED_FIELDS if get(body, key) is not None}
    extra.update(rest)
    if built_in:  # to Gemini models only (calls.refusal), as sent, beside the function declarations
        extra["tools"] = built_in
    return ChatRequest(
        messages=messages,
        model=model,
        system=system,
        max_tokens=mapped.get("maxOutputTokens"),
        temperature=mapped.get("temperature"),
        top_p=mapped.get("topP"),
        top_k=mapped.get("topK"),
        stop=list(mapped.get("stopSequences") or []),
        seed=mapped.get("seed"),
        presence_penalty=mapped.get("presencePenalty"),
        frequency_penalty=mapped.get("frequencyPenalty"),
        tools=tools,
        tool_choice=choice,
        response_format=_output(mapped),
        reasoning=_reasoning(mapped),
        extra=extra,
    )


# The request options a provider mapping names when it refuses one, by the field a Gemini caller sent.
CALLER_FIELDS = {
    "max_tokens": "generationConfig.maxOutputTokens",
    "temperature": "generationConfig.temperature",
    "top_p": "generationConfig.topP",
    "top_k": "generationConfig.topK",
    "stop": "generationConfig.stopSequences",
    "seed": "generationConfig.seed",
    "presence_penalty": "generationConfig.presencePenalty",
    "frequency_penalty": "generationConfig.frequencyPenalty",
    "response_format": "generationConfig.responseMimeType",
    "reasoning_effort": "generationConfig.thinkingConfig.thinkingLevel",
    "reasoning.budget_tokens": "generationConfig.thinkingConfig.thinkingBudget",
    "thinking": "generationConfig.thinkingConfig",
    "tools": "tools",
    "tool_choice": "toolConfig.functionCallingConfig",
}
_PLACE = re.compile(r"messages\[(\d+)\](?:\.content\[(\d+)\])?")


def _blocks_per_part(parts: list[Any]) -> list[int]:
    """The part each block `_parts` made came from, by block index: a part with a signature and content made two
    blocks (the signature's, then its own), one carrying thinking a block per thought before its own, streamed
    thought pieces one, and thoughts another part carries none."""
    owners: list[int] = []
    shown = _carries_thinking(parts, "contents")
    for index, part in enumerate(parts):
        thought = get(part, "thought")
        signed = get(part, "thoughtSignature") is not None
        content = any(get(part, k) is not None for k in ("inlineData", "fileData", "functionCall", "functionResponse"))
        content = content or get(part, "text") is not None
        carried = _thinking(part, "contents")
        if carried is not None:
            owners += [index] * (len(carried) + (1 if _has_content(part) and not thought else 0))
            continue
        if shown and thought and not signed:
            continue
        if thought and owners and owners[-1] == index - 1 and get(parts[index - 1], "thought"):
            previous = parts[index - 1]
            if get(previous, "thoughtSignature") is None and get(previous, "text"):
                owners[-1] = index  # merged into the previous thought's block
                continue
        owners += [index] * (2 if signed and content and not thought else 1)
    return owners


def caller_field(body: dict[str, Any], key: str) -> str:
    """Where the caller sent what rides in `extra` under its SDK name (`response_modalities`, `safety_settings`): a
    generationConfig field or a top-level one, spelled as sent."""
    config = get(body, "generationConfig") if isinstance(body, dict) else None
    top = body if isinstance(body, dict) else {}
    tools = get(top, "tools")
    if key == "tools" and isinstance(tools, list):  # built-in tools: the first one sent
        for i, tool in enumerate(tools):
            sent = next((k for k in tool if snake(k) in {snake(n) for n in BUILT_IN_TOOLS}), None)
            if sent is not None:
                return f"tools[{i}].{sent}"
    for where, fields in (("generationConfig.", config if isinstance(config, dict) else {}), ("", top)):
        sent = next((k for k in fields if snake(k) == key), None)
        if sent is not None:
            return where + sent
    return key


def caller_param(body: dict[str, Any], param: str) -> str:
    """A mapping's name for a field it cannot send (`messages[2].content[1]`, `top_k`) in the caller's terms
    (`contents[2].parts[1]`, `generationConfig.topK`): contents keep their places; a block's part is counted again
    (`_blocks_per_part`)."""
    for ours, theirs in CALLER_FIELDS.items():
        if param == ours or param.startswith(ours + "."):
            return theirs + param[len(ours) :]
    found = _PLACE.match(param)
    if found is None:
        head, dot, rest = param.partition(".")
        return caller_field(body, head) + dot + rest  # an `extra` field a Gemini model refused
    message, block = int(found.group(1)), found.group(2)
    if block is None:
        return f"contents[{message}]" + param[found.end() :]
    try:
        part = _blocks_per_part(get(body["contents"][message], "parts"))[int(block)]
    except (KeyError, IndexError, TypeError):
        return param
    rest = param[found.end() :]
    within = re.match(r"\.content\[(\d+)\]", rest)  # a function result's media: its functionResponse's parts
    answered = within is not None and int(within.group(1)) > 0
    if within is not None and answered and get(get(body["contents"][message], "parts")[part], "functionResponse"):
        rest = f".functionResponse.parts[{int(within.group(1)) - 1}]" + rest[within.end() :]
    return f"contents[{message}].parts[{part}]" + rest
