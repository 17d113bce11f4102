"""The most a batch job may cost, known before anything is sent: `batch submit --max-cost` refuses a job whose worst
case is over its cap (and `batch resume` what it would send again), and `batch validate` and `batch plan` print it
beside the expected cost, so a user can choose a cap.

Each record is counted as a gateway budget reserves a call: its prompt at an upper bound of its tokens
(`caching.placement.input_bound`), its images and documents as `batch validate` counts them (a document sent by
reference, whose size cannot be seen, at the model's whole context window), its tools' definitions, tool calls
and results as JSON at that bound (on Claude, with the tool use system prompt at its larger figure), and its whole
output cap: the max_tokens it gives, else the cap its backend sends for it (`sent_cap`: the local runner's 256;
on Anthropic and in a Bedrock Claude, Llama or Nova body rebuilt for the model, the model's maximum output within its
window, `output_caps`), else, where none is sent (OpenAI, Azure, Gemini, Vertex AI, a Converse body, a Bedrock body
sent as written, or no backend named yet), what the model may write: its maximum output in the catalog within its
context window less the prompt, as the gateway reserves a call with no cap (`Gateway.uncapped_output`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tokenomy.batch.bedrock_bodies import output_cap
from tokenomy.batch.formats import BatchRecord
from tokenomy.batch.job_tables import Job, JobTables
from tokenomy.batch.output_caps import LOCAL_MAX_TOKENS, claude_cap
from tokenomy.batch.record_tokens import (
    documents_in,
    images_in,
    record_estimate,
    sends_media,
    sends_tools,
    unseen_input,
)
from tokenomy.batch.records import missing_records
from tokenomy.caching.placement import IMAGE_TOKENS, document_tokens, input_bound
from tokenomy.chat_response import Usage
from tokenomy.errors import UsageError
from tokenomy.messages import ChatRequest, Message
from tokenomy.money import usd
from tokenomy.pricing.catalog import PriceEntry, default_catalog
from tokenomy.pricing.cost import compute_cost
from tokenomy.pricing.entry import DEFAULT_OUTPUT_ESTIMATE
from tokenomy.token_estimate import bound_length


@dataclass(frozen=True)
class JobWorstCase:
    """What a set of records may cost at most, on demand and at batch prices (None: the model has none)."""

    records: int
    input_tokens: int  # every prompt at its upper bound
    output_tokens: int  # every record's whole output cap
    uncapped: int  # records sent with no cap, counted at what the model may write (`uncapped_at`)
    uncapped_at: str | None
    media: int  # records sending audio or video: billed by a length no line gives, so counted nowhere here
    on_demand_usd: Decimal
    batch_usd: Decimal | None
    backend: str | None = None  # the backend it was counted for (None: not named)

    def usd_on(self, backend: str) -> Decimal:
        """The worst case as `backend` bills it: the local runner calls on demand, the others at batch prices."""
        return self.on_demand_usd if backend == "local" or self.batch_usd is None else self.batch_usd

    def to_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "on_demand_usd": self.on_demand_usd,
            "batch_usd": self.batch_usd,
            "uncapped_records": self.uncapped,
            "uncapped_output": self.uncapped_at,
        }

    def note(self) -> str:
        """How the worst case was counted, for `batch validate` and `batch plan`."""
        said = (
            "worst case (what `batch submit --max-cost USD` is checked against): each prompt at an upper bound of its "
            "tokens, each record at its whole output cap"
        )
        if self.uncapped:
            sent = (
                "are sent with none"
                if self.backend
                else f"may be sent with none (--backend local sends {LOCAL_MAX_TOKENS}, anthropic and bedrock the "
                "model's maximum output; pass --backend to count those)"
            )
            said += f"; {self.uncapped} record(s) give no max_tokens and {sent}: counted at {self.uncapped_at}"
        if self.media:
            said += f"; {self.media} record(s) send audio or video, which it does not count"
        return said


def sent_cap(rec: BatchRecord, backend: str | None, model: str) -> int | None:
    """The output cap `rec` is sent with on `backend`, by the same code that builds what is sent: its own, else the
    one its backend sends for it (the local runner's LOCAL_MAX_TOKENS, Anthropic's `claude_cap`, Bedrock's
    `output_cap` of the body it sends); None: none is sent."""
    if backend == "local":
        return rec.max_tokens or LOCAL_MAX_TOKENS
    if backend == "anthropic":
        return claude_cap(model, rec)
    if backend == "bedrock":
        return output_cap(model, rec)
    return rec.max_tokens


def uncapped_output(entry: PriceEntry, prompt: int) -> tuple[int, str]:
    """What a record sent with no cap may write (output tokens, and what that is, said for a person): the model's
    maximum output within its context window less the `prompt` (by the estimate, as the gateway leaves an uncapped
    call room for), else that room, else DEFAULT_OUTPUT_ESTIMATE, an estimate a longer answer overspends."""
    most = entry.output_within(prompt)
    if most is not None:
        return most, f"{entry.model}'s maximum output of {entry.max_output_tokens:,} tokens"
    if entry.context_window is not None:
        room = max(entry.context_window - prompt, 0)
        return room, f"the rest of {entry.model}'s {entry.context_window:,}-token context window"
    return DEFAULT_OUTPUT_ESTIMATE, (
        f"{DEFAULT_OUTPUT_ESTIMATE:,} tokens (the price catalog has no maximum output or context window for "
        f"{entry.model}: an estimate, which a longer answer overspends)"
    )


def prompt_bound(rec: BatchRecord, entry: PriceEntry) -> int:
    """An upper bound of the tokens `rec`'s prompt is billed, as a gateway budget reserves a call's."""
    system, turns = rec.system_and_turns()
    request = ChatRequest([Message(m["role"], m["content"]) for m in turns], system=system)
    documents = documents_in(rec.raw)
    tokens = input_bound(request)[0] + IMAGE_TOKENS * images_in(rec.raw)
    tokens += sum(document_tokens(document, bound_length) for document in documents)
    unseen = unseen_input(rec.raw)  # its tools' definitions, tool calls and results, response format
    tokens += (bound_length(unseen) + 3) // 4 if unseen else 0
    if sends_tools(rec.raw):  # the system prompt Claude adds to a call with tools, at its larger tool_choice figure
        tokens += max(entry.tool_prompt_tokens("auto"), entry.tool_prompt_tokens("any"))
    if entry.context_window and any(document.data is None for document in documents):
        tokens = max(tokens, entry.context_window)  # sent by URL or file id: a size nobody here can see
    return tokens


def job_worst_case(
    records: list[BatchRecord], model: str, region: str | None = None, backend: str | None = None
) -> JobWorstCase:
    """The most `records` may cost on `model` sent by `backend` (None: not named yet, so a record with no max_tokens
    is counted as sent with none), on demand and at batch prices."""
    entry = default_catalog().lookup(model, region)
    long = entry.long_context
    # Prompts over the long-context threshold are billed whole at its prices: summed apart from the others.
    totals = {False: [0, 0, 0], True: [0, 0, 0]}  # long? -> [input, output, largest prompt]
    uncapped = media = 0
    uncapped_at = None
    for rec in records:
        prompt = prompt_bound(rec, entry)
        cap = sent_cap(rec, backend, model)
        if cap is None:
            cap, uncapped_at = uncapped_output(entry, record_estimate(rec))
            uncapped += 1
        media += sends_media(rec.raw)
        total = totals[long is not None and prompt > long.above_tokens]
        total[0] += prompt
        total[1] += cap
        total[2] = max(total[2], prompt)

    def priced(mode: str) -> Decimal:
        cost = Decimal(0)
        for inputs, outputs, largest in totals.values():
            if inputs or outputs:
                usage = Usage(inputs, outputs)
                cost += compute_cost(usage, model, region, mode, prompt_tokens=largest, warn_old=False).total_usd
        return cost

    return JobWorstCase(
        records=len(records),
        input_tokens=totals[False][0] + totals[True][0],
        output_tokens=totals[False][1] + totals[True][1],
        uncapped=uncapped,
        uncapped_at=uncapped_at,
        media=media,
        on_demand_usd=priced("on_demand"),
        batch_usd=priced("batch") if entry.has_batch else None,
        backend=backend,
    )


def over_cap(
    worst: JobWorstCase, cap: Decimal, backend: str, what: str, spent: Decimal = Decimal(0), resume: str = ""
) -> str | None:
    """Why sending `what` (records of a job that has cost `spent` so far) on `backend` is refused under the cap, with
    the fixes; None when its worst case fits. `resume`: the job's id, when it is `batch resume` that would send them."""
    total = spent + worst.usd_on(backend)
    if total <= cap:
        return None
    prices = "on-demand" if backend == "local" or worst.batch_usd is None else "batch"
    said = (
        f"{what}: worst case {usd(worst.usd_on(backend), 'amount')} at {prices} prices ({worst.records} records, "
        f"{worst.input_tokens:,} input tokens at their upper bound + {worst.output_tokens:,} output tokens at their "
        "caps"
    )
    if worst.uncapped:
        said += f"; {worst.uncapped} without max_tokens counted at {worst.uncapped_at}"
    said += ")"
    if spent:
        said += f" after {usd(spent, 'amount')} the job has cost so far, {usd(total, 'amount')} in all,"
    said += f" is over --max-cost {usd(cap, 'amount')}; nothing was sent. "
    if resume:
        return said + (
            "Lower the records' max_tokens (`tokenomy batch results "
            f"{resume} --missing-input -o rest.jsonl` writes them) and submit them as a new job, or raise the job's "
            f"cap: `tokenomy batch resume {resume} --max-cost USD`"
        )
    unset = f" (give the {worst.uncapped} records without one a max_tokens)" if worst.uncapped else ""
    return said + f"Lower max_tokens{unset}, split the file into smaller jobs, or raise --max-cost"


