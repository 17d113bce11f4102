"""A budgeted call's worst-case cost before it is sent: per answer it may pay for, the price lines of the models
that may write it, and, for a call that sets no output cap, what each model's output is reserved at (`Bound`).
`Gateway.worst_case` builds one from a request and its route; the refusal of a call a budget cannot hold reads it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tokenomy.gateway.limits import to_nano
from tokenomy.pricing.server_tools import Fetched
from tokenomy.token_estimate import bound_text_tokens


def predicted_tokens(prediction: Any) -> int:
    """The output tokens a predicted output (OpenAI's `prediction`) may add to a call's bill: its rejected tokens are
    billed at completion rates on top of what `max_tokens` allows, so at worst all of its text (at the upper bound of
    its tokens a prompt is reserved at, `bound_text_tokens`). Its text parts' text, or the whole field as JSON when it
    has another shape."""
    if not prediction:
        return 0
    content = prediction.get("content") if isinstance(prediction, dict) else prediction
    if isinstance(content, str):
        return bound_text_tokens(content)
    if isinstance(content, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in content):
        return bound_text_tokens("".join(p["text"] for p in content))
    return bound_text_tokens(json.dumps(prediction))


def asks_for_audio(extra: dict[str, Any]) -> bool:
    """Whether a call asks for a spoken answer (OpenAI's `modalities` with "audio"), whose audio tokens are billed at
    the model's audio output price."""
    modalities = extra.get("modalities")
    return isinstance(modalities, list) and "audio" in modalities


def audio_prices(entry: Any, rate: Any) -> tuple[Decimal, Decimal]:
    """An audio input and an audio output token's price (USD per million) on a model that bills audio apart from text
    (its entry's `input_audio`, `output_audio`; 0 where it has none: it bills audio as text), at `rate`'s prices: a
    service tier's or a long context's are the entry's scaled by their ratio to its text prices, as a tier's audio
    is derived when it is priced (`rates.tier_audio_rates`)."""

    def scaled(audio: Decimal | None, text: Decimal | None, priced: Decimal | None) -> Decimal:
        if audio is None:
            return Decimal(0)
        if rate is entry or not text or priced is None:
            return Decimal(audio)
        return Decimal(audio) * Decimal(priced) / Decimal(text)

    return (
        scaled(entry.input_audio, entry.input, rate.input),
        scaled(entry.output_audio, entry.output, rate.output),
    )


@dataclass(frozen=True)
class Bound:
    """What a call that sets no output cap is reserved at on one model: `tokens` of output, and why (`kind`):
    "provider", the cap its provider sends such a call (Anthropic's Messages API requires one); "catalog", the
    model's maximum output in the price catalog (within its context window, less the prompt); "estimate",
    DEFAULT_OUTPUT_ESTIMATE plus its thinking budget, where neither is known."""

    model: str  # as the price catalog names it (its entry gives the maximum output)
    tokens: int
    kind: str
    budget: int = 0  # the request's thinking budget (tokens), which Claude requires to be below max_tokens

    def reason(self) -> str:
        """What a call that sets no output cap was reserved at on this model, and why, for its refusal."""
        past = f", {self.tokens - self.budget:,} past its thinking budget of {self.budget:,}" if self.budget else ""
        if self.kind == "provider":
            return f"{self.tokens:,} output tokens, the cap {self.model} is sent when a request sets none{past}"
        if self.kind == "catalog":
            return f"{self.model}'s maximum output of {self.tokens:,} tokens"
        return (
            f"{self.tokens:,} output tokens{past} (the price catalog has no maximum output for {self.model}: an "
            "estimate, which a longer answer overspends)"
        )


@dataclass(frozen=True)
class Line:
    """One price a model of the call may bill at: its prompt's cost (USD per million tokens times the prompt), its
    output price (USD per million tokens), and, for a call with no cap, what its output is reserved at; `held`, the
    lower cap the client sends this model (its maximum output: `CallPlanner.held_cap`), where it does."""

    prompt_usd_m: Decimal
    output_price: Decimal
    bound: Bound | None
    held: int | None = None


@dataclass(frozen=True)
class WorstCase:
    """A call's worst-case cost, by the output it may write: per answer it may pay for (a cascade's tiers), the lines
    of the models that may write it, the dearest of which is reserved; plus the web searches it may run."""

    answers: list[list[Line]]
    searches: Decimal  # USD
    cap: int | None  # the cap every attempt is sent with (the request's, or the route's; but Line.held); None: none
    choices: int  # OpenAI's `n`: each choice writes up to the cap
    unsized: int = 0  # documents sent by URL or file id: the prompt is reserved at each model's context window
    predicted: int = 0  # output tokens billed past the cap: a predicted output's rejected tokens (`predicted_tokens`)
    fetched: Fetched | None = None  # what its server tools may bring into the prompt (`fetched_content`)

    def nano(self, cap: int | None = None) -> int:
        """The worst case in nano-USD: each model's output at `cap`, or by default at the call's own cap, or (a call
        with none) at each model's bound."""
        cap = self.cap if cap is None else cap
        total = Decimal(0)
        for lines in self.answers:
            worst = Decimal(0)
            for line in lines:
                # max_tokens 0 (Anthropic's cache warming) generates nothing: its prompt alone is reserved.
                output = cap if cap is not None else (line.bound.tokens if line.bound is not None else 0)
                if line.held is not None:
                    output = min(output, line.held)
                output += self.predicted
                worst = max(worst, line.prompt_usd_m + Decimal(output * self.choices) * line.output_price)
            total += worst
        return to_nano(total / Decimal(1_000_000) + self.searches)

    def binding(self) -> Bound | None:
        """For a call with no cap: the bound of the line that costs the most (the one its reservation is for)."""
        if self.cap is not None:
            return None
        priced = [
            (
                line.prompt_usd_m + Decimal((line.bound.tokens + self.predicted) * self.choices) * line.output_price,
                line.bound,
            )
            for lines in self.answers
            for line in lines
            if line.bound is not None
        ]
        return max(priced, key=lambda pair: pair[0])[1] if priced else None

    def affordable(self, nano: int) -> int:
        """The largest output cap from 1 up to the call's bound whose worst case is within `nano` nano-USD (0: not even
        a cap of 1). For a call with no cap."""
        bound = self.binding()
        low, high = 0, max(bound.tokens if bound is not None else 0, 1)  # nano(low) fits, or low is 0
        while low < high:
            middle = (low + high + 1) // 2
            if self.nano(middle) <= nano:
                low = middle
            else:
                high = middle - 1
        return low
