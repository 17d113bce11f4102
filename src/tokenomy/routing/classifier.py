"""Trained router: TF-IDF + logistic regression predicting P(strong tier needed) from the prompt."""

from __future__ import annotations

import json
from pathlib import Path

from tokenomy.errors import UsageError

STRONG = {"strong", "tier2", "tier3", "1", "true"}


def load_jsonl(path: str | Path) -> tuple[list[str], list[int]]:
    """Read {prompt, label} lines; label is 'strong'/'weak' or a tier name (tier1 = weak). Errors name the line."""
    prompts, labels = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompts.append(str(row["prompt"]))
            labels.append(int(str(row["label"]).lower() in STRONG))
        except (ValueError, KeyError) as exc:
            raise UsageError(f"{path}:{number}: need a JSON object with 'prompt' and 'label' ({exc})") from exc
    return prompts, labels


def train(prompts: list[str], labels: list[int], seed: int = 0):
    """Fit the pipeline; it needs both classes."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if len(set(labels)) < 2:
        raise UsageError("route train: labels are all one class; need both weak and strong examples")
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50000),
                          LogisticRegression(max_iter=1000, C=1.0, class_weight="balanced", random_state=seed))
    model.fit(prompts, labels)
    return model


def save(model, path: str | Path) -> None:
    import joblib

    joblib.dump(model, path)


def load(path: str | Path):
    import joblib

    return joblib.load(path)


def strong_probability(model, prompt: str) -> float:
    """P(the strong tier is needed) for one prompt."""
    return float(model.predict_proba([prompt])[0][1])