class OverCap(UsageError):
    """Records refused before anything is sent: their worst case is over the job's cap (`batch submit --max-cost`)."""

    def __init__(self, message: str, worst: JobWorstCase, cap: Decimal, spent: Decimal) -> None:
        super().__init__(message)
        self.worst, self.cap, self.spent = worst, cap, spent

    def to_json(self) -> dict[str, Any]:
        return {
            "error": str(self),
            "max_cost_usd": self.cap,
            "worst_case_usd": self.worst.usd_on(self.worst.backend or "local"),
            "cost_so_far_usd": self.spent,
            "records": self.worst.records,
            "worst_case": self.worst.to_json(),
        }


def job_cap(job: Job, given: Decimal | None = None) -> Decimal | None:
    """The cap on what `job` may cost: `given` (resume's --max-cost), else the one it was submitted with, if any."""
    return given if given is not None else job.max_cost_usd


def require_within_cap(job: Job, records: list[BatchRecord], cap: Decimal | None, resume: bool = False) -> None:
    """Refuse (OverCap) to send `records` of `job` when what the job has cost so far and their worst case, on its
    backend, are together over `cap`; nothing to check without a cap. `resume`: `batch resume` would send them."""
    if cap is None:
        return
    model = job.options.get("pricing_model", job.model)
    worst = job_worst_case(records, model, job.options.get("region"), job.backend)
    spent = job.cost_usd if resume else Decimal(0)
    what = f"{job.job_id}: the {len(records)} records resume would send" if resume else job.input_path or job.job_id
    why = over_cap(worst, cap, job.backend, what, spent, job.job_id if resume else "")
    if why is not None:
        raise OverCap(why, worst, cap, spent)


def require_local_resume_within_cap(tables: JobTables, job: Job, max_cost: Decimal | None = None) -> None:
    """`require_within_cap` for a local job's resume, which runs every record without a result."""
    cap = job_cap(job, max_cost)
    if cap is not None:
        require_within_cap(job, missing_records(tables, job.job_id), cap, resume=True)


def keep_cap(tables: JobTables, job: Job, max_cost: Decimal | None) -> None:
    """Keep `max_cost` (resume's --max-cost) as the job's cap, for the resumes after this one."""
    if max_cost is not None:
        options = {**job.options, "max_cost_usd": str(max_cost)}
        tables.update_job(job.job_id, options=json.dumps(options, sort_keys=True))
