"""What a chat request asks for beyond its messages: the tools the model may call (`ToolSpec`), which of them it must
or may call (`ToolChoice`), the answer's format (`ResponseFormat`) and how much it thinks (`Reasoning`).

Core types, as `messages` is: each provider maps them to its own wire format, and refuses by name what it cannot send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(slots=True)
class ToolSpec:
    """A tool the model may call: JSON Schema for its input, and for its result when the caller described it
    (`output_schema`: Gemini's `responseJsonSchema`, which google-genai's automatic function calling sends for every
    Python function with a return annotation).

    A freeform tool (OpenAI's custom tools, Codex's apply_patch) takes raw text rather than JSON arguments: `freeform`
    is the text's format, `{"type": "text"}` (unconstrained) or `{"type": "grammar", "syntax": "lark" | "regex",
    "definition": ...}` (OpenAI's Responses API shape), and `input_schema` is unused. Only OpenAI-format models take
    one (`Provider.accepts_freeform`); None for a function tool.

    A ToolSpec and its schemas are not changed once made (`dataclasses.replace` makes another): the gateway shares one
    among the requests that send the same tool (`openai_options.read_tools`)."""

    name: str
    description: str | None = None
    input_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None
    output_schema: dict[str, Any] | None = None
    # A tool Anthropic's API runs itself (a server tool: web search, web fetch), its definition as the caller sent it
    # (type, name, max_uses, ...): carried to Anthropic's Messages API as sent, refused by every other provider.
    server: dict[str, Any] | None = None
    freeform: dict[str, Any] | None = None
    # A custom tool's fields that only Anthropic's Messages API reads (`eager_input_streaming`, `defer_loading`,
    # `input_examples`, ..., which Claude Code sends), as the caller sent them: carried to Anthropic's API; other
    # providers refuse them by name, but for `eager_input_streaming` (Anthropic's way of asking for what they do
    # anyway: a tool's input streamed as it is written).
    anthropic: dict[str, Any] | None = None
    # Forms made from the tool (its JSON in the ledger, its OpenAI wire form, its size in an estimate), each made once
    # and kept here by name, as the tool does not change: a shared ToolSpec is not made into them for every request.
    derived: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Same as dataclasses.asdict, without its deep copy (hot in token estimates and prefix hashes)."""
        out = {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
            "strict": self.strict,
        }
        if self.output_schema is not None:  # only when set: the prefix hashes of every other tool stay as they were
            out["output_schema"] = self.output_schema
        if self.server is not None:
            out["server"] = self.server
        if self.freeform is not None:
            out["freeform"] = self.freeform
        if self.anthropic is not None:
            out["anthropic"] = self.anthropic
        return out

    @property
    def described(self) -> str | None:
        """The description for a provider with no field for a result schema: the schema is told to the model in it,
        as it only informs the model (it constrains nothing the model writes)."""
        if self.output_schema is None:
            return self.description
        returns = f"Returns (JSON Schema): {json.dumps(self.output_schema, separators=(',', ':'))}"
        return f"{self.description}\n\n{returns}" if self.description else returns


@dataclass(slots=True)
class ToolChoice:
    """auto (model decides), any (must call some tool), none (must not), tool (must call `name`). With auto or any,
    `allowed` names the only tools the model may call (OpenAI's `allowed_tools`, Gemini's `allowedFunctionNames`):
    the others are still sent, so the prompt, and its cache, stays the same as the allowed set changes. Empty: every
    tool sent may be called."""

    mode: Literal["auto", "any", "none", "tool"] = "auto"
    name: str | None = None
    allowed: tuple[str, ...] = ()

    def undeclared(self, tools: list[ToolSpec]) -> str | None:
        """The first name in `allowed` that none of `tools` has (a 400 naming it, never a name left out)."""
        names = {tool.name for tool in tools}
        return next((name for name in self.allowed if name not in names), None)


@dataclass(slots=True)
class ResponseFormat:
    """text, json_object (any JSON object) or json_schema (JSON valid against `schema`)."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None
    description: str | None = None
    # Forms made from the schema (Claude's: `providers.claude_schema`), each made once and kept here by name, as a
    # ToolSpec keeps its own: the schema does not change once the format is made.
    derived: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class Reasoning:
    """Extended thinking: an effort level (OpenAI style), a token budget (Anthropic/Bedrock style), or adaptive: the
    model decides how much to think (Claude 4.6 and later, which from Opus 4.7 on refuse a budget; Gemini's dynamic
    budget), guided by `effort` when one is given."""

    effort: str | None = None  # minimal, low, medium, high
    budget_tokens: int | None = None
    adaptive: bool = False
    display: str | None = None  # Claude's thinking display: "summarized" or "omitted" (Anthropic's `thinking.display`)
    # Whether the answer is to show the thoughts the model has, as the caller said it (Gemini's `includeThoughts`;
    # the Responses API's `reasoning.summary`, true); None: not said. Both ask for thoughts when there are some: a
    # model that does not think shows none. Gemini is told in `include_thoughts`, Claude in its thinking display
    # ("summarized", or "omitted" for false: Claude Opus 4.7 and later omit them unless told); Chat Completions has
    # no switch (an OpenAI-format server sends its reasoning or not), and the gateway's Gemini answer leaves the
    # thoughts out itself when they were not asked for.
    thoughts: bool | None = None

    @property
    def off(self) -> bool:
        """Thinking turned off, said so (a budget of 0: Anthropic's `thinking: {"type": "disabled"}`, Gemini's
        thinkingBudget 0). Each provider carries it in its own field where its model thinks unless told not to, and
        sends nothing where the model thinks only when asked (nothing asked, nothing to turn off)."""
        return self.budget_tokens == 0

    @property
    def asks_thinking(self) -> bool:
        """Whether the request asks the model to think (an effort, a budget above 0, adaptive thinking), rather than
        only turning thinking off or saying how thoughts are shown."""
        return self.effort is not None or self.adaptive or bool(self.budget_tokens)

    @property
    def claude_display(self) -> str | None:
        """Claude's thinking display for the request: the one asked (`display`), else the one `thoughts` asks for;
        None leaves it to the model."""
        if self.display is not None or self.thoughts is None:
            return self.display
        return THINKING_DISPLAYS[0] if self.thoughts else THINKING_DISPLAYS[1]


THINKING_DISPLAYS = ("summarized", "omitted")  # Claude's thinking.display: thinking shown summarized, or left out
