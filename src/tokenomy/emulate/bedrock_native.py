"""Model-native InvokeModel bodies <-> Converse, for the Bedrock emulator (batch jobs and on-demand InvokeModel).

Batch jobs of type InvokeModel carry each model family's own request body and expect that family's
response body back (Bedrock user guide, "Inference request parameters and response fields for
foundation models"). The emulator runs everything through Converse, so it translates at the edges:
Anthropic Claude (Messages API with `anthropic_version`: text, tool_use and tool_result blocks, tools,
tool_choice, thinking, anthropic_beta, cache_control, and output_config and strict tools, held to what Claude's
structured outputs take by the Anthropic emulator's own checks), Amazon Nova (`messages-v1`), Meta Llama (`prompt` /
`max_gen_len`), Mistral AI's text completion (`prompt` / `max_tokens`) and Amazon Titan Text (`inputText`). A key of
a body it does not translate is refused by name, never dropped. Other families, and Claude content other than text and
tools, are answered with an error naming Converse as the fix, in the words of where the body came from (`fix`: a
batch job's record, or an InvokeModel call).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from tokenomy.emulate.anthropic_blocks import AnthropicError
from tokenomy.emulate.anthropic_request import check_strict_tool, output_schema
from tokenomy.pricing.catalog import split_inference_profile
from tokenomy.providers.bedrock_answer_read import STOP_SEQUENCE
from tokenomy.providers.bedrock_families import body_family, prompt_family

ANTHROPIC_VERSION = "bedrock-2023-05-31"
# How to send, through Converse, what the emulator does not translate: a batch job's record, an InvokeModel call's body.
BATCH_FIX = "create the job with modelInvocationType='Converse'"
INVOKE_FIX = "call Converse (boto3's `converse` or `converse_stream`) instead of InvokeModel"
_LLAMA_TOKENS = re.compile(r"<\|[^|>]*\|>|<s>|</s>|\[/?INST\]")


class NativeBodyError(ValueError):
    """The body is not valid for the model (Bedrock answers such records with errorCode 400)."""


def _extraneous(body: dict[str, Any], known: tuple[str, ...], where: str = "#") -> None:
    """Refuse, as Bedrock does, a key the body's schema does not have (never dropped without a word)."""
    unknown = next((key for key in body if key not in known), None)
    if unknown is not None:
        raise NativeBodyError(
            f"Malformed input request: {where}: extraneous key [{unknown}] is not permitted, please reformat your "
            "input and try again."
        )


def _cache_point(block: dict[str, Any]) -> list[dict[str, Any]]:
    """The Converse cachePoint a Claude block's cache_control asks for after it ([] for none)."""
    control = block.get("cache_control")
    if control is None:
        return []
    ttl = control.get("ttl") if isinstance(control, dict) else None
    return [{"cachePoint": {"type": "default", **({"ttl": ttl} if ttl else {})}}]


def _claude_block(block: Any, where: str, fix: str) -> list[dict[str, Any]]:
    """One Claude content block as Converse blocks (its cache point after it); another type is refused by name."""
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text" and isinstance(block.get("text"), str):
        converted: dict[str, Any] = {"text": block["text"]}
    elif kind == "tool_use":
        converted = {"toolUse": {"toolUseId": block.get("id"), "name": block.get("name"), "input": block.get("input")}}
    elif kind == "tool_result":
        content = block.get("content", "")
        parts = _text_blocks(content, f"{where}.content") if content not in ("", []) else []
        status = "error" if block.get("is_error") else "success"
        converted = {"toolResult": {"toolUseId": block.get("tool_use_id"), "content": parts, "status": status}}
    else:
        raise NativeBodyError(
            f"{where}: the Tokenomy emulator reads text, tool_use and tool_result blocks of a Claude body, not "
            f"{kind!r}; {fix} to send other content"
        )
    return [converted, *_cache_point(block)]


def _claude_content(content: Any, where: str, fix: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list) or not content:
        raise NativeBodyError(f"{where}: content must be a string or a non-empty list of blocks")
    return [part for i, block in enumerate(content) for part in _claude_block(block, f"{where}.{i}", fix)]


