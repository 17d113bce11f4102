"""A Messages API stream's events folded into the answer's blocks (`AnthropicStreamAssembler`), for the provider."""

from __future__ import annotations

import json
from typing import Any

from tokenomy.chat_response import StreamChunk, ToolCallDelta
from tokenomy.messages import Block, ProviderBlock, TextBlock, ToolUseBlock
from tokenomy.providers.anthropic_content import blocks_from_anthropic
from tokenomy.providers.anthropic_refusals import BLOCK_KEYS
from tokenomy.providers.json_text import call_input


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
        its citations), a server tool's block, or the input of a tool call that streamed none; None for the others,
        which streamed as they came."""
        block = self.blocks.get(event.get("index", 0))
        if block is None:
            return None
        if block.get("type") == "tool_use" and not "".join(block.get("args") or []):
            # A call with no input streams one empty fragment: its input is the `{}` it opened with, whose JSON the
            # call's arguments are, as in the whole answer (a caller parsing "" as JSON fails)
            block["args"] = [json.dumps(block.get("input") or {})]
            return StreamChunk(tool_call=ToolCallDelta(block["tool_index"], arguments=block["args"][0]))
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
