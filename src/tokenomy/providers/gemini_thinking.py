"""How a Gemini model is told how hard to think: a thinking level (Gemini 3 and later: `thinking_level`) or a
thinking budget in tokens (Gemini 2.5: `thinking_budget`, which refuses a level with 400 INVALID_ARGUMENT "Thinking
level is not supported for this model."), kept in one place so that the provider sends each model the field it takes
and the emulator refuses the one it does not, as Google's API does.

A reasoning effort (OpenAI's `reasoning_effort`, Claude's `output_config.effort`, Gemini's own thinkingLevel) reaches
a budget model as the budget Google's OpenAI compatibility layer gives it
(https://ai.google.dev/gemini-api/docs/openai, "Thinking"): low 1,024, medium 8,192, high 24,576 tokens, and "none"
turns thinking off (a budget of 0), which Gemini 2.5 Pro cannot do (https://ai.google.dev/gemini-api/docs/thinking:
its budget is 128 to 32,768, thinking cannot be turned off: `lowest_budget`). OpenAI's "minimal" asks for as little
thinking as there can be: no thinking where the model can turn it off, like Gemini 3's MINIMAL level ("matches no
thinking").
"""

from __future__ import annotations

import re

# A Gemini model's major version in its id: gemini-2.5-flash, models/gemini-2.5-pro, gemini-3-pro-preview.
_VERSION = re.compile(r"^gemini-(?P<major>\d+)(?:[.-]|$)")
# The efforts a budget model takes, as the budget each one is (Google's OpenAI compatibility page, as above).
EFFORT_BUDGETS = {"none": 0, "minimal": 0, "low": 1024, "medium": 8192, "high": 24576}
# What the real API answers a thinking level sent to a model that takes a budget (its 400 INVALID_ARGUMENT).
LEVEL_REFUSED = "Thinking level is not supported for this model."


def _major(model: str) -> int | None:
    found = _VERSION.match(model.rsplit("/", 1)[-1])  # models/x, or Vertex's projects/../publishers/google/models/x
    return int(found["major"]) if found else None


def is_gemini_3_or_later(model: str) -> bool:
    """Gemini 3 and later: they take a thinking level and check every function call's thought signature."""
    major = _major(model)
    return major is not None and major >= 3


def takes_budget_only(model: str) -> bool:
    """Whether the model takes a thinking budget and refuses a thinking level (Gemini 2.5 and earlier). A model id
    that names no Gemini version is sent a level, as a Gemini 3 model is."""
    major = _major(model)
    return major is not None and major < 3


def can_turn_thinking_off(model: str) -> bool:
    """Whether a thinking budget of 0 turns the model's thinking off: not Gemini 2.5 Pro, which always thinks."""
    return "-pro" not in model.rsplit("/", 1)[-1]


# The thinking budgets Google's thinking docs give each Gemini 2.5 model (https://ai.google.dev/gemini-api/docs/thinking,
# "Thinking budgets"): 2.5 Pro 128 to 32,768, and its thinking cannot be turned off; 2.5 Flash 0 to 24,576; 2.5
# Flash-Lite 512 to 24,576, where 0 turns thinking off (its default); -1 (dynamic thinking) on each. The API answers
# 400 INVALID_ARGUMENT to a budget below the range, after the call is made: the mapping refuses one first.
PRO_LOWEST_BUDGET = 128
FLASH_LITE_LOWEST_BUDGET = 512


def lowest_budget(model: str) -> int:
    """The smallest thinking budget above 0 a Gemini 2.5 model takes (128 on Pro, 512 on Flash-Lite); 1 where Google
    documents none (2.5 Flash; Gemini 3, which takes a level)."""
    name = model.rsplit("/", 1)[-1]
    if not takes_budget_only(model):
        return 1
    if "-flash-lite" in name:
        return FLASH_LITE_LOWEST_BUDGET
    return PRO_LOWEST_BUDGET if "-pro" in name else 1