def _claude_tools(body: dict[str, Any]) -> dict[str, Any] | None:
    """A Claude body's tools and tool_choice as Converse's toolConfig (None without tools)."""
    tools, choice = body.get("tools"), body.get("tool_choice")
    if not tools:
        if choice is not None:
            raise NativeBodyError("Malformed input request: tool_choice is only allowed when tools are specified")
        return None
    if not isinstance(tools, list):
        raise NativeBodyError("Malformed input request: #/tools: expected type: JSONArray")
    specs: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "custom") != "custom" or "input_schema" not in tool:
            raise NativeBodyError(
                f"tools.{i}: the Tokenomy emulator reads custom tools (name, description, input_schema) only"
            )
        _extraneous(tool, ("type", "name", "description", "input_schema", "strict", "cache_control"), f"#/tools/{i}")
        _as_claude_api(check_strict_tool, tool, f"tools.{i}")
        spec = {"name": tool.get("name"), "inputSchema": {"json": tool["input_schema"]}}
        if tool.get("description"):
            spec["description"] = tool["description"]
        if tool.get("strict") is not None:
            spec["strict"] = tool["strict"]
        specs += [{"toolSpec": spec}, *_cache_point(tool)]
    config: dict[str, Any] = {"tools": specs}
    if choice is not None:
        # disable_parallel_tool_use holds as asked: the emulator's model makes one tool call at most.
        mode = choice.get("type") if isinstance(choice, dict) else None
        if mode not in ("auto", "any", "tool"):
            raise NativeBodyError(f"tool_choice.type: the Tokenomy emulator reads auto, any and tool, not {mode!r}")
        _extraneous(choice, ("type", "name", "disable_parallel_tool_use"), "#/tool_choice")
        config["toolChoice"] = {mode: {"name": choice.get("name")} if mode == "tool" else {}}
    return config


# The keys of Claude's Bedrock body the emulator translates (Bedrock user guide, "Anthropic Claude Messages API").
CLAUDE_KEYS = (
    "anthropic_version",
    "max_tokens",
    "messages",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
    "thinking",
    "anthropic_beta",
    "output_config",
)


def _as_claude_api(check: Callable[..., Any], *args: Any) -> Any:
    """`check` of Anthropic's emulator (what Claude's Messages API refuses, and how it says so), on Claude's body
    sent to Bedrock, whose 400 carries the same words."""
    try:
        return check(*args)
    except AnthropicError as exc:
        raise NativeBodyError(exc.message) from None


def _claude_output(config: Any) -> dict[str, Any] | None:
    """output_config (the JSON schema Claude's answer follows, an effort), checked as Anthropic's API checks it, as
    Converse's outputConfig (None without one)."""
    schema = _as_claude_api(output_schema, config)
    out: dict[str, Any] = {}
    if schema is not None:
        structure = {"jsonSchema": {"schema": json.dumps(schema), "name": "response"}}
        out["textFormat"] = {"type": "json_schema", "structure": structure}
    if isinstance(config, dict) and config.get("effort") is not None:
        out["effort"] = config["effort"]
    return out or None


def _claude(body: dict[str, Any], fix: str) -> dict[str, Any]:
    if body.get("anthropic_version") != ANTHROPIC_VERSION:
        raise NativeBodyError(f"Malformed input request: anthropic_version must be {ANTHROPIC_VERSION!r}")
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        raise NativeBodyError("Malformed input request: #: required key [max_tokens] not found or not positive")
    _extraneous(body, CLAUDE_KEYS)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise NativeBodyError("messages: messages must be a non-empty list")
    out: dict[str, Any] = {
        "messages": [
            {
                "role": m.get("role") if isinstance(m, dict) else None,
                "content": _claude_content(m.get("content") if isinstance(m, dict) else None, f"messages.{i}", fix),
            }
            for i, m in enumerate(raw)
        ],
        "inferenceConfig": {"maxTokens": body["max_tokens"]},
    }
    if body.get("system"):
        out["system"] = _claude_content(body["system"], "system", fix)
    for src, dst in (("temperature", "temperature"), ("top_p", "topP"), ("stop_sequences", "stopSequences")):
        if src in body:
            out["inferenceConfig"][dst] = body[src]
    tools = _claude_tools(body)
    if tools is not None:
        out["toolConfig"] = tools
    output = _claude_output(body.get("output_config"))
    if output is not None:
        out["outputConfig"] = output
    # as Converse takes them for Claude
    extra = {key: body[key] for key in ("top_k", "thinking", "anthropic_beta") if key in body}
    if extra:
        out["additionalModelRequestFields"] = extra
    if body.get("stop_sequences"):  # Converse names the sequence that ended the answer only when asked
        out["additionalModelResponseFieldPaths"] = [STOP_SEQUENCE]
    return out


