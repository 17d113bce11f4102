"""Which model-native InvokeModel body a Bedrock model takes, by its id, and which text-completion body a `prompt`
body is: shared by the batch backend that writes (or sends as written) native bodies, the emulator that reads them
and the gateway's InvokeModel route that sends them as written."""

from __future__ import annotations

from typing import Any

from tokenomy.pricing.catalog import split_inference_profile


def _base(model_id: str) -> str:
    """The foundation model's id of a model id, cross-region profile id or ARN."""
    base, _ = split_inference_profile(model_id)
    return base.rsplit("/", 1)[-1]


def body_family(model_id: str) -> str:
    """Which native request body a Bedrock model takes: anthropic | nova | llama | other (Converse only).

    Accepts model ids, cross-region profile ids and ARNs; shared by the batch backend that writes
    native bodies and the emulator that reads them.
    """
    base = _base(model_id)
    for prefix, name in (("anthropic.", "anthropic"), ("amazon.nova", "nova"), ("meta.llama", "llama")):
        if base.startswith(prefix):
            return name
    return "other"


# Text-completion bodies of models whose batch jobs are Converse jobs by default: Amazon Titan Text's
# {"inputText", "textGenerationConfig"} and Mistral AI's {"prompt", "max_tokens", ...} (Bedrock user guide, "Amazon
# Titan Text models" and "Mistral AI text completion"). Tokenomy writes none of them (a prompt cannot be built from
# messages without choosing a template), but a line already in one goes to its own model's InvokeModel job as written.
_PROMPT_FAMILIES = (("amazon.titan-text", "titan"), ("amazon.titan-tg1", "titan"), ("mistral.", "mistral"))


def prompt_family(model_id: str) -> str | None:
    """titan | mistral: the text-completion body a Converse-job model also takes in an InvokeModel job; else None."""
    base = _base(model_id)
    return next((name for prefix, name in _PROMPT_FAMILIES if base.startswith(prefix)), None)


# The keys only Mistral's text-completion body takes (Llama's takes max_gen_len, Mistral's max_tokens), and the chat
# template only Mistral's prompts use among the families batch runs (Llama 3's is <|start_header_id|>...).
MISTRAL_ONLY_KEYS = ("max_tokens", "top_k", "stop")
MISTRAL_TEMPLATE = "[INST]"
# The field each prompt body holds its prompt in.
PROMPT_FIELD = {"llama": "prompt", "mistral": "prompt", "titan": "inputText"}


def mistral_sign(body: dict[str, Any]) -> str | None:
    """What shows a `prompt` body is Mistral's, not Llama's (a key of Mistral's own, or its [INST] template), as said
    in a refusal; None for a Llama body (one with max_gen_len, Llama's cap, is Llama's whatever else it holds)."""
    if "max_gen_len" in body:
        return None
    key = next((key for key in MISTRAL_ONLY_KEYS if key in body), None)
    if key is not None:
        return f"its {key}, a key of Mistral's body; a Llama body's cap is max_gen_len"
    prompt = body.get("prompt")
    return (
        f"its prompt's {MISTRAL_TEMPLATE} template" if isinstance(prompt, str) and MISTRAL_TEMPLATE in prompt else None
    )
