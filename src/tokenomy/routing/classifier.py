"""Trained router: TF-IDF + logistic regression predicting P(strong tier needed) from the prompt."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenomy.errors import UsageError, as_written, one_line, read_utf8
from tokenomy.providers.usage_counts import MAX_ANSWER_TOKENS

STRONG = {"strong", "tier2", "tier3", "1", "true"}
WEAK = {"weak", "tier1", "0", "false"}


def _is_strong(key: str, value: Any, weak_labels: set[str] | None) -> int:
    """1 when the row's `key` ('label' or 'tier') names the strong side; the value is shown as written in the file
    (it was Python's spelling: "label ['a']", "label 'é'")."""
    written = as_written(value)
    if isinstance(value, list | dict):  # str() made it a label "['a']", strong under --weak-label
        raise ValueError(
            f'{key!r} {written} is a JSON {json_noun(value)}, not a label; give "weak" (the cheap tier was good '
            'enough), "strong" or a tier name'
        )
    name = str(value).lower()
    if weak_labels:  # the caller named the cheap tier(s) or model(s): everything else is strong
        return int(name not in weak_labels)
    if name in STRONG or name in WEAK:
        return int(name in STRONG)
    raise ValueError(
        f"{key!r} {written} is not strong/weak or tier1/tier2/tier3; name the cheap one(s) with "
        "`route train --weak-label NAME`"
    )


EXAMPLE = '{"prompt": "...", "label": "weak"}'
ROW_KEYS = ("prompt", "label", "tier", "weak_quality", "strong_quality", "output_tokens")
# Notes the exporters add to each row, allowed and not read: `route export-labels` (route) and
# `bench export-labels` (the rest), so their files train as written.
EXPORT_NOTES = ("cost_by_model", "example", "met_bar", "quality_bar", "quality_by_model", "route", "task")
JSON_NOUNS = {list: "array", dict: "object", str: "string", bool: "boolean", int: "number", float: "number"}


def json_noun(value: Any) -> str:
    return "null" if value is None else JSON_NOUNS.get(type(value), type(value).__name__)


def load_labelled(path: str | Path, weak_labels: set[str] | None = None) -> list[dict]:
    """Read {prompt, label} lines; label is 'strong'/'weak' or a tier name (tier1 = weak), or any name when
    `weak_labels` lists the cheap ones. A `tier` field (as `tokenomy bench export-labels --tiers` writes) wins
    over `label`. Optional `weak_quality`/`strong_quality` (0-1) and `output_tokens` make calibration exact; any
    other key but the exporters' notes (`EXPORT_NOTES`) is refused, as a misspelling of one of these.
    Errors name the line and the fix (they quoted Python's own text: "('list' object has no attribute 'get')")."""
    given = weak_labels
    weak_labels = {w.lower() for w in weak_labels} if weak_labels else None
    rows, names = [], set()
    text = read_utf8(path, "a labelled JSONL of {prompt, label} lines")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{path}:{number}: not valid JSON at column {exc.colno}: {exc.msg}; write one JSON object per line"
            ) from None
        try:
            rows.append(_labelled_row(row, weak_labels))
        except ValueError as exc:
            raise UsageError(f"{path}:{number}: {exc}") from None
        names.add(str(_label_of(row)))
    # A --weak-label no row has made its rows strong unsaid, then "every example is labelled strong; ... name the
    # cheap labels with --weak-label", the option just given.
    unused = sorted(w for w in given or () if w.lower() not in {n.lower() for n in names})
    if unused and rows:
        raise UsageError(
            f"--weak-label {', '.join(unused)}: no row of {path} has this label or tier; the labels there are "
            f"{', '.join(sorted(names))}"
        )
    return rows


def _label_of(row: dict) -> Any:
    """The tier when it is given (not null), else the label: a falsy tier ("", 0) is read and refused by name, not
    skipped to a label that may not be there."""
    return row[_label_key(row)]


def _label_key(row: dict) -> str:
    return "tier" if row.get("tier") is not None else "label"


