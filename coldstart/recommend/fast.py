"""Request-time scoring of the served models without per-request overhead.

A served model (`training.served.ServedModel`) ranks one listener with its
`recommend`: taste features, the network through torch, the wide ridge as a kernel
against every training listener (scipy sparse matrices built per call), the blend and
a top-k. That path stays the reference (training, evaluation, `recommend_batch`); for
one listener at a time the server uses `ServedScorer`, which computes the same scores
from state prepared once when the models load:

* **wide part**: the ridge's primal weights over music items x target items,
  `P = (X - x̄)ᵀ α`, and its constant `b = ȳ - x̄ᵀ P`, so a listener's ridge scores are
  `b` plus a sum of the rows of `P` for the music items they played (binary rows),
  instead of `ȳ + ((x - x̄)(X - x̄)ᵀ) α` against the training listeners. Only music
  items some training listener played have a non-zero row; `P` keeps those. Past
  `PRIMAL_MAX_CELLS` cells (float64) the kernel is computed from a column-major copy
  of the training rows instead (a gather of the listeners who share an item);
* **networks**: the user towers (AffinityNet's MLP with its skip, the two-tower's
  `UserTower`) as numpy matrix products over weights taken from the modules once,
  item vectors and biases precomputed (`towers.py`);
* the blend in one pass (`fused_blend.py`); a wide part of weight 0 is not scored;
* in a catalogue of `pruned_top.PRUNE_MIN_ITEMS` items or more, the top-k through a
  bounding pass over a low-rank copy of the keys and exact scores for the few items
  whose bound can reach it (`pruned_top.py`): the full scan's positions and scores;
* fallback and top-k exactly as `ServedModel` does them; `top` answers the top-k as
  positions into the model's item ids, which the pipeline maps to catalogue rows
  (`row_sources.py`) without making strings of them.

Scores equal the reference's within float rounding (the sums run in another order);
`tests/test_fast_serving.py` checks rankings and scores against the reference on the
demo world and on a Douban slice. A model kind without a fast scorer is served through
its own `recommend` (`fast_scorer` returns None).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from coldstart.recommend.fused_blend import (
    BlendCoefficients,
    KeyMoments,
    WideMoments,
    blended,
    coefficients,
)
from coldstart.recommend.pruned_top import pruned_keys
from coldstart.recommend.towers import NETWORKS
from training.blend import ScoreBlend
from training.data import Ranking, UserProfile
from training.ranking import best_positions

__all__ = [
    "PRIMAL_MAX_CELLS",
    "WideScorer",
    "ServedScorer",
    "TopPositions",
    "PopularityLists",
    "fast_scorer",
    "popularity_lists",
]

# Largest primal weight matrix (music items played in training x modelled target items)
# held as float64: 2**25 cells = 256 MiB. The demo world and the Douban data are far
# below; a larger wide part scores through the column-major kernel instead.
PRIMAL_MAX_CELLS = 2**25
# Up to this many items a stable sort of every score is cheaper than best_positions'
# partition and its checks (the same positions either way).
SORT_ALL = 1024


def _standardise_row(v: np.ndarray) -> np.ndarray:
    """`training.blend.standardise` of one row (same operations, no 2-d copies)."""
    std = v.std()
    return (v - v.mean()) / (std if std > 0 else 1.0)


def _apply_blend(
    blend: ScoreBlend, sources: dict[str, np.ndarray], parts: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """`ScoreBlend.apply` for one listener (1-d source rows, same order of sums);
    `parts` holds weighted, standardised terms computed ahead (constant sources)."""
    total = None
    for name, weight in blend.weights.items():
        if weight == 0.0:
            continue
        part = parts[name] if parts and name in parts else weight * _standardise_row(sources[name])
        total = part if total is None else total + part
    if total is None:
        raise ValueError("a blend needs at least one source with a non-zero weight")
    return total


class WideScorer:
    """A `training.cross_domain.WidePart` prepared for one listener at a time."""

    def __init__(self, wide) -> None:
        ridge = wide.ridge
        self.vocabulary: dict[str, int] = wide.encoder.vocabulary
        self.blend: ScoreBlend = wide.blend
        self.log_listeners = np.asarray(wide.log_listeners, np.float64)
        self.columns = None if wide.columns is None else np.asarray(wide.columns)
        self.column_means = None if wide.column_means is None else wide.column_means
        x = ridge.x_train.tocsr()
        alpha = np.asarray(ridge.alpha, np.float64)
        mean = np.asarray(ridge.x_mean, np.float64)
        self.x_mean = mean
        played = np.flatnonzero(x.getnnz(axis=0) > 0)  # other columns: zero rows of P
        self.row_of = np.full(x.shape[1], -1, np.int64)
        self.row_of[played] = np.arange(len(played))
        alpha_sum = alpha.sum(axis=0)
        xm = x @ mean
        self.primal = len(played) * alpha.shape[1] <= PRIMAL_MAX_CELLS
        if self.primal:
            xp = x[:, played].tocsc()
            weights = np.asarray(xp.T @ alpha) - np.outer(mean[played], alpha_sum)
            self.weights = np.ascontiguousarray(weights)
            self.bias = ridge.y_mean - mean[played] @ weights
        else:
            # kernel @ alpha = (shared plays) @ alpha - (sum of the played means - mean @ mean)
            # * alpha_sum - xm @ alpha: only the training rows that share a played item
            # are gathered per request; the rest is computed here once.
            self.x_cols = x.tocsc()
            self.mm = float(mean @ mean)
            self.alpha = np.ascontiguousarray(alpha)
            self.alpha_sum = alpha_sum
            self.offset = np.asarray(ridge.y_mean, np.float64) - xm @ alpha
        self.width = len(self.log_listeners)
        # Popularity is the same for every listener: its blend term is computed once.
        weight = self.blend.weights.get("popularity", 0.0)
        pop_std = _standardise_row(self.log_listeners)
        self.constant = {} if weight == 0.0 else {"popularity": weight * pop_std}
        self.moments = WideMoments(self.log_listeners, self.columns, self.column_means, pop_std)

    def columns_of(self, music: dict[str, float]) -> np.ndarray:
        """Vocabulary columns of the music items of a history (binary: each once)."""
        vocab = self.vocabulary
        cols = [vocab[i] for i in music if i in vocab]
        return np.fromiter(cols, np.int64, len(cols))

    def ridge(self, cols: np.ndarray) -> np.ndarray:
        """The ridge scores of every target column (the unmodelled ones: their means)."""
        scores = self.modelled(cols)
        if self.columns is None:
            return scores
        assert self.column_means is not None  # set whenever columns is
        full = self.column_means.copy()
        full[self.columns] = scores
        return full

    def modelled(self, cols: np.ndarray) -> np.ndarray:
        """The ridge scores of the modelled columns (every column in an uncapped fit)."""
        if self.primal:
            rows = self.row_of[cols]
            rows = rows[rows >= 0]
            scores = self.bias + self.weights[rows].sum(axis=0) if len(rows) else self.bias.copy()
        else:
            x = self.x_cols
            hits = np.concatenate(
                [x.indices[x.indptr[c] : x.indptr[c + 1]] for c in cols] or [np.zeros(0, np.int32)]
            )
            vals = np.concatenate(
                [x.data[x.indptr[c] : x.indptr[c + 1]] for c in cols] or [np.zeros(0)]
            )
            rows, at = np.unique(hits, return_inverse=True)
            shared = np.bincount(at, weights=vals, minlength=len(rows))
            scores = (
                self.offset
                + shared @ self.alpha[rows]
                - (self.x_mean[cols].sum() - self.mm) * self.alpha_sum
            )
        return scores

    def scores(self, music: dict[str, float]) -> np.ndarray:
        """The wide part's blended scores of one history (`WidePart.scores` of one row)."""
        ridge = self.ridge(self.columns_of(music))
        return _apply_blend(self.blend, {"ridge": ridge}, self.constant)

    def knows(self, music: dict[str, float]) -> bool:
        return any(i in self.vocabulary for i in music)


