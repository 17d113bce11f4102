"""Which Claude models take an effort level (`output_config.effort` on Anthropic's API, `outputConfig.effort` on
Bedrock's Converse) and adaptive thinking (`thinking: {"type": "adaptive"}`), so that both providers carry them to the
same models and refuse them, naming the model and the fix, for the same others, before any call is made.

Anthropic's effort documentation lists Claude Opus 4.5, the Claude 4.6 and later models (Opus 4.6, 4.7, 4.8, Sonnet
4.6) and the Claude 5 generation. Sonnet 4.5, Haiku 4.5, Opus 4.1 and every earlier Claude take no effort: they think
within a budget in tokens (`thinking.budget_tokens`), which a caller sends as such; the gateway does not invent one.
Adaptive thinking (the model decides how long to think) came with Claude Opus 4.6: the 4.6 and later models take it.
"""

from __future__ import annotations

import re

# A Claude model's family and version in an Anthropic or Bedrock model id: claude-opus-4-5-20251101,
# us.anthropic.claude-sonnet-4-6, anthropic.claude-opus-4-6-v1. A date (8 digits) is not a minor version.
_NAMED = re.compile(r"claude-(?P<family>[a-z]+)-(?P<major>\d+)(?:[-.](?P<minor>\d{1,2})(?!\d))?")
# Before Claude 4 the version came first (claude-3-7-sonnet, claude-3-haiku): none of those takes an effort.
_OLD = re.compile(r"claude-\d")
# Where a thinking budget in tokens goes, named in the remedies that send a caller to one, refused with it as their
# `also`: each ingress names it as its caller sends it (`ProviderError.named`): thinking.budget_tokens on Anthropic's
# API (and in an OpenAI-format body), additionalModelRequestFields.thinking.budget_tokens on Converse,
# generationConfig.thinkingConfig.thinkingBudget on Gemini's API. Written as OpenAI's SDK sends it (`thinking` in its
# extra_body), the remedy sent every other caller to a field its API does not have.
BUDGET = "reasoning.budget_tokens"
# Why a reasoning effort is refused for a Claude model that takes none, and the fix (both Claude providers say it).
NO_EFFORT = (
    "takes no effort level (Claude's effort parameter is for Claude Opus 4.5 and the 4.6 and later models); send a "
    f"thinking budget in tokens (`{BUDGET}`) instead"
)


# The effort levels Claude takes: Anthropic's output_config.effort and Bedrock Converse's OutputConfig.effort
# (botocore's model of the API) alike, and so the emulators of both. OpenAI's "none" and "minimal" have no counterpart.
EFFORTS = ("low", "medium", "high", "xhigh", "max")


# Why a thinking budget or an effort is refused for a Claude model with no extended thinking (`thinks`), and the fix
# (NO_EFFORT's, a budget, is refused for it too).
NO_THINKING = (
    "has no extended thinking (Claude 3.7 Sonnet and later models think); send the request without thinking, or "
    "route it to a model that thinks"
)


def no_effort(model: str) -> str:
    """Why Claude `model`, which takes no effort level, refuses one, and the fix: a budget where it can think."""
    return NO_THINKING if thinks(model) is False else NO_EFFORT


NO_ADAPTIVE = (
    "thinks only within a budget in tokens (adaptive thinking is for the Claude 4.6 and later models); send a "
    f"thinking budget (`{BUDGET}`), or route the request to a Claude 4.6 or later model"
)


def claude_version(model: str) -> tuple[str, tuple[int, int]] | None:
    """A Claude model id's family and (major, minor) version; ("", (3, 0)) for the older naming; None for no Claude."""
    named = _NAMED.search(model)
    if named is None:
        return ("", (3, 0)) if _OLD.search(model) else None
    return named["family"], (int(named["major"]), int(named["minor"] or 0))


# Claude models with no thinking at all: every one before Claude 3.7 Sonnet, the first with extended thinking
# (Anthropic's extended-thinking models page lists 3.7 Sonnet and the Claude 4 and later models).
_NO_THINKING = re.compile(r"claude-3-(?!7)")


def thinks(model: str) -> bool | None:
    """True for a Claude model that can think, False for one that cannot (Claude 3 Haiku, 3.5 Sonnet, ...), None for
    a model id that names no Claude model. Thinking off is sent to the first only: Anthropic documents `thinking:
    {"type": "disabled"}` as turning thinking off on the models that accept it, and a model with no thinking has
    nothing to turn off."""
    if claude_version(model) is None:
        return None
    return _NO_THINKING.search(model) is None


def takes_adaptive(model: str) -> bool | None:
    """True for a Claude model that takes adaptive thinking (4.6 and later), False for one that does not, None for a
    model id that names no Claude model."""
    found = claude_version(model)
    return None if found is None else found[1] >= (4, 6)


def takes_effort(model: str) -> bool | None:
    """True for a Claude model that takes an effort level, False for one that does not, None for a model id that
    names no Claude model (its provider's own rules apply)."""
    found = claude_version(model)
    if found is None:
        return None
    family, version = found
    if version >= (5, 0):
        return True
    return (family == "opus" and version >= (4, 5)) or (family != "haiku" and version >= (4, 6))
