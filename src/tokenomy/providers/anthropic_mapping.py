"""A ChatRequest as Anthropic Messages API arguments, and an answer's stop reason and blocks read back.

The provider uses `to_anthropic_params` / `answer_blocks` / `FINISH_REASONS`; the gateway's `POST /v1/messages`
reads the other way (`anthropic_inbound`; `anthropic_answers` answers with `STOP_REASONS`). Content blocks, both
ways, are `anthropic_content`'s; a stream's events are folded by `anthropic_stream`.

Carried: the content blocks `anthropic_content` carries, tools (cache_control on the last one when the tools are a
cache point), tool_choice auto/any/tool/none (a choice among some of the tools: only those tools sent, with auto or
any), `parallel_tool_calls: false` as `disable_parallel_tool_use`, a conversation's tool calls and results with
no tools declared (the API takes them since 2025-02-27, and Claude, shown no tools, calls none), thinking
budget, top_p, top_k, stop sequences, and `extra` keys as-is in the body; a json_schema response format becomes
`output_config.format` (Claude's structured output) and a reasoning effort `output_config.effort` on the models that
take one. What is refused, naming the field, is in `anthropic_refusals`. A 1-hour cache point is cache_control ttl
"1h" (its writes come back in usage.cache_creation, priced at the 1-hour write price). An answer's blocks Tokenomy
has no type for (a server tool's call and result: server_tool_use, web_search_tool_result, web_fetch_tool_result,
...) are ProviderBlocks in their place, carried back as they came, and a text block keeps its `citations`; server
tools (ToolSpec.server: web search, web fetch) go as their caller defined them."""

from __future__ import annotations

from typing import Any

from tokenomy.messages import CLAUDE_SIGNED, ONE_HOUR, Block, CachePoint, ChatRequest
from tokenomy.providers.anthropic_content import block_to_anthropic, blocks_from_anthropic
from tokenomy.providers.anthropic_refusals import free_effort, refuse, refuse_unsupported
from tokenomy.providers.block_refusals import empty_text
from tokenomy.providers.claude_effort import takes_effort, thinks
from tokenomy.providers.claude_schema import claude_form
from tokenomy.providers.reasoning_signers import foreign
from tokenomy.providers.refusals import allowed_tools_only
from tokenomy.request_options import ToolSpec
from tokenomy.request_views import system_hoisted, system_parts

EPHEMERAL = {"type": "ephemeral"}
# The Messages API requires max_tokens. A request that sets none (an OpenAI or Gemini caller's) is sent the model's
# maximum output (`default_max_tokens`); this, past a thinking budget, only where that maximum is not known.
DEFAULT_MAX_TOKENS = 1024


def default_max_tokens(request: ChatRequest, most: int | None = None) -> int:
    """The cap for a request that sets none: `most`, the model's maximum output (the client's
    `CallPlanner.uncapped_cap`: the catalog's, within what the context window leaves the prompt), since the caller's
    own API would let the model write that much and a lower cap cuts its long answers short ("length"). Never below
    DEFAULT_MAX_TOKENS past a thinking budget, which Claude requires to be below max_tokens (a Gemini caller sends
    thinkingBudget 8192 with no maxOutputTokens), and that alone where `most` is not known."""
    budget = request.reasoning.budget_tokens if request.reasoning is not None else None
    fallback = DEFAULT_MAX_TOKENS + (budget or 0)
    return fallback if most is None else max(most, fallback)


FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
    # A long turn of server tools (web searches) paused: the caller sends the answer back to let Claude go on. No
    # OpenAI reason says so; as "stop" the gateway answered end_turn, and the caller's agent loop ended midway.
    "pause_turn": "pause_turn",
}
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "pause_turn": "pause_turn",
}


def cache_control(point: CachePoint) -> dict[str, Any]:
    """The cache_control of a cache point: ephemeral (5 minutes), with ttl "1h" for a 1-hour one."""
    return {**EPHEMERAL, "ttl": ONE_HOUR} if point == ONE_HOUR else dict(EPHEMERAL)


