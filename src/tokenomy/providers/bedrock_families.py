"""Which model-native InvokeModel body a Bedrock model takes, by its id: shared by the batch backend that writes (or
sends as written) native bodies and the emulator that reads them."""

from __future__ import annotations

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
