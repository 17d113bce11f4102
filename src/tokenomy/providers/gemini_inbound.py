"""The reverse direction, for the gateway's Gemini routes (`/v1beta/models/{model}:generateContent` and
`:streamGenerateContent`): a generateContent request received from a caller (the `google-genai` SDK, or any REST
client) becomes a ChatRequest; `gemini_answers` writes the ChatResponse back as Gemini's GenerateContentResponse.

The wire is proto3 JSON, read by `gemini_fields`; the contents as turns by `gemini_turns` (a model's contents in a
row, as google-genai's chats keep a streamed answer, one turn); thoughts and their signatures by `gemini_signatures`,
function calls and responses by `gemini_function_parts`; `gemini_caller_places` names a refused field as the caller
sent it.
Carried: text, inline
images and documents (`inlineData`), images and files by URI (`fileData`), audio and video either way (a part of
Gemini's own, to Gemini models only), `functionCall` / `functionResponse`
(the images and documents a function returned in its `parts`; matched by id, or by name to the latest call of that
name when Gemini sent no id, as its API does), thoughts and
thought signatures, the system instruction, function declarations (`parametersJsonSchema`, or an OpenAPI-style
`parameters` schema read as JSON Schema), `toolConfig.functionCallingConfig`, and generationConfig's sampling,
output cap, stops, seed, penalties, JSON output and thinking. Gemini's other fields (`safetySettings`, `serviceTier`,
enum output: `responseMimeType` "text/x.enum" with its schema, `cachedContent` when the route has not expanded it
(gateway/gemini_caches), `labels`, other generationConfig fields) ride in `extra` under the SDK's snake_case names,
which the gateway carries to Gemini models only. Anything malformed is a ValueError naming its place, as the caller
sent it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tokenomy.messages import ChatRequest, TextBlock
from tokenomy.providers.gemini_fields import get, object_field, one_of, schema_numbers, snake, string_field
from tokenomy.providers.gemini_function_parts import FunctionCalls
from tokenomy.providers.gemini_mapping import EFFORT_LEVELS, UNCARRIED
from tokenomy.providers.gemini_turns import named_parts, read_contents, read_parts
from tokenomy.request_options import Reasoning, ResponseFormat, ToolChoice, ToolSpec

REQUEST_FIELDS = ("contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model")
# Gemini's own: to Gemini models, as sent. `serviceTier` (flex, priority) is GenerateContentConfig's service_tier,
# which the Gemini provider sends and prices the call at; no other API's tiers are mapped from it.
PASSED_FIELDS = ("safetySettings", "cachedContent", "labels", "serviceTier")
MAPPED_CONFIG = (
    "temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "seed", "presencePenalty",
    "frequencyPenalty", "responseMimeType", "responseSchema", "responseJsonSchema", "thinkingConfig",
)  # fmt: skip
# generationConfig fields the SDK names otherwise than the wire (snake_case): Vertex AI's `modelConfig` is
# GenerateContentConfig's model_selection_config.
SDK_NAMES = {"model_config": "model_selection_config"}
# Gemini's built-in tools carried to Gemini models as sent (request.extra["tools"]); what they found comes back in
# the candidate's groundingMetadata / urlContextMetadata (gemini_answers). codeExecution is refused: its parts have no
# block.
BUILT_IN_TOOLS = ("googleSearch", "googleSearchRetrieval", "urlContext")
# generationConfig fields set to what the gateway answers anyway (one candidate, text, no log probabilities), as
# clients send them by default (LangChain sends candidateCount 1): dropped, not refused as the fields are otherwise.
ANSWERED = {
    "candidate_count": lambda v: v == 1 and v is not True,
    "response_modalities": lambda v: isinstance(v, list) and [str(m).upper() for m in v] == ["TEXT"],
    "response_logprobs": lambda v: v is False,
}
MAX_TOKENS = 1_000_000
# An answer that is one of a string schema's enum values, as bare text: no other API has it; to Gemini models as sent.
ENUM_MIME = "text/x.enum"
# Pairs of fields Gemini's API takes one of, never both (its reference: "If set, responseSchema must be omitted",
# parametersJsonSchema "mutually exclusive with parameters"; a thinking level and budget "cannot be used in the same
# request"): what each is, for the 400 naming both.
SCHEMA_KINDS = "{second} is JSON Schema, {first} Gemini's OpenAPI-style Schema"
THINKING_KINDS = "{second} for Gemini 3 and later models, {first} for Gemini 2.5"


# Gemini Schema fields as the SDK sends them from a pydantic model (snake_case) -> their JSON Schema names.
SCHEMA_KEYS = {snake(k): k for k in ("anyOf", "maxItems", "minItems", "maxLength", "minLength", "maxProperties",
                                      "minProperties", "propertyOrdering")}  # fmt: skip


def json_schema(schema: Any, where: str) -> Any:
    """Gemini's OpenAPI-style Schema, sent at `where`, as JSON Schema, which the other APIs (and Gemini's
    responseJsonSchema) take: its int64 fields written as text are numbers (a ValueError naming the field when one is
    no integer), `type: "OBJECT"` is `"object"`, `nullable: true` lets null in (a type of its own, an enum value), and
    `propertyOrdering` orders `properties` (JSON Schema has no such keyword; a model writes them in schema order)."""
    return _json_schema(schema_numbers(schema, where), where)


def _json_schema(schema: Any, where: str) -> Any:
    """The schema is walked by its structure (properties, items, anyOf), so a property's name is never rewritten."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for sent, value in schema.items():
        key, here = SCHEMA_KEYS.get(sent) or sent, f"{where}.{sent}"
        if key == "properties" and isinstance(value, dict):
            value = {name: _json_schema(item, f"{here}.{name}") for name, item in value.items()}
        elif key == "items":
            value = _json_schema(value, here)
        elif key == "anyOf" and isinstance(value, list):
            value = [_json_schema(item, f"{here}[{i}]") for i, item in enumerate(value)]
        elif key == "type" and isinstance(value, str):
            value = value.lower()
        elif (
            key == "propertyOrdering"
            and value is not None
            and not (isinstance(value, list) and all(isinstance(name, str) for name in value))
        ):
            # Gemini refuses it so; a name in a list (unhashable) was a 500, and text was left out unsaid
            raise ValueError(f"{here}: expected a list of property names")
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
        tool = object_field(tool, where, ("functionDeclarations", *BUILT_IN_TOOLS, "codeExecution"))
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
            item = object_field(item, here, ("name", "description", "parameters", "parametersJsonSchema", "response",
                                        "responseJsonSchema"))  # fmt: skip
            one_of(item, here, "parameters", "parametersJsonSchema", SCHEMA_KINDS)
            one_of(item, here, "response", "responseJsonSchema", SCHEMA_KINDS)
            schema = get(item, "parametersJsonSchema")
            if schema is None:
                parameters = get(item, "parameters") or {"type": "object", "properties": {}}
                schema = json_schema(parameters, f"{here}.parameters")
            if not isinstance(schema, dict):
                raise ValueError(f"{here}.parametersJsonSchema: expected a JSON schema object")
            # What the function returns (the SDK's automatic function calling sends it for every annotated function)
            returns = get(item, "responseJsonSchema")
            if returns is None and get(item, "response") is not None:
                returns = json_schema(get(item, "response"), f"{here}.response")
            if returns is not None and not isinstance(returns, dict):
                raise ValueError(f"{here}.responseJsonSchema: expected a JSON schema object")
            description = get(item, "description")
            tools.append(ToolSpec(string_field(get(item, "name"), f"{here}.name"),
                                  None if description is None else string_field(description, f"{here}.description"),
                                  schema, output_schema=returns))  # fmt: skip
    return tools, built_in


