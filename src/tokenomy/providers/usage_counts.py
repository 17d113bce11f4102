"""Token counts as providers answer them: checked whole numbers in range, or estimated when an answer has none.

A provider's count is money (priced, charged to a budget, stored in the ledger), so a count no answer can have is the
provider's fault, refused by name, never read as 1 token or a crash of the gateway's."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tokenomy.caching.placement import estimate_input_tokens
from tokenomy.chat_response import Usage
from tokenomy.errors import ProviderError
from tokenomy.messages import Block, ChatRequest, ReasoningBlock, TextBlock, ToolUseBlock
from tokenomy.token_estimate import weighted_length


def arguments_text(call: ToolUseBlock) -> str:
    """A tool call's arguments as the model wrote them (or its input as JSON)."""
    return call.arguments if call.arguments is not None else json.dumps(call.input)


def estimated_prompt_tokens(request: ChatRequest) -> int:
    """A prompt's tokens when the server reports none: as rate limits count them (`estimate_input_tokens`: ~4
    characters a token, the tools' definitions and earlier calls' arguments included, images and documents at a
    figure each), not its words alone, which left out what often costs the most (an agent's tools, a screenshot)."""
    return max(1, estimate_input_tokens(request))


def estimated_usage(request: ChatRequest, blocks: list[Block], raw: dict[str, Any]) -> Usage:
    """Usage for a whole answer sent without any (some compatible servers and proxies omit it): the prompt and the
    answer at ~4 characters a token, reasoning and tool calls' arguments included, rather than zero (an answer at $0,
    charged to no budget). The answer's `raw` says it was estimated."""
    raw["usage_source"] = "estimated"
    thought = sum(weighted_length(b.text) for b in blocks if isinstance(b, ReasoningBlock))
    said = sum(weighted_length(b.text) for b in blocks if isinstance(b, TextBlock))
    said += sum(weighted_length(arguments_text(b)) + len(b.name) for b in blocks if isinstance(b, ToolUseBlock))
    reasoning = -(-thought // 4)
    return Usage(
        input_tokens=estimated_prompt_tokens(request),
        output_tokens=-(-said // 4) + reasoning,
        reasoning_tokens=reasoning,
    )


def with_estimated(usage: Usage, prompt: bool, answer: bool, estimate: Callable[[], Usage]) -> Usage:
    """`usage` with the counts its answer left out (`prompt`, `answer`: whether it counted its prompt, its answer; a
    usage of `{}` or nulls counts neither) taken from `estimate` rather than as zero: the provider billed them too,
    and a count of zero is an answer at $0, charged to no budget."""
    if prompt and answer:
        return usage
    guess = estimate()
    if not prompt and not answer:
        return guess
    if not prompt:
        usage.input_tokens = guess.input_tokens
    if not answer:
        usage.output_tokens, usage.reasoning_tokens = guess.output_tokens, guess.reasoning_tokens
    return usage


# More tokens than any model reads or writes in one call (the largest context windows hold a few million): a count
# past it is garbage, which priced would charge a budget millions and which the ledger's columns may not even hold.
MAX_ANSWER_TOKENS = 2**31 - 1


def whole_count(value: Any) -> int | None:
    """`value`, a token count as an answer's JSON gave it, as an int; None when it is not a whole number (text, a
    fraction, a boolean, which Python's int() would read as 12 for 12.5 and 1 for true)."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():  # 12.0: a whole number all the same
        return int(value)
    return None


def answered_count(counted: Any, provider: str, name: str) -> int:
    """The count a provider's token-counting endpoint answered (Anthropic's input_tokens, Bedrock's inputTokens,
    Gemini's totalTokens, named `name`): one missing, not a whole number, negative or past MAX_ANSWER_TOKENS is the
    provider's fault (a ProviderError, the gateway's 502), not a crash of the gateway's (a 500) nor a count to pass
    on to the caller."""
    whole = whole_count(counted)
    if whole is None or not 0 <= whole <= MAX_ANSWER_TOKENS:
        raise miscounted(counted, provider, name)
    return whole


def miscounted(counted: Any, provider: str, name: str) -> ProviderError:
    """The fault of a token count `answered_count` refuses, for a provider whose SDK refused it first."""
    return ProviderError(f"{provider} answered a token count no request can have: {name} {counted!r}")


def usage_count(value: Any, provider: str, name: str) -> int:
    """One count of an answer's usage (`name` as the provider spells it) as an int: none sent (None) is 0; one that
    is not a whole number (true, 100.5, text) is the provider's fault, a ProviderError (server_error, reached: it
    answered, and bills it), not 1 token, 100, or a ValueError's 500. `checked_counts` checks the counts' range."""
    if value is None:
        return 0
    whole = whole_count(value)
    if whole is None:
        raise ProviderError(f"{provider} answered with token counts no answer can have: {name} {value!r}", reached=True)
    return whole


def _audio_over(usage: Usage) -> bool:
    """Whether an audio count is negative or more than its whole (input, cache read, output)."""
    audio = (usage.audio_input_tokens, usage.audio_cache_read_tokens, usage.audio_output_tokens)
    if not any(audio):
        return False
    wholes = (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens)
    return min(audio) < 0 or any(part > whole for part, whole in zip(audio, wholes, strict=True))


def checked_counts(usage: Usage, provider: str) -> Usage:
    """`usage` as a provider's answer reported it; a ProviderError (server_error, reached: the provider answered,
    and bills it) when a count is negative: recorded so, the answer would be priced at $0 and charged nothing to its
    budget, and the gateway's metrics refuse it (a 500 for an answer already recorded). A count past
    MAX_ANSWER_TOKENS is refused alike: it was answered "ok", charged to the budget in the trillions of dollars, and
    its row set aside out of the ledger. An audio count is a part of its whole (input, cache read, output): more is
    refused too, as the cost engine would refuse to price it."""
    counts = (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens)
    one_hour = usage.cache_write_1h_tokens
    every = (*counts, usage.reasoning_tokens, one_hour)
    if min(every) < 0 or max(every) > MAX_ANSWER_TOKENS or one_hour > usage.cache_write_tokens or _audio_over(usage):
        raise ProviderError(f"{provider} answered with token counts no answer can have: {usage}", reached=True)
    return usage
