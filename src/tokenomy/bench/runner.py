"""Run tasks × models × examples × repeats, streaming each call, appending results as they arrive."""

from __future__ import annotations

import csv
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokenomy.bench.judge import RUBRIC, judge, paid
from tokenomy.bench.scorers import score
from tokenomy.bench.tasks import Example, Task
from tokenomy.errors import ConfigError, ProviderError, UsageError
from tokenomy.messages import ChatRequest, RequestMeta
from tokenomy.money import money_str

FIELDS = [
    "task",
    "model",
    "example",
    "repeat",
    "prompt",
    "expected",
    "answer",
    "quality",
    "note",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "error",
    "judge_model",
    "judge_cost_usd",
    "judge_scores",
    "judge_reasons",
    "rubric",
    "judge_error",
]
PARQUET_EVERY = 20  # rows between Parquet rewrites, so an interrupted run leaves a recent Parquet too


@dataclass(frozen=True)
class RunSettings:
    models: tuple[str, ...]
    repeat: int = 1
    concurrency: int = 1
    sample: int | None = None
    seed: int = 0
    judge_model: str | None = None
    max_tokens: int = 64
    system_prompts: dict[str, str] | None = None  # per-model instructions (variants)
    model_max_tokens: dict[str, int] | None = None  # per-model output cap, replacing the task's and the run's


def effective_max_tokens(task: Task, settings: RunSettings, model: str | None = None) -> int:
    """A model's own cap if it has one (a variant), else the task's, never above the run's `--max-tokens`."""
    if model and settings.model_max_tokens and model in settings.model_max_tokens:
        return settings.model_max_tokens[model]
    return min(task.max_tokens, settings.max_tokens) if task.max_tokens else settings.max_tokens


def plan_jobs(tasks: list[Task], settings: RunSettings) -> list[tuple[Task, str, Example, int]]:
    rng = random.Random(settings.seed)
    jobs = []
    for task in tasks:
        examples = list(task.examples)
        if settings.sample is not None and settings.sample < len(examples):
            examples = sorted(rng.sample(examples, settings.sample), key=lambda e: e.index)
        for model in settings.models:
            for example in examples:
                for repeat in range(settings.repeat):
                    jobs.append((task, model, example, repeat))
    return jobs


def repair(csv_path: Path) -> int:
    """Drop a row cut short by a killed run (its last line half-written); returns how many rows were dropped."""
    if not csv_path.exists():
        return 0
    with csv_path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    complete = [row for row in rows if len(row) == len(FIELDS)]
    if len(complete) == len(rows) and csv_path.read_bytes().endswith(b"\n"):
        return 0
    with csv_path.open("w", newline="") as handle:
        csv.writer(handle).writerows(complete)
    return len(rows) - len(complete)


def finished_keys(csv_path: Path) -> set[tuple[str, str, str, str]]:
    """Keys of rows that were called and scored (a failed call or a failed judging is retried on resume)."""
    if not csv_path.exists():
        return set()
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames and list(reader.fieldnames) != FIELDS:
            raise ConfigError(
                f"{csv_path}: written by another version of `tokenomy bench` (columns differ); "
                "use a new --out directory or drop --resume"
            )
        return {
            (r["task"], r["model"], r["example"], r["repeat"])
            for r in reader
            if r["rubric"] is not None and not r["error"] and r["quality"] != ""
        }  # complete rows only


def unscored_answers(csv_path: Path) -> dict[tuple[str, str, str, str], dict[str, str]]:
    """Per key, the first row whose candidate answered but which has no score (its judging failed): results.csv keeps
    the answer, so a resumed run scores it again rather than paying the candidate for a second one."""
    if not csv_path.exists():
        return {}
    with csv_path.open(newline="") as handle:
        answers: dict[tuple[str, str, str, str], dict[str, str]] = {}
        for r in csv.DictReader(handle):
            if not r["error"] and r["quality"] == "":
                answers.setdefault((r["task"], r["model"], r["example"], r["repeat"]), r)
        return answers


def failed_paid(exc: BaseException) -> Decimal:
    """What a call that raised `exc` was billed: its attempts the provider answered (0 if none did)."""
    return exc.call_cost_usd if isinstance(exc, ProviderError) else Decimal(0)


def run_one(client, task: Task, model: str, example: Example, repeat: int, settings: RunSettings) -> dict[str, Any]:
    """One streamed call, scored; a failure becomes a row with `error`, never an exception."""
    prompt = task.render(example)  # templates were checked when the task file was loaded
    extra = (settings.system_prompts or {}).get(model)
    system = "\n\n".join(p for p in (extra, task.system) if p) or None
    row: dict[str, Any] = {
        "task": task.name,
        "model": model,
        "example": example.index,
        "repeat": repeat,
        "prompt": prompt,
        "expected": "" if example.expected is None else str(example.expected),
        "error": "",
        "judge_model": (settings.judge_model or "") if task.scorer == "judge" else "",
        "rubric": "",
    }
    try:
        final = None
        for chunk in client.stream(
            ChatRequest.simple(
                prompt,
                model=model,
                system=system,
                max_tokens=effective_max_tokens(task, settings, model),
                temperature=0.0,
                meta=RequestMeta(task=f"bench:{task.name}"),
            )
        ):
            if chunk.response is not None:
                final = chunk.response
        if final is None:
            raise ProviderError("the stream ended without a final response")
    except Exception as exc:
        # A call that failed after the provider answered (a stream cut midway, a cascade's rejected answer) was
        # billed: its cost is in the ledger, so it is in the row too (results.csv sums to the ledger).
        row.update(
            error=f"{type(exc).__name__}: {exc}"[:300], quality="", cost_usd=money_str(failed_paid(exc), "record")
        )
        return row
    usage = final.usage
    row.update(
        answer=final.text,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cost_usd=money_str(paid(final), "record"),  # exact, so results.csv sums to the ledger
        latency_ms=round(final.latency_ms, 2),
        ttft_ms="" if final.ttft_ms is None else round(final.ttft_ms, 2),
    )
    return _scored(client, task, example, row, prompt, final.text, settings)


