"""What a Bedrock Converse answer says, read for the provider's ChatResponse: its usage (checked as Bedrock sent it,
before botocore reads it), its finish reason, the model a prompt router ran, the fields the caller asked for, and the
stop sequence that ended it (asked of Claude for the purpose). A module of its own, apart from `bedrock`'s calls to
Bedrock (one job each): the batch backend reads a Converse record's usage here too, and the emulator the name of the
stop-sequence field.

Usage accounting: Bedrock's `usage.inputTokens` counts only the prompt tokens that were neither
read from nor written to the prompt cache; `cacheReadInputTokens` and `cacheWriteInputTokens` are
reported beside it (AWS API reference "TokenUsage"; confirmed by SDKs that map Bedrock usage, e.g.
opencode's bedrock-converse protocol fix "AWS reports inputTokens separately from cache reads and
writes"). That matches `Usage.input_tokens`, so the fields map one to one; `cacheDetails` splits the writes by
TTL (its "1h" entry is `Usage.cache_write_1h_tokens`).
"""

from __future__ import annotations

import json
from typing import Any

from tokenomy.chat_response import Usage
from tokenomy.messages import ONE_HOUR, ChatRequest
from tokenomy.pricing.catalog import split_inference_profile
from tokenomy.providers.usage_counts import answered_count, checked_counts, usage_count

# Bedrock stopReason -> the OpenAI-style finish_reason Tokenomy records.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def usage_from_bedrock(usage: dict[str, Any] | None) -> Usage:
    """Bedrock's inputTokens already excludes cache reads/writes (see the module's docstring)."""
    usage = usage or {}
    details = usage.get("cacheDetails") or []  # [{ttl: "5m" | "1h", inputTokens}], the writes by TTL

    def count(name: str) -> int:
        return usage_count(usage.get(name), "Bedrock", name)

    counted = Usage(
        input_tokens=count("inputTokens"),
        output_tokens=count("outputTokens"),
        cache_read_tokens=count("cacheReadInputTokens"),
        cache_write_tokens=count("cacheWriteInputTokens"),
        cache_write_1h_tokens=sum(
            usage_count(d.get("inputTokens"), "Bedrock", "cacheDetails.inputTokens")
            for d in details
            if isinstance(d, dict) and d.get("ttl") == ONE_HOUR
        ),
    )
    return checked_counts(counted, "Bedrock")


def _answer_as_sent(response_dict: dict[str, Any]) -> dict[str, Any]:
    """A 200 answer's JSON as Bedrock sent it, before botocore reads its integers with int(), which raises a
    ValueError for text (the gateway's 500) and reads 12.5 as 12 and true as 1; {} for any other answer, and for a
    body that is no JSON, which botocore reads (and its callers refuse) itself."""
    if response_dict.get("status_code") != 200:
        return {}
    try:
        answer = json.loads(response_dict.get("body") or b"")
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def check_answered_count(response_dict: dict[str, Any], **_: Any) -> None:
    """CountTokens' count as sent: one `answered_count` refuses is Bedrock's fault."""
    answer = _answer_as_sent(response_dict)
    if answer:
        answered_count(answer.get("inputTokens"), "Bedrock", "inputTokens")


def check_usage(response_dict: dict[str, Any], **_: Any) -> None:
    """Converse's usage as sent: a count `usage_from_bedrock` refuses is Bedrock's fault (a stream's events reach it
    as sent, botocore's event parser has no int())."""
    usage = _answer_as_sent(response_dict).get("usage")
    if isinstance(usage, dict):
        usage_from_bedrock(usage)


def invoked_model(trace: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """The model a prompt router actually ran, as a priceable model id, plus the region in its ARN."""
    invoked = ((trace or {}).get("promptRouter") or {}).get("invokedModelId")
    if not invoked:
        return None, None
    base, region = split_inference_profile(invoked)
    if invoked.startswith("arn:"):
        parts = invoked.split(":")
        region = parts[3] if len(parts) > 3 and parts[3] else region
    return base, region


def answer_fields(fields: dict[str, Any] | None, trace: dict[str, Any] | None) -> dict[str, Any]:
    """What a Converse answer carries because the caller asked for it, in Converse's names: the model's own fields
    named by `additionalModelResponseFieldPaths`, and the guardrail's trace (`guardrailConfig.trace`). Both requests
    are passed through to Converse, so their answers go back to the caller too, not dropped."""
    out: dict[str, Any] = {}
    if fields:
        out["additionalModelResponseFields"] = fields
    guardrail = (trace or {}).get("guardrail")
    if guardrail:
        out["trace"] = {"guardrail": guardrail}
    return out


STOP_SEQUENCE = "/stop_sequence"  # Claude's own answer field naming the stop sequence that ended it


def ask_stop_sequence(request: ChatRequest, params: dict[str, Any]) -> bool:
    """Converse says a stop sequence ended the answer (stopReason), not which one; Claude's own answer says, and
    Converse hands it back when asked by `additionalModelResponseFieldPaths`. Asked here for a Claude model given
    stop sequences, so the answer can name the sequence (the Messages API's `stop_sequence`, as InvokeModel has it).
    True when the gateway asked and the caller did not: the field is then not handed back as the caller's."""
    if not request.stop or "anthropic." not in str(params.get("modelId", "")):
        return False
    paths = params.get("additionalModelResponseFieldPaths") or []
    if STOP_SEQUENCE in paths:
        return False
    params["additionalModelResponseFieldPaths"] = [*paths, STOP_SEQUENCE]
    return True
