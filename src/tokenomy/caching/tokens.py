"""Token-efficiency policies: cap output, trim old history (keeping the system prompt), warn if uncapped."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Annotated

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

from tokenomy.caching.placement import estimate_tokens
from tokenomy.messages import ChatRequest, ToolResultBlock

log = logging.getLogger("tokenomy.policy")
_warned: set[tuple[str, str]] = set()


# The one definition: `tokenomy.yaml` validates a route's `tokens:` into this class and the client uses it.
@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class TokenPolicy:
    """`max_tokens` caps (or fills in) the output limit; history keeps the last turns / tokens.

    A turn is one message. The system prompt is a separate field and is never truncated, nor is a system message
    in mid-conversation (one cut away with old turns is kept ahead of the rest); after truncation the history
    starts at a user message that answers no tool call it cut away, as every provider requires.
    """

    max_tokens: Annotated[int | None, Field(ge=1)] = None
    max_turns: Annotated[int | None, Field(ge=1)] = None
    max_history_tokens: Annotated[int | None, Field(ge=1)] = None
    warn_uncapped: bool = True


def apply_token_policy(request: ChatRequest, policy: TokenPolicy) -> tuple[ChatRequest, list[str]]:
    """Return the request with caps and truncation applied, plus warnings for the caller."""
    warnings: list[str] = []
    max_tokens = request.max_tokens
    if policy.max_tokens is not None:
        max_tokens = policy.max_tokens if max_tokens is None else min(max_tokens, policy.max_tokens)
    if max_tokens is None and policy.warn_uncapped:
        warnings.append("request has no output cap (max_tokens); a runaway answer is billed in full")
    messages = list(request.messages)
    if policy.max_turns is not None and len(messages) > policy.max_turns:
        messages = messages[-policy.max_turns :]
    if policy.max_history_tokens is not None:
        kept: list = []
        budget = policy.max_history_tokens
        for message in reversed(messages):
            cost = estimate_tokens(message.text)
            if kept and cost > budget:
                break
            kept.append(message)
            budget -= cost
        messages = list(reversed(kept))
    # A conversation truncated here must open with a user turn, and not with the results of tool calls that were
    # cut away (every provider refuses a tool result without its call in the turn before). One the caller opened
    # otherwise (an assistant's greeting, a prefill) is the caller's, sent as is: the provider takes it or says why.
    cut = len(messages) < len(request.messages)
    while cut and len(messages) > 1 and (messages[0].role != "user" or messages[0].blocks_of(ToolResultBlock)):
        messages = messages[1:]
    # A system message in mid-conversation is an instruction, as the system prompt is: the ones cut away with old
    # turns still lead what is kept, in their order (providers with one system prompt merge them into it).
    if len(messages) < len(request.messages):  # on every request: nothing to look for unless turns were cut
        cut_away = request.messages[: len(request.messages) - len(messages)]
        messages = [m for m in cut_away if m.role == "system"] + messages
    if len(messages) < len(request.messages):
        warnings.append(f"history truncated from {len(request.messages)} to {len(messages)} turns")
    for warning in warnings:
        # Log each kind of warning once per model: a gateway sends the same shape of request all day.
        key = (warning.split(" ")[0], request.model)
        if key not in _warned:
            _warned.add(key)
            log.warning("%s (model %s; logged once per model)", warning, request.model)
    if max_tokens == request.max_tokens and len(messages) == len(request.messages):
        return request, warnings  # nothing capped or trimmed: the same request (a copy costs ~4 µs, twice a call)
    return replace(request, messages=messages, max_tokens=max_tokens), warnings
