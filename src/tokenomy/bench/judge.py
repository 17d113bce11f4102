"""LLM-as-a-judge: one fixed evaluator scores every candidate on the same rubric (1–5 per criterion)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from tokenomy.bench.scorers import extract_json
from tokenomy.chat_response import ChatResponse
from tokenomy.messages import ChatRequest, RequestMeta

# Six lines of `criterion: 4 - a few words` fit in ~70 tokens for a capable evaluator; a weak one that ignores
# the format is then asked per missing criterion, where a digit and a few words is all we need.
MAIN_TOKENS = 72
SINGLE_TOKENS = 10
RUBRIC = ("correctness", "completeness", "helpfulness", "coherence", "relevance", "safety")
JUDGE_SYSTEM = (
    "You are a strict evaluator. Score the ANSWER to the TASK on each criterion from 1 (bad) to 5 "
    "(excellent) with a few words of reason. Reply with exactly one line per criterion, in the form "
    "`criterion: score - reason`, for: " + ", ".join(RUBRIC) + "."
)


@dataclass
class Verdict:
    scores: dict[str, int]
    reasons: dict[str, str]
    quality: float  # 0–100
    parsed: bool
    cost_usd: object
    raw: str


def judge_prompt(task_prompt: str, answer: str, expected: object = None, ask: str = "Scores:") -> str:
    reference = f"\nREFERENCE ANSWER: {expected}" if expected not in (None, "") else ""
    return f"TASK: {task_prompt}{reference}\nANSWER: {answer}\n\n{ask}"


def _from_json(text: str) -> tuple[dict[str, int], dict[str, str]]:
    """Evaluators asked for lines sometimes answer in JSON: {"correctness": 4} or {"correctness": {"score": 4, ...}}."""
    try:
        data = extract_json(text)
    except ValueError:  # json.JSONDecodeError is a ValueError
        return {}, {}
    if not isinstance(data, dict):
        return {}, {}
    scores, reasons = {}, {}
    lowered = {str(k).lower(): v for k, v in data.items()}
    for criterion in RUBRIC:
        value = lowered.get(criterion)
        reason = ""
        if isinstance(value, dict):
            reason = str(value.get("reason") or value.get("explanation") or value.get("why") or "")
            value = value.get("score", value.get("rating"))
        try:
            number = int(float(value))  # type: ignore[arg-type]  # anything the judge wrote; bad values are skipped
        except (TypeError, ValueError):
            continue
        if 1 <= number <= 5:
            scores[criterion], reasons[criterion] = number, reason[:120]
    return scores, reasons


def parse_verdict(text: str) -> tuple[dict[str, int], dict[str, str]]:
    """Scores and reasons from `criterion: N - reason` lines (bold, brackets, 'score:', '/5', 'out of 5' and a
    missing reason tolerated) or from a JSON object; a criterion without a 1–5 digit is left out."""
    scores, reasons = _from_json(text)
    for criterion in RUBRIC:
        if criterion in scores:
            continue
        match = re.search(
            rf"{criterion}[^0-9\n]{{0,24}}?(?<![\d.])([1-5])(?![\d])(?:\.\d)?"
            rf"(?:[ \t]*(?:/|out of)[ \t]*5)?[ \t\])*|]*[-–—:,.;)]?[ \t]*(.*)",
            text,
            re.I,
        )
        if match:
            scores[criterion] = int(match.group(1))
            reasons[criterion] = match.group(2).strip(" *-–—|").strip()[:120]
    return scores, reasons


def paid(response: ChatResponse) -> Decimal:
    """What a call cost: every attempt the client paid for (an abandoned stream retried, a fallback), not only the
    answer that came back (`cost_usd`), which is what the ledger's rows for the call add up to."""
    spent = response.call_cost_usd if response.call_cost_usd is not None else response.cost_usd
    if spent is None:  # never from Tokenomy's client, which prices every answer; not to be read as $0
        raise ValueError(f"the answer from {response.model} carries no cost")
    return spent


def judge(client, model: str, task_prompt: str, answer: str, expected: object = None) -> Verdict:
    """Ask the evaluator for the whole rubric; criteria it did not score are asked one at a time.

    A criterion that still gets no digit counts as 1, so a judge that rambles can't inflate scores.
    """
    meta = RequestMeta(task="bench-judge")
    response = client.chat(
        ChatRequest.simple(
            judge_prompt(task_prompt, answer, expected),
            model=model,
            system=JUDGE_SYSTEM,
            max_tokens=MAIN_TOKENS,
            temperature=0.0,
            meta=meta,
        )
    )
    scores, reasons = parse_verdict(response.text)
    cost = paid(response)
    raw = [response.text]
    for criterion in [c for c in RUBRIC if c not in scores]:
        single = client.chat(
            ChatRequest.simple(
                judge_prompt(
                    task_prompt,
                    answer,
                    expected,
                    f"On a scale of 1 to 5, how good is the ANSWER's {criterion}? "
                    "Reply with one digit, then a few words why.",
                ),
                model=model,
                max_tokens=SINGLE_TOKENS,
                temperature=0.0,
                meta=meta,
            )
        )
        cost += paid(single)
        raw.append(single.text)
        digit = re.search(r"(?<![\d.])[1-5](?!\d)", single.text)
        if digit:
            scores[criterion] = int(digit.group(0))
            reasons[criterion] = single.text[digit.end() :].strip(" .:-")[:120]
    full = {c: scores.get(c, 1) for c in RUBRIC}
    quality = (sum(full.values()) / len(RUBRIC) - 1) / 4 * 100
    return Verdict(full, reasons, quality, parsed=len(scores) == len(RUBRIC), cost_usd=cost, raw="\n".join(raw))
