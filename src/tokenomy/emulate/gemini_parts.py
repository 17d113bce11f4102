"""Request bodies of the emulated Gemini API: validated as the API does, rendered for the local model.

The wire is proto3 JSON, so each field is read by its camelCase name or its snake_case one. Errors use
Google's shape `{"error": {"code", "message", "status"}}`. Images and PDFs reach the text model as a
placeholder line and count at the fixed estimates in `engine`; a thought part must carry a signature
this process issued (`engine.sign_reasoning`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from tokenomy.caching.placement import DOCUMENT_TOKENS, IMAGE_TOKENS
from tokenomy.emulate.engine import GEMINI, Block, Turn, signature_valid
from tokenomy.emulate.gemini_request_names import CONFIG_FIELDS, SERVICE_TIERS, UNMADE_OUTPUT, VALUE_KINDS
from tokenomy.emulate.json_schemas import schema_problem
from tokenomy.providers.gemini_fields import schema_numbers
from tokenomy.providers.gemini_thinking import LEVEL_REFUSED, can_turn_thinking_off, lowest_budget, takes_budget_only

STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}
ENUM_MIME = "text/x.enum"  # the answer is one of the schema's enum values, bare (Gemini's classification output)


class GeminiError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "status": STATUS.get(self.code, "UNKNOWN")}}


def invalid(message: str) -> GeminiError:
    return GeminiError(400, message)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def field(obj: dict[str, Any], name: str) -> Any:
    """`name` (camelCase) or its snake_case spelling, as proto3 JSON parsers accept both."""
    if name in obj:
        return obj[name]
    return obj.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name))


def known(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in obj:
        if camel(key) not in allowed:
            raise invalid(f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field.")


def _bytes(value: Any, where: str) -> bytes:
    try:
        return base64.b64decode(str(value).replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{where}: invalid base64 data") from None


def _part(part: Any, where: str) -> Block:
    if not isinstance(part, dict):
        raise invalid(f"{where}: a part must be an object")
    signature = field(part, "thoughtSignature")
    if field(part, "thought"):
        text = field(part, "text") or ""
        # thoughtSignature is bytes, base64 in JSON; the bytes are the signature this emulator issued.
        issued = _bytes(signature, f"{where}.thoughtSignature").decode("utf-8", "replace") if signature else None
        if not signature_valid(text, issued, GEMINI):
            raise invalid(f"{where}.thoughtSignature: Thought signature is not valid.")
        return Block("")  # earlier thoughts are not shown to the model again
    if field(part, "text") is not None:
        if not isinstance(field(part, "text"), str):
            raise invalid(f"{where}.text: a string")
        return Block(field(part, "text"))
    inline = field(part, "inlineData")
    if isinstance(inline, dict):
        mime = field(inline, "mimeType")
        if not isinstance(mime, str) or "/" not in mime:
            raise invalid(f"{where}.inlineData.mimeType: required")
        data = _bytes(field(inline, "data"), f"{where}.inlineData.data")
        if mime.startswith("text/"):
            return Block(f"[document: {mime}]\n{data.decode('utf-8', 'replace')}")
        return _media(f"[{mime}, {len(data)} bytes]", mime)
    file_data = field(part, "fileData")
    if isinstance(file_data, dict):
        uri = field(file_data, "fileUri")
        if not isinstance(uri, str) or not uri:
            raise invalid(f"{where}.fileData.fileUri: required")
        return _media(f"[file {uri}]", str(field(file_data, "mimeType") or ""))
    call = field(part, "functionCall")
    if isinstance(call, dict):
        if not call.get("name"):
            raise invalid(f"{where}.functionCall.name: required")
        return Block(json.dumps({"function_call": {"name": call["name"], "args": call.get("args") or {}}}))
    answer = field(part, "functionResponse")
    if isinstance(answer, dict):
        if not answer.get("name") or not isinstance(answer.get("response"), dict):
            raise invalid(f"{where}.functionResponse: name and a response object are required")
        text = json.dumps({"function_response": {"name": answer["name"], "response": answer["response"]}})
        # The images and documents the function returned (Gemini 3's multimodal function responses) are read and
        # billed as the same media elsewhere in the prompt.
        media = field(answer, "parts") or []
        if not isinstance(media, list):
            raise invalid(f"{where}.functionResponse.parts: a list of parts")
        extra = audio = 0
        for k, nested in enumerate(media):
            inner = f"{where}.functionResponse.parts[{k}]"
            if not isinstance(nested, dict) or not (field(nested, "inlineData") or field(nested, "fileData")):
                raise invalid(f"{inner}: a function response part holds inlineData or fileData")
            block = _part(nested, inner)
            text, extra, audio = f"{text} {block.text}", extra + block.extra_tokens, audio + block.audio_tokens
        return Block(text, extra_tokens=extra, audio_tokens=audio)
    raise invalid(
        f"{where}: the Tokenomy emulator reads text, inlineData, fileData, functionCall, functionResponse and "
        "thought parts"
    )


def _media(text: str, mime: str) -> Block:
    """A media part (inline, or by URI) at its fixed estimate; audio is counted as audio whichever way it came, as
    Gemini reports a Files API upload's audio by its MIME type as it does inline bytes."""
    tokens = IMAGE_TOKENS if mime.startswith("image/") else DOCUMENT_TOKENS
    return Block(text, extra_tokens=tokens, audio_tokens=tokens if mime.startswith("audio/") else 0)


