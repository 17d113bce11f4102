"""Bedrock Converse wire shapes <-> Tokenomy's content model, both ways (a stream's events are read by
`converse_stream`).

Requests: every block and option of a ChatRequest is carried or refused with a `ProviderError`
(client_error, 400) that names the field and the model; nothing is dropped.
- text, toolUse, toolResult (`status: error` when is_error), image (bytes), document (format, name,
  bytes) and reasoningContent (reasoningText + signature, or redactedContent) blocks map one to one.
  A URL image or a file-id document is refused: Converse takes bytes (or S3 locations) only. A document's
  name is made to fit Bedrock's rules (its characters, unique in the request): see `document_name`.
- tools -> toolConfig.tools, tool choice auto/any/tool -> toolConfig.toolChoice (a choice among some of the tools:
  only those tools sent, with auto or any). Converse has no
  `none` choice: the tools are left out when the conversation holds no tool blocks (the model
  cannot call a tool it is not shown); otherwise Bedrock needs toolConfig, so the request is refused, as is a
  conversation with tool calls that sends no tools (declared for it, they could be called).
- top_k, reasoning budget (Anthropic-style `thinking`) and unknown `extra` keys go to
  additionalModelRequestFields; extra keys that are Converse's own top-level fields (guardrailConfig,
  requestMetadata, ...) go at the top level, and the two that change the price (serviceTier,
  performanceConfig) are refused, as are OpenAI's n > 1 and logprobs (a Converse answer has one choice and no
  log probabilities) and OpenAI's other own fields (verbosity, metadata, service_tier, prediction, audio, ...:
  `CONVERSE_OPENAI_ONLY`), which Bedrock would refuse only after the call as unknown model parameters. A
  json_schema response format and a reasoning effort go to outputConfig (textFormat,
  effort); seed, presence/frequency penalties, the json_object response format (no schema), an effort Converse
  lacks (minimal, none) or for a Claude model that takes none (`claude_effort`, as on Anthropic's API),
  `parallel_tool_calls: false` (with tools offered) and a message's participant `name` have no Converse field and
  are refused.
- cachePoint blocks follow the tools, the system prompt and each message marked as a cache point; a 1-hour one
  with `ttl: "1h"` (its writes come back in usage.cacheDetails).
- Consecutive turns of one role (a tool result then the user's next words) are one Converse message: Converse
  requires the roles to alternate, where Anthropic's own API joins such turns.

What is refused before any call (the options, images and pass-through fields above) is in `converse_refusals`.

Redacted reasoning: Converse carries it as bytes (`redactedContent` blob); Tokenomy's
`ReasoningBlock.redacted` is a string, so the bytes travel base64-encoded and are decoded on the way
back, byte-identical.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from tokenomy.messages import (
    ONE_HOUR,
    Block,
    CachePoint,
    ChatRequest,
    DocumentBlock,
    ImageBlock,
    ReasoningBlock,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from tokenomy.providers import json_text
from tokenomy.providers.bedrock_families import body_family
from tokenomy.providers.block_refusals import empty_text
from tokenomy.providers.claude_effort import thinks
from tokenomy.providers.claude_schema import claude_form
from tokenomy.providers.converse_refusals import (
    image_format,
    redacted_bytes,
    refuse,
    refuse_extra,
    refuse_unsigned,
    refuse_unsupported,
    request_metadata,
)
from tokenomy.providers.reasoning_signers import bedrock_signer, foreign
from tokenomy.providers.refusals import allowed_tools_only, fields_to_carry
from tokenomy.request_options import ToolSpec
from tokenomy.request_views import system_hoisted, system_parts

CACHE_POINT = {"cachePoint": {"type": "default"}}
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


# Converse request fields a caller may pass through (`extra`, e.g. the OpenAI SDK's extra_body): sent at the top level
# of the request, where Converse reads them. Any other extra key goes to additionalModelRequestFields, the model's own
# parameters. tests/providers/test_converse_mapping.py checks these lists against botocore's model of the API.
CONVERSE_TOP_LEVEL_FIELDS = (
    "guardrailConfig",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "projectIdentifier",
    "outputConfig",
)


# Bedrock's rule for a document's name (API reference, DocumentBlock.name): alphanumeric characters, single
# whitespace characters, hyphens, parentheses and square brackets, 1 to 200 characters; and no two documents of a
# request may share a name ("Messages can't contain duplicate document names"). A caller's file name ("report.pdf")
# or title breaks the first rule, two untitled documents the second: either is a ValidationException for the whole
# conversation, so names are made to fit.
_NAME_OTHER = re.compile(r"[^A-Za-z0-9\s\-()\[\]]+")
_NAME_SPACES = re.compile(r"\s+")
NAME_LIMIT = 200


def document_name(name: str | None, taken: set[str]) -> str:
    """`name` as Bedrock takes it (other characters become a hyphen, whitespace one space), made unique among
    `taken` (lower-cased names already in the request, to which it is added) with a " (2)", " (3)" suffix."""
    base = _NAME_SPACES.sub(" ", _NAME_OTHER.sub("-", name or "")).strip(" -")[:NAME_LIMIT].strip() or "document"
    unique, number = base, 1
    while unique.lower() in taken:
        number += 1
        suffix = f" ({number})"
        unique = base[: NAME_LIMIT - len(suffix)].rstrip() + suffix
    taken.add(unique.lower())
    return unique


def _name_documents(messages: list[dict[str, Any]]) -> None:
    """Give every document of the request (tool results' too) a valid name unique in the request."""
    taken: set[str] = set()
    for message in messages:
        for item in message["content"]:
            inner = item["toolResult"]["content"] if "toolResult" in item else [item]
            for block in inner:
                if "document" in block:
                    block["document"]["name"] = document_name(block["document"].get("name"), taken)


def cache_point(point: CachePoint) -> dict[str, Any]:
    """The cachePoint block of a cache point: the default (5 minutes), with ttl "1h" for a 1-hour one."""
    return {"cachePoint": {"type": "default", "ttl": ONE_HOUR}} if point == ONE_HOUR else dict(CACHE_POINT)


def to_bedrock_tools(tools: list[ToolSpec], model: str = "") -> list[dict[str, Any]]:
    """Converse's toolSpec entries, `strict` (calls held to the schema) carried as sent."""
    out: list[dict[str, Any]] = []
    claude = body_family(model) == "anthropic"
    for tool in tools:
        # A schema Claude holds its calls to goes in Claude's form (claude_schema)
        schema = claude_form(tool).schema if tool.strict and claude else tool.input_schema
        tool_spec: dict[str, Any] = {"name": tool.name, "inputSchema": {"json": schema}}
        if tool.described:
            tool_spec["description"] = tool.described
        if tool.strict is not None:  # ToolSpecification.strict; a model without it answers Bedrock's own 400
            tool_spec["strict"] = tool.strict
        out.append({"toolSpec": tool_spec})
    return out


def _tool_input(block: ToolUseBlock, model: str, where: str) -> dict[str, Any]:
    if block.input or not block.arguments:
        return block.input
    try:
        value = json_text.loads(block.arguments)  # NaN, Infinity, 1e400: no JSON Bedrock reads
    except ValueError:
        value = None
    if not isinstance(value, dict):  # named at its place, so the gateway points the caller at the tool call
        raise refuse(
            model,
            where,
            f"takes a tool call's input as a JSON object, and the arguments of call {block.id} ({block.name}) are "
            f"not one ({block.arguments[:80]!r}); send the call with JSON-object arguments",
        )
    return value


def block_to_converse(block: Block, model: str, where: str) -> dict[str, Any]:
    """One content block in Converse's ContentBlock shape (bytes stay bytes: boto3 encodes them)."""
    if isinstance(block, TextBlock):
        return {"text": block.text}
    if isinstance(block, ImageBlock):
        return {"image": {"format": image_format(block, model, where), "source": {"bytes": block.payload()}}}
    if isinstance(block, DocumentBlock):
        if block.data is None:
            raise refuse(model, where, "takes documents as bytes only, not as a file id; send the file's content")
        # Converse requires a name; `_name_documents` makes each valid and unique in the request
        return {"document": {"format": block.format, "name": block.name or "", "source": {"bytes": block.data}}}
    if isinstance(block, ToolUseBlock):
        return {"toolUse": {"toolUseId": block.id, "name": block.name, "input": _tool_input(block, model, where)}}
    if isinstance(block, ToolResultBlock):
        content = [block_to_converse(b, model, f"{where}.content[{i}]") for i, b in enumerate(block.content)]
        result: dict[str, Any] = {"toolUseId": block.tool_use_id, "content": content or [{"text": ""}]}
        if block.is_error:
            result["status"] = "error"
        return {"toolResult": result}
    if isinstance(block, ReasoningBlock):
        if block.redacted is not None:
            return {"reasoningContent": {"redactedContent": redacted_bytes(block, model, where)}}
        refuse_unsigned(block, model, where)
        text: dict[str, Any] = {"text": block.text}
        if block.signature:
            text["signature"] = block.signature
        return {"reasoningContent": {"reasoningText": text}}
    raise refuse(model, where, f"has no content block for {type(block).__name__}")


def blocks_from_converse(content: list[dict[str, Any]]) -> list[Block]:
    """Converse ContentBlocks (a response, or a request the gateway received) as Tokenomy blocks."""
    blocks: list[Block] = []
    for item in content:
        if "text" in item:
            blocks.append(TextBlock(item["text"]))
        elif "toolUse" in item:
            use = item["toolUse"]
            blocks.append(ToolUseBlock(use["toolUseId"], use["name"], dict(use.get("input") or {})))
        elif "toolResult" in item:
            res = item["toolResult"]
            inner: list[Block] = []
            for part in res.get("content") or []:
                inner += [TextBlock(json.dumps(part["json"]))] if "json" in part else blocks_from_converse([part])
            blocks.append(ToolResultBlock(res["toolUseId"], inner, res.get("status") == "error"))
        elif "reasoningContent" in item:
            reasoning = item["reasoningContent"]
            if "redactedContent" in reasoning:
                blocks.append(ReasoningBlock(redacted=base64.b64encode(reasoning["redactedContent"]).decode()))
            else:
                text = reasoning.get("reasoningText") or {}
                blocks.append(ReasoningBlock(text.get("text", ""), text.get("signature")))
        elif "image" in item:
            image = item["image"]
            source = image.get("source") or {}
            blocks.append(ImageBlock(MEDIA_TYPES.get(image.get("format", "")), source.get("bytes")))
        elif "document" in item:
            doc = item["document"]
            blocks.append(
                DocumentBlock(
                    doc.get("format", "txt"), (doc.get("source") or {}).get("bytes"), doc.get("name", "document")
                )
            )
    return blocks


def _tool_config(request: ChatRequest) -> dict[str, Any] | None:
    # No way to allow some of the tools: only those are sent (a tool not shown cannot be called)
    request = allowed_tools_only(request, "Bedrock Converse")
    # What toolConfig cannot say (a 'none' choice with tool blocks, a forced one without tools, a cache point in
    # Nova's tools) was refused first (converse_refusals.refuse_tool_config, from refuse_unsupported)
    choice = request.tool_choice
    if (choice is not None and choice.mode == "none") or not request.tools:
        return None  # the model cannot call a tool it is not shown: that is what 'none' asks
    tools = to_bedrock_tools(request.tools, request.model)
    if request.tools_cache_point:
        tools.append(cache_point(request.tools_cache_point))
    config: dict[str, Any] = {"tools": tools}
    if choice is not None:
        if choice.mode == "tool":
            config["toolChoice"] = {"tool": {"name": choice.name}}
        else:
            config["toolChoice"] = {choice.mode: {}}
    return config


def _output_config(request: ChatRequest) -> dict[str, Any]:
    """Converse's outputConfig: a JSON schema the answer must follow (OpenAI's json_schema response format, which
    Converse always enforces) and a reasoning effort."""
    config: dict[str, Any] = {}
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema":
        claude = body_family(request.model) == "anthropic"
        schema: dict[str, Any] = {
            # Claude holds its answer to the schema in its own form (claude_schema)
            "schema": json.dumps(claude_form(fmt).schema if claude else fmt.schema or {"type": "object"}),
            "name": fmt.name or "response",
        }
        if fmt.description:
            schema["description"] = fmt.description
        config["textFormat"] = {"type": "json_schema", "structure": {"jsonSchema": schema}}
    if request.reasoning is not None and request.reasoning.effort is not None:
        config["effort"] = request.reasoning.effort
    return config


def to_converse_params(request: ChatRequest) -> dict[str, Any]:
    """Map a ChatRequest to Converse keyword arguments, with cachePoint blocks where requested."""
    request = system_hoisted(request)  # Converse takes one system prompt: later system messages join it
    refuse_unsupported(request)
    model = request.model
    params: dict[str, Any] = {"modelId": model}
    if request.system:
        system: list[dict[str, Any]] = []
        for text, point in system_parts(request):  # one part unless the caller cached inside its system prompt
            system += [{"text": text}, cache_point(point)] if point else [{"text": text}]
        params["system"] = system
    messages: list[dict[str, Any]] = []
    signer = bedrock_signer(model)
    for i, message in enumerate(request.messages):
        if message.name:
            raise refuse(model, f"messages[{i}].name", "has no participant name; remove it")
        # the cache points inside the turn, by the block each follows (most turns have none: no dict built)
        points = dict(message.block_points) if message.block_points else None
        content: list[dict[str, Any]] = []
        for j, b in enumerate(message.content):
            # Empty text carries nothing, and Converse refuses it (block_refusals.empty_text); reasoning another
            # family signed the model cannot check (reasoning_signers).
            if not empty_text(b) and not foreign(b, signer):
                content.append(block_to_converse(b, model, f"messages[{i}].content[{j}]"))
            # A point on a block left out goes after the block sent before it (the same prefix), once.
            if points and j in points and content and "cachePoint" not in content[-1]:
                content.append(cache_point(points[j]))
        if message.cache_point:
            if content and "cachePoint" in content[-1]:  # the blocks after an inner point were all left out
                content.pop()
            content.append(cache_point(message.cache_point))
        if messages and messages[-1]["role"] == message.role:
            # Converse refuses two turns of one role in a row, which Anthropic's API joins (tool results then the
            # user's next words, as agents send them; a user turn after a system message hoisted out): one turn here
            messages[-1]["content"] += content
        else:
            messages.append({"role": message.role, "content": content})
    _name_documents(messages)
    params["messages"] = messages
    inference: dict[str, Any] = {}
    if request.max_tokens is not None:
        inference["maxTokens"] = int(request.max_tokens)
    if request.temperature is not None:
        inference["temperature"] = float(request.temperature)
    if request.top_p is not None:
        inference["topP"] = float(request.top_p)
    if request.stop:
        inference["stopSequences"] = list(request.stop)
    if inference:
        params["inferenceConfig"] = inference
    tool_config = _tool_config(request)
    if tool_config is not None:
        params["toolConfig"] = tool_config
    additional: dict[str, Any] = {}
    for key, value in fields_to_carry(request.extra).items():
        refuse_extra(model, key, value)
        if key in CONVERSE_TOP_LEVEL_FIELDS:
            params[key] = value
        elif key == "additionalModelRequestFields" and isinstance(value, dict):
            additional.update(value)
        else:
            additional[key] = value
    output = _output_config(request)
    if output:
        if "outputConfig" in params:
            raise refuse(
                model,
                "outputConfig",
                "gets it from the request's response_format and reasoning effort here; send those, or outputConfig "
                "alone",
            )
        params["outputConfig"] = output
    metadata = request_metadata(request.user, params.pop("requestMetadata", None), model)
    if metadata is not None:  # the caller's, with its end-user id; or none (an empty one asks for nothing)
        params["requestMetadata"] = metadata
    if request.top_k is not None:
        additional["top_k"] = int(request.top_k)
    if request.reasoning is not None and request.reasoning.off:
        # Thinking off: Claude on Bedrock takes Anthropic's own field in additionalModelRequestFields, as for a
        # budget; Bedrock's other models (Nova, Llama, Mistral, ...) think only when asked, so off asks nothing of
        # them and nothing is sent. (DeepSeek-R1, which always reasons, reasons in its answer text, not in a
        # thinking mode a field could turn off.) Nor is it to a Claude model with no thinking (Claude 3 Haiku).
        if thinks(model):  # a Claude model id, of a model that can think
            additional["thinking"] = {"type": "disabled"}
    elif request.reasoning is not None and request.reasoning.budget_tokens is not None:
        additional["thinking"] = {"type": "enabled", "budget_tokens": int(request.reasoning.budget_tokens)}
    elif request.reasoning is not None and request.reasoning.adaptive:  # Claude 4.6 and later on Bedrock
        additional["thinking"] = {"type": "adaptive"}
    display = request.reasoning.claude_display if request.reasoning is not None else None
    thinking = additional.get("thinking")
    if display is not None and isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        thinking["display"] = display  # Claude's own field, as on Anthropic's API (thinking off: no thoughts to show)
    if additional:
        params["additionalModelRequestFields"] = additional
    return params