def _labelled_row(row: Any, weak_labels: set[str] | None) -> dict:
    """One example line as the trainer's row; a ValueError says what is wrong and how to write it."""
    if not isinstance(row, dict):
        raise ValueError(f"a JSON {json_noun(row)}, not an object; write each example as {EXAMPLE}")
    if row.get("tier") is None and row.get("label") is None:
        raise ValueError('no \'label\'; add "label": "weak" (the cheap tier was good enough) or "strong"')
    if "prompt" not in row:
        raise ValueError("no 'prompt'; add the prompt's text as \"prompt\"")
    if not isinstance(row["prompt"], str):  # str() made a number or null into a prompt "7" or "None"
        raise ValueError(f"'prompt' is a JSON {json_noun(row['prompt'])}, not text; give the prompt's text")
    if not row["prompt"].strip():
        raise ValueError("'prompt' is blank; give the prompt's text, or leave the row out")
    _refuse_unknown_keys(row)  # after the missing ones: {"text": ...} is told to name its prompt "prompt"
    strong = _is_strong(_label_key(row), _label_of(row), weak_labels)
    return {
        "prompt": row["prompt"],
        "label": strong,
        # Without measured qualities: a weak label means the weak model was good enough.
        "weak_quality": _quality(row, "weak_quality", 1 - strong),
        "strong_quality": _quality(row, "strong_quality", 1.0),
        "output_tokens": _tokens(row.get("output_tokens", 256)),
    }


QUALITY_RANGE = "give a quality from 0 (wrong) to 1 (fully right)"


def _refuse_unknown_keys(row: dict) -> None:
    """A misspelt key (strong_qualty) was dropped unsaid and the row trained on the default in its place."""
    import difflib

    unknown = [key for key in row if key not in ROW_KEYS and key not in EXPORT_NOTES]
    if not unknown:
        return
    named = []
    for key in unknown:
        close = difflib.get_close_matches(str(key).lower(), ROW_KEYS, n=1)
        named.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    raise ValueError(
        f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(named)}; a row has {', '.join(ROW_KEYS)}, and the "
        f"export-labels commands' notes ({', '.join(EXPORT_NOTES)})"
    )


def _quality(row: dict, key: str, default: float) -> float:
    """A quality in 0..1: calibration divides by the always-strong mean and reads the result as a share kept, so 5
    or -1 gave a "quality retained" past 100% or below 0 and a threshold picked on it."""
    number = _number(row.get(key, default))
    # The value as written in the file (true, NaN, "high"), not Python's spelling of it (True, nan, 'high').
    written = as_written(row.get(key))
    if number is None:
        raise ValueError(f"{key!r} {written} is not a number; {QUALITY_RANGE}")
    if not 0 <= number <= 1:
        raise ValueError(f"{key!r} {written} is outside 0 to 1; {QUALITY_RANGE}")
    return number


def _tokens(value: Any) -> int:
    number = _number(value)  # int() cut 2.5 to 2 without a word
    written = as_written(value)
    if number is None or number != int(number) or number < 0:
        raise ValueError(f"'output_tokens' {written} is not a whole number >= 0; give the answer's length in tokens")
    if number > MAX_ANSWER_TOKENS:  # 1e30 was taken: every call it priced cost more than any budget
        raise ValueError(
            f"'output_tokens' {written} is over {MAX_ANSWER_TOKENS:,}, more than one answer can be; give the "
            "answer's length in tokens"
        )
    return int(number)


def _number(value: Any) -> float | None:
    """A finite JSON number, or text of one ("0.5", as float() read it before); None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def load_jsonl(path: str | Path) -> tuple[list[str], list[int]]:
    """(prompts, labels) from a labelled JSONL (see `load_labelled`)."""
    rows = load_labelled(path)
    return [r["prompt"] for r in rows], [r["label"] for r in rows]


def train(prompts: list[str], labels: list[int], seed: int = 0):
    """Fit the pipeline; it needs both classes."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if len(set(labels)) < 2:
        raise UsageError("route train: labels are all one class; need both weak and strong examples")
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50000),
        LogisticRegression(max_iter=1000, C=1.0, class_weight="balanced", random_state=seed),
    )
    model.fit(prompts, labels)
    return model


@dataclass
class TrainedRouter:
    """The fitted pipeline and the decision threshold it was calibrated to (0.5 when not calibrated)."""

    pipeline: Any
    threshold: float = 0.5
    calibration: dict | None = None


