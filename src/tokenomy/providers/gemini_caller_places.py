"""A field a provider mapping refused (`messages[2].content[1]`, `top_k`, an `extra` key) named as a Gemini caller
sent it (`contents[2].parts[1]`, `generationConfig.topK`, `safetySettings`), for the gateway's Gemini errors.
"""

from __future__ import annotations

import re
from typing import Any

from tokenomy.providers.gemini_fields import get, snake
from tokenomy.providers.gemini_inbound import BUILT_IN_TOOLS, sdk_name
from tokenomy.providers.gemini_signatures import carried_thinking, carries_thinking, has_content

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
    "response_format.json_schema": "generationConfig.responseJsonSchema",  # before response_format: matched first
    "response_format": "generationConfig.responseMimeType",
    "reasoning_effort": "generationConfig.thinkingConfig.thinkingLevel",
    "reasoning.budget_tokens": "generationConfig.thinkingConfig.thinkingBudget",
    "thinking": "generationConfig.thinkingConfig",
    "tools": "tools",
    "tool_choice": "toolConfig.functionCallingConfig",
}
_PLACE = re.compile(r"messages\[(\d+)\](?:\.content\[(\d+)\])?")
# A document's field a provider names when it refuses one, by the field of the part a Gemini caller sent.
PART_FIELDS = {".source.file_id": ".fileData.fileUri", ".source.url": ".fileData.fileUri"}


def _blocks_per_part(parts: list[Any]) -> list[int]:
    """The part each block `_parts` made came from, by block index: a part with a signature and content made two
    blocks (the signature's, then its own), one carrying thinking a block per thought before its own, streamed
    thought pieces one, and thoughts another part carries none."""
    owners: list[int] = []
    shown = carries_thinking(parts, "contents")
    for index, part in enumerate(parts):
        thought = get(part, "thought")
        signed = get(part, "thoughtSignature") is not None
        content = any(get(part, k) is not None for k in ("inlineData", "fileData", "functionCall", "functionResponse"))
        content = content or get(part, "text") is not None
        carried = carried_thinking(part, "contents")
        if carried is not None:
            owners += [index] * (len(carried) + (1 if has_content(part) and not thought else 0))
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
        sent = next((k for k in fields if sdk_name(k) == key), None)
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
    for ours, theirs in PART_FIELDS.items():
        if rest.endswith(ours):
            rest = rest.removesuffix(ours) + theirs
    return f"contents[{message}].parts[{part}]" + rest
