"""The wheel is complete: built from this checkout, installed into a fresh virtual environment, it runs
`tokenomy demo` and `tokenomy route eval gsm8k` from an empty directory (no checkout, no examples beside it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the commands read at run time, by path inside the wheel.
REQUIRED = [
    "tokenomy/data/routellm/gsm8k_responses.csv.gz",
    "tokenomy/data/routellm/mt_bench_judgements.jsonl.gz",
    "tokenomy/data/routellm/mmlu/mmlu_anatomy.csv.gz",
    "tokenomy/data/routellm/LICENSE",
    "tokenomy/data/embeddings/minilm_l6_static.npz",
    "tokenomy/data/embeddings/vocab.txt.gz",
    "tokenomy/data/embeddings/README.md",
    "tokenomy/data/traces/AzureLLMInferenceTrace_conv.csv.gz",
    "tokenomy/data/traces/azure_conv_slice.csv",
    "tokenomy/data/traces/README.md",
    "tokenomy/examples/bench/support.yaml",
    "tokenomy/examples/bench/variants.yaml",
    "tokenomy/examples/routing/eval_rules.yaml",
    "tokenomy/examples/gateway/minimal.yaml",
    "tokenomy/analytics/static/dashboard.js",
    "tokenomy/analytics/static/console.js",
    "tokenomy/analytics/static/requests.js",
    "tokenomy/analytics/static/providers.js",
    "tokenomy/analytics/static/chart.umd.min.js",
    "tokenomy/pricing/data/bedrock.yaml",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        timeout=600,
    )
    (built,) = out.glob("tokenomy-*.whl")
    return built


def test_wheel_lists_the_data_and_examples_the_commands_use(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in REQUIRED if name not in names]
    assert not missing, f"not in the wheel: {missing}"
    assert len([n for n in names if n.startswith("tokenomy/data/routellm/mmlu/")]) == 57


@pytest.mark.slow
def test_installed_wheel_runs_the_demo_and_route_eval_from_an_empty_directory(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # Dependencies come from pip's cache (llama-cpp-python's wheel was built once by `make install`).
    env = {**os.environ, "CMAKE_ARGS": os.environ.get("CMAKE_ARGS", "-DGGML_NATIVE=OFF")}
    env.pop("PYTHONPATH", None)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)], check=True, timeout=1800, env=env
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    tokenomy = str(venv / "bin" / "tokenomy")
    located = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import tokenomy; print(tokenomy.__file__)"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(venv) in located.stdout  # the wheel's copy, not this checkout

    demo = subprocess.run(
        [tokenomy, "demo", "--workdir", str(empty / "demo")],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "Demo finished" in demo.stdout and "Traceback" not in demo.stderr
    assert (empty / "demo" / "report.html").stat().st_size > 10_000

    evaluated = subprocess.run(
        [tokenomy, "route", "eval", "gsm8k", "--json"], cwd=empty, env=env, capture_output=True, text=True, timeout=600
    )
    assert evaluated.returncode == 0, evaluated.stderr
    rows = json.loads(evaluated.stdout)  # one row per policy, each naming the held-out size
    assert rows[0]["held_out"] > 500 and {row["policy"] for row in rows} >= {"classifier", "random"}
    # Nothing else written beside the user's files: the demo's folder and route eval's curve (its --png default).
    assert sorted(p.name for p in empty.iterdir()) == ["demo", "route_eval.png"]
