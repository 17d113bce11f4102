"""A field a provider mapping refused (`messages[2].content[1]`, `top_k`, an `extra` key) named as a Gemini caller
sent it (`contents[2].parts[1]`, `generationConfig.topK`, `safetySettings`), for the gateway's Gemini errors.
"""

from __future__ import annotations

import re
from typing import Any

from tokenomy.providers.gemini_fields import get, snake
from tokenomy.providers.gemini_inbound import BUILT_IN_TOOLS, sdk_name
from tokenomy.providers.gemini_signatures import stand_in
from tokenomy.providers.gemini_turns import read_contents, turns

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
    # (before the shorter ones: the first that matches is taken; a schema sent as responseSchema: `_sent_schema`)
    "response_format.json_schema.schema": "generationConfig.responseJsonSchema",
    "response_format.json_schema": "generationConfig.responseJsonSchema",
    "response_format": "generationConfig.responseMimeType",
    "reasoning_effort": "generationConfig.thinkingConfig.thinkingLevel",
    "reasoning.budget_tokens": "generationConfig.thinkingConfig.thinkingBudget",
    "thinking": "generationConfig.thinkingConfig",
    "tools": "tools",
    "tool_choice": "toolConfig.functionCallingConfig",
}
_PLACE = re.compile(r"messages\[(\d+)\](?:\.content\[(\d+)\])?")
# A tool's schema, as Claude's form names it (`claude_schema`): the request's tools[i] is the i-th function declaration.
_TOOL_SCHEMA = re.compile(r"tools\[(\d+)\]\.input_schema")
# A document's field a provider names when it refuses one, by the field of the part a Gemini caller sent.
PART_FIELDS = {
    ".source.file_id": ".fileData.fileUri",
    ".source.url": ".fileData.fileUri",
    ".tool_use_id": ".functionResponse",  # the call a result answers: its functionResponse's id, or name without one
}


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
        sent = next((k for k in fields if sdk_name(k) == key), None)
        if sent is not None:
            return where + sent
    return key


def caller_param(body: dict[str, Any], param: str, stand_ins_out: bool = False) -> str:
    """A mapping's name for a field it cannot send (`messages[2].content[1]`, `top_k`) in the caller's terms
    (`contents[2].parts[1]`, `generationConfig.topK`): a block at the part it was read from (`read_contents`, which
    the caller's body, read before, reads as it did then). `stand_ins_out`: the call's messages were sent without
    Gemini's stand-in signatures (`without_skip_signatures`), so its blocks are counted without them."""
    schema = _TOOL_SCHEMA.match(param)
    if schema is not None:
        return _declaration_schema(body, int(schema[1])) + param[schema.end() :]
    for ours, theirs in CALLER_FIELDS.items():
        if param == ours or param.startswith(ours + "."):
            return _sent_schema(body, theirs) + param[len(ours) :]
    found = _PLACE.match(param)
    if found is None:
        head, dot, rest = param.partition(".")
        return caller_field(body, head) + dot + rest  # an `extra` field a Gemini model refused
    message, block = int(found.group(1)), found.group(2)
    try:
        contents = body["contents"]
        if block is None:  # a turn: its first content (a model's contents in a row are one turn, `gemini_turns`)
            return f"contents[{turns(contents)[message][0]}]" + param[found.end() :]
        messages, places = read_contents(contents)
        read = zip(messages[message].content, places[message], strict=True)
        content, part = [at for b, at in read if not (stand_ins_out and stand_in(b))][int(block)]
    except (KeyError, IndexError, TypeError, ValueError):
        return param
    rest = param[found.end() :]
    within = re.match(r"\.content\[(\d+)\]", rest)  # a function result's media: its functionResponse's parts
    answered = within is not None and int(within.group(1)) > 0
    if within is not None and answered and get(get(contents[content], "parts")[part], "functionResponse"):
        rest = f".functionResponse.parts[{int(within.group(1)) - 1}]" + rest[within.end() :]
    for ours, theirs in PART_FIELDS.items():
        if rest.endswith(ours):
            rest = rest.removesuffix(ours) + theirs
    return f"contents[{content}].parts[{part}]" + rest


def _declaration_schema(body: dict[str, Any], index: int) -> str:
    """The place of the `index`-th function declaration's schema, counted across the caller's tools as they were read
    (`gemini_inbound._tools`), under the key it was sent as (`parametersJsonSchema`, or `parameters`)."""
    tools = get(body, "tools") if isinstance(body, dict) else None
    seen = 0
    for t, tool in enumerate(tools if isinstance(tools, list) else []):
        declarations = get(tool, "functionDeclarations") if isinstance(tool, dict) else None
        for j, item in enumerate(declarations if isinstance(declarations, list) else []):
            if seen == index:
                sent = next((k for k in item if snake(k) == "parameters_json_schema"), None) if isinstance(
                    item, dict) else None  # fmt: skip
                return f"tools[{t}].functionDeclarations[{j}].{sent or 'parameters'}"
            seen += 1
    return f"tools[{index}]"


def _sent_schema(body: dict[str, Any], place: str) -> str:
    """`generationConfig.responseJsonSchema` as the caller spelled it, or its `responseSchema` (OpenAPI's form) when
    that is what it sent; any other place as it is."""
    if place != "generationConfig.responseJsonSchema":
        return place
    config = get(body, "generationConfig") if isinstance(body, dict) else None
    if isinstance(config, dict):
        for wanted in ("response_json_schema", "response_schema"):
            sent = next((k for k in config if snake(k) == wanted), None)
            if sent is not None:
                return f"generationConfig.{sent}"
    return place
