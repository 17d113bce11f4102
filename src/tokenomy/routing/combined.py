"""Combined router: TF-IDF words, the static MiniLM embedding and a few difficulty cues in one feature vector, and
two linear heads on it, one per model, each predicting that model's quality; the routing score is the predicted
strong-minus-weak quality gain.

Why two heads rather than one classifier of "strong did better": on MMLU the strong model beats the weak one on
18% of questions and loses on 5%, so a gain label is mostly ties and carries little signal, while "was the weak
model right" is a 68/32 label every question informs. The expected gain is exactly P(strong right) - P(weak right),
so two well-fitted heads estimate it with more data behind each. Graded outcomes (MT-Bench judge scores) get ridge
heads on the scores instead of logistic ones.

Why these features together: TF-IDF sees subject words and recurring templates, the embedding sees topic beyond
exact words, and the cues see what neither does well: length, answer-option lengths and spread, numbers and
formulas, negation (NOT / EXCEPT / LEAST), paired-statement questions. Measured on the held-out halves
(`route eval --seeds 5`, see the README) against each part alone.

Scoring one prompt is a dictionary walk over its words, the embedding mean and two dot products (numpy only), so a
decision stays well under 5 ms; scikit-learn is needed to train only.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import numpy as np

from tokenomy.routing.embeddings import embed

C = 0.3  # inverse L2 strength of both heads (ridge alpha = 1 / C for graded outcomes), see the README
CUE_WEIGHT = 0.3  # standardised cues scaled down so one cue weighs about as much as a few TF-IDF words
_OPTION = re.compile(r"^\(?[A-Ja-j][.)]\s", re.M)
_NEGATION = re.compile(r"\b(?:not|except|least|false|incorrect|never|cannot)\b", re.I)
_SHOUTED = re.compile(r"\b(?:NOT|EXCEPT|LEAST|FALSE|INCORRECT)\b")
_FORMULA = set("=+-*/^()<>[]{}\\|")
CUES = (
    "log prompt length",
    "log question length",
    "answer options",
    "log mean option length",
    "option length spread",
    "option word overlap",
    "digit share",
    "log digits",
    "formula character share",
    "negation words",
    "capitalised negation",
    "paired statements",
    "question marks",
    "log distinct words",
    "code cues",
)


def cues(prompt: str) -> list[float]:
    """Cheap difficulty cues of one prompt, in the order of `CUES`."""
    lines = prompt.split("\n")
    options = [line for line in lines if _OPTION.match(line)]
    question = "\n".join(line for line in lines if not _OPTION.match(line))
    lengths = [len(o) for o in options] or [0]
    mean_length = sum(lengths) / len(lengths)
    spread = float(np.std(lengths)) / (mean_length + 1)
    words = [set(o.lower().split()[1:]) for o in options]
    pairs = [(a, b) for i, a in enumerate(words) for b in words[i + 1 :]]
    overlap = sum(len(a & b) / (len(a | b) or 1) for a, b in pairs) / len(pairs) if pairs else 0.0
    digits = sum(c.isdigit() for c in prompt)
    size = len(prompt) + 1
    return [
        math.log1p(len(prompt)),
        math.log1p(len(question)),
        float(len(options)),
        math.log1p(mean_length),
        spread,
        overlap,
        digits / size,
        math.log1p(digits),
        sum(c in _FORMULA for c in prompt) / size,
        float(len(_NEGATION.findall(question))),
        float(len(_SHOUTED.findall(question))),
        float("Statement 1" in prompt),
        float(prompt.count("?")),
        math.log1p(len(set(prompt.lower().split()))),
        float(prompt.count("```") + prompt.count("def ") + prompt.count(";\n")),
    ]


class CombinedRouter:
    """Has `predict_proba` like a scikit-learn classifier (column 1: P(strong better)), so the router table,
    calibration and `route eval` treat it like the TF-IDF pipeline; `gain` is the predicted quality difference."""

    kind = "combined"

    def fit(self, prompts: list[str], weak_quality: np.ndarray, strong_quality: np.ndarray) -> CombinedRouter:
        import scipy.sparse as sparse
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression, Ridge

        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50000)
        words = self.vectorizer.fit_transform(prompts)
        raw = np.array([cues(p) for p in prompts])
        self.cue_mean, self.cue_scale = raw.mean(0), raw.std(0) + 1e-9
        dense = self._dense(prompts, raw)
        features = sparse.hstack([words, dense]).tocsr()
        binary = bool(np.isin(weak_quality, (0, 1)).all() and np.isin(strong_quality, (0, 1)).all())
        heads = []
        for quality in (strong_quality, weak_quality):
            if binary and len(set(quality)) == 2:
                head: Any = LogisticRegression(C=C, max_iter=2000).fit(features, quality.astype(int))
                heads.append((head.coef_[0], float(head.intercept_[0]), True))
            else:  # graded scores, or a model always right / always wrong: fit the quality itself
                head = Ridge(alpha=1 / C).fit(features, quality)
                heads.append((np.asarray(head.coef_), float(head.intercept_), False))
        vocabulary = len(self.vectorizer.vocabulary_)
        self.heads = [
            (coef[:vocabulary], coef[vocabulary:], intercept, logistic) for coef, intercept, logistic in heads
        ]
        self._scorer = None
        predicted = self.gain(prompts).reshape(-1, 1)
        better = (strong_quality > weak_quality).astype(int)
        self.link = (1.0, 0.0)
        if len(set(better)) == 2:
            link = LogisticRegression().fit(predicted, better)
            self.link = (float(link.coef_[0, 0]), float(link.intercept_[0]))
        return self

    def _dense(self, prompts: list[str], raw: np.ndarray | None = None) -> np.ndarray:
        raw = np.array([cues(p) for p in prompts]) if raw is None else raw
        return np.hstack([embed(prompts), (raw - self.cue_mean) / self.cue_scale * CUE_WEIGHT])

    def _words(self):
        """(analyser, vocabulary, idf) for scoring TF-IDF rows by hand: scikit-learn's transform of one prompt
        costs ~1 ms of checks and sparse-matrix building, the walk below a few microseconds per word."""
        if self._scorer is None:
            vectorizer = self.vectorizer
            self._scorer = (vectorizer.build_analyzer(), vectorizer.vocabulary_, vectorizer.idf_)
        return self._scorer

    def gain(self, prompts: list[str]) -> np.ndarray:
        """Predicted strong-minus-weak quality per prompt."""
        analyse, vocabulary, idf = self._words()
        dense = self._dense(prompts)
        out = np.zeros(len(prompts))
        for row, prompt in enumerate(prompts):
            counts = Counter(i for i in map(vocabulary.get, analyse(prompt)) if i is not None)
            ids = np.fromiter(counts, int, len(counts))
            weights = (1 + np.log(np.fromiter(counts.values(), float, len(counts)))) * idf[ids]
            norm = float(np.sqrt(weights @ weights)) or 1.0
            quality = []
            for word_coef, dense_coef, intercept, logistic in self.heads:
                z = intercept + float(weights @ word_coef[ids]) / norm + float(dense[row] @ dense_coef)
                quality.append(1 / (1 + math.exp(-z)) if logistic else z)
            out[row] = quality[0] - quality[1]
        return out

    def predict_proba(self, prompts: list[str]) -> np.ndarray:
        slope, intercept = self.link
        strong = 1 / (1 + np.exp(-(self.gain(prompts) * slope + intercept)))
        return np.column_stack([1 - strong, strong])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_scorer": None}  # the analyser is a closure: rebuilt after loading


def train(prompts: list[str], weak_quality, strong_quality) -> CombinedRouter:
    """Fit the combined router on prompts and both models' quality (0-1) per prompt."""
    from tokenomy.errors import UsageError

    weak, strong = np.asarray(weak_quality, float), np.asarray(strong_quality, float)
    if not (strong > weak).any() or (strong > weak).all():
        raise UsageError(
            "route train: labels are all one class; need prompts where the strong model did better, and others"
        )
    return CombinedRouter().fit(prompts, weak, strong)
