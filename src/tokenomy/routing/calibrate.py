"""The classifier threshold that meets a quality floor or a cost budget on held-out data.

Calibration works on outcome frames (see `routing.datasets`): for each held-out prompt the router's
P(strong needed), both models' quality and both models' cost. Sending the k highest-scoring prompts to
the strong model is the only family of choices a threshold can make, so cumulative sums over the
sorted scores give quality and cost for every threshold at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tokenomy.errors import UsageError
from tokenomy.money import money_str, typed
from tokenomy.routing.outcome_prices import STRONG_MODEL, WEAK_MODEL, Price, call_costs, price


def sweep(
    scores: np.ndarray,
    weak_q: np.ndarray,
    strong_q: np.ndarray,
    weak_cost: np.ndarray,
    strong_cost: np.ndarray,
    resamples: int = 0,
    seed: int = 0,
    escalated: np.ndarray | None = None,
) -> pd.DataFrame:
    """Every distinct threshold: strong share, mean quality, quality retained vs always-strong, mean cost.

    With `escalated` (a hybrid: prompts under the threshold go to the weak model, and where its answer fails the
    validators, to the strong one too), those prompts get the strong quality at both prices, and count as strong
    calls.

    With `resamples`, also `retained_draws` and `cost_draws`: bootstrap resamples of the same set (arrays,
    one value per resample), so a calibration can ask how often a threshold would still meet its target.
    """
    n = len(scores)
    if escalated is not None:
        weak_q = np.where(escalated, strong_q, weak_q)
        weak_cost = np.where(escalated, weak_cost + strong_cost, weak_cost)
    order = np.argsort(-scores, kind="stable")
    ranked = scores[order]
    top = np.arange(n + 1)
    # Bootstrap as multinomial weights: row 0 is the set itself, the others resample it.
    weights = np.ones((1, n))
    if resamples:
        draws = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples)
        weights = np.vstack([weights, draws])
    w = weights[:, order]
    zero = np.zeros((len(w), 1))
    quality = (
        (w * weak_q[order]).sum(1, keepdims=True) + np.hstack([zero, np.cumsum(w * (strong_q - weak_q)[order], axis=1)])
    ) / n
    cost = (
        (w * weak_cost[order]).sum(1, keepdims=True)
        + np.hstack([zero, np.cumsum(w * (strong_cost - weak_cost)[order], axis=1)])
    ) / n
    strong_mean = (w * strong_q[order]).sum(1, keepdims=True) / n
    retained = np.divide(quality, strong_mean, out=np.full_like(quality, np.nan), where=strong_mean > 0)
    # A threshold can only split between different scores: "top k" with ties inside is not reachable.
    reachable = np.ones(n + 1, bool)
    reachable[1:n] = ranked[:-1] > ranked[1:]
    strong_calls = top.astype(float)
    if escalated is not None:  # routed straight to strong, plus escalations among the prompts below the threshold
        strong_calls += escalated.sum() - np.concatenate([[0], np.cumsum(escalated[order])])
    above_all = float(np.nextafter(ranked[0], np.inf)) if n else 1.0
    thresholds = np.concatenate([[above_all], ranked])
    curve = pd.DataFrame(
        {
            "threshold": thresholds,
            "strong_share": strong_calls / max(n, 1),
            "quality": quality[0],
            "quality_retained": retained[0],
            "cost_per_request": cost[0],
        }
    )
    if resamples:
        curve["retained_draws"] = list(retained[1:].T)
        curve["cost_draws"] = list(cost[1:].T)
    return curve[reachable].reset_index(drop=True)


def pick_threshold(
    curve: pd.DataFrame,
    target_quality: float | None = None,
    max_cost_per_request: float | None = None,
    confidence: float = 0.5,
) -> dict:
    """The cheapest threshold whose quality retained is at least `target_quality`, or the best-quality one
    costing at most `max_cost_per_request` on average. Errors say what is reachable.

    The cheapest threshold that just meets a target on one sample falls short on new traffic about half the
    time (it is picked *because* that sample was lucky). With bootstrap draws in `curve`, a threshold must
    meet the target in a `confidence` share of resamples instead.
    """
    if (target_quality is None) == (max_cost_per_request is None):
        raise UsageError("threshold calibration: give exactly one of --target-quality or --max-cost-usd")
    draws = "retained_draws" in curve
    if target_quality is not None:
        meets = curve["quality_retained"] >= target_quality - 1e-12
        if draws:
            meets &= curve["retained_draws"].map(lambda d: (d >= target_quality - 1e-12).mean() >= confidence)
        feasible = curve[meets]
        if feasible.empty:
            raise UsageError(
                f"--target-quality {target_quality}: the best reachable on the held-out set is "
                f"{curve['quality_retained'].max():.3f}; lower the target"
            )
        best = feasible.sort_values(["cost_per_request", "strong_share"]).iloc[0]
    else:
        fits = curve["cost_per_request"] <= max_cost_per_request
        if draws:
            fits &= curve["cost_draws"].map(lambda d: (d <= max_cost_per_request).mean() >= confidence)
        feasible = curve[fits]
        if feasible.empty:
            raise UsageError(
                f"--max-cost-usd {typed(max_cost_per_request)}: even all-weak routing costs "
                f"{money_str(curve['cost_per_request'].min(), 'record')} per request on the held-out set; raise it"
            )
        best = feasible.sort_values(["quality", "cost_per_request"], ascending=[False, True]).iloc[0]
    return {
        "threshold": float(best["threshold"]),
        "target_quality": target_quality,
        "max_cost_per_request": max_cost_per_request,
        "confidence": confidence if draws else None,
        "strong_share": float(best["strong_share"]),
        "quality_retained": float(best["quality_retained"]),
        "cost_per_request": float(best["cost_per_request"]),
    }


def strong_needed(frame: pd.DataFrame) -> list[int]:
    """Training label: given (`label`), else the strong model did strictly better than the weak one."""
    if "label" in frame:
        return frame["label"].astype(int).tolist()
    return (frame["strong_quality"] > frame["weak_quality"]).astype(int).tolist()


def split(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded random split: (rest, held out `fraction`)."""
    if not 0 < fraction < 1:
        raise UsageError(f"held-out fraction {fraction}: must be between 0 and 1")
    mask = np.random.default_rng(seed).random(len(frame)) < fraction
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)


