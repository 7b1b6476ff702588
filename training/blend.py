"""How much to trust each score source, chosen on validation users.

A served model ranks with several sources: its own network (taste MLP, two-tower),
a wide cross-domain ridge over the raw music history, and item popularity. Where
the music signal is strong the taste sources should lead; where it is weak (real
data: few ratings, no text) the ranking should fall back towards popularity. The
weights are not guessed: `choose_blend` scores a small grid on users the sources
were not fitted on and keeps the simplest point within one standard error of the
best (popularity alone is on the grid, so taste has to earn its weight).

Each source is standardised per user over the catalog before weighting, so the
weights compare like with like whatever the sources' scales.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from training.metrics import mean_ndcg as _mean_ndcg
from training.metrics import per_user_ndcg as _per_user_ndcg

__all__ = ["ScoreBlend", "choose_blend", "standardise", "BLEND_GRID"]

BLEND_GRID = (0.0, 0.25, 0.5, 1.0)


def standardise(scores: np.ndarray) -> np.ndarray:
    """Each row to mean 0 and standard deviation 1 (constant rows become 0)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[None, :]
    std = scores.std(axis=1, keepdims=True)
    return (scores - scores.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


@dataclass(frozen=True)
class ScoreBlend:
    """score = Σ weight[source] · standardise(source scores)."""

    weights: dict[str, float]
    validation: dict[str, float] = field(default_factory=dict)  # val NDCG of the blend and of each source alone

    def apply(self, sources: Mapping[str, np.ndarray]) -> np.ndarray:
        total = None
        for name, weight in self.weights.items():
            if weight == 0.0:
                continue
            part = weight * standardise(sources[name])
            total = part if total is None else total + part
        if total is None:
            raise ValueError("a blend needs at least one source with a non-zero weight")
        return total


def choose_blend(
    sources: Mapping[str, np.ndarray],
    truth: Sequence[Collection[int]],
    k: int = 10,
    grid: Sequence[float] = BLEND_GRID,
) -> ScoreBlend:
    """The simplest grid point within one standard error of the best validation NDCG@k.

    `sources` maps a name to [users x catalog] scores of the validation users;
    `truth` holds each user's relevant catalog positions; `sources` are listed most
    trusted first (the simpler blend wins ties). The one-standard-error
    rule (the error of the paired per-user difference from the best point) keeps
    a validation set of a few hundred users from choosing noise: a source joins the
    blend only when it helps by more than the noise.
    """
    names = list(sources)
    standardised = {name: standardise(sources[name]) for name in names}
    validation = {f"{name}_only": _mean_ndcg(standardised[name], truth, k) for name in names}
    points = []
    for weights in itertools.product(grid, repeat=len(names)):
        if not any(weights) or max(weights) != 1.0:  # scale-free: fix the largest weight at 1
            continue
        scores = sum(w * standardised[n] for n, w in zip(names, weights) if w)
        points.append((weights, _per_user_ndcg(scores, truth, k)))
    best_weights, best_ndcg = max(points, key=lambda p: p[1].mean())

    def margin(per_user: np.ndarray) -> float:
        diff = best_ndcg - per_user
        return diff.mean() - diff.std(ddof=1) / np.sqrt(max(len(diff), 1)) if len(diff) > 1 else diff.mean()

    close = [p for p in points if margin(p[1]) <= 0]
    # Fewest sources first, then the sources listed first (the caller's most trusted).
    weights, per_user = min(close, key=lambda p: (sum(1 for w in p[0] if w), [-w for w in p[0]], -p[1].mean()))
    validation["blend"] = float(per_user.mean())
    validation["best_on_grid"] = float(best_ndcg.mean())
    return ScoreBlend(dict(zip(names, (float(w) for w in weights))), validation)