# What scoring and this attempt's own cost fill in; the rest of a row says what the candidate's call was, which an
# answer scored again keeps from the attempt that answered.
SCORED_FIELDS = {"quality", "note", "cost_usd", "error", "rubric"} | {f for f in FIELDS if f.startswith("judge_")}
ANSWER_FIELDS = tuple(f for f in FIELDS if f not in SCORED_FIELDS)


def score_again(client, task: Task, example: Example, earlier: dict[str, str], settings: RunSettings) -> dict[str, Any]:
    """Score the answer an earlier attempt recorded but could not score (its judging failed), without calling the
    candidate again: the row repeats that attempt's answer, tokens and latency, and costs nothing for the candidate
    (results.csv still sums to the ledger; the answer's cost is on the earlier row)."""
    row: dict[str, Any] = {k: earlier[k] for k in ANSWER_FIELDS}
    row.update(
        error="",
        cost_usd=money_str(Decimal(0), "record"),
        judge_model=(settings.judge_model or "") if task.scorer == "judge" else "",
        rubric="",
    )
    row = _scored(client, task, example, row, earlier["prompt"], earlier["answer"], settings)
    if row["quality"] != "":
        row["note"] = f"{row['note']}; the answer of an earlier attempt, scored again"
    return row


def _scored(
    client, task: Task, example: Example, row: dict[str, Any], prompt: str, answer: str, settings: RunSettings
) -> dict[str, Any]:
    """The row with the answer's score: the judge's verdict, or the task's scorer."""
    if task.scorer == "judge":
        row["rubric"] = ",".join(RUBRIC)
        if settings.judge_model is None:
            row.update(judge_error="no judge model: pass --judge MODEL for judge-scored tasks", quality="")
            return row
        try:
            verdict = judge(client, settings.judge_model, prompt, answer, example.expected)
        except Exception as exc:  # the candidate's call is kept; only its score is missing
            row.update(
                judge_error=f"{type(exc).__name__}: {exc}"[:300],
                quality="",
                judge_cost_usd=money_str(failed_paid(exc), "record"),
            )
            return row
        row.update(
            quality=round(verdict.quality, 2),
            note="parsed" if verdict.parsed else "partly parsed",
            judge_cost_usd=money_str(verdict.cost_usd, "record"),
            judge_scores=";".join(f"{c}={verdict.scores[c]}" for c in RUBRIC),
            judge_reasons=" | ".join(f"{c}: {verdict.reasons[c]}" for c in RUBRIC if verdict.reasons.get(c)),
        )
    else:
        quality, note = score(task, example, answer)
        row.update(quality=round(quality, 2), note=note)
    return row


def run(
    client,
    tasks: list[Task],
    settings: RunSettings,
    out_dir: Path,
    resume: bool = False,
    on_row: Callable[[dict], None] | None = None,
) -> Path:
    """Execute the plan; rows are appended to DIR/results.csv as each call finishes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "results.csv"
    if settings.judge_model is None and any(t.scorer == "judge" for t in tasks):
        names = ", ".join(t.name for t in tasks if t.scorer == "judge")
        raise UsageError(
            f"task(s) {names} use the judge scorer: pass --judge MODEL (one evaluator for every candidate)"
        )
    if not resume and csv_path.exists():
        csv_path.unlink()
    if resume:
        repair(csv_path)
    done = finished_keys(csv_path) if resume else set()
    answered = unscored_answers(csv_path) if resume else {}  # judged again, the candidate not called again
    jobs = [j for j in plan_jobs(tasks, settings) if (j[0].name, j[1], str(j[2].index), str(j[3])) not in done]
    lock = threading.Lock()
    new_file = not csv_path.exists()
    with csv_path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()

        written = [0]

        def work(job):
            task, model, example, repeat = job
            earlier = answered.get((task.name, model, str(example.index), str(repeat)))
            row = (
                score_again(client, task, example, earlier, settings)
                if earlier is not None
                else run_one(client, *job, settings)
            )
            with lock:
                writer.writerow({k: row.get(k, "") for k in FIELDS})
                handle.flush()
                written[0] += 1
                if written[0] % PARQUET_EVERY == 0:
                    write_parquet(csv_path)
            if on_row:
                on_row(row)

        pool = ThreadPoolExecutor(max_workers=max(1, settings.concurrency))
        try:
            for future in [pool.submit(work, job) for job in jobs]:
                future.result()
        except BaseException:
            # Interrupted (Ctrl-C, a crash): drop queued work; finished rows are already on disk.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown()
            handle.flush()
            write_parquet(csv_path)
    return csv_path


def write_parquet(csv_path: Path) -> Path:
    import pandas as pd

    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    target = csv_path.with_suffix(".parquet")
    frame.to_parquet(target, index=False)
    return target


def count_jobs(tasks: list[Task], settings: RunSettings, out_dir: Path, resume: bool) -> int:
    done = finished_keys(out_dir / "results.csv") if resume else set()
    return sum(1 for j in plan_jobs(tasks, settings) if (j[0].name, j[1], str(j[2].index), str(j[3])) not in done)