def audio_tokens(turns: list[Turn]) -> int:
    """The tokens of the audio parts in `turns` (their fixed estimate), inline or by URI: usageMetadata reports them
    apart (promptTokensDetails' AUDIO modality), as Google bills audio input at its own price."""
    return sum(b.audio_tokens for turn in turns for b in turn.blocks)


def contents(value: Any, where: str = "contents") -> list[Turn]:
    """Validated `contents` as turns (user / model roles; the model's turns are the assistant's)."""
    if not isinstance(value, list):
        raise invalid(f"{where}: a list of Content objects")
    turns: list[Turn] = []
    for i, content in enumerate(value):
        here = f"{where}[{i}]"
        if not isinstance(content, dict):
            raise invalid(f"{here}: a Content object")
        role = content.get("role") or "user"
        if role not in ("user", "model", "function"):
            raise invalid(f"{here}.role: Please use a valid role: user, model.")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise invalid(f"{here}.parts: must contain at least one part")
        blocks = [_part(p, f"{here}.parts[{j}]") for j, p in enumerate(parts)]
        turns.append(Turn("assistant" if role == "model" else "user", blocks))
    return turns


def _function_parts(content: dict[str, Any], kind: str) -> int:
    """How many parts of a Content are `kind` (functionCall, functionResponse)."""
    return sum(1 for part in content["parts"] if isinstance(part, dict) and field(part, kind) is not None)


def check_function_turns(value: list[dict[str, Any]]) -> None:
    """Gemini's pairing of function calls and responses, in its words, on `contents` already read (`contents`): a
    turn of function responses comes right after the model's turn of function calls, one response for each call
    (contents in a row of one role are one turn; a `function` role's are the user's)."""
    turns: list[tuple[str, int, int]] = []  # (role, calls, responses)
    for content in value:
        role = "model" if content.get("role") == "model" else "user"
        calls, responses = _function_parts(content, "functionCall"), _function_parts(content, "functionResponse")
        if turns and turns[-1][0] == role:
            calls, responses = turns[-1][1] + calls, turns[-1][2] + responses
            turns.pop()
        turns.append((role, calls, responses))
    for t, (role, _, responses) in enumerate(turns):
        if role != "user" or not responses:
            continue
        calls = turns[t - 1][1] if t else 0
        if not calls:
            raise invalid("Please ensure that function response turn comes immediately after a function call turn.")
        if calls != responses:
            raise invalid(
                "Please ensure that the number of function response parts is equal to the number of function call "
                "parts of the function call turn."
            )


def system_blocks(body: dict[str, Any]) -> list[Block]:
    """Tools (as JSON) then the system instruction, rendered as the prompt's system part."""
    blocks: list[Block] = []
    tools = field(body, "tools") or []
    if not isinstance(tools, list):
        raise invalid("tools: a list of Tool objects")
    declarations(body)  # checks each function's name and schema, as the API does before it answers
    for tool in tools:
        blocks.append(Block(json.dumps(tool, sort_keys=True)))
    system = field(body, "systemInstruction")
    if system is not None:
        if isinstance(system, str):
            return [*blocks, Block(system)]
        if not isinstance(system, dict):
            raise invalid("systemInstruction: a Content object")
        blocks += [_part(p, f"systemInstruction.parts[{j}]") for j, p in enumerate(field(system, "parts") or [])]
    return blocks