def _tool_choice(value: Any, tools: list[ToolSpec]) -> ToolChoice | None:
    config = get(object_field(value, "toolConfig", ("functionCallingConfig",)), "functionCallingConfig")
    if config is None:
        return None
    where = "toolConfig.functionCallingConfig"
    config = object_field(config, where, ("mode", "allowedFunctionNames"))
    mode = str(get(config, "mode") or "AUTO").upper()
    allowed = get(config, "allowedFunctionNames") or []
    if not isinstance(allowed, list) or not all(isinstance(name, str) for name in allowed):
        raise ValueError(f"{where}.allowedFunctionNames: expected a list of function names")
    # A forced call must be of a declared function, as Gemini's API refuses it otherwise; an OpenAI-format model was
    # sent the choice as is and refused it under its own names (`tool_choice`).
    if mode == "ANY" and not tools:
        raise ValueError(f"{where}.mode: ANY needs functionDeclarations in tools to call; declare them, or send AUTO")
    declared = {tool.name for tool in tools}
    undeclared = next((name for name in allowed if name not in declared), None)
    if undeclared is not None and mode in ("ANY", "VALIDATED"):
        raise ValueError(f"{where}.allowedFunctionNames: {undeclared!r} is not declared in tools' "
                         "functionDeclarations; declare it, or name one that is")  # fmt: skip
    if len(allowed) > 1 and set(allowed) == declared:
        # Every declared function allowed (LangChain's tool_choice="any", pydantic-ai's output tools): no limit at all
        allowed = []
    if mode in ("AUTO", "MODE_UNSPECIFIED", "VALIDATED") and not allowed:
        return ToolChoice("auto")  # VALIDATED: the tools strict as well (request_from_gemini)
    if mode == "NONE" and not allowed:
        return ToolChoice("none")
    if mode == "ANY" and not allowed:
        return ToolChoice("any")
    if mode == "ANY" and len(allowed) == 1:
        return ToolChoice("tool", allowed[0])
    if mode in ("ANY", "VALIDATED"):  # a call, or (VALIDATED) a call or text, among some of the declared functions
        return ToolChoice("any" if mode == "ANY" else "auto", allowed=tuple(dict.fromkeys(allowed)))
    raise ValueError(f"{where}.allowedFunctionNames: Gemini takes names with mode ANY or VALIDATED only (got mode "
                     f"{mode!r}); send VALIDATED to let the model answer in text or call one of them, or leave the "
                     "names out")  # fmt: skip


