"""Benchmarking: real runs on the local model and llama.cpp's server, resume, verbosity, labels, scorers."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from tokenomy.bench.judge import parse_verdict
from tokenomy.bench.plot import knee, pareto_frontier
from tokenomy.bench.runner import RunSettings, run
from tokenomy.bench.scorers import score
from tokenomy.bench.summary import export_labels, load_results, summarize
from tokenomy.bench.tasks import Example, Task, load_tasks
from tokenomy.client import Tokenomy
from tokenomy.config import load_config
from tokenomy.errors import ConfigError
from tokenomy.ledger.store import open_store

ROOT = Path(__file__).resolve().parent.parent
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
    schema = Task("t", "{input}", "json_schema", (Example(0, {}),),
                  options={"schema": {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}})
    assert score(schema, schema.examples[0], '{"n": 3}')[0] == 100
    assert score(schema, schema.examples[0], '{"n": "3"}')[0] == 0
    numeric = Task("t", "{input}", "numeric", (Example(0, {}, 42),), options={"tolerance": 0.5})
    assert score(numeric, numeric.examples[0], "so the answer is 42.3")[0] == 100
    label = Task("t", "{input}", "classification", (Example(0, {}, "billing"),),
                 options={"labels": ["billing", "technical"]})
    assert score(label, label.examples[0], "Category: Billing")[0] == 100
    assert score(label, label.examples[0], "technical")[0] == 0
    regex = Task("t", "{input}", "regex", (Example(0, {}),), options={"pattern": r"\d{4}-\d{2}"})
    assert score(regex, regex.examples[0], "due 2026-01")[0] == 100


def test_judge_verdicts_parse_and_bad_task_files_are_named(tmp_path):
    scores, reasons = parse_verdict("Correctness: 4 - right\n**Completeness**: 3/5 - misses one\ncoherence=5\n"
                                    "Relevance: 2, off topic\nhelpfulness: 4\nSafety: 5 - fine")
    assert scores == {"correctness": 4, "completeness": 3, "coherence": 5, "relevance": 2, "helpfulness": 4,
                      "safety": 5}
    assert reasons["completeness"] == "misses one"
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - name: x\n    prompt: hi\n    scorer: vibes\n    examples: [a]\n")
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.scorer: 'vibes'"):
        load_tasks(bad)


def test_pareto_frontier_and_knee():
    points = [(1.0, 50, "a"), (2.0, 80, "b"), (3.0, 82, "c"), (10.0, 90, "d"), (5.0, 60, "dominated")]
    frontier = pareto_frontier(points)
    assert [p[2] for p in frontier] == ["a", "b", "c", "d"]
    assert knee(frontier)[2] == "b"


@pytest.mark.slow
def test_examples_on_local_and_server_with_a_judge(llama_server, tmp_path):
    config = tmp_path / "models.yaml"
    config.write_text(f"models:\n  server:\n    provider: openai\n    model: smollm2\n    base_url: {llama_server}\n"
                      "    price_as: gpt-4o-mini\n")
    out = tmp_path / "out"
    result = subprocess.run([TOKENOMY, "bench", "run", str(EXAMPLES / "support.yaml"), "--models", "local,server",
                             "--judge", "local", "--sample", "2", "--config", str(config), "--out", str(out),
                             "--ledger", str(tmp_path / "l.duckdb"), "--json"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    rows = summary["results"]
    assert {(r["task"], r["model"]) for r in rows} == {(t, m) for t in ("ticket-classification", "extraction",
                                                                        "summarisation") for m in ("local", "server")}
    for row in rows:
        assert 0 <= row["quality"] <= 100 and row["latency_p50_ms"] > 0
        assert {"quality", "cost_per_task_usd", "latency_p50_ms"} <= set(row)
    server_rows = [r for r in rows if r["model"] == "server"]
    assert all(Decimal(r["cost_per_task_usd"]) > 0 for r in server_rows)  # priced as gpt-4o-mini
    judged = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    judged = judged[judged["task"] == "summarisation"]
    assert set(judged["judge_model"]) == {"local"} and all(judged["rubric"].str.contains("correctness"))
    for name in ("results.csv", "results.parquet", "pareto_extraction.png", "report.html", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    assert len(pd.read_parquet(out / "results.parquet")) == 2 * 2 * 3
    assert "data:image/png;base64" in (out / "report.html").read_text()
    # The judge's own calls are recorded separately from the candidates'.
    tasks = {e.task for e in open_store(tmp_path / "l.duckdb").events()}
    assert "bench-judge" in tasks and "bench:summarisation" in tasks


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
    with Tokenomy(ledger) as client:
        run(client, tasks, settings, out, resume=True)
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 6 and not frame.duplicated(["task", "model", "example", "repeat"]).any()
    assert open_store(ledger).count() == 6  # six model calls in total: nothing repeated


@pytest.mark.slow
def test_verbose_variant_costs_more_per_task_at_equal_token_price(tmp_path):
    tasks_file = tmp_path / "tasks.yaml"
    tasks_file.write_text("tasks:\n  - name: explain\n    prompt: \"What is {input}?\"\n    scorer: regex\n"
                          "    pattern: \".\"\n    examples: [{input: a router}, {input: a cache}]\n")
    cfg = load_config(EXAMPLES / "variants.yaml")
    settings = RunSettings(("terse", "verbose"), max_tokens=120,
                           system_prompts={n: m.system_prompt for n, m in cfg.models.items()})
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
    for example, (q_small, q_big) in enumerate([(100, 100), (0, 100), (98, 100)]):
        for model, quality, cost in (("small", q_small, "0.001"), ("big", q_big, "0.010")):
            rows.append({"task": "t", "model": model, "example": str(example), "repeat": "0", "prompt": f"p{example}",
                         "quality": str(quality), "cost_usd": cost, "error": ""})
    frame = pd.DataFrame(rows)
    labels = export_labels(frame, tolerance=3, tiers={"small": "tier1", "big": "tier2"})
    assert [(l["prompt"], l["label"], l["tier"]) for l in labels] == [
        ("p0", "small", "tier1"), ("p1", "big", "tier2"), ("p2", "small", "tier1")]
