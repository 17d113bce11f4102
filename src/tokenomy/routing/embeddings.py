"""Embedding router: a prompt embedding from a static token table distilled from all-MiniLM-L6-v2, and a linear
model on it that predicts how much better the strong model answers than the weak one.

Why static: running the transformer itself (even int8 ONNX) takes 15-60 ms per prompt on a busy 2-core machine,
far over a 5 ms decision budget. Model2Vec's finding carries over: each vocabulary token embedded alone by the
sentence model, PCA-reduced, then averaged over a prompt's tokens, keeps most of the model's topic signal at the
cost of a table lookup. The table (`tokenomy/data/embeddings/`, 6.6 MB, built by
`scripts/build_static_embeddings.py`) is read once per process; routing needs numpy only.

Why regression on the quality gain: RouteLLM's matrix-factorisation router scores a prompt by a bilinear form of
its embedding and each model's embedding; with two models that is one linear function of the prompt embedding,
which is what a ridge regression on (strong quality - weak quality) fits. Regressing the gain instead of
classifying "strong was better" keeps graded scores (MT-Bench), and a tie (both right or both wrong) is a gain of
zero rather than a "weak was enough" label. A logistic map fitted on the training scores turns the gain into
P(strong better), so thresholds stay in 0-1 like the TF-IDF classifier's.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from functools import lru_cache

import numpy as np

from tokenomy.data import bundled

TABLE = "embeddings/minilm_l6_static.npz"
VOCAB = "embeddings/vocab.txt.gz"
UNKNOWN = 100  # [UNK] in the BERT uncased vocabulary
MAX_WORDS = 512  # a prompt's first and last 256 words: bounds the decision time on very long prompts
_WORDS = re.compile(r"[^\W_]+|[^\w\s]|_")


@lru_cache(maxsize=1)
def read_vocab() -> dict[str, int]:
    """WordPiece vocabulary of all-MiniLM-L6-v2 (bert-base-uncased's): token → id."""
    lines = gzip.decompress(bundled(VOCAB).read_bytes()).decode().splitlines()
    return {token: i for i, token in enumerate(lines)}


@lru_cache(maxsize=1)
def read_table() -> tuple[np.ndarray, np.ndarray]:
    """The static embedding table: int8 rows (tokens x dims, 7.8 MB in memory) and one float32 scale per dimension,
    read once per process. Rows stay int8: a prompt's mean is taken over its few rows, then scaled."""
    with np.load(bundled(TABLE)) as saved:
        return saved["rows"], saved["scale"]


def _normalise(text: str) -> str:
    # BERT uncased: lower case, accents stripped (NFD, drop combining marks).
    text = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in text if unicodedata.category(c) != "Mn")


@lru_cache(maxsize=65536)
def _word_ids(word: str) -> tuple[int, ...]:
    """Greedy longest-match-first WordPiece, as BERT tokenises one word."""
    vocab = read_vocab()
    if len(word) > 100:
        return (UNKNOWN,)
    ids, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                ids.append(vocab[piece])
                break
            end -= 1
        else:
            return (UNKNOWN,)
        start = end
    return tuple(ids)


def token_ids(text: str) -> list[int]:
    """WordPiece ids of a prompt (its first and last MAX_WORDS / 2 words)."""
    words = _WORDS.findall(_normalise(text))
    if len(words) > MAX_WORDS:
        words = words[: MAX_WORDS // 2] + words[-MAX_WORDS // 2 :]
    return [i for word in words for i in _word_ids(word)]


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length prompt embeddings: the mean of the prompt's token rows."""
    rows, scale = read_table()
    out = np.zeros((len(texts), rows.shape[1]), np.float32)
    for row, text in enumerate(texts):
        ids = token_ids(text) or [UNKNOWN]
        vector = rows[ids].mean(0, dtype=np.float32) * scale
        out[row] = vector / (np.linalg.norm(vector) or 1.0)
    return out


class GainRouter:
    """Ridge regression of (strong - weak quality) on the embedding, alpha chosen by leave-one-out CV, then a
    logistic map of the predicted gain to P(strong better). Has `predict_proba` like a scikit-learn classifier,
    so the router, calibration and `route eval` treat it like the TF-IDF pipeline."""

    kind = "embedding"

    def fit(self, prompts: list[str], gains: np.ndarray) -> GainRouter:
        from sklearn.linear_model import LogisticRegression, RidgeCV

        features = embed(prompts)
        self.ridge = RidgeCV(alphas=(0.1, 0.3, 1.0, 3.0, 10.0, 30.0)).fit(features, gains)
        predicted = self.ridge.predict(features).reshape(-1, 1)
        self.link = LogisticRegression().fit(predicted, (np.asarray(gains) > 0).astype(int))
        return self

    def gain(self, prompts: list[str]) -> np.ndarray:
        """Predicted strong-minus-weak quality per prompt (the ridge's linear map, without its input checks)."""
        return embed(prompts) @ self.ridge.coef_ + float(self.ridge.intercept_)

    def predict_proba(self, prompts: list[str]) -> np.ndarray:
        # The logistic map by hand: one prompt per decision, scikit-learn's input checks would cost more than it.
        z = self.gain(prompts) * float(self.link.coef_[0, 0]) + float(self.link.intercept_[0])
        strong = 1 / (1 + np.exp(-z))
        return np.column_stack([1 - strong, strong])


def train(prompts: list[str], gains: np.ndarray) -> GainRouter:
    """Fit the embedding router on prompts and each prompt's strong-minus-weak quality."""
    from tokenomy.errors import UsageError

    gains = np.asarray(gains, float)
    if not (gains > 0).any() or (gains > 0).all():
        raise UsageError(
            "route train: labels are all one class; need prompts where the strong model did better, and others"
        )
    return GainRouter().fit(prompts, gains)
