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
  item vectors and biases precomputed;
* blend, fallback and top-k exactly as `ServedModel` does them.

Scores equal the reference's within float rounding (the sums run in another order);
`tests/test_fast_serving.py` checks rankings and scores against the reference on the
demo world and on a Douban slice. A model kind without a fast scorer is served through
its own `recommend` (`fast_scorer` returns None).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from coldstart.recommend.fused_blend import KeyMoments, WideMoments, blended, coefficients
from training.blend import ScoreBlend
from training.data import Ranking, UserProfile
from training.ranking import top_k

__all__ = [
    "PRIMAL_MAX_CELLS",
    "WideScorer",
    "ServedScorer",
    "PopularityLists",
    "fast_scorer",
    "popularity_lists",
]

# Largest primal weight matrix (music items played in training x modelled target items)
# held as float64: 2**25 cells = 256 MiB. The demo world and the Douban data are far
# below; a larger wide part scores through the column-major kernel instead.
PRIMAL_MAX_CELLS = 2**25


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


# The last taste vector computed: the served models of both lists read the same
# listener's vector from the same taste model, so each request computes it once.
_LAST_TASTE: tuple = (None, (), (None, []))


def _taste_vector(taste, music: dict[str, float]) -> tuple[np.ndarray | None, list[str]]:
    """`taste.user_vector(music)`, reused when the previous call had the same taste
    model and the same history (compared by value: a dict edited in place is not
    mistaken for the one seen before)."""
    global _LAST_TASTE
    last_taste, last_history, result = _LAST_TASTE  # one read: safe across threads
    history = tuple(music.items())
    if last_taste is not taste or last_history != history:
        result = taste.user_vector(music)
        _LAST_TASTE = (taste, history, result)
    vec, unknown = result
    return vec, list(unknown)


def _linear(module) -> tuple[np.ndarray, np.ndarray | None]:
    weight = module.weight.detach().numpy().astype(np.float32).T.copy()
    bias = None if module.bias is None else module.bias.detach().numpy().astype(np.float32)
    return weight, bias


def _mlp(sequential) -> list[tuple[np.ndarray, np.ndarray | None, bool]]:
    """(weight, bias, relu after) per Linear of an eval-mode Sequential (Dropout: identity)."""
    layers: list[tuple[np.ndarray, np.ndarray | None, bool]] = []
    for module in sequential:
        if isinstance(module, nn.Linear):
            layers.append((*_linear(module), False))
        elif isinstance(module, nn.ReLU):
            w, b, _ = layers[-1]
            layers[-1] = (w, b, True)
        elif not isinstance(module, nn.Dropout):
            raise TypeError(f"no fast path for {type(module).__name__}")
    return layers


def _run_mlp(layers, x: np.ndarray) -> np.ndarray:
    for weight, bias, relu in layers:
        x = x @ weight
        if bias is not None:
            x = x + bias
        if relu:
            x = np.maximum(x, 0.0)
    return x


class _AffinityNetwork:
    """`AffinityModel.network_scores` for one listener, in numpy."""

    def __init__(self, model) -> None:
        net = model.net
        self.model = model
        self.demographics = bool(net.cfg.demographics)
        if self.demographics:
            self.country = net.country.weight.detach().numpy().astype(np.float32)
            self.language = net.language.weight.detach().numpy().astype(np.float32)
        self.layers = _mlp(net.user)
        self.skip = None if net.skip is None else _linear(net.skip)[0]
        self.keys_t = np.ascontiguousarray(model._item_vecs.T)
        self.bias = model._item_bias

    def scores(self, user: UserProfile) -> tuple[np.ndarray | None, list[str]]:
        query, unknown = self.query(user)
        return (None if query is None else self.product(query)), unknown

    def product(self, query: np.ndarray) -> np.ndarray:
        return (query @ self.keys_t + self.bias)[0]

    def query(self, user: UserProfile) -> tuple[np.ndarray | None, list[str]]:
        """The listener's side of the scores `query @ keys_t + bias` (1 x d)."""
        model = self.model
        vec, unknown = _taste_vector(model.taste, user.music)
        if vec is None:
            return None, unknown
        parts = [((vec - model.taste_mean) / model.taste_std).astype(np.float32)]
        if self.demographics:
            age = np.zeros(2, np.float32)
            if user.age is not None and not (isinstance(user.age, float) and np.isnan(user.age)):
                age[:] = ((float(user.age) - model.age_stats[0]) / model.age_stats[1], 1.0)
            parts += [
                self.country[model.countries.get(str(user.country), 0)],
                self.language[model.languages.get(str(user.language), 0)],
                age,
            ]
        x = np.concatenate(parts)[None, :]
        u = _run_mlp(self.layers, x)
        if self.skip is not None:
            u = u + x @ self.skip
        return u, unknown


