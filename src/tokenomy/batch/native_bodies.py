"""Which model's body a Bedrock batch line's `modelInput` is written in, and the text of a text-completion body.

Bedrock's InvokeModel jobs take each family's own body: Claude's Messages body, Nova's messages-v1, and three bodies
of one prompt string each: Meta Llama's {"prompt", "max_gen_len"}, Mistral AI's {"prompt", "max_tokens", "top_k",
"stop"} and Amazon Titan Text's {"inputText", "textGenerationConfig"}. A prompt body goes as written to its own
family's job only: made into messages, its turns would be guessed from its chat template (conversion.py refuses it).
"""

from __future__ import annotations

from typing import Any

from tokenomy.errors import as_written
from tokenomy.providers.bedrock_families import PROMPT_FIELD, mistral_sign


def body_written_for(body: dict[str, Any]) -> str:
    """Which body an existing Bedrock modelInput is: anthropic, nova, llama, mistral, titan (InvokeModel) or
    converse."""
    if "anthropic_version" in body:
        return "anthropic"
    if "schemaVersion" in body or "max_new_tokens" in (body.get("inferenceConfig") or {}):
        return "nova"
    if "prompt" in body:
        return "mistral" if mistral_sign(body) else "llama"
    if "inputText" in body:
        return "titan"
    return "converse"


def prompt_turns(body: dict[str, Any]) -> list[dict[str, str]] | None:
    """A prompt body's text as one user turn (chat template and all), for the estimates; None for a body of messages.
    A prompt that is not text, or beside messages (which of the two the caller meant is a guess), is a ValueError."""
    family = body_written_for(body)
    field = PROMPT_FIELD.get(family)
    if field is None:
        return None
    if "messages" in body:
        raise ValueError(
            f"modelInput.{field}: both {field} and messages given (a {family.title()} body takes {field}, the others "
            "messages); keep one"
        )
    prompt = body[field]
    if not isinstance(prompt, str):
        raise ValueError(
            f"modelInput.{field}: must be text, not {as_written(prompt)}; write the prompt as a JSON string"
        )
    return [{"role": "user", "content": prompt}]


def titan_config(body: dict[str, Any]) -> dict[str, Any]:
    """A Titan body's textGenerationConfig (where its cap and temperature are), {} when it has none."""
    config = body.get("textGenerationConfig") if body_written_for(body) == "titan" else None
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"modelInput.textGenerationConfig: must be an object, not {as_written(config)}")
    return config or {}