def _validated(config: Any) -> bool:
    calling = get(config, "functionCallingConfig") if isinstance(config, dict) else None
    return isinstance(calling, dict) and str(get(calling, "mode") or "").upper() == "VALIDATED"


def sdk_name(key: str) -> str:
    """A generationConfig field's GenerateContentConfig name (the `extra` key it rides under)."""
    return SDK_NAMES.get(snake(key), snake(key))


def _generation(value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options a ChatRequest maps itself, and the other generationConfig fields (snake_case, for `extra`)."""
    if not isinstance(value, dict):
        raise ValueError("generationConfig: expected an object")
    one_of(value, "generationConfig", "responseSchema", "responseJsonSchema", SCHEMA_KINDS)
    mapped = {name: get(value, name) for name in MAPPED_CONFIG if get(value, name) is not None}
    mapped_names = {*MAPPED_CONFIG, *(snake(m) for m in MAPPED_CONFIG)}
    rest = {sdk_name(k): v for k, v in value.items() if k not in mapped_names}
    for key, answered in ANSWERED.items():  # asks for what every answer is: not an option to carry (or refuse)
        if key in rest and answered(rest[key]):
            del rest[key]
    for key in value:  # asking for more than that is carried to no model, Gemini's included: not "Gemini's only"
        if key not in mapped_names and sdk_name(key) in UNCARRIED and sdk_name(key) in rest:
            raise ValueError(
                f"generationConfig.{key}: not carried by the gateway (its answers are one candidate, of text, without "
                "log probabilities); remove it"
            )
    for name in ("temperature", "topP", "presencePenalty", "frequencyPenalty"):
        if name in mapped and (isinstance(mapped[name], bool) or not isinstance(mapped[name], (int, float))):
            raise ValueError(f"generationConfig.{name}: expected a number")
    for name in ("topK", "seed", "maxOutputTokens"):
        # google-genai types top_k as a float and sends `3.0`; the API's JSON parser takes a whole number so written
        if isinstance(mapped.get(name), float) and mapped[name].is_integer():
            mapped[name] = int(mapped[name])
        if name in mapped and (isinstance(mapped[name], bool) or not isinstance(mapped[name], int)):
            raise ValueError(f"generationConfig.{name}: expected an integer")
    if not -(2**31) <= mapped.get("seed", 0) < 2**31:  # an int32 in Gemini's API, which refuses any other
        raise ValueError(f"generationConfig.seed: expected an integer from {-(2**31)} to {2**31 - 1}")
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
        schema = json_schema(mapped["responseSchema"], "generationConfig.responseSchema")
    if mime in (None, "text/plain"):
        if schema is not None:
            raise ValueError('generationConfig.responseMimeType: a response schema needs "application/json"')
        return None
    if mime != "application/json":
        raise ValueError(f'generationConfig.responseMimeType: the gateway carries "application/json", "text/plain" '
                         f'and (to Gemini models) "{ENUM_MIME}", not {mime!r}')  # fmt: skip
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
    thinking = object_field(thinking, where, ("thinkingBudget", "thinkingLevel", "includeThoughts"))
    # Gemini refuses both in one request: the one it would read, and which the others ignore, is not the caller's
    one_of(thinking, where, "thinkingBudget", "thinkingLevel", THINKING_KINDS)
    budget, level = get(thinking, "thinkingBudget"), get(thinking, "thinkingLevel")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < -1):
        raise ValueError(f"{where}.thinkingBudget: expected an integer of -1 (dynamic) or more")
    thoughts = get(thinking, "includeThoughts")  # whether the answer shows the thoughts: carried as said
    if thoughts not in (None, True, False):
        raise ValueError(f"{where}.includeThoughts: expected true or false")
    if level is not None:
        efforts = {v: k for k, v in EFFORT_LEVELS.items()}
        # Gemini reads an enum in any case: @ai-sdk/google sends "low", google-genai "LOW".
        if not isinstance(level, str) or level.upper() not in efforts:  # a list or object is no level (nor hashable)
            raise ValueError(f"{where}.thinkingLevel: expected one of {', '.join(efforts)}")
        return Reasoning(effort=efforts[level.upper()], thoughts=thoughts)
    if budget == -1:
        return Reasoning(adaptive=True, thoughts=thoughts)
    if budget == 0:
        # Thinking off. Gemini 2.5 Flash thinks unless told so (billed as output): kept as a zero budget, which the
        # Gemini provider sends as such; the others send it where their model thinks unasked (Reasoning.off).
        return Reasoning(budget_tokens=0, thoughts=thoughts)
    if budget is not None:
        return Reasoning(budget_tokens=budget, thoughts=thoughts)
    # includeThoughts alone: Gemini 2.5 thinks unasked, and this asks to see it (Reasoning.thoughts)
    return Reasoning(thoughts=thoughts) if thoughts is not None else None


def shows_thoughts(body: Any) -> bool:
    """Whether the answer shows the model's thoughts: when `thinkingConfig.includeThoughts` is true, and not when it
    is false or not sent (Gemini's default: no thoughts), whichever model answered. Their signatures ride on the
    parts after them all the same, for the next turn."""
    config = get(body, "generationConfig") if isinstance(body, dict) else None
    thinking = get(config, "thinkingConfig") if isinstance(config, dict) else None
    return isinstance(thinking, dict) and get(thinking, "includeThoughts") is True


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
    messages, _ = read_contents(contents)  # a model's contents in a row (a streamed answer's chunks): one turn
    system = None
    if get(body, "systemInstruction") is not None:
        instruction = object_field(get(body, "systemInstruction"), "systemInstruction", ("role", "parts"))
        blocks, _ = read_parts(named_parts(instruction, "systemInstruction"), FunctionCalls(), joins_text=False)
        if not all(isinstance(b, TextBlock) for b in blocks):
            raise ValueError("systemInstruction.parts: the system instruction takes text parts only")
        system = "\n".join(b.text for b in blocks if isinstance(b, TextBlock))
    tools, built_in = _tools(get(body, "tools")) if get(body, "tools") is not None else ([], [])
    choice = _tool_choice(get(body, "toolConfig"), tools) if get(body, "toolConfig") is not None else None
    if _validated(get(body, "toolConfig")):  # the model chooses, and a call it makes holds to its schema: strict tools
        tools = [replace(tool, strict=True) for tool in tools]
    config = get(body, "generationConfig")
    mapped, rest = _generation({} if config is None else config)  # `[]` or `0` is malformed, not an empty config
    if mapped.get("responseMimeType") == ENUM_MIME:  # an answer that is one of the schema's values: Gemini's own
        for name in ("responseMimeType", "responseSchema", "responseJsonSchema"):
            if name in mapped:
                rest[snake(name)] = mapped.pop(name)
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
