"""The joint item space of the collaborative baselines: music items and the target
catalog as the columns of one user x item matrix.

`cmf_als` (training/cmf.py) and `ease` (training/ease.py) both learn from every
training listener's music *and* target rows at once, then score a cold listener from
a row that holds only their music: the target columns are what the model fills in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from training.base import Recommender
from training.data import InteractionData, Ranking, UserProfile
from training.ranking import popularity, top_k

__all__ = ["JointSpace", "JointSpaceRecommender"]


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


class JointSpaceRecommender(Recommender):
    """What `cmf_als` and `ease` share: the joint space fitted from the training data,
    the target catalog in popularity order, and rankings from `score_batch` (a
    subclass's scores of music-only rows), with popularity for a listener whose music
    is all unknown. A subclass holds a dataclass `config` with a `binary` field."""

    config: Any  # the subclass's dataclass config

    def fit_space(self, data: InteractionData) -> sparse.csr_matrix:
        """Fit the joint space; returns the training listeners' joint matrix."""
        self.space = JointSpace.fit(data, self.target, self.config.binary)
        self._ids = self.space.target_ids
        self._pop = self.space.target_popularity
        return self.space.training_matrix(data, self.target)

    def score_batch(self, users: Sequence[UserProfile]) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def ranked_scores(self, scores: np.ndarray) -> np.ndarray:
        """What a known listener's catalog is ranked by (default: the scores)."""
        return scores

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        return self.recommend_batch([user], k, exclude)[0]

    def recommend_batch(
        self, users: Sequence[UserProfile], k: int = 10, exclude: Sequence[str] = ()
    ) -> list[Ranking]:
        scores, usable = self.score_batch(users)
        _, _, unknown = self.space.music_rows(users)
        return [
            top_k(
                self._ids, self.ranked_scores(s) if ok else self._pop, k, exclude, not ok, missing
            )
            for s, ok, missing in zip(scores, usable, unknown)
        ]

    def settings(self) -> dict:
        return asdict(self.config)
