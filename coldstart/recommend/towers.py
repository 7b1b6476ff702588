"""The user towers of the served models in numpy, for one listener at a time.

`fast.ServedScorer` scores a listener with the network of its model: AffinityNet's
MLP with its skip, or the two-tower's `UserTower`, as numpy matrix products over
weights taken from the torch modules once at load (eval mode: Dropout is the
identity), with the item side (keys, biases) precomputed. The taste vector of a
history (`TasteModel.user_vector`) is computed here too, with its play weights in one
array operation, and kept for the next call with the same taste model and history
(the two lists of a request ask for it in turn).
"""

from __future__ import annotations

import weakref

import numpy as np
import torch
from torch import nn

from training.data import UserProfile

__all__ = ["NETWORKS", "shared_taste", "taste_vector"]


# The last taste vector computed: the served models of both lists read the same
# listener's vector from the same taste model, so each request computes it once.
_LAST_TASTE: tuple = (None, (), (None, []))


def taste_vector(taste, music: dict[str, float]) -> tuple[np.ndarray | None, list[str]]:
    """`taste.user_vector(music)`, reused when the previous call had the same taste
    model and the same history (compared by value: a dict edited in place is not
    mistaken for the one seen before)."""
    global _LAST_TASTE
    last_taste, last_history, result = _LAST_TASTE  # one read: safe across threads
    history = tuple(music.items())
    if last_taste is not taste or last_history != history:
        result = _user_vector(taste, music)
        _LAST_TASTE = (taste, history, result)
    vec, unknown = result
    return vec, list(unknown)


# Taste models the towers read, one per distinct content (weakly held).
_TASTES: list[weakref.ref] = []


def shared_taste(taste):
    """An equal taste model seen before (the same vocabulary and unit vectors: the
    models of both lists are trained on the same data with the same settings, and each
    artifact carries its own copy), else `taste`; the towers read the taste vector
    through it, so `taste_vector` computes it once per request for both lists."""
    index, unit = getattr(taste, "_index", None), getattr(taste, "_unit", None)
    if index is None or unit is None:
        return taste
    _TASTES[:] = [ref for ref in _TASTES if ref() is not None]
    for ref in _TASTES:
        seen = ref()
        if seen is taste:
            return taste
        if (
            type(seen) is type(taste)
            and seen._unit.shape == unit.shape
            and seen._unit.dtype == unit.dtype
            and seen._index == index
            and np.array_equal(seen._unit, unit)
        ):
            return seen
    _TASTES.append(weakref.ref(taste))
    return taste


def _user_vector(taste, music: dict[str, float]) -> tuple[np.ndarray | None, list[str]]:
    """`TasteModel.user_vector` with the play weights computed in one array operation
    instead of one numpy call per item (the same float64 values, the same sums)."""
    index, unit = getattr(taste, "_index", None), getattr(taste, "_unit", None)
    if index is None or unit is None:  # another taste model: its own method
        return taste.user_vector(music)
    get = index.get
    found = [get(i) if type(i) is str else get(str(i)) for i in music]
    if None in found:
        known = [(i, w) for i, w in zip(found, music.values()) if i is not None]
        rows, plays = [i for i, _ in known], [w for _, w in known]
        unknown = [str(item_id) for i, item_id in zip(found, music) if i is None]
    else:  # every item known (the common case)
        rows, plays, unknown = found, list(music.values()), []
    if not rows:
        return None, unknown
    w = np.log1p(np.maximum(np.array(plays, np.float64), 0.0)) + 1e-3
    vec = (unit[rows] * w[:, None]).sum(axis=0) / w.sum()
    norm = np.sqrt(vec.dot(vec))  # np.linalg.norm of a 1-d vector, without its checks
    return (vec / norm if norm > 0 else vec).astype(np.float32), unknown


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
        self.taste = shared_taste(model.taste)
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
        vec, unknown = taste_vector(self.taste, user.music)
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
        self.taste = shared_taste(model.taste)
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
        vec, unknown = taste_vector(self.taste, user.music)
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