def _text_blocks(content: Any, where: str) -> list[dict[str, str]]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list) or not content:
        raise NativeBodyError(f"{where}: content must be a string or a non-empty list of blocks")
    blocks = []
    for block in content:
        if not isinstance(block, dict) or not isinstance(block.get("text"), str):
            raise NativeBodyError(f"{where}: each content block needs a text field")
        blocks.append({"text": block["text"]})
    return blocks


def _messages(raw: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise NativeBodyError(f"{where}: messages must be a non-empty list")
    return [
        {
            "role": m.get("role") if isinstance(m, dict) else None,
            "content": _text_blocks(m.get("content") if isinstance(m, dict) else None, f"{where}.{i}"),
        }
        for i, m in enumerate(raw)
    ]


def to_converse(model_id: str, body: Any, fix: str) -> dict[str, Any]:
    """A Converse request body equivalent to `body`; raises NativeBodyError like Bedrock's 400, one the emulator
    cannot translate saying how to send it through Converse from where it came (`fix`: BATCH_FIX or INVOKE_FIX)."""
    if not isinstance(body, dict):
        raise NativeBodyError("Malformed input request: modelInput must be a JSON object")
    kind = body_family(model_id)
    if kind == "anthropic":
        return _claude(body, fix)
    if kind == "nova":
        return _nova(body)
    if kind == "llama":
        _extraneous(body, ("prompt", "max_gen_len", "temperature", "top_p"))
        return _prompt_body(
            body, "prompt", (("max_gen_len", "maxTokens"), ("temperature", "temperature"), ("top_p", "topP"))
        )
    if prompt_family(model_id) == "mistral":
        _extraneous(body, ("prompt", "max_tokens", "stop", "temperature", "top_p", "top_k"))
        pairs = (
            ("max_tokens", "maxTokens"),
            ("temperature", "temperature"),
            ("top_p", "topP"),
            ("stop", "stopSequences"),
        )
        out = _prompt_body(body, "prompt", pairs)
        if "top_k" in body:  # as Converse takes it for Mistral
            out["additionalModelRequestFields"] = {"top_k": body["top_k"]}
        return out
    if prompt_family(model_id) == "titan":
        _extraneous(body, ("inputText", "textGenerationConfig"))
        config = body.get("textGenerationConfig") or {}
        if not isinstance(config, dict):
            raise NativeBodyError("Malformed input request: #/textGenerationConfig: expected type: JSONObject")
        _extraneous(config, ("maxTokenCount", "temperature", "topP", "stopSequences"), "#/textGenerationConfig")
        pairs = (
            ("maxTokenCount", "maxTokens"),
            ("temperature", "temperature"),
            ("topP", "topP"),
            ("stopSequences", "stopSequences"),
        )
        return _prompt_body({**config, "inputText": body.get("inputText")}, "inputText", pairs)
    raise NativeBodyError(
        f"The Tokenomy emulator reads InvokeModel bodies for Claude, Nova, Llama, Mistral and Titan Text only; "
        f"{fix} for {model_id}"
    )


def _nova(body: dict[str, Any]) -> dict[str, Any]:
    _extraneous(body, ("schemaVersion", "messages", "system", "inferenceConfig", "toolConfig"))
    config = body.get("inferenceConfig") or {}
    _extraneous(config, ("max_new_tokens", "temperature", "top_p", "top_k", "stopSequences"), "#/inferenceConfig")
    out: dict[str, Any] = {"messages": _messages(body.get("messages"), "messages"), "inferenceConfig": {}}
    if body.get("system"):
        out["system"] = _text_blocks(body["system"], "system")
    for src, dst in (
        ("max_new_tokens", "maxTokens"),
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("stopSequences", "stopSequences"),
    ):
        if src in config:
            out["inferenceConfig"][dst] = config[src]
    if "toolConfig" in body:  # Nova's is Converse's own shape
        out["toolConfig"] = body["toolConfig"]
    if "top_k" in config:  # as Converse takes it for Nova
        out["additionalModelRequestFields"] = {"inferenceConfig": {"topK": config["top_k"]}}
    return out


def _prompt_body(body: dict[str, Any], field: str, pairs: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """A text-completion body (Llama's, Mistral's, Titan Text's config with its inputText) as one user turn, its chat
    template's special tokens left out, and its parameters (`pairs`: the body's name, Converse's)."""
    prompt = body.get(field)
    if not isinstance(prompt, str) or not _LLAMA_TOKENS.sub("", prompt).strip():
        raise NativeBodyError(f"Malformed input request: #: required key [{field}] not found or empty")
    return {
        "messages": [{"role": "user", "content": [{"text": _LLAMA_TOKENS.sub("", prompt).strip()}]}],
        "inferenceConfig": {dst: body[src] for src, dst in pairs if src in body},
    }


def _claude_answer(block: dict[str, Any]) -> dict[str, Any]:
    """A Converse answer block as Claude's: text, a tool call, or thinking."""
    if "toolUse" in block:
        use = block["toolUse"]
        return {"type": "tool_use", "id": use["toolUseId"], "name": use["name"], "input": use["input"]}
    if "reasoningContent" in block:
        reasoning = block["reasoningContent"].get("reasoningText", {})
        return {"type": "thinking", "thinking": reasoning.get("text", ""), "signature": reasoning.get("signature", "")}
    return {"type": "text", "text": block.get("text", "")}


def from_converse(model_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """The model-native response body for a Converse result."""
    blocks = result["output"]["message"]["content"]
    text = "".join(b.get("text", "") for b in blocks)
    usage, stop = result["usage"], result["stopReason"]
    kind = body_family(model_id)
    if kind == "anthropic":
        base, _ = split_inference_profile(model_id)
        return {
            "id": f"msg_bdrk_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": base.split(".", 1)[-1].rsplit("-v", 1)[0],
            "content": [_claude_answer(block) for block in blocks],
            "stop_reason": stop,
            "stop_sequence": (result.get("additionalModelResponseFields") or {}).get("stop_sequence"),
            "usage": {"input_tokens": usage["inputTokens"], "output_tokens": usage["outputTokens"]},
        }
    if kind == "nova":
        return {
            "output": {"message": {"role": "assistant", "content": blocks}},
            "stopReason": stop,
            "usage": {
                "inputTokens": usage["inputTokens"],
                "outputTokens": usage["outputTokens"],
                "totalTokens": usage["inputTokens"] + usage["outputTokens"],
            },
        }
    finished = "length" if stop == "max_tokens" else "stop"
    if prompt_family(model_id) == "mistral":  # no counts: Bedrock sends Mistral's in headers, not the body
        return {"outputs": [{"text": text, "stop_reason": finished}]}
    if prompt_family(model_id) == "titan":
        reason = {"max_tokens": "LENGTH", "stop_sequence": "STOP_CRITERIA_MET"}.get(stop, "FINISH")
        return {
            "inputTextTokenCount": usage["inputTokens"],
            "results": [{"tokenCount": usage["outputTokens"], "outputText": text, "completionReason": reason}],
        }
    return {
        "generation": text,
        "prompt_token_count": usage["inputTokens"],
        "generation_token_count": usage["outputTokens"],
        "stop_reason": finished,
    }
