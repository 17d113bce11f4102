"""The text-completion bodies Bedrock's InvokeModel takes for Amazon Titan Text, Meta Llama and Mistral AI, and what
their answers say: the Bedrock provider sends such a body as written (`ChatRequest.native_body`) and reads its
answer here.

A prompt body is the model's own text, chat template and all: made into Converse messages, its turns would be guessed
from the template (and the template sent twice), so it goes unchanged to a model of its family. Answer shapes (Bedrock
user guide, "Inference request parameters and response fields for foundation models"): Titan Text
`{"inputTextTokenCount", "results": [{"tokenCount", "outputText", "completionReason"}]}`, Llama `{"generation",
"prompt_token_count", "generation_token_count", "stop_reason"}`, Mistral `{"outputs": [{"text", "stop_reason"}]}`,
whose counts are only in the X-Amzn-Bedrock-Input-Token-Count / -Output-Token-Count headers (every family's answer
has them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenomy.providers.bedrock_families import PROMPT_FIELD, body_family, prompt_family

FAMILY_NAMES = {"titan": "Amazon Titan Text", "llama": "Meta Llama", "mistral": "Mistral AI"}
# Where each body holds its output cap (Titan's inside textGenerationConfig).
CAP_FIELDS = {"titan": "maxTokenCount", "llama": "max_gen_len", "mistral": "max_tokens"}
TITAN_CONFIG = "textGenerationConfig"
# Each family's finish reasons that are not a plain stop, as Tokenomy's finish reasons.
FINISH_REASONS = {"length": "length", "LENGTH": "length", "CONTENT_FILTERED": "content_filter"}
INPUT_HEADER = "x-amzn-bedrock-input-token-count"
OUTPUT_HEADER = "x-amzn-bedrock-output-token-count"


def model_family(model_id: str) -> str | None:
    """titan | llama | mistral: the text-completion body the Bedrock model takes on InvokeModel; None for others."""
    return "llama" if body_family(model_id) == "llama" else prompt_family(model_id)


def cap_name(family: str) -> str:
    """The cap's field as the caller wrote it (`textGenerationConfig.maxTokenCount`, `max_gen_len`, ...)."""
    return f"{TITAN_CONFIG}.{CAP_FIELDS[family]}" if family == "titan" else CAP_FIELDS[family]


def prompt_and_cap(body: dict[str, Any], family: str) -> tuple[str, int | None]:
    """The body's prompt and output cap (None: the model's default), which the gateway estimates and reserves the
    call by; a ValueError names a field of the wrong type. The body's other fields go to the model as written."""
    field = PROMPT_FIELD[family]
    prompt = body.get(field)
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{field}: required, the prompt's text (got {prompt!r})")
    holder = body
    if family == "titan":
        holder = body.get(TITAN_CONFIG, {})
        if not isinstance(holder, dict):
            raise ValueError(f"{TITAN_CONFIG}: expected an object (maxTokenCount, temperature, topP, stopSequences)")
    cap = holder.get(CAP_FIELDS[family])
    if cap is not None and (type(cap) is not int or cap < 1):
        raise ValueError(f"{cap_name(family)}: expected a whole number of tokens, at least 1 (got {cap!r})")
    return prompt, cap


def with_cap(body: dict[str, Any], family: str, cap: int | None) -> dict[str, Any]:
    """The body with its cap at `cap`, the request's: the body's own, or a route's lower one (`tokens.max_tokens`,
    which the budget reserved the call at), written where the family holds it. The body itself when they agree."""
    holder = (body.get(TITAN_CONFIG) or {}) if family == "titan" else body
    if cap is None or holder.get(CAP_FIELDS[family]) == cap:
        return body
    if family == "titan":
        return {**body, TITAN_CONFIG: {**holder, CAP_FIELDS[family]: cap}}
    return {**body, CAP_FIELDS[family]: cap}


@dataclass
class PromptAnswer:
    """What a text-completion answer says: its text, its counts (None when it gave none) and its own stop reason."""

    text: str
    input_tokens: int | None
    output_tokens: int | None
    stop_reason: str | None

    @property
    def finish_reason(self) -> str:
        return FINISH_REASONS.get(self.stop_reason or "", "stop")


def _header_count(headers: dict[str, Any], name: str) -> int | None:
    value = headers.get(name)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def read_answer(family: str, answer: Any, headers: dict[str, Any]) -> PromptAnswer:
    """The family's answer read; a ValueError when it is not in the family's shape. Counts the body does not give
    are the headers' (lower-case names, as botocore gives them)."""
    given_in, given_out = _header_count(headers, INPUT_HEADER), _header_count(headers, OUTPUT_HEADER)
    if not isinstance(answer, dict):
        raise ValueError("the answer is not a JSON object")
    if family == "titan":
        results = answer.get("results")
        first = results[0] if isinstance(results, list) and results and isinstance(results[0], dict) else None
        if first is None or not isinstance(first.get("outputText"), str):
            raise ValueError("no results[0].outputText in Titan Text's answer")
        said_in, said_out = answer.get("inputTextTokenCount"), first.get("tokenCount")
        text, stop = first["outputText"], first.get("completionReason")
    elif family == "llama":
        if not isinstance(answer.get("generation"), str):
            raise ValueError("no generation in Llama's answer")
        said_in, said_out = answer.get("prompt_token_count"), answer.get("generation_token_count")
        text, stop = answer["generation"], answer.get("stop_reason")
    else:
        outputs = answer.get("outputs")
        first = outputs[0] if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict) else None
        if first is None or not isinstance(first.get("text"), str):
            raise ValueError("no outputs[0].text in Mistral's answer")
        said_in = said_out = None
        text, stop = first["text"], first.get("stop_reason")
    return PromptAnswer(
        text,
        said_in if type(said_in) is int else given_in,
        said_out if type(said_out) is int else given_out,
        stop if isinstance(stop, str) else None,
    )