def declarations(body: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(field(body, "tools") or []):
        for j, item in enumerate(field(tool, "functionDeclarations") or []):
            if not isinstance(item, dict) or not item.get("name"):
                raise invalid(f"tools[{i}].functionDeclarations[{j}].name: required")
            for key in ("parametersJsonSchema", "parameters"):
                if field(item, key) is not None:
                    where = f"tools[{i}].functionDeclarations[{j}].{key}"
                    _check_schema(_schema(item, key, where), where)
            out.append(item)
    return out


def forced_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function a toolConfig mode ANY forces (the first allowed one), as {"name", "schema"}."""
    config = field(field(body, "toolConfig") or {}, "functionCallingConfig") or {}
    mode = str(field(config, "mode") or "AUTO").upper()
    if mode not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
        raise invalid(f"toolConfig.functionCallingConfig.mode: unknown value {mode!r}")
    if mode != "ANY":
        return None
    tools = declarations(body)
    allowed = field(config, "allowedFunctionNames") or [t["name"] for t in tools]
    chosen = next((t for t in tools if t["name"] in allowed), None)
    if chosen is None:
        raise invalid("toolConfig.functionCallingConfig: mode ANY needs a function declaration it allows")
    schema = _schema(chosen, "parametersJsonSchema") or _schema(chosen, "parameters") or {"type": "object"}
    return {"name": chosen["name"], "schema": _json_schema(schema)}


def _schema(holder: dict[str, Any], key: str, where: str | None = None) -> Any:
    """The schema `holder[key]`: one given as JSON Schema (parametersJsonSchema, responseJsonSchema) is a JSON value,
    read as sent; Google's own Schema (parameters, responseSchema) with its int64 fields as numbers, and a 400 naming
    the field (under `where`) for text there that is no integer, as Google refuses an int64 it cannot read."""
    schema = field(holder, key)
    if key.endswith("JsonSchema"):
        return schema
    try:
        return schema_numbers(schema, where or key)
    except ValueError as exc:
        raise invalid(str(exc)) from None


def _check_schema(schema: Any, where: str) -> None:
    """A 400 naming `where` for a schema the API cannot read (a type that is no type, properties that are not
    an object, ...), as Gemini refuses it, rather than a failure of the model asked to fill it in."""
    problem = schema_problem(_json_schema(schema))
    if problem is not None:
        raise invalid(f"{where}: not a valid schema: {problem}")


def _json_schema(schema: Any) -> Any:
    """Gemini's OpenAPI-style Schema (types in upper case) as JSON Schema, for the grammar."""
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _json_schema(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_json_schema(v) for v in schema]
    return schema


def check_taken_fields(body: dict[str, Any], config: dict[str, Any]) -> None:
    """The fields taken as the API takes them: a value of the wrong kind or an unknown service tier refused as the API
    refuses it, and what asks for output the emulator does not make refused naming it (not answered without it)."""
    for place, kind in VALUE_KINDS.items():
        head, _, name = place.rpartition(".")
        value = field(config if head else body, name)
        if value is not None and not isinstance(value, kind):
            raise invalid(f"Invalid value at '{place}' ({'TYPE_BOOL' if kind is bool else 'an object'}), {value!r}")
    tier = field(body, "serviceTier")
    if tier is not None and str(tier).lower() not in SERVICE_TIERS:
        raise invalid(f"Invalid value at 'serviceTier' ({', '.join(sorted(SERVICE_TIERS))}), {tier!r}")
    for place, why in UNMADE_OUTPUT.items():
        head, _, name = place.rpartition(".")
        if field(config if head else body, name) is not None:
            raise invalid(f"{place}: the Tokenomy emulator {why}")
    modalities = field(config, "responseModalities") or []
    if not isinstance(modalities, list) or any(str(each).upper() != "TEXT" for each in modalities):
        raise invalid(f"generationConfig.responseModalities: the Tokenomy emulator answers TEXT only, not {modalities}")


def generation_config(body: dict[str, Any], model: str) -> dict[str, Any]:
    """Validated generationConfig: max tokens, temperature, sampling (topP, topK, seed: ChatRequest's fields), stops,
    JSON schema, thinking budget (a thinking level refused, as by Google, for a model that takes a budget)."""
    config = field(body, "generationConfig") or {}
    if not isinstance(config, dict):
        raise invalid("generationConfig: an object")
    known(config, CONFIG_FIELDS, "generation_config")
    check_taken_fields(body, config)
    limit = field(config, "maxOutputTokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise invalid("generationConfig.maxOutputTokens: a positive integer")
    temperature = field(config, "temperature")
    if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2):
        raise invalid("generationConfig.temperature: between 0 and 2")
    top_p, top_k, seed = field(config, "topP"), field(config, "topK"), field(config, "seed")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 <= top_p <= 1):
        raise invalid("generationConfig.topP: between 0 and 1")
    if top_k is not None:  # google-genai sends it as a float (1.0), which Google's JSON reads as the integer it is
        if isinstance(top_k, bool) or not isinstance(top_k, (int, float)) or top_k < 1 or top_k != int(top_k):
            raise invalid("generationConfig.topK: a positive integer")
        top_k = int(top_k)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise invalid("generationConfig.seed: an integer")
    stops = field(config, "stopSequences") or []
    if not isinstance(stops, list) or len(stops) > 5:
        raise invalid("generationConfig.stopSequences: at most 5 strings")
    if (field(config, "candidateCount") or 1) != 1:
        raise invalid("generationConfig.candidateCount: the Tokenomy emulator answers one candidate")
    for key in ("responseLogprobs", "logprobs"):  # asked for, they would be missing from the answer unsaid
        if field(config, key):
            raise invalid(f"generationConfig.{key}: the Tokenomy emulator reports no log probabilities")
    schema = None
    mime = field(config, "responseMimeType")
    given = [key for key in ("responseJsonSchema", "responseSchema") if field(config, key) is not None]
    if mime in ("application/json", ENUM_MIME):
        for key in given:
            _check_schema(_schema(config, key, f"generationConfig.{key}"), f"generationConfig.{key}")
        schema = _json_schema(_schema(config, "responseJsonSchema") or _schema(config, "responseSchema") or {})
        choices = schema.get("enum") if isinstance(schema, dict) and schema.get("type") == "string" else None
        if mime == ENUM_MIME and not choices:
            raise invalid(f"generationConfig.responseSchema: {ENUM_MIME} answers one of a STRING schema's enum values")
    elif given:  # a schema no answer would follow: refused, not answered in free text
        raise invalid(
            f"generationConfig.{given[0]}: a response schema shapes an application/json or {ENUM_MIME} answer; "
            "set responseMimeType to one of them"
        )
    thinking = field(config, "thinkingConfig") or {}
    budget = field(thinking, "thinkingBudget")
    level = field(thinking, "thinkingLevel")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < -1):
        raise invalid("generationConfig.thinkingConfig.thinkingBudget: an integer >= -1")
    if level is not None and takes_budget_only(model):  # Gemini 2.5 takes a budget; a level is Gemini 3's
        raise invalid(LEVEL_REFUSED)
    if budget == 0 and takes_budget_only(model) and not can_turn_thinking_off(model):  # 2.5 Pro always thinks
        raise invalid(f"Budget 0 is invalid. This model only works in thinking mode (at least {lowest_budget(model)}).")
    if budget is not None and takes_budget_only(model) and 0 < budget < lowest_budget(model):
        raise invalid(f"The thinking budget {budget} is invalid: this model takes at least {lowest_budget(model)}.")
    think = bool(budget) or level not in (None, "THINKING_LEVEL_UNSPECIFIED", "MINIMAL")
    return {
        "max_tokens": limit,
        "temperature": temperature,
        "sampling": {k: v for k, v in (("top_p", top_p), ("top_k", top_k), ("seed", seed)) if v is not None},
        "stop": list(stops),
        "json_schema": schema,
        "enum_text": mime == ENUM_MIME,
        "thinking_budget": (budget if budget and budget > 0 else 1024) if think else None,
        "include_thoughts": bool(field(thinking, "includeThoughts")),
    }