class _TwoTowerNetwork:
    """`TwoTowerRecommender.network_scores` for one listener, in numpy."""

    def __init__(self, model) -> None:
        tower = model.user_tower
        self.model = model
        self.country = tower.country.weight.detach().numpy().astype(np.float32)
        self.language = tower.language.weight.detach().numpy().astype(np.float32)
        self.music = (
            None if tower.music is None else tower.music.vectors.weight.detach().numpy().copy()
        )
        self.gnn_dim = tower.gnn_dim
        self.layers = _mlp(tower.net)
        with torch.no_grad():
            probe = torch.zeros(1, model.item_vectors.shape[1])
            queries, keys = model._score_vectors(
                probe, torch.from_numpy(model.item_vectors), model._items_in["popularity"]
            )
        self.keys_t = np.ascontiguousarray(keys.numpy().astype(np.float32).T)
        self.bias = None
        self.popularity = model.config.item_popularity
        self.temperature = np.float32(model.config.temperature)
        self.weight = (
            tower.popularity_weight.detach().numpy().astype(np.float32) if self.popularity else None
        )

    def scores(self, user: UserProfile) -> tuple[np.ndarray | None, list[str]]:
        query, unknown = self.query(user)
        return (None if query is None else self.product(query)), unknown

    def product(self, query: np.ndarray) -> np.ndarray:
        return (query @ self.keys_t)[0]

    def query(self, user: UserProfile) -> tuple[np.ndarray | None, list[str]]:
        """The listener's side of the scores `query @ keys_t` (1 x d)."""
        model = self.model
        vec, unknown = _taste_vector(model.taste, user.music)
        usable = vec is not None
        taste = vec if vec is not None else np.zeros(model.taste.dim, np.float32)
        gnn = np.zeros(self.gnn_dim, np.float32)
        has_history = False
        if model.graph is not None:
            mean = model.graph.history_mean(user.spoken)
            if mean is not None:
                gnn, has_history, usable = np.asarray(mean, np.float32), True, True
        if not usable:
            return None, unknown
        age_known = user.age is not None and not np.isnan(float(user.age))
        age = np.float32(user.age) if age_known else np.float32(0)
        parts = [
            taste.astype(np.float32),
            gnn * np.float32(has_history) if self.gnn_dim else np.zeros(0, np.float32),
            np.array([has_history], np.float32),
            self.country[model.countries.get(str(user.country), 0)],
            self.language[model.languages.get(str(user.language), 0)],
            np.array(
                [(age - np.float32(40.0)) / np.float32(15.0) if age_known else 0.0], np.float32
            ),
            np.array([age_known], np.float32),
        ]
        if self.music is not None:
            parts.append(self._bag(user.music))
        u = _run_mlp(self.layers, np.concatenate(parts)[None, :])
        u = u / max(float(np.sqrt((u * u).sum())), 1e-12)  # F.normalize
        query = u / self.temperature
        if self.popularity:
            assert self.weight is not None  # read with the popularity column
            query = np.concatenate([query, self.weight[None, :]], axis=1)
        return query, unknown

    def _bag(self, music: dict[str, float]) -> np.ndarray:
        vocab = self.model.music_vocab
        known = [(w, vocab[i]) for i, w in music.items() if i in vocab]
        known.sort(key=lambda t: (-t[0], t[1]))
        rows = [c for _, c in known[: self.model.config.max_music_items]]
        bag = self.music
        assert bag is not None  # only called when the model has a music bag
        if not rows:
            return bag[0].copy()
        return bag[rows].sum(axis=0) / np.float32(len(rows))


NETWORKS: dict[str, type[_AffinityNetwork] | type[_TwoTowerNetwork]] = {
    "affinity": _AffinityNetwork,
    "two_tower": _TwoTowerNetwork,
}


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

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        model = self.model
        if self.wide is None:  # the network alone: its own path
            return model.recommend(user, k, exclude)
        query, unknown = self.network.query(user)
        usable = query is not None or (self.blend_knows_wide and self.wide.knows(user.music))
        if not usable:
            return top_k(
                self.ids, self.pop_scores, k, exclude, fallback=True, unknown_items=unknown
            )
        width = len(self.ids)
        scores = None
        if query is not None and len(self.wide.log_listeners) == width:
            scores = self._fused(query, user.music)
        if scores is None:
            scores = self._reference_blend(user, query, width)
        return top_k(self.ids, scores, k, exclude, unknown_items=unknown)

    def _fused(self, query: np.ndarray, music: dict[str, float]) -> np.ndarray | None:
        """The blend in one pass (`fused_blend`), or None where it must not be used."""
        wide = self.wide
        assert wide is not None and self.keys is not None  # a blended model
        ridge = wide.modelled(wide.columns_of(music))
        moments = wide.moments
        coef = coefficients(
            self.model.blend.weights,
            wide.blend.weights,
            self.keys.of(query),
            moments.of(ridge),
            (moments.pop_sum / moments.items, moments.pop_square / moments.items),
        )
        if coef is None:
            return None
        return blended(coef, self.network.product(query), ridge, moments)

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
        scores, _, _ = self.model.network_scores([user])
        return scores[0]


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
