"""A Converse request checked as Bedrock checks it, for the emulator (`bedrock_converse`).

`parse_converse` validates the body (messages and their roles, `toolConfig` and each tool's input schema, system
blocks, documents' names, `inferenceConfig`, thinking in `additionalModelRequestFields`, `outputConfig`) and renders
it as the engine's system blocks and turns; an invalid request is Bedrock's ValidationException (`bedrock_errors`).
"""

from __future__ import annotations

import json
from typing import Any

from tokenomy.emulate.bedrock_blocks import SUPPORTED_BLOCKS, content_blocks, forced_tool
from tokenomy.emulate.bedrock_errors import BedrockError
from tokenomy.emulate.bedrock_errors import invalid as _invalid
from tokenomy.emulate.engine import Block, Turn
from tokenomy.emulate.json_schemas import claude_schema_problem, schema_problem
from tokenomy.providers.claude_effort import EFFORTS
from tokenomy.providers.claude_thinking_rules import interleaved_thinking


def _check_document_names(messages: list[Any]) -> None:
    """Bedrock refuses a request in which two documents (tool results' included) share a name."""
    seen: set[str] = set()
    for message in messages:
        for item in message["content"]:
            inner = item["toolResult"].get("content") or [] if "toolResult" in item else [item]
            for block in inner:
                name = block.get("document", {}).get("name") if isinstance(block, dict) else None
                if isinstance(name, str) and name in seen:
                    raise _invalid(
                        "Messages can't contain duplicate document names. Rename the document and retry your request."
                    )
                if isinstance(name, str):
                    seen.add(name)


