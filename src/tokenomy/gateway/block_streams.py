"""Tool-call blocks in the streams whose APIs send content blocks one at a time (Anthropic's Messages, Bedrock's
ConverseStream): each block's deltas come between its start and its stop, and a stopped block takes no more.

An OpenAI-format upstream may stream parallel tool calls with their argument fragments interleaved (call 0's, call
1's, call 0's again), and nothing says when a call's arguments are complete. So a call's block streams as its
fragments come and stays open while its arguments are not yet a whole JSON value; what arrives meanwhile (another
call's fragments, text or reasoning after it) is held and sent at the answer's end, each held call as one whole
block. Once the open call's arguments are whole JSON (nothing but whitespace can follow), the next piece closes
it and streams as it comes: calls one after another, the usual order, stream each as it comes, as does text.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace

from tokenomy.chat_response import StreamChunk, ToolCallDelta

log = logging.getLogger(__name__)
LATE = "tool call %s: arguments after a whole JSON value, which its stream's closed block cannot take: %r"


class ToolBlocks:
    """A stream writer's tool-call blocks; the writer supplies how its API opens, fills and stops a block and how it
    writes a piece's other parts (`_content`, which must not write the piece's tool call)."""

    live_tool: int | None = None  # the call whose block is open and streams as its fragments come
    live_arguments = ""  # its arguments so far
    live_freeform = False
    held: list[StreamChunk]  # what came while it was open, in order: sent at the end (`release_held`)
    tool_blocks: dict[int, int]  # a tool call's index -> its content-block index
    index: int  # the open (or last) content block's index

    def _begin_tool(self, call: ToolCallDelta) -> list[bytes]:
        raise NotImplementedError

    def _tool_delta(self, arguments: str) -> bytes:
        raise NotImplementedError

    def _close(self) -> list[bytes]:
        raise NotImplementedError

    def _content(self, piece: StreamChunk) -> list[bytes]:
        raise NotImplementedError

    def pieces(self, piece: StreamChunk) -> list[bytes]:
        """A streamed piece's events: its other parts, then its tool call's (the opening of the live block)."""
        out: list[bytes] = []
        call = piece.tool_call
        if self.live_tool is not None:
            if call is not None and call.index == self.live_tool:
                if call.arguments:
                    self.live_arguments += call.arguments
                    out.append(self._tool_delta(call.arguments))
                piece = replace(piece, tool_call=None)
                call = None
            refused = piece.refusal
            if not (piece.has_content or piece.signature or piece.citations or refused):
                return out
            if self.held or not self._live_whole():
                self.held.append(piece)
                return out
            out += self._close()
            self.live_tool = None
        if call is not None and call.index in self.tool_blocks:
            # Its block closed when its arguments were whole JSON: only whitespace, which carries nothing, can
            # follow in JSON. Text after it (the model's arguments are no JSON) has no block left to go in.
            if call.arguments.strip():
                log.warning(LATE, call.index, call.arguments)
            piece = replace(piece, tool_call=None)
            call = None
        out += self._content(piece)
        if call is not None:
            out += self._begin_tool(call)
            self.tool_blocks[call.index] = self.index
            self.live_tool, self.live_arguments, self.live_freeform = call.index, call.arguments, call.freeform
            if call.arguments:
                out.append(self._tool_delta(call.arguments))
        return out

    def _live_whole(self) -> bool:
        """The open call's arguments are a whole JSON value (a freeform call's raw text never is known to be)."""
        if self.live_freeform:
            return False
        try:
            json.loads(self.live_arguments)
        except ValueError:
            return False
        return True

    def release_held(self) -> list[bytes]:
        """At the answer's end: stop the live block, then send what was held in its order, each call whole."""
        out = self._close()
        self.live_tool = None
        held, self.held = self.held, []
        arguments: dict[int, str] = {}
        for piece in held:
            if piece.tool_call is not None:
                index = piece.tool_call.index
                arguments[index] = arguments.get(index, "") + piece.tool_call.arguments
        for index in arguments.keys() & self.tool_blocks.keys():  # a block closed on whole JSON (see `pieces`)
            if arguments[index].strip():
                log.warning(LATE, index, arguments[index])
        for piece in held:
            out += self._content(piece)
            call = piece.tool_call
            if call is not None and call.index not in self.tool_blocks:
                out += self._begin_tool(call)
                self.tool_blocks[call.index] = self.index
                if arguments[call.index]:
                    out.append(self._tool_delta(arguments[call.index]))
                out += self._close()
        return out
