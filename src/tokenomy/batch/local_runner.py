"""The local batch runner: for providers without a batch service (the local model, any OpenAI-compatible server).

Records go through `Tokenomy.chat` with bounded concurrency under requests- and tokens-per-minute
limits. Throttling (HTTP 429) slows the whole runner down (the shared
rate is cut and recovers as calls succeed) and the record is retried with jittered back-off; a user only sees
it if every attempt was throttled, and then the record simply stays pending for `resume`.

Running a stored job through it (claiming the job, recording each answer in the ledger crash-safely, the job's final
status) is local_job.py's: this module sends records through a client and knows nothing of jobs or the ledger.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tokenomy.batch.conversion import require_carried
from tokenomy.batch.formats import BatchRecord
from tokenomy.batch.output_caps import LOCAL_MAX_TOKENS
from tokenomy.chat_response import ChatResponse
from tokenomy.errors import ProviderError
from tokenomy.messages import ChatRequest, Message, RequestMeta
from tokenomy.resilience.ratelimit import RateLimiter
from tokenomy.resilience.retry import RetryPolicy


class AdaptiveLimiter(RateLimiter):
    """A RateLimiter that starts with only a few seconds' allowance (no minute-long burst) and
    backs off multiplicatively when the server throttles, recovering additively as calls succeed."""

    def __init__(self, rpm: float | None, tpm: float | None, burst_s: float = 2.0, floor: float = 0.1) -> None:
        super().__init__(rpm, tpm)
        self.max_rpm, self.max_tpm, self.floor = rpm, tpm, floor
        with self._lock:
            self._requests = max(1.0, (rpm or 0) * burst_s / 60) if rpm else 0.0
            self._tokens = (tpm or 0) * burst_s / 60

    def _scale(self, factor: float) -> None:
        for name, top in (("rpm", self.max_rpm), ("tpm", self.max_tpm)):
            if top:
                setattr(self, name, min(top, max(top * self.floor, getattr(self, name) * factor)))

    def throttled(self) -> None:
        """The server said slow down: cut the rate by 30% and drain the buckets so everyone pauses."""
        with self._lock:
            self._refill()
            self._scale(0.7)
            self._requests = min(self._requests, 0.0)
            self._tokens = min(self._tokens, 0.0)

    def succeeded(self) -> None:
        """Creep back towards the configured rate (+2% of it per success)."""
        with self._lock:
            for name, top in (("rpm", self.max_rpm), ("tpm", self.max_tpm)):
                if top:
                    setattr(self, name, min(top, getattr(self, name) + top * 0.02))


@dataclass
class RunStats:
    """What one runner pass did."""

    answered: int = 0
    failed: int = 0
    gave_up: int = 0  # every attempt throttled/failed transiently: left pending for resume
    throttled: int = 0  # 429s absorbed by back-off (not errors the user sees)
    tokens: int = 0
    seconds: float = 0.0
    stopped: bool = False
    last_error: str | None = None  # why the last record failed or was given up, so the job message can say it

    @property
    def tokens_per_minute(self) -> float:
        return self.tokens * 60 / self.seconds if self.seconds else 0.0


def to_request(rec: BatchRecord, model: str) -> ChatRequest:
    """A batch record as a chat request (system turns folded into the system prompt)."""
    require_carried(rec, "the local runner")
    system = "\n".join(filter(None, [rec.system] + [m["content"] for m in rec.messages if m["role"] == "system"]))
    turns = [Message(m["role"], m["content"]) for m in rec.messages if m["role"] != "system"]
    return ChatRequest(
        messages=turns,
        model=model,
        system=system or None,
        max_tokens=rec.max_tokens or LOCAL_MAX_TOKENS,
        temperature=rec.temperature,
        meta=RequestMeta(request_id=rec.id),  # every ledger row of the record, its answer's too, names it
    )


# Told (records done, records in the run, tokens per minute so far) after each record.
ProgressCallback = Callable[[int, int, float], None]


class LocalRunner:
    """Runs records through a Tokenomy client; calls `on_answer`/`on_error` (serialised) as each finishes."""

    def __init__(
        self,
        client,
        model: str,
        concurrency: int = 4,
        rpm: float | None = None,
        tpm: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        from tokenomy.client import CallPolicy

        self.client, self.model = client, model
        self.concurrency = max(1, concurrency)
        self.limiter = AdaptiveLimiter(rpm, tpm) if (rpm or tpm) else None
        self.retry = retry or RetryPolicy(max_attempts=10, base_delay_s=0.5, max_delay_s=20.0, deadline_s=3600)
        # One attempt per chat(): retries happen here so throttling can also slow the shared limiter.
        self.policy = CallPolicy(
            retry=RetryPolicy(max_attempts=1, deadline_s=self.retry.deadline_s), limiter=self.limiter
        )
        self._commit = threading.Lock()

    def run(
        self,
        records: list[BatchRecord],
        on_answer: Callable[[BatchRecord, ChatResponse], None],
        on_error: Callable[[BatchRecord, str], None],
        stop: threading.Event | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> RunStats:
        """`on_progress(done, total, tokens_per_minute)` is called as each record finishes (the CLI draws it)."""
        stop = stop or threading.Event()
        stats = RunStats()
        started = time.monotonic()
        done = 0

        def advance() -> None:
            nonlocal done
            done += 1
            if on_progress is not None:
                on_progress(done, len(records), stats.tokens * 60 / max(1e-6, time.monotonic() - started))

        def one(rec: BatchRecord) -> None:
            request = to_request(rec, self.model)
            attempt = 0
            while not stop.is_set():
                attempt += 1
                try:
                    response = self.client.chat(request, mode="on_demand", policy=self.policy)
                except ProviderError as exc:
                    if exc.kind == "throttled":
                        stats.throttled += 1
                        if self.limiter:
                            self.limiter.throttled()
                    if not exc.retryable:
                        with self._commit:
                            on_error(rec, f"{exc.kind}: {exc}")
                            stats.failed += 1
                            stats.last_error = f"{exc.kind}: {exc}"
                            advance()
                        return
                    delay = self.retry.delay(attempt, exc)
                    if attempt >= self.retry.max_attempts or time.monotonic() - started + delay > self.retry.deadline_s:
                        stats.gave_up += 1
                        stats.last_error = f"{exc.kind}: {exc}"
                        return
                    stop.wait(delay)
                    continue
                if self.limiter:
                    self.limiter.succeeded()
                with self._commit:
                    on_answer(rec, response)
                    stats.answered += 1
                    stats.tokens += response.usage.total_input_tokens + response.usage.output_tokens
                    advance()
                return

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="batch") as pool:
            futures = [pool.submit(one, rec) for rec in records]
            try:
                for future in futures:
                    future.result()  # a non-provider error (bad config, ledger down) stops the run
            except BaseException:
                stop.set()
                raise
        stats.seconds = time.monotonic() - started
        stats.stopped = stop.is_set()
        return stats