def _inference(body: dict[str, Any], claude: bool) -> dict[str, Any]:
    inference = body.get("inferenceConfig") or {}
    if not isinstance(inference, dict):
        raise _invalid("The inferenceConfig field must be a JSON object.")
    max_tokens = inference.get("maxTokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise _invalid(
            f"1 validation error detected: Value '{max_tokens}' at 'inferenceConfig.maxTokens' failed to "
            "satisfy constraint: Member must have value greater than or equal to 1"
        )
    for name in ("temperature", "topP"):
        value = inference.get(name)
        if value is not None and (not isinstance(value, (int, float)) or not 0 <= value <= 1):
            raise _invalid(
                f"1 validation error detected: Value '{value}' at 'inferenceConfig.{name}' failed to "
                "satisfy constraint: Member must have value between 0 and 1"
            )
    stops = inference.get("stopSequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise _invalid("inferenceConfig.stopSequences must be a list of non-empty strings.")
    extra = body.get("additionalModelRequestFields")
    if extra is not None and not isinstance(extra, dict):
        raise _invalid("The additionalModelRequestFields field must be a JSON object.")
    budget = None
    sampling = _sampling(inference.get("topP"), extra or {})
    thinking = (extra or {}).get("thinking")
    if thinking is not None:
        # adaptive: the Claude 4.6 and later models' own (the model decides how long to think; no budget to check)
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled", "adaptive"):
            raise _invalid("additionalModelRequestFields.thinking.type: must be enabled, disabled or adaptive")
        if thinking["type"] == "enabled":
            budget = thinking.get("budget_tokens")
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1024:
                raise _invalid("additionalModelRequestFields.thinking.budget_tokens: must be an integer >= 1024")
            # interleaved thinking (anthropic_beta names it): the budget is the whole turn's, and may exceed the cap
            if max_tokens is not None and budget >= max_tokens and not interleaved_thinking(extra or {}):
                raise _invalid("The maximum tokens you requested must be greater than thinking.budget_tokens.")
    return {
        "max_tokens": max_tokens,
        "temperature": inference.get("temperature"),
        "stop": stops,
        "sampling": sampling,
        "thinking_budget": budget,
        "json_schema": _output_schema(body.get("outputConfig"), claude),
    }


def _sampling(top_p: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """The engine's sampling fields, which the local model applies: topP, and top_k where the model takes it in
    additionalModelRequestFields (Claude's and Mistral's `top_k`, Nova's `inferenceConfig.topK`)."""
    place, top_k = "top_k", extra.get("top_k")
    nova = extra.get("inferenceConfig")
    if top_k is None and isinstance(nova, dict):
        place, top_k = "inferenceConfig.topK", nova.get("topK")
    if top_k is not None:  # a count of tokens (5.0 reads as 5)
        if isinstance(top_k, bool) or not isinstance(top_k, (int, float)) or top_k < 0 or top_k != int(top_k):
            raise _invalid(f"additionalModelRequestFields.{place}: must be a non-negative integer")
        top_k = int(top_k)
    return {k: v for k, v in (("top_p", top_p), ("top_k", top_k)) if v is not None}


def _output_schema(config: Any, claude: bool) -> dict[str, Any] | None:
    """outputConfig, validated as Bedrock does: the JSON schema the answer's text must follow, if it names one
    (`claude`: a Claude model's, held to what Claude's structured outputs take)."""
    if config is None:
        return None
    if not isinstance(config, dict) or set(config) - {"textFormat", "effort"}:
        raise _invalid("The outputConfig field takes textFormat and effort.")
    effort = config.get("effort")
    if effort is not None and effort not in EFFORTS:
        raise _invalid(
            f"1 validation error detected: Value '{effort}' at 'outputConfig.effort' failed to satisfy constraint: "
            f"Member must satisfy enum value set: [{', '.join(EFFORTS)}]"
        )
    text_format = config.get("textFormat")
    if text_format is None:
        return None
    structure = (text_format.get("structure") or {}).get("jsonSchema") if isinstance(text_format, dict) else None
    if text_format.get("type") != "json_schema" or not isinstance(structure, dict):
        raise _invalid("outputConfig.textFormat must be of type json_schema with a structure.jsonSchema.")
    try:
        schema = json.loads(structure.get("schema") or "")
    except (TypeError, ValueError):
        raise _invalid(
            "outputConfig.textFormat.structure.jsonSchema.schema must be a JSON schema as a string."
        ) from None
    if not isinstance(schema, dict):
        raise _invalid("outputConfig.textFormat.structure.jsonSchema.schema must be a JSON object schema.")
    problem = schema_problem(schema)
    if problem is not None:
        raise _invalid(f"outputConfig.textFormat.structure.jsonSchema.schema is not a valid JSON schema: {problem}.")
    problem = claude_schema_problem(schema) if claude else None  # valid, yet outside what Claude's outputs take
    if problem is not None:
        raise _invalid(f"outputConfig.textFormat.structure.jsonSchema.schema: {problem}.")
    return schema


def _tool_ids(message: dict[str, Any], kind: str) -> list[Any]:
    """The ids of a message's toolUse or toolResult blocks (`kind`), in order."""
    return [
        c[kind].get("toolUseId") if isinstance(c[kind], dict) else None
        for c in message["content"]
        if isinstance(c, dict) and kind in c
    ]


def _check_tool_pairs(messages: list[dict[str, Any]]) -> None:
    """Bedrock's pairing of tool calls and results, in its words: no more toolResult blocks in a user turn than the
    toolUse blocks of the turn before it, and each toolUse answered in the turn after it (the last turn's aside)."""
    for i, message in enumerate(messages):  # results first: too many are named before a call unanswered
        before = _tool_ids(messages[i - 1], "toolUse") if i else []
        if message["role"] == "user" and len(_tool_ids(message, "toolResult")) > len(before):
            raise _invalid(
                f"The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks "
                "of previous turn."
            )
    for i, message in enumerate(messages[:-1]):
        answered = set(_tool_ids(messages[i + 1], "toolResult"))
        missing = [str(c) for c in _tool_ids(message, "toolUse") if c not in answered]
        if missing:
            raise _invalid(
                f"Expected toolResult blocks at messages.{i + 1}.content for the following Ids: {', '.join(missing)}"
            )


def parse_converse(
    body: Any, default_ttl: int, signed: bool = True, claude: bool = False
) -> tuple[list[Block], list[Turn], dict[str, Any]]:
    """Validate a Converse body the way Bedrock does; return system blocks (tools first), turns, inference
    (with `forced_tool` when the tool choice forces a call). `signed`: the model checks the signature of reasoning
    sent back (Claude's do; a model that signs nothing takes it unsigned). `claude`: a Claude model, whose
    structured-output and strict tool schemas are held to what Claude takes (`claude_schema_problem`)."""
    if not isinstance(body, dict):
        raise BedrockError("ValidationException", "The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid(
            "A conversation must start with a user message. Try again with a conversation that starts "
            "with a user message."
        )
    system: list[Block] = []
    tool_config = body.get("toolConfig")
    forced = None
    if tool_config is not None:
        tools = tool_config.get("tools") if isinstance(tool_config, dict) else None
        if not isinstance(tools, list) or not tools:
            raise _invalid("The toolConfig field must contain at least one tool in tools.")
        for i, tool in enumerate(tools):
            spec = tool.get("toolSpec") if isinstance(tool, dict) else None
            if spec is not None and (not isinstance(spec, dict) or not spec.get("name")):
                raise _invalid(f"The toolSpec at toolConfig.tools.{i} needs a name.")
            input_schema = spec.get("inputSchema") if isinstance(spec, dict) else None
            if input_schema is not None and not isinstance(input_schema, dict):
                raise _invalid(f"The inputSchema of the toolSpec at toolConfig.tools.{i} must be an object.")
            schema = (input_schema or {}).get("json")
            problem = schema_problem(schema) if schema is not None else None
            if problem is not None:
                raise _invalid(
                    f"The inputSchema.json of the toolSpec at toolConfig.tools.{i} is not a valid JSON schema: "
                    f"{problem}."
                )
            strict = isinstance(spec, dict) and spec.get("strict") is True
            problem = claude_schema_problem(schema) if claude and strict else None
            if problem is not None:  # a strict tool's calls are held to it: Claude's structured-outputs subset
                raise _invalid(f"The inputSchema.json of the toolSpec at toolConfig.tools.{i}: {problem}.")
        system += content_blocks(tools, "toolConfig.tools", ("toolSpec", "cachePoint"), default_ttl)
        forced = forced_tool(tool_config)
    raw_system = body.get("system") or []
    if not isinstance(raw_system, list):
        raise _invalid("The system field must be a list of SystemContentBlock objects.")
    system += content_blocks(raw_system, "system", ("text", "cachePoint"), default_ttl)
    turns: list[Turn] = []
    uses_tools = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _invalid(f"The Message object at messages.{i} must be a JSON object.")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _invalid(
                f"1 validation error detected: Value '{role}' at 'messages.{i + 1}.member.role' failed "
                "to satisfy constraint: Member must satisfy enum value set: [user, assistant]"
            )
        if i == 0 and role != "user":
            raise _invalid(
                "A conversation must start with a user message. Try again with a conversation that "
                "starts with a user message."
            )
        if turns and turns[-1].role == role:
            raise _invalid(
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again."
            )
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise _invalid(
                f"The content field in the Message object at messages.{i} is empty. Add a ContentBlock "
                "object to the content field and try again."
            )
        uses_tools |= any(isinstance(c, dict) and ("toolUse" in c or "toolResult" in c) for c in content)
        turns.append(
            Turn(role, content_blocks(content, f"messages.{i}.content", SUPPORTED_BLOCKS, default_ttl, signed))
        )
    if uses_tools and tool_config is None:
        raise _invalid("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
    _check_tool_pairs(messages)
    _check_document_names(messages)
    inference = _inference(body, claude)
    if forced is not None and inference["thinking_budget"] is not None:
        raise _invalid("Thinking may not be enabled when tool_choice forces tool use.")
    return system, turns, {**inference, "forced_tool": forced}