def stratified_split(
    frame: pd.DataFrame, fraction: float, seed: int, classes: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded split holding out `fraction` of each class (0/1 in `classes`), and at least one and at most all
    but one of each: with 2 prompts of each class, both parts have both. A plain random split of a small set put
    every strong prompt on one side, and the router fitted on the other failed ("labels are all one class").
    (scikit-learn's stratified split rounds a rare class to none on one side at an extreme share, and refuses a
    held-out part smaller than the number of classes.)"""
    if not 0 < fraction < 1:
        raise UsageError(f"held-out fraction {fraction}: must be between 0 and 1")
    rng = np.random.default_rng(seed)
    held = np.zeros(len(frame), bool)
    for value in (0, 1):
        members = rng.permutation(np.flatnonzero(classes == value))
        held[members[: min(max(round(fraction * len(members)), 1), len(members) - 1)]] = True
    return frame[~held].reset_index(drop=True), frame[held].reset_index(drop=True)


def stratified_folds(classes: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each prompt's fold, dealt class by class round the folds: a class of 2 or more prompts lands in at least 2
    folds, so the router fitted without any one fold still sees it; fold sizes differ by at most one."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(classes), int)
    dealt = 0
    for value in (0, 1):
        members = rng.permutation(np.flatnonzero(classes == value))
        fold_of[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return fold_of


def plain_folds(count: int, folds: int, seed: int) -> np.ndarray:
    """Each of `count` prompts' fold, seeded, not stratified (`route eval`'s published figures came from these)."""
    return np.random.default_rng(seed).permutation(count) % folds


def router_classes(frame: pd.DataFrame, kind: str) -> np.ndarray:
    """The two classes a router of `kind` must see when fitted: the label (TF-IDF), or whether the strong model
    scored higher (the embedding and combined routers learn the quality gain)."""
    if kind == "tfidf":
        return np.asarray(strong_needed(frame), int)
    return (frame["strong_quality"] > frame["weak_quality"]).to_numpy(int)


def _class_names(frame: pd.DataFrame, kind: str) -> tuple[str, str]:
    """How the user knows each class: (strong, weak); by the labels where the classes are the labels (TF-IDF, or
    labelled rows without measured qualities, whose defaults follow the label)."""
    if "label" in frame and (kind == "tfidf" or (router_classes(frame, kind) == frame["label"].to_numpy()).all()):
        return "labelled strong", "labelled weak"
    return "where the strong model scored higher (strong_quality > weak_quality)", "where it did not"


def check_calibration_classes(
    frame: pd.DataFrame, kind: str, source: str, option: str, holdout: float, folds: int | None
) -> None:
    """Refuse a class of fewer than 2 prompts when calibrating: one prompt cannot be on both sides of the split
    (or in two folds), so a router would be fitted without it; say which class and the counts."""
    classes = router_classes(frame, kind)
    counts = (int(classes.sum()), int(len(classes) - classes.sum()))  # (strong, weak)
    if min(counts) >= 2:
        return
    names = _class_names(frame, kind)
    where = (
        f"every fold's router is fitted on both (--folds {folds})"
        if folds
        else f"both the prompts fitted on and those held out to calibrate on (--holdout {holdout:g}) have one"
    )
    short = names[0] if counts[0] < 2 else names[1]
    raise UsageError(
        f"{source}: {counts[0]} prompt{'' if counts[0] == 1 else 's'} {names[0]} and {counts[1]} {names[1]}; "
        f"calibrating a threshold ({option}) needs at least 2 of each, so that {where}; add prompts {short}, or "
        f"leave out {option} to fit on all prompts with threshold 0.5"
    )


ROUTER_KINDS = ("tfidf", "embedding", "combined")


def check_both_classes(frame: pd.DataFrame, kind: str, source: str) -> None:
    """Refuse, naming `source`, data a router cannot learn from: every prompt strong-needed, or none (the fit
    said only "route train: labels are all one class", naming no file)."""
    if frame.empty or kind not in ROUTER_KINDS:  # each named by the fit
        return
    labels = strong_needed(frame)
    # The embedding and combined routers learn from the quality gain, not the label; outcomes (RouteLLM data) have
    # no label, and were told "every example is labelled weak".
    if kind != "tfidf" or "label" not in frame:
        gains = (frame["strong_quality"] > frame["weak_quality"]).astype(int).tolist()
        if len(set(gains)) == 2:
            return
        if "label" not in frame or len(set(labels)) == 2:
            better = "every" if gains[0] else "no"
            raise UsageError(
                f"{source}: the strong model scored higher on {better} prompt (strong_quality > weak_quality); "
                f"add prompts where it did {'not' if gains[0] else 'so'}"
            )
    if len(set(labels)) == 1:
        if labels[0]:
            raise UsageError(
                f"{source}: every example is labelled strong; add examples labelled weak (the cheap tier was good "
                "enough), or name the cheap labels with --weak-label"
            )
        raise UsageError(
            f"{source}: every example is labelled weak; add examples labelled strong (the cheap tier was not good "
            "enough)"
        )


def fit_router(frame: pd.DataFrame, kind: str = "tfidf", seed: int = 0, source: str = "the training data"):
    """Fit a scorer with `predict_proba`: TF-IDF + logistic regression on "strong did better", the embedding
    router on the strong-minus-weak quality gain (see `routing.embeddings`), or the combined router's two quality
    heads (see `routing.combined`). `source` names the data in errors."""
    try:
        return _fit(frame, kind, seed)
    except ValueError as exc:
        # TF-IDF keeps the words in 2 or more prompts (min_df=2): a few prompts sharing none were scikit-learn's
        # "empty vocabulary; perhaps the documents only contain stop words" traceback.
        if "empty vocabulary" not in str(exc):
            raise
        raise UsageError(
            f"{source}: no word or word pair is in 2 or more of the {len(frame)} prompts the {kind} router is "
            "fitted on, so it has no TF-IDF features to learn from; add prompts (a router needs hundreds, with the "
            "words they share)"
        ) from None


def _fit(frame: pd.DataFrame, kind: str, seed: int):
    """The fit of a router of `kind` (see `fit_router`)."""
    if kind == "combined":
        from tokenomy.routing.combined import train as train_combined

        return train_combined(frame["prompt"].tolist(), frame["weak_quality"], frame["strong_quality"])
    if kind == "embedding":
        from tokenomy.routing.embeddings import train as train_embedding

        gains = frame["strong_quality"].to_numpy(float) - frame["weak_quality"].to_numpy(float)
        return train_embedding(frame["prompt"].tolist(), gains)
    if kind != "tfidf":
        raise UsageError(f"--router {kind}: unknown; use {', '.join(ROUTER_KINDS)}")
    from tokenomy.routing.classifier import train

    return train(frame["prompt"].tolist(), strong_needed(frame), seed)


def out_of_fold_scores(
    frame: pd.DataFrame,
    kind: str,
    folds: int,
    seed: int,
    classes: np.ndarray | None = None,
    source: str = "the training data",
) -> np.ndarray:
    """P(strong) for every prompt from a router fitted on the other folds: calibration data as large as the
    training data, each score from a model that never saw the prompt (cross-fitting). With `classes`, the folds
    are stratified by them (`route train`; `route eval`'s large sets keep the plain folds its figures came from)."""
    scores = np.zeros(len(frame))
    fold_of = stratified_folds(classes, folds, seed) if classes is not None else plain_folds(len(frame), folds, seed)
    for fold in range(folds):
        inside = fold_of == fold
        model = fit_router(frame[~inside].reset_index(drop=True), kind, seed, source)
        scores[inside] = model.predict_proba(frame["prompt"][inside].tolist())[:, 1]
    return scores


def calibrate(
    router,
    scores: np.ndarray,
    held: pd.DataFrame,
    weak: Price,
    strong: Price,
    target_quality: float | None = None,
    max_cost_per_request: float | None = None,
    confidence: float = 0.9,
    resamples: int = 200,
    seed: int = 0,
    escalated: np.ndarray | None = None,
) -> dict:
    """Pick the router's threshold from scores on prompts it was not fitted on (`held`); sets it on `router`
    (a TrainedRouter) and returns the calibration report. `escalated`: calibrate a hybrid (see `sweep`)."""
    curve = sweep(
        scores,
        held["weak_quality"].to_numpy(float),
        held["strong_quality"].to_numpy(float),
        *call_costs(held, weak, strong),
        resamples=resamples,
        seed=seed,
        escalated=escalated,
    )
    report = pick_threshold(curve, target_quality, max_cost_per_request, confidence)
    report.update(
        held_out=len(held),
        weak_model=weak.model,
        strong_model=strong.model,
        prices=[weak.describe(), strong.describe()],  # the cost per request's prices, with source and as_of
    )
    router.threshold, router.calibration = report["threshold"], report
    return report


def train_and_calibrate(
    frame: pd.DataFrame,
    holdout: float = 0.25,
    seed: int = 0,
    target_quality: float | None = None,
    max_cost_per_request: float | None = None,
    weak: Price | None = None,
    strong: Price | None = None,
    confidence: float = 0.9,
    resamples: int = 200,
    kind: str = "tfidf",
    folds: int | None = None,
    source: str = "the training data",
):
    """Fit a router and pick its threshold on prompts it was not fitted on; returns (TrainedRouter, report).

    Without `folds`: fit on the rest, calibrate on a held-out `holdout` share. With `folds`: calibrate on
    out-of-fold scores of all prompts, then fit the saved router on all of them (no prompt is spent on
    calibration only, which matters for small sets like MT-Bench). Either way stratified by the router's classes,
    so no part it is fitted on lacks one; `source` names the data in errors.
    """
    from tokenomy.routing.classifier import TrainedRouter

    if target_quality is None and max_cost_per_request is None:  # nothing to calibrate: fit on everything
        return TrainedRouter(fit_router(frame, kind, seed, source)), None
    option = "--target-quality" if target_quality is not None else "--max-cost-usd"
    if folds and not 2 <= folds <= len(frame):
        raise UsageError(f"--folds {folds}: need between 2 and the number of prompts ({len(frame)})")
    check_calibration_classes(frame, kind, source, option, holdout, folds)
    classes = router_classes(frame, kind)
    if folds:
        held, scores = frame, out_of_fold_scores(frame, kind, folds, seed, classes, source)
        router, fitted_on = TrainedRouter(fit_router(frame, kind, seed, source)), len(frame)
    else:
        fit_part, held = stratified_split(frame, holdout, seed, classes)
        router, fitted_on = TrainedRouter(fit_router(fit_part, kind, seed, source)), len(fit_part)
        scores = router.pipeline.predict_proba(held["prompt"].tolist())[:, 1]
    weak, strong = weak or price(WEAK_MODEL), strong or price(STRONG_MODEL)
    report = calibrate(
        router, scores, held, weak, strong, target_quality, max_cost_per_request, confidence, resamples, seed
    )
    report.update(trained_on=fitted_on, method=f"{folds}-fold cross-fitted" if folds else "held-out split", router=kind)
    return router, report