class ServedScorer:
    """`ServedModel.recommend` for one listener, from state prepared at load time."""

    def __init__(self, model) -> None:
        self.model = model
        self.network = NETWORKS[model.kind](model)
        self.wide = None if model.blend is None else WideScorer(model.wide)
        self.blend_knows_wide = model.kind == "two_tower"  # `_blend_usable`
        self.ids = model._ids
        self.pop_scores = model.pop_scores
        self.keys = (
            None if self.wide is None else KeyMoments(self.network.keys_t, self.network.bias)
        )
        # A large catalogue's top-k through a bounding pass (`pruned_top.py`), else None.
        self.pruned = (
            None if self.wide is None else pruned_keys(self.network.keys_t, self.network.bias)
        )

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        if self.wide is None:  # the network alone: its own path (torch)
            with torch.inference_mode():
                return self.model.recommend(user, k, exclude)
        top = self.top(user, k, exclude)
        return Ranking(
            [str(i) for i in self.ids[top.positions]], top.scores, top.fallback, top.unknown
        )

    def top(self, user: UserProfile, k: int, exclude: Sequence[str] = ()) -> TopPositions:
        """`recommend` as positions into the model's item ids (`top_k`'s order and its
        float32 scores): the pipeline maps positions to catalogue rows with one gather.
        Only for a blended model (`wide` set)."""
        assert self.wide is not None
        query, unknown = self.network.query(user)
        usable = query is not None or (self.blend_knows_wide and self.wide.knows(user.music))
        if not usable:
            return _top_positions(self.ids, self.pop_scores, k, exclude, True, unknown)
        width = len(self.ids)
        scores = None
        if query is not None and len(self.wide.log_listeners) == width:
            blend = self._coefficients(query, user.music)
            if blend is not None and self.pruned is not None:
                found = self.pruned.top(
                    query, *blend, self.wide.moments, _excluded(self.ids, exclude), int(k)
                )
                if found is not None:
                    positions, totals = found
                    return TopPositions(positions, totals.astype(np.float32), False, list(unknown))
            if blend is not None:
                coef, ridge = blend
                scores = blended(coef, self.network.product(query), ridge, self.wide.moments)
        if scores is None:
            scores = self._reference_blend(user, query, width)
        return _top_positions(self.ids, scores, k, exclude, False, unknown)

    def _coefficients(
        self, query: np.ndarray, music: dict[str, float]
    ) -> tuple[BlendCoefficients, np.ndarray | None] | None:
        """The blend's coefficients (`fused_blend`) and the listener's ridge scores on
        the modelled columns, or None where the one-pass blend must not be used."""
        wide = self.wide
        assert wide is not None and self.keys is not None  # a blended model
        moments = wide.moments
        weights = self.model.blend.weights
        # A wide part of weight 0 takes no part in the sum (its coefficients are 0).
        ridge = wide.modelled(wide.columns_of(music)) if weights.get("wide", 0.0) else None
        coef = coefficients(
            weights,
            wide.blend.weights,
            self.keys.of(query),
            (0.0, 0.0, 0.0) if ridge is None else moments.of(ridge),
            (moments.pop_sum / moments.items, moments.pop_square / moments.items),
        )
        return None if coef is None else (coef, ridge)

    def _reference_blend(self, user: UserProfile, query, width: int) -> np.ndarray:
        """Each source standardised over the catalogue, then blended (as the model)."""
        model = self.model
        assert self.wide is not None
        # without a query the blend still multiplies the network's (meaningless) row
        network = self._unusable_network(user) if query is None else self.network.product(query)
        wide = self.wide.scores(user.music)
        if len(wide) < width:  # items added since, unknown to the wide part
            wide = np.concatenate([wide, np.zeros(width - len(wide))])
        return _apply_blend(model.blend, {"wide": wide, "network": network})

    def _unusable_network(self, user: UserProfile) -> np.ndarray:
        with torch.inference_mode():
            scores, _, _ = self.model.network_scores([user])
        return scores[0]


