"""How much to trust each score source, chosen on validation users.

A served model ranks with several sources: its own network (taste MLP, two-tower),
a wide cross-domain ridge over the raw music history, and item popularity. Where
the music signal is strong the taste sources should lead; where it is weak (real
data: few ratings, no text) the ranking should fall back towards popularity. The
weights are not guessed: `choose_blend` scores a small grid on users the sources
were not fitted on and keeps the caller's fallback source alone unless the best
point beats it by more than one standard error (so taste has to earn its weight).

Each source is standardised per user over the catalog before weighting, so the
weights compare like with like whatever the sources' scales.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from training.metrics import per_user_ndcg as _per_user_ndcg

__all__ = [
    "ScoreBlend",
    "choose_blend",
    "standardise",
    "validation_sample",
    "BLEND_GRID",
    "BLEND_SCORES",
    "MAX_BLEND_USERS",
]

BLEND_GRID = (0.0, 0.25, 0.5, 1.0)


# The blend is chosen on at most this many validation users (a seeded sample): it scores
# each of them against the whole catalog, densely. Not binding on Douban or the demo.
MAX_BLEND_USERS = 2000
# Users x catalog scores standardised at once while choosing (float64: 32 MiB per source).
BLEND_SCORES = 2**22


def validation_sample(rows: np.ndarray, seed: int, cap: int = MAX_BLEND_USERS) -> np.ndarray:
    """`rows` if there are at most `cap` of them, else a seeded sample of `cap` (in order)."""
    rows = np.asarray(rows)
    if len(rows) <= cap:
        return rows
    keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=cap, replace=False))
    return rows[keep]


def standardise(scores: np.ndarray) -> np.ndarray:
    """Each row to mean 0 and standard deviation 1 (constant rows become 0).

    The same numbers as `(scores - scores.mean(1)) / scores.std(1)`, bit for bit (the
    same sums, `tests/test_cross_domain.py`), in three passes instead of five: the
    centred rows are made once and serve both the spread and the result."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = scores[None, :]
    n = max(scores.shape[1], 1)
    centred = scores - np.add.reduce(scores, axis=1, keepdims=True) / n
    squares = np.multiply(centred, centred)
    std = np.sqrt(np.add.reduce(squares, axis=1, keepdims=True) / n)
    del squares
    centred /= np.where(std > 0, std, 1.0)
    return centred


@dataclass(frozen=True)
class ScoreBlend:
    """score = Σ weight[source] · standardise(source scores)."""

    weights: dict[str, float]
    validation: dict[str, float] = field(
        default_factory=dict
    )  # val NDCG of the blend and of each source alone

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
    one_se: bool = True,
) -> ScoreBlend:
    """The first-listed source alone, unless the best grid point beats it by more than
    one standard error; then the best point (validation NDCG@k).

    `sources` maps a name to [users x catalog] scores of the validation users;
    `truth` holds each user's relevant catalog positions. The first source is the
    fallback the caller trusts most (popularity, or the wide part next to a network).
    The one-standard-error rule (the error of the paired per-user difference from the
    best point) keeps a validation set of a few hundred users from choosing noise: the
    other sources join only when the blend helps by more than the noise. With
    `one_se=False` the best point is kept outright.

    (An earlier rule kept the grid point with the fewest sources within one SE of the
    best. It could keep a weak second source alone: on a Douban dev seed it served
    the two towers alone, below popularity.)
    """
    names = list(sources)
    combos = [  # scale-free: the largest weight is fixed at 1
        w for w in itertools.product(grid, repeat=len(names)) if any(w) and max(w) == 1.0
    ]
    alone = {name: np.zeros(len(truth)) for name in names}
    per_point = np.zeros((len(combos), len(truth)))
    # Users a block at a time (every step is per user): memory O(block x catalog).
    width = max((np.shape(sources[n])[-1] for n in names), default=1)
    block = max(1, BLEND_SCORES // max(width, 1))
    for lo in range(0, len(truth), block):
        part = {n: standardise(sources[n][lo : lo + block]) for n in names}
        users = truth[lo : lo + block]
        for name in names:
            alone[name][lo : lo + len(users)] = _per_user_ndcg(part[name], users, k)
        for i, weights in enumerate(combos):
            scores = sum(w * part[n] for n, w in zip(names, weights) if w)
            per_point[i, lo : lo + len(users)] = _per_user_ndcg(scores, users, k)
    validation = {
        f"{name}_only": float(alone[name].mean()) if len(truth) else 0.0 for name in names
    }
    points = list(zip(combos, per_point))
    best_weights, best_ndcg = max(points, key=lambda p: p[1].mean())
    fallback = next(p for p in points if p[0][0] == 1.0 and not any(p[0][1:]))

    diff = best_ndcg - fallback[1]
    error = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
    weights, per_user = fallback if one_se and diff.mean() <= error else (best_weights, best_ndcg)
    validation["blend"] = float(per_user.mean())
    validation["best_on_grid"] = float(best_ndcg.mean())
    return ScoreBlend(dict(zip(names, (float(w) for w in weights))), validation)
