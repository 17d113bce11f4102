"""Model-native InvokeModel bodies <-> Converse, for the Bedrock batch emulator.

Batch jobs of type InvokeModel carry each model family's own request body and expect that family's
response body back (Bedrock user guide, "Inference request parameters and response fields for
foundation models"). The emulator runs everything through Converse, so it translates at the edges:
Anthropic Claude (Messages API with `anthropic_version`), Amazon Nova (`messages-v1`) and Meta Llama
(`prompt` / `max_gen_len`). Other families are answered with an error naming Converse jobs as the fix.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from tokenomy.pricing.catalog import split_inference_profile
from tokenomy.providers.bedrock import STOP_SEQUENCE, body_family

ANTHROPIC_VERSION = "bedrock-2023-05-31"
_LLAMA_TOKENS = re.compile(r"<\|[^|>]*\|>|<s>|</s>|\[/?INST\]")


class NativeBodyError(ValueError):
    """The body is not valid for the model (Bedrock answers such records with errorCode 400)."""


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


def to_converse(model_id: str, body: Any) -> dict[str, Any]:
    """A Converse request body equivalent to `body`; raises NativeBodyError like Bedrock's 400."""
    if not isinstance(body, dict):
        raise NativeBodyError("Malformed input request: modelInput must be a JSON object")
    kind = body_family(model_id)
    if kind == "anthropic":
        if body.get("anthropic_version") != ANTHROPIC_VERSION:
            raise NativeBodyError(f"Malformed input request: anthropic_version must be {ANTHROPIC_VERSION!r}")
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
            raise NativeBodyError("Malformed input request: #: required key [max_tokens] not found or not positive")
        out: dict[str, Any] = {
            "messages": _messages(body.get("messages"), "messages"),
            "inferenceConfig": {"maxTokens": body["max_tokens"]},
        }
        if body.get("system"):
            out["system"] = _text_blocks(body["system"], "system")
        for src, dst in (("temperature", "temperature"), ("top_p", "topP"), ("stop_sequences", "stopSequences")):
            if src in body:
                out["inferenceConfig"][dst] = body[src]
        if body.get("stop_sequences"):  # Converse names the sequence that ended the answer only when asked
            out["additionalModelResponseFieldPaths"] = [STOP_SEQUENCE]
        return out
    if kind == "nova":
        config = body.get("inferenceConfig") or {}
        out = {"messages": _messages(body.get("messages"), "messages"), "inferenceConfig": {}}
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
        return out
    if kind == "llama":
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not _LLAMA_TOKENS.sub("", prompt).strip():
            raise NativeBodyError("Malformed input request: #: required key [prompt] not found or empty")
        llama_config: dict[str, Any] = {}
        for src, dst in (("max_gen_len", "maxTokens"), ("temperature", "temperature"), ("top_p", "topP")):
            if src in body:
                llama_config[dst] = body[src]
        return {
            "messages": [{"role": "user", "content": [{"text": _LLAMA_TOKENS.sub("", prompt).strip()}]}],
            "inferenceConfig": llama_config,
        }
    raise NativeBodyError(
        f"The Tokenomy emulator reads InvokeModel bodies for Claude, Nova and Llama only; "
        f"create the job with modelInvocationType='Converse' for {model_id}"
    )


def from_converse(model_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """The model-native response body for a Converse result."""
    text = "".join(b.get("text", "") for b in result["output"]["message"]["content"])
    usage, stop = result["usage"], result["stopReason"]
    kind = body_family(model_id)
    if kind == "anthropic":
        base, _ = split_inference_profile(model_id)
        return {
            "id": f"msg_bdrk_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": base.split(".", 1)[-1].rsplit("-v", 1)[0],
            "content": [{"type": "text", "text": text}],
            "stop_reason": stop,
            "stop_sequence": (result.get("additionalModelResponseFields") or {}).get("stop_sequence"),
            "usage": {"input_tokens": usage["inputTokens"], "output_tokens": usage["outputTokens"]},
        }
    if kind == "nova":
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
            "stopReason": stop,
            "usage": {
                "inputTokens": usage["inputTokens"],
                "outputTokens": usage["outputTokens"],
                "totalTokens": usage["inputTokens"] + usage["outputTokens"],
            },
        }
    return {
        "generation": text,
        "prompt_token_count": usage["inputTokens"],
        "generation_token_count": usage["outputTokens"],
        "stop_reason": "length" if stop == "max_tokens" else "stop",
    }