class TopPositions(NamedTuple):
    """A model's best items as positions into its item ids, with `top_k`'s scores."""

    positions: np.ndarray
    scores: np.ndarray  # float32, as `Ranking.scores`
    fallback: bool
    unknown: list[str]


def _excluded(ids: np.ndarray, exclude: Sequence[str]) -> np.ndarray:
    """Positions of the excluded items among `ids` (as `_top_positions` finds them)."""
    if not exclude:
        return np.zeros(0, np.int64)
    return np.flatnonzero(_excluded_mask(ids, exclude))


def _excluded_mask(ids: np.ndarray, exclude: Sequence[str]) -> np.ndarray:
    """Whether each of `ids` is excluded."""
    return np.isin(ids, np.asarray(list(exclude), dtype=object))


def _top_positions(
    ids: np.ndarray,
    scores: np.ndarray,
    k: int,
    exclude: Sequence[str],
    fallback: bool,
    unknown: list[str],
) -> TopPositions:
    """`training.ranking.top_k` as positions (the same order, ties and scores)."""
    scores = np.asarray(scores, dtype=np.float64)
    k = max(int(k), 0)
    if exclude:
        idx = np.flatnonzero(~_excluded_mask(ids, exclude))
        order = idx[best_positions(-scores[idx], k)]
    elif len(scores) <= SORT_ALL:
        order = np.argsort(-scores, kind="stable")[:k]  # best_positions' definition
    else:
        order = best_positions(-scores, k)
    return TopPositions(order, scores[order].astype(np.float32), fallback, list(unknown))


class PopularityLists:
    """A popularity model's lists for listeners who exclude nothing (every new
    listener), computed once per (segment, k): the ranking depends on nothing else.
    A listener who excludes items is ranked by the model itself."""

    MAX_LISTS = 4096  # (segment, k) pairs kept; past it, lists are computed per request

    def __init__(self, model) -> None:
        self.model = model
        self.lists: dict[tuple, Ranking] = {}

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        if exclude:
            return self.model.recommend(user, k, exclude)
        key = (self.model.segment_of(user), k)
        ranking = self.lists.get(key)
        if ranking is None:
            ranking = self.model.recommend(user, k)
            if len(self.lists) < self.MAX_LISTS:
                self.lists[key] = ranking
            return ranking
        return Ranking(
            list(ranking.item_ids), ranking.scores, ranking.fallback, self.model.unknown_items(user)
        )


def popularity_lists(model) -> PopularityLists | None:
    """`PopularityLists` for a segment popularity model, else None."""
    return PopularityLists(model) if hasattr(model, "segment_of") else None


def fast_scorer(model) -> ServedScorer | None:
    """A `ServedScorer` for a served model whose kind has one, else None."""
    if getattr(model, "kind", None) not in NETWORKS or getattr(model, "net", None) is None:
        return None
    return ServedScorer(model)
