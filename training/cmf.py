"""`cmf_als`: collective matrix factorisation with implicit's ALS, a cold-user baseline.

One implicit-feedback ALS model (Hu, Koren and Volinsky, 2008; `implicit`'s
`AlternatingLeastSquares`) factorises the joint user x (music + target) matrix of
the training listeners (`training.joint_space`): the music and the spoken-word items
share one latent space, which is collective matrix factorisation with shared user
factors. A cold listener is folded in from their music row alone
(`recalculate_user`: one least-squares solve against the fixed item factors) and
ranks the target catalog by `user · item`. Listeners with no known music item get
popularity (`Ranking.fallback`).

An evaluation baseline (as in the cross-domain cold-start literature, where CMF is
among the hardest to beat on Douban); not saved or served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from training.data import InteractionData, UserProfile
from training.joint_space import JointSpaceRecommender

__all__ = ["CMFConfig", "CMFALSRecommender"]


@dataclass(frozen=True)
class CMFConfig:
    """Chosen on the Douban dev users, seeds 100-102 (docs/evaluation.md): the best of
    the grid there (0.69x popularity; 64 factors gave 0.38x)."""

    factors: int = 8
    regularization: float = 1.0
    alpha: float = 5.0  # confidence of a played item: 1 + alpha
    iterations: int = 15
    binary: bool = True


class CMFALSRecommender(JointSpaceRecommender):
    name = "cmf_als"

    def __init__(
        self, target: str = "podcast", seed: int = 0, config: CMFConfig | None = None
    ) -> None:
        super().__init__(target, seed)
        self.config = config or CMFConfig()

    def fit(self, data: InteractionData) -> CMFALSRecommender:
        cfg = self.config
        matrix = self.fit_space(data)
        # One thread and a seed: the same factors on every run.

        with threadpool_limits(1, "blas"):
            self.als = AlternatingLeastSquares(
                factors=cfg.factors,
                regularization=cfg.regularization,
                alpha=cfg.alpha,
                iterations=cfg.iterations,
                dtype=np.float64,
                num_threads=1,
                random_state=self.seed,
            )
        if matrix.shape[0]:
            with threadpool_limits(1, "blas"):  # implicit's own advice: BLAS pools slow ALS
                self.als.fit(matrix.astype(np.float32), show_progress=False)
            self._item_factors: np.ndarray | None = np.asarray(self.als.item_factors)[
                self.space.n_music :
            ]
        else:
            self._item_factors = None
        return self

    def score_batch(self, users: Sequence[UserProfile]) -> tuple[np.ndarray, np.ndarray]:
        """(scores [users x catalog], usable mask: some music item is known)."""
        rows, usable, _ = self.space.music_rows(users)
        if self._item_factors is None or not len(users):
            return np.zeros((len(users), len(self._ids))), np.zeros(len(users), bool)
        factors = self.als.recalculate_user(np.arange(len(users)), rows.astype(np.float32))
        factors = np.atleast_2d(factors)
        return factors @ self._item_factors.T, usable
