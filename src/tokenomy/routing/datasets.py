"""Router evaluation outcomes, read as published: per prompt, how well the weak and the strong model did.

Every loader returns one frame with the same columns, so evaluation and threshold calibration do not
care where outcomes came from:

- `prompt`: the text a router sees;
- `weak_quality`, `strong_quality`: 0–1 (correct = 1 for GSM8K/MMLU, judge score / 10 for MT-Bench);
- `weak_response`: the weak model's answer when the dataset has it (GSM8K), else missing;
- `input_tokens`, `weak_output_tokens`, `strong_output_tokens`: estimated, to price each call.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import json
import math
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from tokenomy.caching.placement import estimate_tokens
from tokenomy.data import ROUTELLM, bundled
from tokenomy.errors import UsageError, as_written, one_line, read_utf8, utf8_text
from tokenomy.routing.classifier import EXAMPLE, json_noun

WEAK_COL, STRONG_COL = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
# MMLU rows carry no responses: the answer is one letter, but a chat model writes a short sentence.
DEFAULT_OUTPUT_TOKENS = {"mmlu": 16}
FALLBACK_OUTPUT_TOKENS = 256
# What a dataset argument may be. `route eval` takes no labelled lines: it offered them ("... or a labelled JSONL").
DATASETS = (
    f"give gsm8k, mmlu, mt-bench, RouteLLM outcome files (CSV with prompt, {WEAK_COL} and {STRONG_COL}, or MT-Bench "
    "judgements JSONL) or, to `route train`, a labelled JSONL of {prompt, label} lines"
)


def resolve(dataset: str) -> Path:
    """A path as given, or gsm8k / mmlu / mt-bench from the packaged RouteLLM outcomes; errors say what exists."""
    path = Path(dataset)
    if not path.exists() and dataset in ROUTELLM:
        path = bundled(ROUTELLM[dataset])
    if not path.exists():
        raise UsageError(
            f"route dataset {dataset!r}: not found; give gsm8k, mmlu, mt-bench, a path to RouteLLM outcome files "
            "(CSV, a folder of CSVs, or MT-Bench judgements JSONL) or, to `route train`, a labelled JSONL of "
            "{prompt, label} lines"
        )
    return path


def _json_lines(path: Path) -> bool:
    """Whether a file holds JSON lines, by its name or, whatever it is named (labels.json, .txt), by its first
    character: such a file was read as a CSV and refused for missing RouteLLM columns."""
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        return True
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        start = handle.read(4096).removeprefix(codecs.BOM_UTF8).lstrip()
    return start.startswith((b"{", b"["))


def load_outcomes(dataset: str) -> pd.DataFrame:
    """Read a RouteLLM outcome file (or folder) as it is into the common columns."""
    path = resolve(dataset)
    if _json_lines(path):
        return _mt_bench(path)
    files = sorted(glob.glob(str(path / "*.csv")) + glob.glob(str(path / "*.csv.gz"))) if path.is_dir() else [str(path)]
    if not files:
        raise UsageError(f"route dataset {path}: no *.csv or *.csv.gz files in this folder")
    frames = []
    for name in files:
        try:
            frame = pd.read_csv(name)
        except (ValueError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError; was a traceback
            raise UsageError(f"{name}: cannot read as a RouteLLM outcome CSV ({one_line(exc)}); {DATASETS}") from None
        missing = [c for c in ("prompt", WEAK_COL, STRONG_COL) if c not in frame.columns]
        if missing:
            raise UsageError(f"{name}: missing column(s) {', '.join(missing)}; {DATASETS}")
        frames.append(frame)
    raw = pd.concat(frames, ignore_index=True)
    if raw.empty:  # zero outcomes ended in the fit's "labels are all one class"
        only = "headers" if path.is_dir() else "a header"
        raise UsageError(f"{path}: no outcomes, only {only}; add a row per prompt")
    out = pd.DataFrame(
        {
            "prompt": raw["prompt"].astype(str),
            "weak_quality": raw[WEAK_COL].astype(bool).astype(float),
            "strong_quality": raw[STRONG_COL].astype(bool).astype(float),
        }
    )
    default_out = DEFAULT_OUTPUT_TOKENS.get(dataset, FALLBACK_OUTPUT_TOKENS)
    out["weak_response"] = raw.get(WEAK_COL + "_response")
    out["input_tokens"] = out["prompt"].map(estimate_tokens)
    out["weak_output_tokens"] = _tokens(raw.get(WEAK_COL + "_response"), len(out), default_out)
    out["strong_output_tokens"] = _tokens(raw.get(STRONG_COL + "_response"), len(out), default_out)
    return out


def _tokens(responses: pd.Series | None, n: int, default: int) -> np.ndarray:
    if responses is None:
        return np.full(n, default, dtype=np.int64)
    return responses.map(lambda r: max(1, estimate_tokens(r)) if isinstance(r, str) else default).to_numpy(np.int64)


_USER_TURN = re.compile(r"### User:\n(.*?)\n\n### ", re.S)
_QUESTION = re.compile(r"\[Question\]\n(.*?)\n\n\[The Start of", re.S)
_ANSWER = re.compile(r"\[The Start of Assistant's Answer\]\n(.*?)\n\[The End of Assistant's Answer\]", re.S)
_LAST_REPLY = re.compile(r"### Assistant A:\n(.*?)(?:\n\n### |\n\n<\|The End of Assistant A)", re.S)


def _turn_prompt(judge_prompt: str) -> str:
    """The user's side of the conversation, without the judge's instructions or the answers."""
    turns = list(dict.fromkeys(_USER_TURN.findall(judge_prompt)))  # the reference block repeats them
    if turns:
        return "\n\n".join(turns)
    found = _QUESTION.search(judge_prompt)
    return found.group(1) if found else judge_prompt


def _answer_tokens(judge_prompt: str) -> int:
    replies = list(_LAST_REPLY.finditer(judge_prompt))
    found = _ANSWER.search(judge_prompt) or (replies[-1] if replies else None)
    return max(1, estimate_tokens(found.group(1))) if found else FALLBACK_OUTPUT_TOKENS


# MT-Bench's judge rates 1 to 10 (halves too: the packaged judgements have 8.5 and 9.5); FastChat writes -1 when the
# judge's verdict did not parse, read as the lowest score.
MIN_SCORE, MAX_SCORE, FAILED_SCORE = 1, 10, -1
JUDGEMENT = "an MT-Bench judgement needs question_id, turn, model, a numeric score and the judge's user_prompt"
NOT_OUTCOMES = (
    "a labelled {prompt, label} line, not an MT-Bench judgement; `route eval` replays both models' outcomes per "
    "prompt (gsm8k, mmlu, mt-bench or RouteLLM outcome files); labelled lines train a router with `route train`"
)


def _judgement(row) -> tuple[tuple[int, int], str]:
    """((question_id, turn), model) of one judgement line; a ValueError says what is wrong with it (it quoted
    Python's own text: "(KeyError('question_id'))")."""
    if not isinstance(row, dict):
        raise ValueError(f"{JUDGEMENT}; a JSON {json_noun(row)}, not an object")
    if "question_id" not in row and "prompt" in row and ("label" in row or "tier" in row):
        raise ValueError(NOT_OUTCOMES)
    for key in ("question_id", "turn", "model", "score", "user_prompt"):
        if key not in row:
            raise ValueError(f"{JUDGEMENT}; no {key!r}")
    for key in ("question_id", "turn"):
        if isinstance(row[key], bool) or not isinstance(row[key], int | str) or not str(row[key]).isdigit():
            raise ValueError(f"{JUDGEMENT}; {key!r} {as_written(row[key])} is not a whole number")
    if not isinstance(row["user_prompt"], str):  # the user's turns and the answers are read from it
        raise ValueError(f"{JUDGEMENT}; 'user_prompt' {as_written(row['user_prompt'])} is not text")
    if not isinstance(row["model"], str):
        raise ValueError(f"{JUDGEMENT}; 'model' {as_written(row['model'])} is not a model name")
    score, written = row["score"], as_written(row["score"])
    try:  # true was read as the score 1, NaN as a quality that compares with nothing
        number = None if isinstance(score, bool) or score is None else float(score)
    except (TypeError, ValueError):
        number = None
    if number is None or not math.isfinite(number):
        raise ValueError(f"{JUDGEMENT}; 'score' {written} is not a number")
    if not (MIN_SCORE <= number <= MAX_SCORE or number == FAILED_SCORE):  # 50 was read as a quality of 5.0
        raise ValueError(
            f"{JUDGEMENT}; 'score' {written} is outside MT-Bench's {MIN_SCORE} to {MAX_SCORE} ({FAILED_SCORE} marks a "
            "judgement that failed)"
        )
    return (int(row["question_id"]), int(row["turn"])), row["model"]


def _gunzipped(path: Path, expected: str) -> bytes:
    """The decompressed bytes of a .gz file; one that is not gzip (plain text named .gz, a cut-short download) is a
    UsageError naming the file and the fix, not gzip's own error without the file's name."""
    data = path.read_bytes()
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError; a cut-short file an EOFError
        raise UsageError(
            f"{path}: not a gzip file ({one_line(exc)}); expected {expected} compressed with gzip: name the file "
            "without .gz if it is not compressed, or compress it with `gzip`"
        ) from None


def _mt_bench(path: Path) -> pd.DataFrame:
    """MT-Bench single-answer judgements: one row per (question, turn) with both models' scores / 10."""
    expected = "MT-Bench judgements JSONL"
    if path.suffix == ".gz":
        decompressed = _gunzipped(path, expected)
        text = utf8_text(decompressed, str(path), f"{expected} (the byte counted once decompressed)")
    else:  # read_text() let a binary file out as a UnicodeDecodeError traceback
        text = read_utf8(path, expected)
    by_model: dict[str, dict[tuple, dict]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: not JSON ({exc})") from None
        try:
            key, model = _judgement(row)
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: {exc}") from None
        by_model.setdefault(model, {})[key] = row
    if WEAK_COL not in by_model or STRONG_COL not in by_model:
        raise UsageError(f"{path}: needs judgements for both {WEAK_COL} and {STRONG_COL}; found {sorted(by_model)}")
    weak, strong = by_model[WEAK_COL], by_model[STRONG_COL]
    keys = sorted(set(weak) & set(strong))
    prompts = [_turn_prompt(strong[k]["user_prompt"]) for k in keys]
    return pd.DataFrame(
        {
            "prompt": prompts,
            # Scores of -1 mark a failed judgement in MT-Bench files: treat as the lowest score.
            "weak_quality": [max(float(weak[k]["score"]), MIN_SCORE) / MAX_SCORE for k in keys],
            "strong_quality": [max(float(strong[k]["score"]), MIN_SCORE) / MAX_SCORE for k in keys],
            "weak_response": None,
            "input_tokens": [estimate_tokens(p) for p in prompts],
            "weak_output_tokens": [_answer_tokens(weak[k]["user_prompt"]) for k in keys],
            "strong_output_tokens": [_answer_tokens(strong[k]["user_prompt"]) for k in keys],
        }
    )


def labelled_frame(rows: list[dict], source: str = "the labelled file") -> pd.DataFrame:
    """Rows of `classifier.load_labelled` in the common columns (both models answer `output_tokens` long)."""
    if not rows:  # a file of blank lines used to end in KeyError: 'prompt'
        raise UsageError(f"{source}: no examples; write one JSON object per line, e.g. {EXAMPLE}")
    frame = pd.DataFrame(rows)
    frame["weak_response"] = None
    frame["input_tokens"] = frame["prompt"].map(estimate_tokens)
    frame["weak_output_tokens"] = frame["strong_output_tokens"] = frame["output_tokens"]
    return frame


def load_training_data(data: str, weak_labels: set[str] | None = None) -> pd.DataFrame:
    """`route train` input: a labelled JSONL ({prompt, label} lines) or any RouteLLM outcome dataset."""
    from tokenomy.routing.classifier import load_labelled

    path = Path(data)
    if path.exists() and not path.name.endswith(".gz") and _json_lines(path):
        text = read_utf8(path, "a labelled JSONL of {prompt, label} lines or MT-Bench judgements JSONL")
        first = next((line for line in text.splitlines() if line.strip()), "{}")
        try:
            row = json.loads(first)
            # Only MT-Bench judgements (question_id ...) go to the outcome reader; a labelled line missing its
            # label must get the labelled reader's error, not one about judgements.
            labelled = not isinstance(row, dict) or "label" in row or "question_id" not in row
        except ValueError:
            labelled = True  # let the labelled reader name the bad line
        if labelled:
            return labelled_frame(load_labelled(path, weak_labels), str(path))
    outcomes = load_outcomes(data)  # first: a path not found is named as such
    if weak_labels:  # it was dropped unsaid
        raise UsageError(
            f"--weak-label {', '.join(sorted(weak_labels))}: {data} holds outcomes (whether the strong model scored "
            "higher), not labels; leave --weak-label out"
        )
    return outcomes
