"""A Messages API request checked as Anthropic's API checks it, for the emulator (`anthropic_api`).

`parse_messages` validates the body (the fields the API takes, max_tokens and cache warming, tools and their input
schemas, tool_choice, thinking, output_config, sampling) and renders it as the engine's system blocks and turns; an
invalid request is the API's 400 (`anthropic_blocks.invalid`). tool_use and tool_result blocks are taken without
`tools`, as the API takes them since 2025-02-27 (its release notes; it refused them before, "Requests which include
`tool_use` or `tool_result` blocks must define tools."), but each must have its pair (`_check_tool_pairs`).
"""

from __future__ import annotations

import json
from typing import Any

from tokenomy.emulate.anthropic_blocks import cache_ttl, content_blocks, invalid
from tokenomy.emulate.anthropic_search import check_server_tool, search_tool
from tokenomy.emulate.engine import Block, Turn
from tokenomy.emulate.json_schemas import claude_schema_problem, schema_problem
from tokenomy.providers.claude_effort import EFFORTS
from tokenomy.providers.claude_speed import FAST_MODE_BETA, needs_fast_beta, no_fast_mode
from tokenomy.providers.claude_thinking_rules import interleaved_thinking

FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "output_config",
    "cache_control",  # automatic caching: a cache point on the last block (`parse_messages`)
    "speed",  # fast mode: how fast the answer comes, not what it says; its usage says the speed (`_speed`)
}

# messages.count_tokens takes what the model reads, not how it answers; a top-level cache_control changes no count
# (cache reads and writes are input tokens all the same), nor does `speed` (the SDK's count_tokens takes it), so both
# are taken and left unused.
COUNT_FIELDS = {
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "cache_control",
    "output_config",
    "speed",
}
MAX_TOKENS_CAP = 128_000


