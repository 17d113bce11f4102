"""Benchmarking: real runs on the local model and llama.cpp's server, resume, verbosity, labels, scorers."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from helpers import REPO
from helpers.cli import interruptible
from tokenomy.bench.judge import RUBRIC, parse_verdict
from tokenomy.bench.plot import knee, pareto_frontier
from tokenomy.bench.runner import FIELDS, RunSettings, effective_max_tokens, finished_keys, plan_jobs, repair, run
from tokenomy.bench.scorers import score
from tokenomy.bench.summary import export_labels, load_results, recommend, summarize
from tokenomy.bench.tasks import Example, Task, load_tasks
from tokenomy.client import Tokenomy
from tokenomy.config import load_config
from tokenomy.errors import ConfigError
from tokenomy.ledger.store import open_store

ROOT = REPO
EXAMPLES = ROOT / "examples" / "bench"
TOKENOMY = str(Path(sys.executable).with_name("tokenomy"))


def test_scorers():
    task = Task("t", "{input}", "normalized_match", (Example(0, {"input": "x"}, "Paris"),))
    assert score(task, task.examples[0], " paris. ")[0] == 100
    assert score(task, task.examples[0], "The capital is Paris!")[0] == 100
    assert score(task, task.examples[0], "Lyon")[0] == 0
    fields = Task("t", "{input}", "json_fields", (Example(0, {}, {"name": "Ann", "city": "Oslo"}),))
    assert score(fields, fields.examples[0], 'Sure: {"name": "Ann", "city": "Oslo"}')[0] == 100
    assert score(fields, fields.examples[0], '{"name": "Ann", "city": "Rome"}')[0] == 75
    assert score(fields, fields.examples[0], "{not json")[0] == 0
    schema = Task(
        "t",
        "{input}",
        "json_schema",
        (Example(0, {}),),
        options={"schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}},
    )
    assert score(schema, schema.examples[0], '{"n": 3}')[0] == 100
    assert score(schema, schema.examples[0], '{"n": "3"}')[0] == 0
    numeric = Task("t", "{input}", "numeric", (Example(0, {}, 42),), options={"tolerance": 0.5})
    assert score(numeric, numeric.examples[0], "so the answer is 42.3")[0] == 100
    label = Task(
        "t", "{input}", "classification", (Example(0, {}, "billing"),), options={"labels": ["billing", "technical"]}
    )
    assert score(label, label.examples[0], "Category: Billing")[0] == 100
    assert score(label, label.examples[0], "technical")[0] == 0
    regex = Task("t", "{input}", "regex", (Example(0, {}),), options={"pattern": r"\d{4}-\d{2}"})
    assert score(regex, regex.examples[0], "due 2026-01")[0] == 100


def test_classification_reads_the_one_label_the_answer_names():
    # The first label of the task's list found anywhere in the answer was credited: "Technical, not billing" counted as
    # billing, and the hedge "Billing or technical" scored 100 when billing was expected.
    task = Task(
        "t",
        "{input}",
        "classification",
        (Example(0, {}, "billing"), Example(1, {}, "technical")),
        options={"labels": ["billing", "technical"]},
    )
    billing, technical = task.examples
    cases = {
        "Technical, not billing": "technical",
        "It isn't billing; it's technical.": "technical",
        "It isn’t billing: technical": "technical",
        "No billing issue here - technical": "technical",
        "never billing. TECHNICAL": "technical",
        "Not a billing question, a technical one": "technical",
        "No, billing.": "billing",
        "Category: Billing": "billing",
        "billing": "billing",
        "Not billing... well, billing after all": "billing",
    }
    for answer, label in cases.items():
        assert score(task, billing, answer) == ((100.0 if label == "billing" else 0.0), f"label {label}"), answer
        assert score(task, technical, answer)[0] == (100.0 if label == "technical" else 0.0), answer
    # Naming both (a hedge), only negating, or naming none is no answer: 0 whatever was expected.
    for answer in ("Billing or technical", "billing and technical", "not billing", "rebilling", "sales"):
        for example in task.examples:
            assert score(task, example, answer)[0] == 0.0, (answer, example.expected)
    assert score(task, billing, "Billing or technical")[1] == "label ? (names billing, technical)"
    assert score(task, billing, "sales")[1] == "label ?"
    # A label that is itself a negation is read whole: "not spam" names "not spam", not "spam".
    spam = Task(
        "s",
        "{input}",
        "classification",
        (Example(0, {}, "not spam"), Example(1, {}, "spam")),
        options={"labels": ["spam", "not spam"]},
    )
    assert score(spam, spam.examples[0], "Not spam.")[0] == 100 and score(spam, spam.examples[1], "Not spam.")[0] == 0
    assert score(spam, spam.examples[1], "Spam!")[0] == 100


def test_judge_verdicts_parse_and_bad_task_files_are_named(tmp_path):
    scores, reasons = parse_verdict(
        "Correctness: 4 - right\n**Completeness**: 3/5 - misses one\ncoherence=5\n"
        "Relevance: 2, off topic\nhelpfulness: 4\nSafety: 5 - fine"
    )
    assert scores == {
        "correctness": 4,
        "completeness": 3,
        "coherence": 5,
        "relevance": 2,
        "helpfulness": 4,
        "safety": 5,
    }
    assert reasons["completeness"] == "misses one" and reasons["coherence"] == ""  # not the next line's text
    scores, reasons = parse_verdict(
        "- **Correctness** (score: 4/5): accurate\n- Completeness: 4 out of 5 — covers it\n"
        "| Helpfulness | 3 | ok |\nCoherence: [5] clear\nSafety: 10/10"
    )
    assert scores == {"correctness": 4, "completeness": 4, "helpfulness": 3, "coherence": 5}  # 10/10 is no 1-5 score
    assert reasons["completeness"] == "covers it" and reasons["helpfulness"] == "ok"
    scores, reasons = parse_verdict('```json\n{"Correctness": {"score": 2, "reason": "wrong city"}, "relevance": 4}```')
    assert scores == {"correctness": 2, "relevance": 4} and reasons["correctness"] == "wrong city"
    assert parse_verdict("The answer is good.") == ({}, {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - name: x\n    prompt: hi\n    scorer: vibes\n    examples: [a]\n")
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.scorer: 'vibes'"):
        load_tasks(bad)


def test_task_files_yaml_and_jsonl_and_errors_that_name_the_record(tmp_path):
    jsonl = tmp_path / "tasks.jsonl"
    jsonl.write_text(
        '{"name": "sum", "prompt": "{a}+{b}=", "scorer": "numeric", "tolerance": 0.5, '
        '"examples": [{"a": 1, "b": 2, "expected": 3}]}\n\n'
        '{"name": "obj", "prompt": "{input}", "scorer": "json_schema", "schema": {"type": "object"}, '
        '"examples": ["x"]}\n'
    )
    tasks = load_tasks(jsonl)
    assert [t.name for t in tasks] == ["sum", "obj"] and tasks[0].render(tasks[0].examples[0]) == "1+2="
    assert tasks[0].options == {"tolerance": 0.5} and tasks[1].examples[0].fields == {"input": "x"}
    cases = {
        "tasks:\n  - {name: a, prompt: '{question}', scorer: exact_match, examples: [{input: x, expected: y}]}": r"example 0: the prompt uses \{question\}",
        "tasks:\n  - {name: a, prompt: x, scorer: exact_match, examples: [{input: x}]}": r"tasks\[0\]\.examples\[0\]: the exact_match scorer needs `expected`",
        "tasks:\n  - {name: a, prompt: x, scorer: classification, labels: [a, b], examples: [{input: x, expected: c}]}": r"examples\[0\]\.expected: 'c' is not one of the labels",
        "tasks:\n  - {name: a, prompt: x, scorer: numeric, examples: [{input: x, expected: many}]}": r"'many' is not a number",
        "tasks:\n  - {name: a, prompt: x, scorer: json_schema, schema: {type: nope}, examples: [x]}": r"tasks\[0\]\.schema: not a valid JSON Schema",
        "tasks:\n  - {name: a, prompt: x, scorer: regex, patern: 'x', examples: [{input: x, expected: y}]}": r"tasks\[0\]\.patern: unknown task field",
        "tasks:\n  - {name: a, prompt: x, scorer: judge}": r"'examples' is required",
        # These two ran nothing and printed an empty summary table.
        "tasks: []": r"`tasks:` is empty",
        "tasks:\n  - {name: a, prompt: x, scorer: exact_match, examples: []}": r"tasks\[0\]\.examples: must be a non-empty",
    }
    for number, (text, error) in enumerate(cases.items()):
        bad = tmp_path / f"bad{number}.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=error):
            load_tasks(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"name": "a"\n')
    with pytest.raises(ConfigError, match=r"broken.jsonl:1: invalid JSON"):
        load_tasks(broken)


def test_recommendation_and_call_outs_in_words():
    rows = [
        {"model": "big", "quality": 90.0, "cost_per_task_usd": Decimal("0.01")},
        {"model": "mid", "quality": 88.0, "cost_per_task_usd": Decimal("0.004")},
        {"model": "small", "quality": 84.0, "cost_per_task_usd": Decimal("0.001")},
        {"model": "tiny", "quality": 40.0, "cost_per_task_usd": Decimal("0.0001")},
    ]
    pick = recommend(rows, 3.0)
    assert pick["model"] == "mid" and pick["best_quality_model"] == "big"
    notes = "\n".join(pick["notes"])
    assert "mid: same quality, much cheaper than big (-2.0 points, 40% of the cost" in notes
    assert "small: slightly worse, dramatically cheaper than big (-6.0 points, 10% of the cost" in notes
    assert "tiny" not in notes  # 50 points worse is not "slightly"
    assert recommend(rows, 10.0)["model"] == "small"  # a wider tolerance lets the cheaper one win


def test_cli_refuses_a_judge_task_without_a_judge_and_unknown_models(tmp_path):
    judged = tmp_path / "judged.yaml"
    judged.write_text("tasks:\n  - {name: s, prompt: 'Summarise {input}', scorer: judge, examples: [a]}\n")
    result = subprocess.run(
        [
            TOKENOMY,
            "bench",
            "run",
            str(judged),
            "--models",
            "local",
            "--out",
            str(tmp_path / "o"),
            "--ledger",
            str(tmp_path / "l.duckdb"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "pass --judge MODEL" in result.stderr + result.stdout
    result = subprocess.run(
        [
            TOKENOMY,
            "bench",
            "run",
            str(EXAMPLES / "capital.yaml"),
            "--models",
            "local,nonexistent-x",
            "--out",
            str(tmp_path / "o"),
            "--ledger",
            str(tmp_path / "l.duckdb"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "nonexistent-x" in result.stderr + result.stdout
    assert not (tmp_path / "o" / "results.csv").exists() or len(pd.read_csv(tmp_path / "o" / "results.csv")) == 0


def test_plan_samples_with_the_seed_and_repeats():
    task = Task(
        "t", "{input}", "regex", tuple(Example(i, {"input": str(i)}) for i in range(10)), options={"pattern": "."}
    )
    settings = RunSettings(("a", "b"), repeat=3, sample=4, seed=7)
    jobs = plan_jobs([task], settings)
    assert len(jobs) == 2 * 4 * 3
    chosen = {j[2].index for j in jobs}
    assert len(chosen) == 4 and chosen == {j[2].index for j in plan_jobs([task], settings)}  # same seed, same sample
    assert chosen != {j[2].index for j in plan_jobs([task], RunSettings(("a",), sample=4, seed=8))}
    assert {(j[1], j[3]) for j in jobs} == {(m, r) for m in "ab" for r in range(3)}
    capped = Task("c", "{input}", "regex", task.examples, max_tokens=32, options={"pattern": "."})
    caps = RunSettings(("a", "v"), max_tokens=16, model_max_tokens={"v": 100})
    assert effective_max_tokens(capped, caps, "a") == 16  # the run's cap wins over a larger task cap
    assert effective_max_tokens(capped, RunSettings(("a",), max_tokens=64), "a") == 32
    assert effective_max_tokens(capped, caps, "v") == 100  # a variant's own cap replaces both


def test_pareto_frontier_and_knee():
    points = [(1.0, 50, "a"), (2.0, 80, "b"), (3.0, 82, "c"), (10.0, 90, "d"), (5.0, 60, "dominated")]
    frontier = pareto_frontier(points)
    assert [p[2] for p in frontier] == ["a", "b", "c", "d"]
    assert knee(frontier)[2] == "b"


@pytest.mark.slow
def test_examples_on_local_and_server_with_a_judge(llama_server, tmp_path):
    config = tmp_path / "models.yaml"
    # The evaluator is the local model priced as gpt-4o-mini, so the judge's own cost is visible and separate.
    config.write_text(
        f"models:\n  server:\n    provider: openai\n    model: smollm2\n    base_url: {llama_server}\n"
        "    price_as: gpt-4o-mini\n  grader:\n    provider: local\n    model: local\n"
        "    price_as: gpt-4o-mini\n"
    )
    out = tmp_path / "out"
    result = subprocess.run(
        [
            TOKENOMY,
            "bench",
            "run",
            str(EXAMPLES / "support.yaml"),
            "--models",
            "local,server",
            "--judge",
            "grader",
            "--sample",
            "2",
            "--concurrency",
            "2",
            "--config",
            str(config),
            "--out",
            str(out),
            "--ledger",
            str(tmp_path / "l.duckdb"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    rows = summary["results"]
    assert summary["by_task"]["extraction"]["server"]["quality"] == next(
        r["quality"] for r in rows if r["task"] == "extraction" and r["model"] == "server"
    )
    assert {(r["task"], r["model"]) for r in rows} == {
        (t, m) for t in ("ticket-classification", "extraction", "summarisation") for m in ("local", "server")
    }
    for row in rows:
        assert 0 <= row["quality"] <= 100 and row["latency_p50_ms"] > 0
        assert {"quality", "cost_per_task_usd", "latency_p50_ms"} <= set(row)
    server_rows = [r for r in rows if r["model"] == "server"]
    assert all(Decimal(r["cost_per_task_usd"]) > 0 for r in server_rows)  # priced as gpt-4o-mini
    judged = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    judged = judged[judged["task"] == "summarisation"]
    assert set(judged["judge_model"]) == {"grader"} and all(judged["rubric"].str.contains("correctness"))
    for name in (
        "results.csv",
        "results.parquet",
        "pareto.png",
        "pareto_extraction.png",
        "report.html",
        "summary.json",
    ):
        assert (out / name).stat().st_size > 0, name
    assert summary["judge"]["model"] == "grader" and summary["judge"]["rubric"][0] == "correctness"
    assert Decimal(summary["judge"]["cost_usd"]) > 0  # the evaluator's calls are priced ...
    local_summary = next(r for r in rows if r["model"] == "local" and r["task"] == "summarisation")
    assert Decimal(local_summary["cost_per_task_usd"]) == 0 and Decimal(local_summary["judge_cost_usd"]) > 0  # apart
    assert len(judged) == 4 and all(judged["judge_scores"].str.count("=") == 6)
    assert len(pd.read_parquet(out / "results.parquet")) == 2 * 2 * 3
    assert "data:image/png;base64" in (out / "report.html").read_text()
    # The judge's own calls are recorded separately from the candidates'.
    tasks = {e.task for e in open_store(tmp_path / "l.duckdb").events()}
    assert "bench-judge" in tasks and "bench:summarisation" in tasks
    # Router labels from the same directory, tiers from a config file.
    config.write_text(config.read_text() + "tiers:\n  small: [local]\n  large: [server]\n")
    labels_path = tmp_path / "labels.jsonl"
    result = subprocess.run(
        [TOKENOMY, "bench", "export-labels", str(out), "-o", str(labels_path), "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    labels = [json.loads(line) for line in labels_path.read_text().splitlines()]
    assert len(labels) == 6 and json.loads(result.stdout)["examples"] == 6
    for label in labels:
        assert (
            label["label"] in ("local", "server")
            and label["tier"] == {"local": "small", "server": "large"}[label["label"]]
        )
        assert set(label["quality_by_model"]) == {"local", "server"} and label["prompt"]
        best = max(label["quality_by_model"].values())
        assert label["quality_by_model"][label["label"]] >= best - 3
    # A label is "local" whenever local met the bar: it is free, the server is priced as gpt-4o-mini.
    for label in labels:
        local_quality = label["quality_by_model"]["local"]
        if local_quality >= max(max(label["quality_by_model"].values()) - 3, 50):
            assert label["label"] == "local" and label["met_bar"]
        if max(label["quality_by_model"].values()) < 50:
            assert not label["met_bar"]


@pytest.mark.slow
def test_interrupted_run_resumes_without_repeating_work(tmp_path):
    tasks = load_tasks(EXAMPLES / "capital.yaml") + load_tasks(EXAMPLES / "support.yaml")[:1]
    settings = RunSettings(("local",), repeat=1, max_tokens=8)
    out = tmp_path / "out"
    ledger = tmp_path / "l.duckdb"

    class Interrupt(Exception):
        pass

    seen = []

    def stop_after_three(row):
        seen.append(row)
        if len(seen) == 3:
            raise Interrupt

    with Tokenomy(ledger) as client, pytest.raises(Interrupt):
        run(client, tasks, settings, out, on_row=stop_after_three)
    interrupted_rows = len(pd.read_csv(out / "results.csv"))
    assert 3 <= interrupted_rows < 6  # a call already in flight may still finish and be kept
    assert len(pd.read_parquet(out / "results.parquet")) == interrupted_rows  # written on the way out too
    with Tokenomy(ledger) as client:
        run(client, tasks, settings, out, resume=True)
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 6 and not frame.duplicated(["task", "model", "example", "repeat"]).any()
    assert open_store(ledger).count() == 6  # six model calls in total: nothing repeated
    assert len(pd.read_parquet(out / "results.parquet")) == 6
    with Tokenomy(ledger) as client:  # everything done: a third run makes no call at all
        run(client, tasks, settings, out, resume=True)
    assert open_store(ledger).count() == 6


@pytest.mark.slow
def test_failed_calls_and_failed_judging_are_rows_not_crashes(tmp_path):
    tasks_file = tmp_path / "tasks.yaml"
    tasks_file.write_text(
        "tasks:\n  - {name: s, prompt: 'Say hi to {input}', scorer: judge, examples: [Ann]}\n"
        "  - {name: e, prompt: 'Say {input}', scorer: regex, pattern: '.', examples: [yes]}\n"
    )
    settings = RunSettings(("local", "nonexistent-x"), judge_model="nonexistent-judge", max_tokens=4)
    out = tmp_path / "out"
    with Tokenomy(tmp_path / "l.duckdb") as client:
        run(client, load_tasks(tasks_file), settings, out)
    frame = load_results(out / "results.csv")
    by_key = {(r.task, r.model): r for r in frame.itertuples()}
    assert by_key[("s", "nonexistent-x")].error.startswith("UnknownModelError")
    local_judged = by_key[("s", "local")]
    assert local_judged.error == "" and local_judged.answer and local_judged.quality == ""
    assert local_judged.judge_error.startswith("UnknownModelError")
    assert by_key[("e", "local")].quality == "100.0"
    summary = summarize(frame)
    rows = {(r["task"], r["model"]): r for r in summary["results"]}
    assert rows[("e", "nonexistent-x")]["failure_rate"] == 1.0 and rows[("e", "local")]["failure_rate"] == 0.0
    assert rows[("s", "local")]["quality"] is None and rows[("s", "local")]["failure_rate"] == 0.0
    assert summary["judge"]["failures"] == 1
    from rich.console import Console

    from tokenomy.commands.bench import print_summary

    shown = Console(record=True, width=200)
    print_summary(summary, out, console=shown)
    text = shown.export_text()
    assert "use None" not in text and "s: no recommendation" in text  # was "s: use None — no successful results"


def test_a_row_cut_short_by_a_killed_run_is_dropped_and_redone(tmp_path):
    csv_path = tmp_path / "results.csv"
    full = {k: "" for k in FIELDS} | {"task": "t", "model": "m", "example": "0", "repeat": "0", "quality": "100.0"}
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerow(full)
        handle.write('t,m,1,0,"a prompt with\na newline",,"half an ans')  # SIGKILL mid-write
    assert finished_keys(csv_path) == {("t", "m", "0", "0")}
    assert repair(csv_path) == 1 and repair(csv_path) == 0
    assert len(pd.read_csv(csv_path)) == 1


@pytest.mark.slow
def test_ctrl_c_on_the_cli_then_resume_repeats_no_call(tmp_path):
    out, ledger = tmp_path / "out", tmp_path / "l.duckdb"
    args = [
        TOKENOMY,
        "bench",
        "run",
        str(EXAMPLES / "capital.yaml"),
        "--models",
        "local",
        "--repeat",
        "5",
        "--max-tokens",
        "8",
        "--out",
        str(out),
        "--ledger",
        str(ledger),
    ]
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=interruptible
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if len(finished_keys(out / "results.csv")) >= 2:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "--resume" in output
    done = len(pd.read_csv(out / "results.csv"))
    assert 2 <= done < 10
    result = subprocess.run(args + ["--resume", "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 10 and not frame.duplicated(["task", "model", "example", "repeat"]).any()
    assert open_store(ledger).count() == 10  # two examples x five repeats, each called once
    assert json.loads(result.stdout)["results"][0]["examples"] == 10


@pytest.mark.slow
def test_verbose_variant_costs_more_per_task_at_equal_token_price(tmp_path):
    tasks_file = tmp_path / "tasks.yaml"
    tasks_file.write_text(
        'tasks:\n  - name: explain\n    prompt: "What is {input}?"\n    scorer: regex\n'
        '    pattern: "."\n    examples: [{input: a router}, {input: a cache}]\n'
    )
    cfg = load_config(EXAMPLES / "variants.yaml")
    settings = RunSettings(
        ("terse", "verbose"), max_tokens=120, system_prompts={n: m.system_prompt for n, m in cfg.models.items()}
    )
    out = tmp_path / "out"
    with Tokenomy(tmp_path / "l.duckdb", models=cfg.model_specs()) as client:
        run(client, load_tasks(tasks_file), settings, out)
    summary = summarize(load_results(out / "results.csv"))
    by_model = {r["model"]: r for r in summary["results"]}
    assert by_model["verbose"]["output_tokens_mean"] > 1.3 * by_model["terse"]["output_tokens_mean"]
    assert by_model["verbose"]["cost_per_task_usd"] > by_model["terse"]["cost_per_task_usd"]
    # Same catalog price per token for both:
    assert cfg.models["terse"].price_as == cfg.models["verbose"].price_as


def test_export_labels_picks_the_cheapest_model_that_met_the_bar(tmp_path):
    rows = []
    for example, (q_small, q_big) in enumerate([(100, 100), (0, 100), (98, 100), (0, 20)]):
        for model, quality, cost in (("small", q_small, "0.001"), ("big", q_big, "0.010")):
            rows.append(
                {
                    "task": "t",
                    "model": model,
                    "example": str(example),
                    "repeat": "0",
                    "prompt": f"p{example}",
                    "quality": str(quality),
                    "cost_usd": cost,
                    "error": "",
                }
            )
    frame = pd.DataFrame(rows)
    labels = export_labels(frame, tolerance=3, tiers={"small": "tier1", "big": "tier2"})
    assert [(row["prompt"], row["label"], row["tier"], row["met_bar"]) for row in labels] == [
        ("p0", "small", "tier1", True),
        ("p1", "big", "tier2", True),
        ("p2", "small", "tier1", True),
        ("p3", "big", "tier2", False),
    ]  # nobody reached 50: the strongest is the label, flagged
    assert [row["label"] for row in export_labels(frame, tolerance=3, min_quality=0)][3] == "big"


def test_summary_of_a_foreign_or_empty_results_file_is_named(tmp_path):
    # A results.csv without the bench columns ended in a pandas KeyError traceback; an empty one in EmptyDataError.
    from typer.testing import CliRunner

    from tokenomy.cli import app

    (tmp_path / "results.csv").write_text("name,value\na,1\n")
    result = CliRunner().invoke(app, ["bench", "summary", str(tmp_path)])
    assert result.exit_code != 0 and "not a `tokenomy bench run` results file (no task, model" in str(result.exception)
    (tmp_path / "results.csv").write_text("")
    result = CliRunner().invoke(app, ["bench", "summary", str(tmp_path)])
    assert result.exit_code != 0 and "cannot read as CSV" in str(result.exception)
    negative = CliRunner().invoke(app, ["bench", "export-labels", str(tmp_path), "--tolerance", "-5"])
    assert negative.exit_code == 2 and "--tolerance" in negative.output


def test_export_labels_prints_costs_by_the_money_rule():
    rows = [
        {
            "task": "t",
            "model": model,
            "example": "0",
            "repeat": "0",
            "prompt": "p",
            "quality": "100",
            "cost_usd": cost,
            "error": "",
        }
        for model, cost in (("local", "0"), ("tiny", "1.5E-7"))
    ]
    (label,) = export_labels(pd.DataFrame(rows))
    assert label["cost_by_model"] == {"local": "0.000000", "tiny": "0.00000015"}  # was "0" and "1.5E-7"


def test_pass_fail_quality_gets_a_wilson_interval_that_holds_the_point():
    def rows(model, passes, n, cost="0.001"):
        return [
            dict.fromkeys(FIELDS, "")
            | {
                "task": "t",
                "model": model,
                "example": str(i),
                "repeat": "0",
                "quality": "100.0" if i < passes else "0.0",
                "cost_usd": cost,
                "latency_ms": "10",
                "output_tokens": "5",
            }
            for i in range(n)
        ]

    frame = pd.DataFrame(rows("all", 10, 10) + rows("most", 8, 10) + rows("one", 1, 1))
    got = {r["model"]: r["quality_ci95"] for r in summarize(frame)["results"]}
    # By hand, Wilson's score interval, z = 1.959964: 10/10 -> centre 0.86123, half 0.13877 -> [72.25, 100];
    # 8/10 -> centre 0.71675, half 0.22659 -> [49.02, 94.33]; 1/1 -> [20.65, 100].
    # Student's t said [100, 100], [49.84, 100] (clipped from 110) and [100, 100].
    assert got == {"all": [72.25, 100.0], "most": [49.02, 94.33], "one": [20.65, 100.0]}
    # Graded scores (judge, JSON fields) keep the t interval on the mean.
    graded = pd.DataFrame([r | {"quality": q} for r, q in zip(rows("g", 3, 3), ("50.0", "75.0", "100.0"), strict=True)])
    (row,) = summarize(graded)["results"]
    assert row["quality"] == 75.0 and row["quality_ci95"] == [12.9, 100.0]


def test_html_report_prints_money_as_bench_summary_does(tmp_path):
    from tokenomy.bench.report import html_report

    frame = pd.DataFrame(
        [
            dict.fromkeys(FIELDS, "")
            | {
                "task": "t",
                "model": "m",
                "example": str(i),
                "repeat": "0",
                "quality": "100.0",
                "cost_usd": "0.00000015",
                "judge_model": "j",
                "judge_cost_usd": "0.0000001",
                "latency_ms": "1",
                "output_tokens": "1",
            }
            for i in range(3)
        ]
    )
    page = html_report(summarize(frame), [], tmp_path).read_text()
    # Money by the one rule at 8 places, as the CLI table: the judge's cost was the raw Decimal sum "$0.0000003".
    assert "judge's own cost ($0.00000030)" in page and "<td>$0.00000015</td>" in page


def test_call_outs_print_tiny_costs_as_the_table_does():
    rows = [
        {"model": "big", "quality": 90.0, "cost_per_task_usd": Decimal("0.000012")},
        {"model": "local", "quality": 89.0, "cost_per_task_usd": Decimal("0.00000015")},
    ]
    (note,) = recommend(rows, 3.0)["notes"]
    # 1% of the cost, and the note said "$0.000000 vs $0.000012": a cost of nothing beside "1% of the cost".
    assert "1% of the cost: $0.00000015 vs $0.00001200 per task" in note, note


def test_cost_per_task_is_what_the_call_paid_not_only_its_last_answer():
    from types import SimpleNamespace

    from tokenomy.bench.runner import run_one
    from tokenomy.chat_response import ChatResponse, Usage

    # A call whose first stream was cut and retried: the answer's own cost is $0.001, the call paid $0.003 (the
    # ledger has both attempts). The bench row took the answer's cost, so cost per task missed the retry.
    answer = ChatResponse.of_text(
        "Paris", "m", "p", Usage(10, 2), cost_usd=Decimal("0.001"), call_cost_usd=Decimal("0.003")
    )

    class Client:
        def stream(self, request):
            yield SimpleNamespace(response=answer)

        def chat(self, request):
            return ChatResponse.of_text(
                "\n".join(f"{c}: 5 - fine" for c in RUBRIC),
                "j",
                "p",
                Usage(5, 5),
                cost_usd=Decimal("0.0001"),
                call_cost_usd=Decimal("0.0004"),
            )

    task = Task("t", "{input}", "exact_match", (Example(0, {"input": "capital?"}, "Paris"),))
    row = run_one(Client(), task, "m", task.examples[0], 0, RunSettings(("m",)))
    assert row["cost_usd"] == "0.003000" and row["quality"] == 100.0
    judged = Task("j", "{input}", "judge", (Example(0, {"input": "capital?"}, "Paris"),))
    row = run_one(Client(), judged, "m", judged.examples[0], 0, RunSettings(("m",), judge_model="j"))
    assert row["judge_cost_usd"] == "0.000400"


def test_cli_refuses_a_candidate_or_judge_the_catalog_cannot_price_before_any_call(tmp_path):
    # Its calls would be recorded at $0 (priced_by=unpriced) and read as the cheapest cost per task.
    config = tmp_path / "tokenomy.yaml"
    config.write_text(
        "models:\n  my-vllm:\n    provider: openai\n    model: qwen-local-finetune\n"
        "    base_url: http://127.0.0.1:9/v1\n    api_key_env: NO_KEY\n"
    )
    for option, extra in (("--models", ["--models", "local,my-vllm"]), ("--judge", ["--judge", "my-vllm"])):
        result = subprocess.run(
            [
                TOKENOMY,
                "bench",
                "run",
                str(EXAMPLES / "capital.yaml"),
                *extra,
                "--config",
                str(config),
                "--out",
                str(tmp_path / "o"),
                "--ledger",
                str(tmp_path / "l.duckdb"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        said = result.stderr + result.stdout
        assert result.returncode == 2 and f"{option}: 'my-vllm' has no price" in said and "price_as" in said, said
        assert "Traceback" not in said and not (tmp_path / "o" / "results.csv").exists()


@pytest.mark.parametrize("command", ["summary", "export-labels"])
@pytest.mark.parametrize("relative", [False, True])
def test_a_results_file_given_for_its_folder_is_named_with_the_folder(command, relative, tmp_path, monkeypatch, capsys):
    # `bench summary bench-out/results.csv` said "bench-out/results.csv/results.csv: no results here; run `tokenomy
    # bench run` first" about results that were there. Given from its own folder (`bench summary results.csv`), the
    # folder `.` was cut off with the sentence's period: "give the folder that holds it, ; see ...".
    import sys

    from tokenomy.cli import main

    monkeypatch.chdir(tmp_path)
    results = Path("results.csv") if relative else tmp_path / "results.csv"
    results.write_text("name,value\na,1\n")
    monkeypatch.setattr(sys, "argv", ["tokenomy", "bench", command, str(results)])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2, err
    # the folder in full, not `.`: "give the folder that holds it, ." read as a sentence with a stray period
    assert f"{results} is a file; give the folder that holds it, {tmp_path.resolve()}; see `" in err, err


def test_a_candidate_call_billed_then_failed_counts_in_cost_per_task(tmp_path):
    # A stream cut after its first token is billed (the ledger records it at its estimate), but its bench row had no
    # cost: results.csv did not sum to the ledger and a model that fails after it is billed read as cheaper. A resumed
    # run redoes the example; the first attempt stays paid.
    from helpers.scripted_openai import ScriptedOpenAI, models

    upstream = ScriptedOpenAI([(200, {}, "cut")])
    task = Task("t", "{input}", "exact_match", tuple(Example(i, {"input": q}, "ok") for i, q in enumerate("ab")))
    out, ledger = tmp_path / "out", tmp_path / "l.duckdb"

    def ledger_total() -> Decimal:
        return sum((e.cost_usd for e in open_store(str(ledger)).events()), Decimal(0))

    def csv_total() -> Decimal:
        return sum(
            (Decimal(r["cost_usd"]) for r in csv.DictReader((out / "results.csv").open()) if r["cost_usd"]), Decimal(0)
        )

    try:
        for resume in (False, True):
            with Tokenomy(str(ledger), models=models(up=upstream.url)) as client:
                run(client, [task], RunSettings(("up",)), out, resume=resume)
            frame = load_results(out / "results.csv")
            [row] = summarize(frame)["results"]
            answered = 2 if resume else 1
            assert row["failure_rate"] == (0.0 if resume else 0.5)
            assert csv_total() == ledger_total() > 0  # every billed attempt is in results.csv
            assert sum(Decimal(c) for c in frame["cost_usd"]) == ledger_total()  # and in the rows kept
            assert row["cost_per_task_usd"] == ledger_total() / answered
    finally:
        upstream.close()
    assert upstream.calls == 3


def test_resume_after_a_failed_judging_judges_the_recorded_answer_without_calling_the_candidate(tmp_path):
    # A judge failure made `bench run --resume` call the candidate again, and its cost per task added both calls:
    # $0.016 for one $0.008 answer, twice the price because the judge failed. The answer is in results.csv: resume
    # now judges it again, and the candidate is called once.
    from types import SimpleNamespace

    from tokenomy.chat_response import ChatResponse, Usage
    from tokenomy.errors import ProviderError

    class Client:
        def __init__(self):
            self.candidate_calls, self.judge_calls = 0, 0

        def stream(self, request):
            self.candidate_calls += 1
            yield SimpleNamespace(
                response=ChatResponse.of_text(
                    f"answer {self.candidate_calls}", "m", "p", Usage(100, 10), cost_usd=Decimal("0.008")
                )
            )

        def chat(self, request):
            self.judge_calls += 1
            if self.judge_calls == 1:
                raise ProviderError("judge timed out", "timeout")
            return ChatResponse.of_text(
                "\n".join(f"{c}: 5 - fine" for c in RUBRIC), "j", "p", Usage(5, 5), cost_usd=Decimal("0.001")
            )

    task = Task("summ", "Summarise {input}", "judge", (Example(0, {"input": "a ticket"}),))
    settings, out, client = RunSettings(("m",), judge_model="j"), tmp_path / "out", Client()
    run(client, [task], settings, out)
    run(client, [task], settings, out, resume=True)
    assert client.candidate_calls == 1 and client.judge_calls == 2
    first, again = list(csv.DictReader((out / "results.csv").open()))
    assert first["judge_error"].startswith("ProviderError") and first["quality"] == ""
    assert again["answer"] == first["answer"] == "answer 1" and again["quality"] == "100.0"
    assert again["cost_usd"] == "0.000000" and again["latency_ms"] == first["latency_ms"]  # nothing paid again
    [row] = summarize(load_results(out / "results.csv"))["results"]
    assert row["quality"] == 100.0 and row["cost_per_task_usd"] == Decimal("0.008")
    assert row["repeated_call_cost_usd"] == 0 and row["judge_cost_usd"] == Decimal("0.001")


def test_a_candidate_called_again_only_for_its_judging_is_overhead_not_cost_per_task(tmp_path):
    # results.csv of an earlier version: A's answer ($0.008) was not judged (the judge timed out) and resume called A
    # again ($0.008) to judge it; the summary added both to A's cost per task ($0.016), so B ($0.009) was recommended
    # for the same quality. A's own retries (a call billed, then cut) still count.
    base = dict.fromkeys(FIELDS, "") | {
        "task": "summ",
        "repeat": "0",
        "prompt": "p",
        "answer": "a",
        "input_tokens": "100",
        "output_tokens": "10",
        "latency_ms": "100",
        "judge_model": "j",
        "rubric": ",".join(RUBRIC),
    }

    def judged(model, example, cost):
        return base | {
            "model": model,
            "example": example,
            "quality": "80",
            "cost_usd": cost,
            "judge_cost_usd": "0.001000",
        }

    rows = [
        base
        | {
            "model": "A",
            "example": "0",
            "cost_usd": "0.008000",
            "judge_cost_usd": "0.000000",
            "judge_error": "ProviderError: judge timed out",
        },
        judged("B", "0", "0.009000"),
        judged("A", "0", "0.008000"),
        # A, example 1: a call billed then cut ($0.002, A's own failure), then answered and judged
        base
        | {
            "model": "A",
            "example": "1",
            "error": "ProviderError: cut",
            "cost_usd": "0.002000",
            "answer": "",
            "latency_ms": "",
            "output_tokens": "",
        },
        judged("A", "1", "0.006000"),
        judged("B", "1", "0.009000"),
    ]
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    summary = summarize(load_results(path))
    by_model = {r["model"]: r for r in summary["results"]}
    # A: ($0.008 + $0.002 + $0.006) / 2 answered = $0.008 per task; its second call for example 0 apart.
    assert by_model["A"]["cost_per_task_usd"] == Decimal("0.008") and by_model["B"]["cost_per_task_usd"] == Decimal(
        "0.009"
    )
    assert by_model["A"]["repeated_call_cost_usd"] == Decimal("0.008") and by_model["B"]["repeated_call_cost_usd"] == 0
    assert summary["recommendations"]["summ"]["model"] == "A"
    assert summary["judge"]["repeated_call_cost_usd"] == Decimal("0.008")
    from rich.console import Console

    from tokenomy.commands.bench import print_summary

    shown = Console(record=True, width=300)
    print_summary(summary, console=shown)
    assert "candidate calls repeated to judge an answer again $0.00800000 (not in cost/task)" in shown.export_text()


def test_a_graded_quality_from_one_score_has_no_interval(tmp_path):
    # One judge score of 70 had the 95% interval [70, 70]: zero width, as if certain, where Student's t has no interval
    # for n = 1. It is undefined now: null in the JSON, "-" in the table and the report; the pick still works.
    from rich.console import Console

    from tokenomy.bench.report import html_report
    from tokenomy.commands._output import dumps
    from tokenomy.commands.bench import print_summary

    def rows(model, scores, cost, task="g"):
        return [
            dict.fromkeys(FIELDS, "")
            | {
                "task": task,
                "model": model,
                "example": str(i),
                "repeat": "0",
                "quality": q,
                "cost_usd": cost,
                "latency_ms": "10",
                "output_tokens": "5",
            }
            for i, q in enumerate(scores)
        ]

    frame = pd.DataFrame(
        rows("single", ["70.0"], "0.001")
        + rows("two", ["60.0", "80.0"], "0.002")
        + rows("passed", ["100.0"], "0.003", task="p")
    )
    summary = summarize(frame)
    got = {r["model"]: r["quality_ci95"] for r in summary["results"]}
    assert got == {"single": None, "two": [0.0, 100.0], "passed": [20.65, 100.0]}  # Wilson's exists for one pass
    assert json.loads(dumps(summary))["by_task"]["g"]["single"]["quality_ci95"] is None
    assert summary["recommendations"]["g"]["model"] == "single"  # as good as `two` (70), and cheaper
    shown = Console(record=True, width=200)
    print_summary(summary, console=shown)
    single = next(line for line in shown.export_text().splitlines() if " single " in line)
    assert single.split("│")[4].strip() == "-", single
    page = html_report(summary, [], tmp_path).read_text()
    assert "<td>single</td><td>1</td><td>70.0</td><td>-</td>" in page


def test_html_report_says_what_cost_per_task_is(tmp_path):
    # The report said "cost per task is the mean cost of one example", while the figure is all the candidate paid
    # (failed calls included) over the examples it answered: a model billed $0.01 for each of two examples, one of
    # which failed, costs $0.02 per task, not $0.01.
    from tokenomy.bench.report import html_report

    rows = [
        dict.fromkeys(FIELDS, "")
        | {
            "task": "t",
            "model": "flaky",
            "example": str(i),
            "repeat": "0",
            "cost_usd": "0.010000",
            "latency_ms": "10",
            "output_tokens": "5",
        }
        | ({"quality": "100.0"} if i == 0 else {"error": "ProviderError: cut", "latency_ms": ""})
        for i in range(2)
    ]
    summary = summarize(pd.DataFrame(rows))
    assert summary["results"][0]["cost_per_task_usd"] == Decimal("0.02")
    page = html_report(summary, [], tmp_path).read_text()
    assert "mean cost of one example" not in page and "<td>$0.02000000</td>" in page
    assert (
        "cost per task is all a candidate paid for its calls, failed ones included (not the judge's), divided by "
        "the examples it answered"
    ) in page
