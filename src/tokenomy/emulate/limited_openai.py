"""The instant OpenAI-format upstream with a tokens-per-minute quota: HTTP 429 + Retry-After when over.

Like a real provider's account quota, a token bucket of `tpm` per minute (holding at most
`burst_s` seconds of allowance) is charged each request's tokens (prompt ~ characters / 4 plus
max_tokens, as the instant server reports them); a request that does not fit is refused with 429
and the seconds until it would. Used by the batch runner's tests and throughput benchmark.
"""

from __future__ import annotations

import json
import time

from tokenomy.emulate.instant_openai import InstantOpenAI


class _Quota:
    def __init__(self, tpm: float, burst_s: float) -> None:
        self.rate = tpm / 60
        self.capacity = self.rate * burst_s
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.accepted_tokens = 0
        self.accepted = 0
        self.refused = 0

    def take(self, tokens: int) -> float:
        """0 when admitted, else seconds to wait."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if tokens > self.tokens:
            self.refused += 1
            return (tokens - self.tokens) / self.rate
        self.tokens -= tokens
        self.accepted += 1
        self.accepted_tokens += tokens
        return 0.0


def _tokens(body: bytes) -> int:
    request = json.loads(body or b"{}")
    prompt_chars = sum(len(str(m.get("content", ""))) for m in request.get("messages", []))
    return max(1, prompt_chars // 4) + int(request.get("max_tokens") or 16)


class LimitedOpenAI(InstantOpenAI):
    """`with LimitedOpenAI(tpm=60_000) as url:` serves in a thread; `.quota` counts accepted and refused."""

    def __init__(self, tpm: float, burst_s: float = 2.0, delay_s: float = 0.0) -> None:
        super().__init__(delay_s=delay_s)
        self.quota = _Quota(tpm, burst_s)

    def _refusal(self, body: bytes) -> bytes | None:
        wait = self.quota.take(_tokens(body))
        if not wait:
            return None
        payload = json.dumps(
            {
                "error": {
                    "message": "Rate limit reached for tokens per min (TPM)",
                    "type": "tokens",
                    "code": "rate_limit_exceeded",
                }
            }
        ).encode()
        return (
            b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
            b"retry-after: "
            + f"{wait:.3f}".encode()
            + b"\r\ncontent-length: "
            + str(len(payload)).encode()
            + b"\r\n\r\n"
            + payload
        )
