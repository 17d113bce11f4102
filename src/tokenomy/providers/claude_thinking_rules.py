"""Claude's rules for a request that thinks (extended thinking on Anthropic's API and Bedrock alike), checked before
any call: no forced tool call while thinking, sampling as thinking requires, a budget of at least 1,024 tokens and
below the output cap (but under the interleaved-thinking beta), and the budget an attempt held to a model's maximum
output is sent (`CallPlanner`). Each is a ProviderError named by its field, so a fallback that takes the request is
tried instead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenomy.errors import ProviderError
from tokenomy.messages import ChatRequest
from tokenomy.providers.claude_effort import BUDGET, NO_THINKING, thinks

# Claude cannot think before a call it is forced to make (tool_choice any or tool: Anthropic prefills its answer with
# the call), and its API answers 400 "Thinking may not be enabled when tool_choice forces tool use" (Anthropic's
# extended-thinking docs: with thinking, tool_choice auto and none only). Refused by the mapping before any call,
# naming both fields (ProviderError.also), so a fallback that takes the request is tried instead.
FORCED_WITH_THINKING = (
    "cannot force a tool call while thinking is on (`thinking`): let the model choose whether to call a tool (auto), "
    "or turn thinking off"
)


def forces_tool_while_thinking(request: ChatRequest) -> bool:
    """A tool call forced (tool_choice any or tool) with a thinking budget (Claude's thinking enabled)."""
    choice, reasoning = request.tool_choice, request.reasoning
    forced = choice is not None and choice.mode in ("any", "tool")
    return forced and reasoning is not None and not reasoning.off and reasoning.budget_tokens is not None


# Claude samples while it thinks as it must: with thinking on, its API takes no temperature but 1 (400 "`temperature`
# may only be set to 1 when thinking is enabled"), no top_k, and a top_p only from 0.95 to 1 (Anthropic's
# extended-thinking docs, Bedrock's alike). Refused by the mapping before any call, naming the field and `thinking`.
def sampling_refused_while_thinking(request: ChatRequest) -> tuple[str, str] | None:
    """(the field, why) of a sampling setting Claude refuses with a thinking budget; None when there is none."""
    reasoning = request.reasoning
    if reasoning is None or reasoning.off or reasoning.budget_tokens is None:
        return None
    fix = "while thinking is on (`thinking`); remove it, or turn thinking off"
    if request.temperature is not None and request.temperature != 1:
        return "temperature", f"takes only temperature 1 {fix}"
    if request.top_k is not None:
        return "top_k", f"takes no top_k {fix}"
    if request.top_p is not None and not 0.95 <= request.top_p <= 1:
        return "top_p", f"takes a top_p only from 0.95 to 1 {fix}"
    return None


# Claude's thinking budget is part of its output, so its API takes a budget of at least 1,024 tokens and below
# max_tokens (400 "`max_tokens` must be greater than `thinking.budget_tokens`"), except with interleaved thinking
# (its beta), where the budget is the whole turn's and may exceed max_tokens (Anthropic's extended-thinking docs;
# Bedrock's alike). Refused by the mapping before any call, naming the cap as the caller sent it and the budget.
MIN_THINKING_BUDGET = 1024
INTERLEAVED_BETA = "interleaved-thinking-"  # interleaved-thinking-2025-05-14
# Where a caller's Anthropic betas are in `extra`: /v1/messages' header, InvokeModel's body field, Converse's field.
BETA_PLACES = ("anthropic-beta", "anthropic_beta")


def interleaved_thinking(extra: Mapping[str, Any]) -> bool:
    """Whether the caller's betas (a header's comma-separated text, or a body's list) ask for interleaved thinking."""
    model_fields = extra.get("additionalModelRequestFields")
    places = [extra, model_fields] if isinstance(model_fields, dict) else [extra]
    for fields in places:
        for key in BETA_PLACES:
            betas = fields.get(key)
            named = betas.split(",") if isinstance(betas, str) else betas if isinstance(betas, list) else []
            if any(isinstance(b, str) and b.strip().startswith(INTERLEAVED_BETA) for b in named):
                return True
    return False


def budget_refused_while_thinking(request: ChatRequest, model: str) -> tuple[str, str, str | None] | None:
    """(the field, why, the other field it names) of a thinking budget Claude `model` refuses: any, for a model with
    no thinking (Claude 3 Haiku: the API's 400 after the call), one below its minimum, or not below the request's cap;
    None when there is none. A request with no cap is sent one above the budget where one is sent (the model's
    maximum output, never below 1,024 past the budget: `anthropic_mapping.default_max_tokens`); Converse sends none."""
    reasoning = request.reasoning
    if reasoning is None or reasoning.off or reasoning.budget_tokens is None:
        return None
    if thinks(model) is False:
        return (BUDGET, NO_THINKING, None)
    budget, cap = reasoning.budget_tokens, request.max_tokens
    if budget < MIN_THINKING_BUDGET:
        return (
            BUDGET,
            f"takes a thinking budget of at least {MIN_THINKING_BUDGET} tokens (got {budget}); raise it to "
            f"{MIN_THINKING_BUDGET} or more, or turn thinking off",
            None,
        )
    if cap is not None and cap <= budget and not interleaved_thinking(request.extra):
        return (
            request.max_tokens_name,  # the caller's name for it (max_completion_tokens), which each ingress renames
            f"takes an output cap above the thinking budget (`{BUDGET}`, {budget} tokens), which the cap includes "
            f"(got {cap}); raise the cap above {budget}, or lower the budget",
            BUDGET,
        )
    return None


def held_thinking_budget(request: ChatRequest, model: str, held: int) -> int | None:
    """The thinking budget Claude `model` is sent when its output cap is held to `held`, below the request's own (the
    model's maximum output: `CallPlanner.held_cap`), when the request's budget is not below it (Claude's 400): lowered
    as far as its cap is, so the answer keeps the room the caller left it past its thinking, but never below Claude's
    minimum. None where the request's budget stands: none, thinking off, a model with no thinking or that is no Claude
    (refused or carried as they are), interleaved thinking (its budget may exceed the cap), a budget the request's own
    cap already refuses (named as the caller sent it), or one below `held` (valid as asked: only what must change
    does). A budget not below `held` says none fits (`held_budget_refusal`)."""
    reasoning, cap = request.reasoning, request.max_tokens
    if reasoning is None or reasoning.off or reasoning.budget_tokens is None or cap is None or not thinks(model):
        return None
    budget = reasoning.budget_tokens
    if budget < MIN_THINKING_BUDGET or budget >= cap or interleaved_thinking(request.extra):
        return None
    if budget < held:  # valid below the held cap: sent as the caller asked it
        return None
    return max(MIN_THINKING_BUDGET, held - (cap - budget))


def held_budget_refusal(request: ChatRequest, model: str, held: int, asked: int) -> ProviderError:
    """The 400 for an attempt whose held cap leaves no room for a thinking budget Claude `model` takes (at least its
    minimum, and below the cap): refused before the call (`param`), so the next model of the chain is tried."""
    budget = request.reasoning.budget_tokens if request.reasoning is not None else None
    return ProviderError(
        f"{request.max_tokens_name}: model {model} writes {held} output tokens at most, so it is sent that cap in "
        f"place of the {asked} asked, which leaves no room for the thinking budget (`{BUDGET}`, {budget} tokens): "
        f"Claude takes one of at least {MIN_THINKING_BUDGET} tokens and below the cap; turn thinking off, or send "
        "the request to a model with a larger maximum output",
        kind="client_error",
        status=400,
        param=request.max_tokens_name,
        also=BUDGET,
    )