def to_anthropic_tools(tools: list[ToolSpec], cache_last: CachePoint) -> list[dict[str, Any]]:
    """Anthropic's tool definitions; the last one carries cache_control when the tools are a cache point."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        if tool.server is not None:  # a server tool (web search): its definition as its caller sent it
            out.append(dict(tool.server))
            continue
        schema = claude_form(tool).schema if tool.strict else tool.input_schema  # held to it: Claude's form
        item: dict[str, Any] = {"name": tool.name, "input_schema": schema}
        if tool.described:
            item["description"] = tool.described
        if tool.strict is not None:
            item["strict"] = tool.strict  # Anthropic's structured-outputs tool flag, carried as sent
        item.update(tool.anthropic or {})  # eager_input_streaming, defer_loading, ...: as the caller sent them
        out.append(item)
    if cache_last and out:
        out[-1]["cache_control"] = cache_control(cache_last)
    return out


def _tool_choice(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None and request.parallel_tool_calls is not False:
        return None
    if not request.tools and (choice is None or choice.mode in ("auto", "none")):
        # Without tools there is nothing to choose or parallelise: `none` is what Claude's API does with no tools (its
        # documented default then), and `auto` has no tool to call, so leaving the choice out asks for the same answer
        return None
    if choice is None or choice.mode == "auto":
        out: dict[str, Any] = {"type": "auto"}
    elif choice.mode == "tool":
        out = {"type": "tool", "name": choice.name}
    else:
        out = {"type": choice.mode}
    if request.parallel_tool_calls is False:
        if out["type"] == "none":
            return out  # nothing to parallelise
        out["disable_parallel_tool_use"] = True
    return out


def _output_config(request: ChatRequest) -> dict[str, Any]:
    """output_config: Claude's structured output (a json_schema response format; Claude always holds the answer to
    the schema, as OpenAI's strict mode does) and the effort of adaptive thinking."""
    config: dict[str, Any] = {}
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema":
        schema = claude_form(fmt).schema  # as Claude takes it (claude_schema)
        if fmt.description and "description" not in (fmt.schema or {}):
            # The model reads it; the Messages API's place for it is the schema, before what the form moved there
            # (the refusals let the schema have no other description)
            moved = schema.get("description")
            schema = {**schema, "description": f"{fmt.description}\n\n{moved}" if moved else fmt.description}
        # The format's name has no field here: OpenAI requires one, as an identifier, not as an instruction.
        config["format"] = {"type": "json_schema", "schema": schema}
    reasoning = request.reasoning
    # An effort guides adaptive thinking, or on its own the models that take one (claude_effort.takes_effort)
    effort = free_effort(reasoning)
    if effort and reasoning is not None and (reasoning.adaptive or takes_effort(request.model)):
        config["effort"] = effort
    return config


def to_anthropic_params(request: ChatRequest) -> dict[str, Any]:
    """Map a ChatRequest to Messages API arguments, with cache_control on the block before each cache point."""
    request = system_hoisted(request)  # the Messages API takes one system prompt: later system messages join it
    refuse_unsupported(request)
    # No way to allow some of the tools: only those are sent (a tool not shown cannot be called)
    request = allowed_tools_only(request, "the Anthropic Messages API")
    # 0: cache warming. None only from a provider called on its own: the client sends an uncapped request with its
    # model's maximum output (`CallPlanner.uncapped_cap`), which needs the price catalog.
    cap = default_max_tokens(request) if request.max_tokens is None else request.max_tokens
    params: dict[str, Any] = {"model": request.model, "max_tokens": int(cap)}
    if request.system and (request.system_cache_point or request.system_breaks):
        params["system"] = [
            {"type": "text", "text": text, **({"cache_control": cache_control(point)} if point else {})}
            for text, point in system_parts(request)
        ]
    elif request.system:
        params["system"] = request.system
    messages = []
    for i, message in enumerate(request.messages):
        if message.name:
            raise refuse(request.model, f"messages[{i}].name", "has no participant name; remove it")
        # the cache points inside the turn, by the block each follows (most turns have none: no dict built)
        points = dict(message.block_points) if message.block_points else None
        blocks: list[dict[str, Any]] = []
        for j, b in enumerate(message.content):
            # Empty text carries nothing, and the API refuses it (block_refusals.empty_text); another family's signed
            # reasoning Claude cannot check, and its docs let earlier turns' thinking be left out.
            if not empty_text(b) and not foreign(b, CLAUDE_SIGNED):
                blocks.append(block_to_anthropic(b, f"messages[{i}].content[{j}]", request.model))
            if points and j in points and blocks:  # a block left out: its prefix ends with the block sent before it
                blocks[-1]["cache_control"] = cache_control(points[j])
        if message.cache_point and blocks:
            blocks[-1]["cache_control"] = cache_control(message.cache_point)
        if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:  # a plain text turn, as a string
            messages.append({"role": message.role, "content": blocks[0]["text"]})
        else:
            messages.append({"role": message.role, "content": blocks})
    params["messages"] = messages
    for name, value in (("temperature", request.temperature), ("top_p", request.top_p)):
        if value is not None:
            params[name] = float(value)
    if request.top_k is not None:
        params["top_k"] = int(request.top_k)
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.tools:
        params["tools"] = to_anthropic_tools(request.tools, request.tools_cache_point)
    choice = _tool_choice(request)
    if choice is not None:
        params["tool_choice"] = choice
    if request.reasoning is not None and request.reasoning.off:
        # Which Claude models think when `thinking` is left out is the model's to say: the caller's word is sent, but
        # to a model with no thinking (Claude 3 Haiku), which has nothing to turn off.
        if thinks(request.model):
            params["thinking"] = {"type": "disabled"}
    elif request.reasoning is not None and request.reasoning.budget_tokens is not None:
        params["thinking"] = {"type": "enabled", "budget_tokens": int(request.reasoning.budget_tokens)}
    elif request.reasoning is not None and request.reasoning.adaptive:
        params["thinking"] = {"type": "adaptive"}
    display = request.reasoning.claude_display if request.reasoning is not None else None
    if display is not None and params.get("thinking", {}).get("type") in ("enabled", "adaptive"):
        params["thinking"]["display"] = display  # (thinking off, or none asked: no thoughts to show)
    output = _output_config(request)
    if output:
        params["output_config"] = output
    if request.user is not None:
        params["metadata"] = {"user_id": request.user}
    return params


def answer_blocks(content: list[dict[str, Any]]) -> list[Block]:
    """An answer's content blocks (as the SDK dumps them) in their order: a server tool's call and result are
    ProviderBlocks in their place, as Anthropic sent them."""
    return blocks_from_anthropic(content)
