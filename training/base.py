"""One interface for every recommender, in the style of implicit's `RecommenderBase`.

Every model declares the same six operations, with one signature each:

    fit(data) -> self
    recommend(user, k, exclude) -> Ranking / recommend_batch(users, k) -> [Ranking]
    similar_items(item_id, k) -> [item_id]
    add_items(items, content) -> [item_id added]
    save(directory, extra_manifest) -> manifest / Model.load(directory) -> Model

Served models (`AffinityModel`, `TwoTowerRecommender`, both `training.served.ServedModel`:
one lifecycle, docs/served_models.md) and the baselines implement all of them; `tests/recommender_contract.py` checks each. Defined behaviour where an
operation has little meaning for a model:

* `similar_items` of a model with no item representation (the popularity baselines,
  music kNN) is what it would show a listener it knows nothing about, less the item
  itself: "listeners of this also play the most popular items".
* `add_items` of a model that scores items by their listeners adds new items with no
  listeners (score 0: ranked after everything played); a content model adds those
  with a content vector and skips the rest (it has nothing to place them by).

Ablations that only take part in the evaluation harness (`GNNOnlyRecommender`, the
cross-domain ridge and item kNN) keep the defaults below, which raise
`NotImplementedError` naming the model.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from training.data import InteractionData, Ranking, UserProfile

__all__ = ["Recommender", "new_item_ids", "read_state", "write_state", "MANIFEST_FILE"]

MANIFEST_FILE = "manifest.json"
STATE_ARRAYS = "state.npz"
STATE_VALUES = "state.json"


class Recommender(ABC):
    """Ranks one target catalog ("podcast" -> shows, "audiobook" -> audiobooks)
    for users described by a `UserProfile`.

    `fit` sees only training data: the evaluation harness hides the test users'
    target-domain history before calling it. `recommend` never returns items in
    `exclude` and returns at most `k` items, best first.
    """

    name: str = "recommender"

    def __init__(self, target: str = "podcast", seed: int = 0) -> None:
        self.target = target
        self.seed = seed

    @abstractmethod
    def fit(self, data: InteractionData) -> Recommender: ...

    @abstractmethod
    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking: ...

    def recommend_batch(self, users: Sequence[UserProfile], k: int = 10) -> list[Ranking]:
        return [self.recommend(u, k) for u in users]

    def similar_items(self, item_id: str, k: int = 10) -> list[str]:
        """The `k` catalog items most like `item_id` (itself left out); KeyError for an
        item the model does not know. Default: what a listener the model knows nothing
        about would get (see the module docstring)."""
        self._check_known(item_id)
        return self.recommend(UserProfile("similar-items", {}), k, exclude=[item_id]).item_ids

    def add_items(
        self, items: pd.DataFrame, content: Mapping[str, np.ndarray] | None = None
    ) -> list[str]:
        """Make catalog items (rows of `items`: item_id, optionally language, genre)
        that arrived after `fit` rankable; `content` maps item_id -> content vector.
        Returns the ids added (items already known are skipped)."""
        raise NotImplementedError(f"{type(self).__name__} ({self.name}) cannot add items after fit")

    def save(self, directory: Path | str, extra_manifest: dict | None = None) -> dict:
        """Write the fitted model and its manifest (`kind`, target, settings) to
        `directory`; returns the manifest. No pickles: `load` never runs stored code."""
        raise NotImplementedError(f"{type(self).__name__} ({self.name}) is not saved")

    @classmethod
    def load(cls, directory: Path | str) -> Recommender:
        raise NotImplementedError(f"{cls.__name__} is not saved")

    def known_items(self) -> list[str]:
        """The catalog the model ranks (after `fit`, with items added since)."""
        return [str(i) for i in self._ids]

    def _check_known(self, item_id: str) -> None:
        if item_id not in set(self.known_items()):
            raise KeyError(f"{item_id!r} is not in the {self.target} catalog of {self.name}")


def new_item_ids(items: pd.DataFrame, known: Sequence[str]) -> list[str]:
    """Ids of `items` not in `known`, in order, without duplicates."""
    seen = set(map(str, known))
    out = []
    for i in items["item_id"].astype(str):
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def write_state(
    directory: Path | str, manifest: dict, arrays: dict[str, np.ndarray], values: dict
) -> dict:
    """A model as plain files: numeric/str arrays (`state.npz`, no pickles), JSON
    values and the manifest. Returns the manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / STATE_ARRAYS, **{k: np.asarray(v) for k, v in arrays.items()})
    (directory / STATE_VALUES).write_text(json.dumps(values) + "\n")
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    return manifest


def read_state(directory: Path | str, kind: str) -> tuple[dict, dict[str, np.ndarray], dict]:
    """(manifest, arrays, values) written by `write_state`, checking the model kind."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no saved model")
    manifest = json.loads(path.read_text())
    if manifest.get("kind") != kind:
        raise ValueError(f"{directory} holds a {manifest.get('kind')!r} model, not {kind!r}")
    with np.load(directory / STATE_ARRAYS, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return manifest, arrays, json.loads((directory / STATE_VALUES).read_text())