def _options(body: dict[str, Any], tools: list[dict[str, Any]], interleaved: bool) -> dict[str, Any]:
    """tool_choice (the forced tool, if any) and thinking, validated (`interleaved`: the request's betas name
    interleaved thinking, whose budget is the whole turn's and may exceed max_tokens)."""
    choice = body.get("tool_choice")
    forced = None
    if choice is not None:
        mode = choice.get("type") if isinstance(choice, dict) else None
        if mode not in ("auto", "any", "tool", "none"):
            raise invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        if mode in ("any", "tool") and not tools:
            raise invalid(f"tool_choice: '{mode}' needs at least one tool in tools")
        if mode == "any":
            forced = tools[0]
        elif mode == "tool":
            forced = next((t for t in tools if t.get("name") == choice.get("name")), None)
            if forced is None:
                raise invalid(f"tool_choice.name: {choice.get('name')!r} is not among the tools")
    thinking = body.get("thinking")
    budget = None
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        # adaptive: the Claude 4.6 and later models' own (the model decides how long to think), as on Bedrock
        if kind not in ("enabled", "disabled", "adaptive"):
            raise invalid("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
        if thinking.get("display") not in (None, "summarized", "omitted"):
            raise invalid("thinking.display: Input should be 'summarized' or 'omitted'")
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1024:
                raise invalid("thinking.budget_tokens: Input should be an integer of at least 1024")
            if budget >= body["max_tokens"] and not interleaved:
                raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
            if forced is not None:
                raise invalid("Thinking may not be enabled when tool_choice forces tool use.")
            _check_thinking_sampling(body)
    tool = {"name": forced["name"], "schema": forced.get("input_schema") or {"type": "object"}} if forced else None
    schema = output_schema(body.get("output_config"))
    if tool is None and schema is not None:  # structured output: the answer's text is JSON valid against the schema
        tool = {"name": "", "schema": schema, "as_text": True}
    return {"forced_tool": tool, "thinking_budget": budget}


def _speed(body: dict[str, Any], betas: str | None) -> str | None:
    """The speed the answer runs at, which its usage says (None when the request names none): "fast" for fast mode on
    a model that has it (`claude_speed`, the gateway's list), where a research preview's needs its beta header or the
    API runs the call at standard speed; fast mode on another model is the API's 400."""
    speed = body.get("speed")
    if speed is None or speed == "standard":
        return speed
    if speed != "fast":
        raise invalid("speed: Input should be 'standard' or 'fast'")
    model = body.get("model") or ""
    needs_beta = needs_fast_beta(model)
    if needs_beta is None:
        raise invalid(f"speed: model {model} {no_fast_mode(model)}")
    named = [beta.strip() for beta in (betas or "").split(",")]
    return "standard" if needs_beta and FAST_MODE_BETA not in named else "fast"


def _check_thinking_sampling(body: dict[str, Any]) -> None:
    """The API's rule for sampling with thinking on: no change to temperature or top_k, top_p only from 0.95 to 1
    (the first is its own words; clients that forget it get this 400 from Claude, not an answer)."""
    if body.get("temperature") not in (None, 1):
        raise invalid("`temperature` may only be set to 1 when thinking is enabled.")
    if body.get("top_k") is not None:
        raise invalid("`top_k` may not be set when thinking is enabled.")
    top_p = body.get("top_p")
    if isinstance(top_p, (int, float)) and not isinstance(top_p, bool) and not 0.95 <= top_p <= 1:
        raise invalid("`top_p` must be between 0.95 and 1 when thinking is enabled.")


def _check_warming(body: dict[str, Any]) -> None:
    """max_tokens 0 (pre-warming the prompt cache: the prompt is read and cached, nothing is generated) with what
    asks for output, which the API refuses: a stream, thinking, structured output, a tool call forced."""
    thinking = body.get("thinking")
    choice = body.get("tool_choice")
    config = body.get("output_config")
    asked = (
        ("stream", bool(body.get("stream"))),
        ("thinking", isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")),
        ("output_config.format", isinstance(config, dict) and config.get("format") is not None),
        ("tool_choice", isinstance(choice, dict) and choice.get("type") in ("any", "tool")),
    )
    for name, found in asked:
        if found:
            raise invalid(f"{name}: not supported with `max_tokens: 0`, which only writes the prompt cache")


def output_schema(config: Any) -> dict[str, Any] | None:
    """output_config, validated as the API does: an effort, and the JSON schema the answer's text must follow (also
    Claude's body on Bedrock's InvokeModel: `bedrock_native`)."""
    if config is None:
        return None
    if not isinstance(config, dict) or set(config) - {"format", "effort"}:
        raise invalid("output_config: Extra inputs are not permitted (it takes format and effort)")
    if config.get("effort") is not None and config["effort"] not in EFFORTS:
        raise invalid(f"output_config.effort: Input should be {', '.join(map(repr, EFFORTS))}")
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise invalid("output_config.format: Input should be {'type': 'json_schema', 'schema': {...}}")
    problem = schema_problem(fmt["schema"])
    if problem is not None:
        raise invalid(f"output_config.format.schema: JSON schema is invalid: {problem}")
    problem = claude_schema_problem(fmt["schema"])  # valid, yet outside what Claude's structured outputs take
    if problem is not None:
        raise invalid(f"output_config.format.schema: {problem}")
    return fmt["schema"]


def _check_input_schema(schema: dict[str, Any], where: str) -> None:
    """A custom tool's input_schema as the API checks it: an object's schema, valid under JSON Schema 2020-12."""
    if schema.get("type", "object") != "object":
        raise invalid(f"{where}.type: Input should be 'object'")
    problem = schema_problem(schema)
    if problem is not None:  # the API's words, then what is wrong (the API names no place inside the schema)
        raise invalid(
            f"{where}: JSON schema is invalid. It must match JSON Schema draft 2020-12 "
            f"(https://json-schema.org/draft/2020-12). Learn more about tool use at "
            f"https://docs.claude.com/en/docs/tool-use. ({problem})"
        )


def _tool_blocks(message: dict[str, Any], kind: str) -> list[tuple[int, dict[str, Any]]]:
    """(index, block) of each block of `kind` (tool_use, tool_result) in a message's content (a string has none)."""
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [(j, b) for j, b in enumerate(content) if isinstance(b, dict) and b.get("type") == kind]


def _check_tool_pairs(messages: list[dict[str, Any]]) -> None:
    """The API's pairing of tool calls and results, in its words: a tool_result answers a tool_use of the assistant
    turn just before it, and each tool_use of a turn that another follows is answered in that next turn (a run of
    messages of one role is one turn, as the API merges them); the last turn has no next one to answer its calls."""
    runs: list[list[int]] = []  # the indices of each turn's messages
    for i, message in enumerate(messages):
        if runs and messages[runs[-1][0]]["role"] == message["role"]:
            runs[-1].append(i)
        else:
            runs.append([i])
    for t, run in enumerate(runs):  # results first: a result answering no call is named before a call unanswered
        if messages[run[0]]["role"] != "user":
            continue
        called = {b.get("id") for i in (runs[t - 1] if t else []) for _, b in _tool_blocks(messages[i], "tool_use")}
        for i in run:
            for j, block in _tool_blocks(messages[i], "tool_result"):
                if block.get("tool_use_id") not in called:
                    raise invalid(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding `tool_use` "
                        "block in the previous message."
                    )
    for t, run in enumerate(runs[:-1]):
        if messages[run[0]]["role"] != "assistant":
            continue
        answered = {b.get("tool_use_id") for i in runs[t + 1] for _, b in _tool_blocks(messages[i], "tool_result")}
        for i in run:
            calls = _tool_blocks(messages[i], "tool_use")
            missing = [str(b.get("id")) for _, b in calls if b.get("id") not in answered]
            if missing:
                raise invalid(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in "
                    "the next message."
                )


def check_strict_tool(tool: dict[str, Any], where: str) -> None:
    """A strict tool's input_schema held to what Claude's structured outputs take, as the API holds it (also Claude's
    body on Bedrock's InvokeModel: `bedrock_native`); a tool not strict is not held to it."""
    problem = claude_schema_problem(tool["input_schema"]) if tool.get("strict") is True else None
    if problem is not None:
        raise invalid(f"{where}.custom.input_schema: {problem}")


def parse_messages(
    body: Any, default_ttl: int, counting: bool = False, betas: str | None = None
) -> tuple[list[Block], list[Turn], dict[str, Any]]:
    """Validate a Messages request (`counting`: a count_tokens request, which has no max_tokens or sampling;
    `betas`: its anthropic-beta header); return system blocks (tools first), turns and sampling options (the speed
    served among them)."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    unknown = sorted(set(body) - (COUNT_FIELDS if counting else FIELDS))
    if unknown:  # the API rejects fields it does not know
        raise invalid(f"{unknown[0]}: Extra inputs are not permitted")
    if counting:  # the answer's cap: a placeholder no check below can fail on
        body = {**body, "max_tokens": MAX_TOKENS_CAP}
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise invalid("max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise invalid(f"max_tokens: Input should be a non-negative integer (got {max_tokens!r})")
    if max_tokens == 0:
        _check_warming(body)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise invalid("messages: Field required")
    if not messages:
        raise invalid("messages: at least one message is required")
    system: list[Block] = []
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise invalid("tools: Input should be a list")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not tool.get("name"):
            raise invalid(f"tools.{i}.name: Field required")
        if tool.get("type") not in (None, "custom"):  # a server tool: the API runs it
            check_server_tool(tool, f"tools.{i}")
        elif not isinstance(tool.get("input_schema"), dict):
            raise invalid(f"tools.{i}.input_schema: Field required")
        else:
            _check_input_schema(tool["input_schema"], f"tools.{i}.custom.input_schema")
            check_strict_tool(tool, f"tools.{i}")
        spec = {k: v for k, v in tool.items() if k != "cache_control"}
        system.append(Block(json.dumps(spec, sort_keys=True), cache_ttl(tool, f"tools.{i}", default_ttl)))
    raw_system = body.get("system")
    if raw_system is not None:
        system += content_blocks(raw_system, "system", default_ttl)
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i == 0 and role != "user":
            raise invalid('messages: first message must use the "user" role')
        blocks = content_blocks(message.get("content"), f"messages.{i}.content", default_ttl)
        if turns and turns[-1].role == role:  # the API merges consecutive same-role turns
            turns[-1].blocks += blocks
        else:
            turns.append(Turn(role, blocks))
    _check_tool_pairs(messages)
    if body.get("cache_control") is not None and turns[-1].blocks:
        # Automatic caching (langchain-anthropic sends it for its `cache_control` option): the API puts the cache
        # point on the last cacheable block, and it counts toward the limit of cache points like any other.
        automatic = cache_ttl(body, "", default_ttl)
        last = turns[-1].blocks[-1]
        last.cache_ttl = last.cache_ttl or automatic
    temperature = body.get("temperature")
    if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 1):
        raise invalid("temperature: Input should be between 0 and 1")
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise invalid("stop_sequences: Input should be a list of non-empty strings")
    for name in ("top_p", "top_k"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise invalid(f"{name}: Input should be a non-negative number")
    top_k = body.get("top_k")
    if top_k is not None:  # a count of tokens, as the API takes it (an integer; 5.0 reads as 5)
        if top_k != int(top_k):
            raise invalid("top_k: Input should be a valid integer, got a number with a fractional part")
        top_k = int(top_k)
    # The engine's sampling fields, which the local model applies (the API has no seed).
    sampling = {k: v for k, v in (("top_p", body.get("top_p")), ("top_k", top_k)) if v is not None}
    chosen = _options(body, tools, interleaved_thinking({"anthropic-beta": betas}))
    options = {"max_tokens": max_tokens, "temperature": temperature, "stop": stops, **chosen}
    if not counting:  # count_tokens takes a speed and counts the same (COUNT_FIELDS)
        options["speed"] = _speed(body, betas)
    return system, turns, {**options, "sampling": sampling, "web_search": search_tool(tools)}
