"""The joint item space of the collaborative baselines: music items and the target
catalog as the columns of one user x item matrix.

`cmf_als` (training/cmf.py) and `ease` (training/ease.py) both learn from every
training listener's music *and* target rows at once, then score a cold listener from
a row that holds only their music: the target columns are what the model fills in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from training.data import InteractionData, UserProfile
from training.ranking import popularity

__all__ = ["JointSpace"]


@dataclass
class JointSpace:
    """Columns [0, n_music) are music items, [n_music, n_music + n_target) the target
    catalog in popularity order (`target_ids`). Values are 1 per item played
    (`binary`) or log1p(weight)."""

    music_ids: np.ndarray
    target_ids: np.ndarray
    target_popularity: np.ndarray
    binary: bool = True

    @classmethod
    def fit(cls, data: InteractionData, target: str, binary: bool = True) -> JointSpace:
        pop = popularity(data, target)
        music = np.sort(data.music_interactions()["item_id"].astype(str).unique())
        return cls(
            music.astype(object),
            pop.index.to_numpy(dtype=object),
            pop.to_numpy(dtype=np.float64),
            binary,
        )

    @property
    def n_music(self) -> int:
        return len(self.music_ids)

    @property
    def size(self) -> int:
        return len(self.music_ids) + len(self.target_ids)

    def _values(self, weight: np.ndarray) -> np.ndarray:
        weight = np.asarray(weight, dtype=np.float64)
        return np.ones_like(weight) if self.binary else np.log1p(np.maximum(weight, 0.0))

    def training_matrix(self, data: InteractionData, target: str) -> sparse.csr_matrix:
        """Every training listener with music or target plays: [listeners x size]."""
        music = data.music_interactions()
        spoken = data.target_interactions(target)
        columns = pd.Series(
            np.arange(self.size),
            index=pd.Index(np.concatenate([self.music_ids, self.target_ids]).astype(str)),
        )
        pairs = pd.concat([music, spoken], ignore_index=True)
        pairs = pairs.assign(col=pairs["item_id"].astype(str).map(columns)).dropna(subset=["col"])
        users = np.sort(pairs["user_id"].astype(str).unique())
        rows = pd.Series(np.arange(len(users)), index=pd.Index(users))
        matrix = sparse.csr_matrix(
            (
                self._values(pairs["weight"].to_numpy()),
                (pairs["user_id"].astype(str).map(rows).to_numpy(), pairs["col"].astype(np.int64)),
            ),
            shape=(len(users), self.size),
        )
        matrix.sum_duplicates()
        if self.binary:
            matrix.data[:] = 1.0
        return matrix

    def music_rows(
        self, users: Sequence[UserProfile]
    ) -> tuple[sparse.csr_matrix, np.ndarray, list[list[str]]]:
        """(rows holding only each profile's music [users x size], usable mask: some
        music item is known, the unknown music items of each profile)."""
        index = {item: i for i, item in enumerate(self.music_ids)}
        rows, cols, vals, unknown = [], [], [], []
        for r, user in enumerate(users):
            missing = []
            for item, weight in user.music.items():
                c = index.get(str(item))
                if c is None:
                    missing.append(item)
                    continue
                rows.append(r)
                cols.append(c)
                vals.append(weight)
            unknown.append(missing)
        matrix = sparse.csr_matrix(
            (self._values(np.asarray(vals, dtype=np.float64)), (rows, cols)),
            shape=(len(users), self.size),
        )
        matrix.sum_duplicates()
        if self.binary:
            matrix.data[:] = 1.0
        return matrix, np.diff(matrix.indptr) > 0, unknown
