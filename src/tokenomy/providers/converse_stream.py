"""A ConverseStream, read: its events (contentBlockStart, contentBlockDelta) folded as they come into the pieces the
Bedrock provider streams on, and at the end into the answer's blocks. `converse_mapping` maps requests and whole
answers; `openai_stream` is the same job for an OpenAI-format stream.
"""

from __future__ import annotations

import base64
from typing import Any

from tokenomy.messages import Block, ReasoningBlock, TextBlock, ToolUseBlock
from tokenomy.providers import json_text


class ConverseStreamAssembler:
    """Folds ConverseStream events into StreamChunk pieces and, at the end, the answer's blocks.

    Tool calls are numbered in the order they start (OpenAI's tool_calls[].index); their input arrives
    as JSON text fragments that are joined and parsed when the block stops.
    """

    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.tool_count = 0

    def _block(self, index: int) -> dict[str, Any]:
        return self.blocks.setdefault(index, {"kind": "text", "text": []})

    def start(self, event: dict[str, Any]):
        """contentBlockStart: a tool call begins (id and name), returned as (tool_index, id, name)."""
        use = (event.get("start") or {}).get("toolUse")
        if not use:
            return None
        block = self.blocks[event.get("contentBlockIndex", 0)] = {
            "kind": "tool",
            "id": use.get("toolUseId"),
            "name": use.get("name"),
            "args": [],
            "tool_index": self.tool_count,
        }
        self.tool_count += 1
        return block["tool_index"], block["id"], block["name"]

    def delta(self, event: dict[str, Any]) -> tuple[str, Any]:
        """contentBlockDelta -> ("text" | "reasoning" | "signature" | "redacted", str), ("tool", (tool_index,
        fragment)) or ("", None)."""
        index = event.get("contentBlockIndex", 0)
        delta = event.get("delta") or {}
        if "text" in delta:
            self._block(index)["text"].append(delta["text"])
            return "text", delta["text"]
        if "toolUse" in delta:
            block = self.blocks.get(index)
            if block is None or block["kind"] != "tool":  # a delta without its start: number it now
                block = self.blocks[index] = {
                    "kind": "tool",
                    "id": None,
                    "name": None,
                    "args": [],
                    "tool_index": self.tool_count,
                }
                self.tool_count += 1
            fragment = delta["toolUse"].get("input", "")
            block["args"].append(fragment)
            return "tool", (block["tool_index"], fragment)
        if "reasoningContent" in delta:
            reasoning = delta["reasoningContent"]
            block = self.blocks.get(index)
            if block is None or block["kind"] != "reasoning":
                block = self.blocks[index] = {"kind": "reasoning", "text": [], "signature": None, "redacted": None}
            if "text" in reasoning:
                block["text"].append(reasoning["text"])
                return "reasoning", reasoning["text"]
            if "signature" in reasoning:
                block["signature"] = reasoning["signature"]
                return "signature", reasoning["signature"]
            if "redactedContent" in reasoning:  # whole in one delta: passed on in its place, as Claude's API does
                block["redacted"] = base64.b64encode(reasoning["redactedContent"]).decode()
                return "redacted", block["redacted"]
        return "", None

    def content(self) -> list[Block]:
        out: list[Block] = []
        for _, block in sorted(self.blocks.items()):
            if block["kind"] == "text":
                if block["text"]:
                    out.append(TextBlock("".join(block["text"])))
            elif block["kind"] == "tool":
                arguments = "".join(block["args"])
                out.append(
                    ToolUseBlock(
                        block["id"] or "",
                        block["name"] or "",
                        json_text.call_input(arguments) if arguments else {},
                        arguments or "{}",
                    )
                )
            else:
                out.append(ReasoningBlock("".join(block["text"]), block["signature"], block["redacted"]))
        return out
