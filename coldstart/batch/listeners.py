"""The listeners score-uploads scores, as typed columns.

Every known listener with music history: ids, country, language and age as arrays, and
the music histories as one compressed table (per listener, a slice of item codes and
summed weights, in the order `training.history.user_histories` gives). At a million
listeners the histories as a dict per listener (`UserProfile`s for all of them) were the
largest structure of the stage (about 2 GB); here they take about 12 bytes per
(listener, item) pair, and `profiles(lo, hi)` builds the `UserProfile`s of one batch of
listeners when the model needs them: the same objects `listener_profiles` built, a
batch at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from coldstart.core.store import Store
from training.data import MUSIC_KINDS, UserProfile
from training.history import sum_per_pair

__all__ = ["Listeners", "listener_table"]


@dataclass
class Listeners:
    """Listeners in user id order; listener r's history is items
    `item_names[item_codes[offsets[r]:offsets[r + 1]]]` with `weights` at the same
    positions (sorted by item id, plays of an item at several times summed)."""

    user_ids: np.ndarray  # str, object
    country: np.ndarray  # str or None, object
    language: np.ndarray  # str or None, object
    age: np.ndarray  # float or None, object
    offsets: np.ndarray  # int64, len(user_ids) + 1
    item_codes: np.ndarray  # int32
    weights: np.ndarray  # float64
    item_names: list[str]

    def __len__(self) -> int:
        return len(self.user_ids)

    def profiles(self, lo: int = 0, hi: int | None = None) -> list[UserProfile]:
        """`UserProfile`s of listeners lo..hi (every history a dict, as
        `user_histories` builds it: one string object per item shared by the rows)."""
        hi = len(self) if hi is None else min(hi, len(self))
        if lo >= hi:
            return []
        start, end = int(self.offsets[lo]), int(self.offsets[hi])
        names = self.item_names
        keys = [names[c] for c in self.item_codes[start:end].tolist()]
        weights = self.weights[start:end].tolist()
        bounds = (self.offsets[lo : hi + 1] - start).tolist()
        return [
            UserProfile(u, dict(zip(keys[a:b], weights[a:b])), {}, country, language, age)
            for u, a, b, country, language, age in zip(
                self.user_ids[lo:hi].tolist(),
                bounds[:-1],
                bounds[1:],
                self.country[lo:hi].tolist(),
                self.language[lo:hi].tolist(),
                self.age[lo:hi].tolist(),
            )
        ]


def _column(known: pd.DataFrame, name: str) -> np.ndarray:
    """A users column reindexed to the listeners, None where missing (as `user_profile`)."""
    if name not in known.columns:
        return np.full(len(known), None, dtype=object)
    values = known[name].to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    return values


def listener_table(store: Store) -> Listeners:
    """Every known listener with music history (plays of an item at several times add
    up, as in training), with the users table's country, language and age."""
    plays = store.plays_of(MUSIC_KINDS, ["user_id", "item_id", "weight"])
    user_of, item_of, sums = sum_per_pair(plays["user_id"], plays["item_id"], plays["weight"])
    del plays
    codes = user_of.codes
    present = np.unique(codes)  # the users with at least one pair, in id order
    offsets = np.append(np.searchsorted(codes, present), len(codes)).astype(np.int64)
    user_ids = np.asarray([str(u) for u in user_of.categories[present]], dtype=object)
    users = store.users().drop_duplicates("user_id").set_index("user_id")
    known = users.reindex(user_ids)
    return Listeners(
        user_ids=user_ids,
        country=_column(known, "country"),
        language=_column(known, "language"),
        age=_column(known, "age"),
        offsets=offsets,
        item_codes=item_of.codes.astype(np.int32),
        weights=np.ascontiguousarray(sums, dtype=np.float64),
        item_names=[str(i) for i in item_of.categories],
    )