def save(model, path: str | Path, threshold: float | None = None, calibration: dict | None = None) -> None:
    """Save a pipeline or a TrainedRouter with its threshold, so the router uses the calibrated one."""
    import joblib

    router = model if isinstance(model, TrainedRouter) else TrainedRouter(model)
    joblib.dump(
        {
            "pipeline": router.pipeline,
            "threshold": threshold if threshold is not None else router.threshold,
            "calibration": calibration if calibration is not None else router.calibration,
        },
        path,
    )


def load(path: str | Path) -> TrainedRouter:
    """Load a saved router (also a bare pipeline saved by older versions: threshold 0.5)."""
    import joblib

    try:
        saved = joblib.load(path)
    except FileNotFoundError as exc:
        raise UsageError(f"classifier_path {path}: no such file; train one with `tokenomy route train`") from exc
    except OSError:
        raise  # a folder, no permission: the CLI names the path and the fix
    except Exception as exc:  # unpickling another file raises anything; an empty one EOFError, which click took
        # for Ctrl-D: "aborted", exit 130
        said = f"{type(exc).__name__}: {one_line(exc)}" if str(exc) else type(exc).__name__
        raise _not_a_router(path, "an empty file" if Path(path).stat().st_size == 0 else said) from None
    if isinstance(saved, dict):
        router = TrainedRouter(saved.get("pipeline"), saved.get("threshold", 0.5), saved.get("calibration"))
    else:
        router = TrainedRouter(saved)
    if not hasattr(router.pipeline, "predict_proba") or _number(router.threshold) is None:
        # Another object saved with joblib failed at the first decision, a traceback.
        raise _not_a_router(path, f"it holds a {type(router.pipeline).__name__}")
    router.threshold = float(router.threshold)
    return router


def _not_a_router(path: str | Path, why: str) -> UsageError:
    return UsageError(
        f"classifier_path {path}: not a router saved by `tokenomy route train` ({why}); train one with "
        "`tokenomy route train`"
    )


def strong_probability(model, prompt: str) -> float:
    """P(the strong tier is needed) for one prompt (`model`: a TrainedRouter or a bare pipeline)."""
    pipeline = getattr(model, "pipeline", model)
    fast = _fast_scorer(pipeline)
    return fast(prompt) if fast is not None else float(pipeline.predict_proba([prompt])[0][1])


_FAST: dict[int, Any] = {}


def _fast_scorer(pipeline):
    """For a TF-IDF + logistic regression pipeline: the same probability computed from the vocabulary and the
    coefficients directly. One prompt through scikit-learn's pipeline costs ~1 ms of input checks and sparse
    matrix building; this costs ~0.1 ms, and a decision must stay under 1 ms."""
    key = id(pipeline)
    if key in _FAST:
        return _FAST[key][1]
    scorer = None
    steps = getattr(pipeline, "steps", None)
    if steps and len(steps) == 2 and type(steps[0][1]).__name__ == "TfidfVectorizer":
        vectorizer, regression = steps[0][1], steps[1][1]
        if vectorizer.norm == "l2" and vectorizer.use_idf and regression.coef_.shape[0] == 1:
            scorer = _tfidf_scorer(vectorizer, regression)
    _FAST[key] = (pipeline, scorer)  # the pipeline is kept so its id is not reused by another object
    return scorer


def _tfidf_scorer(vectorizer, regression):
    import math
    from collections import Counter

    analyse, vocabulary = vectorizer.build_analyzer(), vectorizer.vocabulary_
    idf, coef = vectorizer.idf_.tolist(), regression.coef_[0].tolist()
    intercept, sublinear = float(regression.intercept_[0]), vectorizer.sublinear_tf

    def score(prompt: str) -> float:
        counts = Counter(i for i in map(vocabulary.get, analyse(prompt)) if i is not None)
        weights = {i: (1 + math.log(n) if sublinear else n) * idf[i] for i, n in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values()))
        z = intercept + (sum(w * coef[i] for i, w in weights.items()) / norm if norm else 0.0)
        return 1 / (1 + math.exp(-z)) if z > -700 else 0.0

    return score
