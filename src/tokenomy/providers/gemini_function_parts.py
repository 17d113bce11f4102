"""A Gemini caller's `functionCall` and `functionResponse` parts as tool-use and tool-result blocks: each response
matched to the call it answers (by id, or by name as Gemini does without ids), with the images and documents a
function returned in its `parts`.
"""

from __future__ import annotations

import json
from typing import Any

from tokenomy.messages import Block, TextBlock, ToolResultBlock, ToolUseBlock
from tokenomy.providers.gemini_fields import get, media_block, object_field, string_field
from tokenomy.providers.gemini_mapping import GENERATED_ID


class FunctionCalls:
    """Function calls seen so far, so a response finds the call it answers: by id, or by name when Gemini sent none
    (google-genai's automatic function calling sends none): the first unanswered call of that name in the latest
    turn that has one, as Gemini answers parallel calls in the order they were made; a call without an id gets one
    (GENERATED_ID, which the Gemini provider leaves out again)."""

    def __init__(self) -> None:
        self.made = 0
        self.turn = 0  # the content (turn) being read, set by _parts
        self.open: list[tuple[str, str, int]] = []  # (id, name, turn) not answered yet

    def call(self, value: Any, where: str) -> ToolUseBlock:
        call = object_field(value, where, ("id", "name", "args"))
        name = string_field(get(call, "name"), f"{where}.name")
        args = get(call, "args") or {}
        if not isinstance(args, dict):
            raise ValueError(f"{where}.args: expected an object")
        given = get(call, "id")
        call_id = string_field(given, f"{where}.id") if given is not None else f"{GENERATED_ID}{self.made}"
        self.made += 1
        self.open.append((call_id, name, self.turn))
        return ToolUseBlock(call_id, name, args, json.dumps(args))

    def response(self, value: Any, where: str) -> ToolResultBlock:
        answer = object_field(value, where, ("id", "name", "response", "willContinue", "scheduling", "parts"))
        for key in ("willContinue", "scheduling"):
            if get(answer, key) is not None:
                raise ValueError(f"{where}.{key}: not carried by the gateway; remove it")
        media = get(answer, "parts") or []  # what the function returned beside its response (Gemini CLI's images)
        if not isinstance(media, list):
            raise ValueError(f"{where}.parts: expected a list of parts")
        attached: list[Block] = []
        for k, item in enumerate(media):
            here = f"{where}.parts[{k}]"
            item = object_field(item, here, ("inlineData", "fileData"))
            if (get(item, "inlineData") is None) == (get(item, "fileData") is None):
                raise ValueError(f"{here}: expected exactly one of inlineData, fileData")
            attached.append(media_block(item, here))
        name = string_field(get(answer, "name"), f"{where}.name")
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
