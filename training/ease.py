"""`ease`: EASE (Steck, 2019) over the joint music + target item space, a cold-user
baseline.

EASE learns an item x item weight matrix B with a zero diagonal in closed form,
`P = (XᵀX + λI)⁻¹`, `B = I - P · diag(1/diag(P))`, over the training listeners'
joint rows (`training.joint_space`). A cold listener's row holds only music, so the
score of target item t is `Σ_m x_m B[m, t]`: how strongly their music predicts t.

The primal form inverts an items x items matrix. When there are fewer training
listeners than items (every dataset here: Douban has about 1,100 listeners and
12,000 joint items) the same scores come from the dual, through the Woodbury
identity, with a listeners x listeners solve: with `M = (XXᵀ + λI)⁻¹`,
`xᵀB[:, t] = (x Xᵀ M X[:, t]) / (1 - X[:, t]ᵀ M X[:, t])` for a row x that is zero on
the target items. `tests/test_ease.py` checks the dual against the primal.

An evaluation baseline; not saved or served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import linalg

from training.data import InteractionData, UserProfile
from training.joint_space import JointSpaceRecommender

__all__ = ["EASEConfig", "EASERecommender"]


@dataclass(frozen=True)
class EASEConfig:
    """`lam_scale` is λ in units of the mean number of items per training row (as the
    cross-domain ridge's λ); chosen on the Douban dev users, seeds 100-102 (a plateau
    from 300 to 3,000; docs/evaluation.md)."""

    lam_scale: float = 1000.0
    binary: bool = True
    solver: str = "auto"  # auto (the smaller system) | primal | dual


class EASERecommender(JointSpaceRecommender):
    name = "ease"

    def __init__(
        self, target: str = "podcast", seed: int = 0, config: EASEConfig | None = None
    ) -> None:
        super().__init__(target, seed)
        self.config = config or EASEConfig()

    def fit(self, data: InteractionData) -> EASERecommender:
        cfg = self.config
        x = self.fit_space(data).tocsc()
        mass = float(x.getnnz(axis=1).mean()) if x.shape[0] else 1.0
        self.lam = cfg.lam_scale * max(mass, 1.0)
        solver = cfg.solver
        if solver == "auto":
            solver = "dual" if x.shape[0] < x.shape[1] else "primal"
        self.solver = solver
        if solver == "primal":
            self._weights = self._primal(x)
        elif solver == "dual":
            self._weights = self._dual(x)
        else:
            raise ValueError(f"unknown EASE solver {solver!r}; expected auto, primal or dual")
        return self

    def _primal(self, x) -> np.ndarray:
        """B[music, target] from the items x items inverse (the textbook form)."""
        gram = (x.T @ x).toarray()
        gram[np.diag_indices_from(gram)] += self.lam
        p = linalg.inv(gram, overwrite_a=True, check_finite=False)
        m = self.space.n_music
        return -p[:m, m:] / np.diag(p)[m:][None, :]

    def _dual(self, x) -> np.ndarray:
        """The same B[music, target] through a listeners x listeners solve."""
        m = self.space.n_music
        kernel = (x @ x.T).toarray()
        kernel[np.diag_indices_from(kernel)] += self.lam
        factor = linalg.cho_factor(kernel, check_finite=False)
        xt = x[:, m:].toarray()  # listeners x target
        mx = linalg.cho_solve(factor, xt, check_finite=False)
        numerator = x[:, :m].T @ mx  # music x target
        denominator = 1.0 - np.einsum("ut,ut->t", xt, mx)
        return np.asarray(numerator) / denominator[None, :]

    def score_batch(self, users: Sequence[UserProfile]) -> tuple[np.ndarray, np.ndarray]:
        """(scores [users x catalog], usable mask: some music item is known)."""
        rows, usable, _ = self.space.music_rows(users)
        music = rows[:, : self.space.n_music]
        return np.asarray(music @ self._weights), usable

    def ranked_scores(self, scores: np.ndarray) -> np.ndarray:
        """Popularity orders the items the music says nothing about (score 0 ties)."""
        pop = self._pop
        return scores + (1e-9 * pop / (pop.max() + 1.0) if len(pop) else pop)
