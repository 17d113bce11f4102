"""The contract between batch jobs (jobs.py and the command layer) and the services that run them.

A backend starts provider-side work for a list of records, reports its state, yields one result per
record when done and can stop it. Bedrock and OpenAI run remotely (the job survives our process);
the local runner works in-process and keeps its progress in the ledger database.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tokenomy.batch.formats import BatchRecord
from tokenomy.caching.placement import estimate_tokens
from tokenomy.chat_response import Usage
from tokenomy.errors import ConfigError, remember_secret

# Normalised job states. Provider statuses map onto these (Bedrock: Submitted, Validating, Scheduled,
# InProgress, Completed, PartiallyCompleted, Failed, Stopping, Stopped, Expired; OpenAI: validating,
# in_progress, finalizing, completed, failed, expired, cancelling, cancelled).
STATES = (
    "submitted",
    "validating",
    "scheduled",
    "in_progress",
    "completed",
    "partially_completed",
    "failed",
    "stopping",
    "stopped",
    "expired",
)
FINAL_STATES = frozenset({"completed", "partially_completed", "failed", "stopped", "expired"})


# A record's failure that another run may not repeat: the provider throttled it (429) or failed (5xx), by the HTTP
# status a backend puts first in its error ("429: Resource has been exhausted"), or Google's status name.
_TRANSIENT = re.compile(r"^\s*(429|5\d\d|RESOURCE_EXHAUSTED|UNAVAILABLE|DEADLINE_EXCEEDED|INTERNAL)\b")


def transient(error: str | None) -> bool:
    """Whether a record's stored error is one a resubmission may answer (resume sends it again)."""
    return bool(error and _TRANSIENT.search(error))


# A record's failure the provider gave because the request as written is refused (400 Bad Request, 413 too large, 422
# unprocessable, Google's INVALID_ARGUMENT), by the status a backend puts first: sent unchanged it is refused again.
_REFUSED = re.compile(r"^\s*(400|413|422|INVALID_ARGUMENT)\b")


# How a part's message starts when the provider refused the part whole as written (its create answered 400, 413 or 422,
# or its job failed at validation): `resume` does not send it unchanged unless asked (`--resend-refused`).
REFUSED_PART = "refused at validation"


def refused(error: str | None) -> bool:
    """Whether a record's stored error is the provider refusing the request as written (a validation error): the
    user fixes the record and submits it again (`batch results --failed-input`)."""
    return bool(error and _REFUSED.search(error))


def utc_time(value: Any) -> datetime | None:
    """A provider's timestamp (epoch seconds, RFC 3339 text, or a datetime, naive ones being UTC) in UTC; None for
    none, or text that is no time."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def estimated_usage(prompt: str, answer: str) -> Usage:
    """Tokens of an answered record whose output carries no usage, estimated from its prompt and answer (~4
    characters a token): the provider billed it, so it is recorded as an estimate, never as nothing or $0."""
    return Usage(input_tokens=max(1, estimate_tokens(prompt)), output_tokens=estimate_tokens(answer))


@dataclass
class RecordResult:
    """The outcome of one input record: its answer and usage, or why it failed."""

    id: str
    text: str | None = None
    usage: Usage | None = None  # None on an answer whose output carries no usage: `records` estimates it
    error: str | None = None
    model: str | None = None  # the model that actually answered, when the provider says
    raw: dict[str, Any] | None = None  # the provider's output line, kept for `results -o`
    answered_at: datetime | None = None  # when it was answered, if it may be recorded later (a runner's journal)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class SubmitOptions:
    """Backend settings from the command line or config; unused keys are ignored by each backend."""

    region: str | None = None
    role_arn: str | None = None
    s3_uri: str | None = None  # s3://bucket/prefix for Bedrock inputs and outputs
    kms_key_id: str | None = None
    timeout_hours: int | None = None
    endpoint_url: str | None = None  # emulators and compatible servers
    extra: dict[str, Any] = field(default_factory=dict)


class BatchBackend(ABC):
    """One batch service. `handle` is the provider's job id/ARN, stored by jobs.py per part."""

    name: str

    def input_line(self, model: str, rec: BatchRecord) -> str:
        """The record as this backend sends it (its JSONL line, or its inline request), without the newline: what the
        provider's size limits count, so a job is split by it (`jobs.prepare_job`), not by the line as written."""
        return json.dumps(rec.raw)

    def check(self, options: SubmitOptions) -> None:
        """Raise ConfigError for settings this backend cannot run with, before a job is stored (no network)."""
        return None  # most backends have nothing to check before the provider call

    @abstractmethod
    def submit(
        self, job_id: str, model: str, records: list[BatchRecord], options: SubmitOptions, key: str | None = None
    ) -> str:
        """Start provider work for one part (records already split to quotas); return its handle. `key` names the
        part (default: the job id), the same each time it is sent: the job is created under it, so `find` can tell
        whether a create whose answer was lost was accepted."""

    @abstractmethod
    def find(self, key: str) -> str | None:
        """The handle of a job already created under `key`, or None. A create can be accepted and its answer lost
        (a timeout, a dropped connection); sending it again would run, and bill, every record twice."""

    def unfindable(self) -> str | None:
        """None when `find` can tell whether a create was accepted; else why it cannot and how the user can tell
        (`jobs.submit_parts` says it once before sending again a part whose submit was cut short)."""
        return None

    @abstractmethod
    def status(self, handle: str) -> tuple[str, str | None]:
        """The normalised state (one of STATES) and the provider's message, if any."""

    @abstractmethod
    def results(self, handle: str) -> Iterator[RecordResult]:
        """One result per record the provider answered (missing records are simply absent)."""

    def part_results(self, handle: str, sent: Sequence[str]) -> Iterator[RecordResult]:
        """`results` of a part whose record ids, in the order sent, are `sent`: a backend whose provider may answer
        without naming the record (a Gemini response that lost its key) and keeps no copy of what it sent learns
        here which records no answer names."""
        return self.results(handle)

    def ended_at(self, handle: str) -> datetime | None:
        """When the provider says the part's job ended (UTC): its answers are recorded in the ledger at that time, not
        at whenever they were collected. None where the provider gives none (they are recorded at collection)."""
        return None

    @abstractmethod
    def cancel(self, handle: str) -> None:
        """Ask the provider to stop; the state moves to stopping/stopped."""


def api_key(options: SubmitOptions, variable: str, provider: str) -> str:
    """A batch API's key: `extra["api_key"]`, else the environment's `variable`; none is an error naming the variable,
    unless an endpoint was given (an emulator or a local server, which checks no key)."""
    key = remember_secret(options.extra.get("api_key") or os.environ.get(variable))
    if key:
        return key
    if not options.endpoint_url:
        raise ConfigError(
            f"{provider} batch needs an API key: set {variable} (or pass --endpoint-url for an emulator or compatible "
            "server)"
        )
    return "unused"  # emulators and local servers do not check it
