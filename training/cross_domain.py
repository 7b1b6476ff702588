"""Cross-domain baselines on the raw music history: ridge regression and user-kNN.

Both read a listener's music as a sparse row over the music items
(`training.history.HistoryEncoder`), not the 32-d word2vec summary, so they keep
the item-level signal that a taste average throws away.

`CrossDomainRidge` regresses the user x target matrix on the user x music matrix in
closed form (with an intercept, so a listener with little music lands on
popularity). It solves in the dual, `(X Xᵀ + λI)⁻¹`, a users x users system: cheap
while training users are fewer than music items, as in every dataset here.
λ is chosen by 5-fold cross-validation over the training users.

`MusicItemKNN` is user-kNN across domains: cosine between music rows, shrunk by the
number of shared items (`n / (n + shrinkage)`), so two listeners who share one
obscure album do not count as twins; the nearest neighbours vote for what they
play in the target domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import sparse

from training.base import Recommender
from training.blend import BLEND_SCORES, ScoreBlend, choose_blend
from training.data import InteractionData, Ranking, UserProfile, id_set
from training.history import HistoryEncoder, target_matrix
from training.metrics import mean_ndcg, ndcg_at_k, top_columns
from training.ranking import popularity, top_k

__all__ = [
    "served_blend_metrics",
    "WidePart",
    "fit_wide",
    "CrossDomainRidge",
    "RidgeSolution",
    "MusicItemKNN",
    "training_pairs",
    "choose_ridge",
    "out_of_fold_ridge",
    "ridge_lambdas",
]

# λ in units of the mean row mass (items per training user, binary rows). Chosen on the
# Douban dev users, seeds 100-102: out-of-fold choice among (8, 25) x mean items gave
# 1.052x popularity where a wide absolute grid (10 ... 1000) gave 1.033x (it picked
# λ=100, about 3x, on two seeds of three and lost on the test users).
RIDGE_SCALES = (8.0, 25.0)

# What the wide part's closed-form ridge is fitted on, at most: its dual solve is rows x
# rows and its coefficients rows x items, so past these sizes it takes a seeded sample of
# the training rows and the most-listened target items (the others score their mean, the
# intercept). Neither cap binds on the Douban dev data (about 800 listeners, 6,734 books)
# or on the demo world; at 100k listeners the uncapped solve needs 18-51 GB.
MAX_RIDGE_ROWS = 4096
MAX_RIDGE_ITEMS = 8192


def ridge_lambdas(
    x: sparse.csr_matrix, scales: Sequence[float] = RIDGE_SCALES
) -> tuple[float, ...]:
    """The λ grid for training rows `x`: each scale times the mean number of items per row."""
    mass = float(x.getnnz(axis=1).mean()) if x.shape[0] else 1.0
    return tuple(round(scale * max(mass, 1.0), 3) for scale in scales)


def training_pairs(
    data: InteractionData, target: str
) -> tuple[list[str], list[dict[str, float]], pd.DataFrame]:
    """Users with both music and target history: (ids, music histories, target pairs)."""
    inter = data.target_interactions(target)
    music = data.music_interactions()
    histories = {
        u: dict(zip(g["item_id"].astype(str), g["weight"].astype(float)))
        for u, g in music.groupby("user_id")
    }
    users = sorted(id_set(inter["user_id"]) & set(histories))
    return users, [histories[u] for u in users], inter[inter["user_id"].isin(set(users))]


@dataclass
class RidgeSolution:
    """Closed-form ridge with intercept: scores(x) = ȳ + kernel(x) @ alpha."""

    x_train: sparse.csr_matrix  # training rows (uncentred)
    x_mean: np.ndarray  # column means of x_train
    y_mean: np.ndarray  # column means of the target matrix
    alpha: np.ndarray  # (K + λI)⁻¹ (Y - ȳ), [train users x items]
    lam: float

    @classmethod
    def fit(cls, x: sparse.csr_matrix, y: sparse.csr_matrix, lam: float) -> RidgeSolution:
        x_mean = np.asarray(x.mean(axis=0)).ravel()
        y_dense = y.toarray()
        y_mean = y_dense.mean(axis=0)
        gram = cls._centred_kernel(x, x, x_mean)
        gram[np.diag_indices_from(gram)] += lam
        alpha = np.linalg.solve(gram, y_dense - y_mean)
        return cls(x.tocsr(), x_mean, y_mean, alpha, lam)

    @staticmethod
    def _centred_kernel(a: sparse.csr_matrix, b: sparse.csr_matrix, mean: np.ndarray) -> np.ndarray:
        """(a - mean) (b - mean)ᵀ without densifying a or b."""
        am, bm = a @ mean, b @ mean
        return (a @ b.T).toarray() - am[:, None] - bm[None, :] + float(mean @ mean)

    def scores(self, x: sparse.csr_matrix) -> np.ndarray:
        return self.y_mean + self._centred_kernel(x, self.x_train, self.x_mean) @ self.alpha

    def add_columns(self, n: int) -> None:
        """Room for `n` new target items (no listeners yet: they score ȳ = 0)."""
        self.y_mean = np.concatenate([self.y_mean, np.zeros(n)])
        self.alpha = np.hstack([self.alpha, np.zeros((self.alpha.shape[0], n))])

    def state(self) -> dict:
        """Plain tensors and numbers (a `torch.load(weights_only=True)`-safe checkpoint part)."""
        x = self.x_train.tocsr()
        return {
            "x_indptr": torch.from_numpy(x.indptr.astype(np.int64)),
            "x_indices": torch.from_numpy(x.indices.astype(np.int64)),
            "x_data": torch.from_numpy(x.data),
            "x_shape": list(x.shape),
            "x_mean": torch.from_numpy(self.x_mean),
            "y_mean": torch.from_numpy(self.y_mean),
            "alpha": torch.from_numpy(self.alpha),
            "lam": float(self.lam),
        }

    @classmethod
    def from_state(cls, state: dict) -> RidgeSolution:
        x = sparse.csr_matrix(
            (state["x_data"].numpy(), state["x_indices"].numpy(), state["x_indptr"].numpy()),
            shape=tuple(state["x_shape"]),
        )
        return cls(
            x,
            state["x_mean"].numpy(),
            state["y_mean"].numpy(),
            state["alpha"].numpy(),
            float(state["lam"]),
        )


def _folds(n: int, seed: int, n_folds: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(order[f::n_folds]) for f in range(n_folds)]


def out_of_fold_ridge(
    x: sparse.csr_matrix, y: sparse.csr_matrix, lam: float, folds: list[np.ndarray]
) -> np.ndarray:
    """Ridge scores of every row from a fit that did not see that row's fold."""
    scores = np.zeros(y.shape, np.float64)
    every = np.arange(x.shape[0])
    for fold in folds:
        rest = np.setdiff1d(every, fold)
        scores[fold] = RidgeSolution.fit(x[rest], y[rest], lam).scores(x[fold])
    return scores


def choose_ridge(
    x: sparse.csr_matrix,
    y: sparse.csr_matrix,
    seed: int,
    n_folds: int = 5,
    lambdas: Sequence[float] | None = None,
    k: int = 10,
) -> tuple[float, dict[float, float]]:
    """λ with the best out-of-fold NDCG@k over all training rows (k-fold: every user
    validates once, which is far less noisy than one small validation share)."""
    folds = _folds(x.shape[0], seed, n_folds)
    truth = [set(y[r].indices) for r in range(y.shape[0])]
    lambdas = lambdas or ridge_lambdas(x)
    found = {lam: mean_ndcg(out_of_fold_ridge(x, y, lam, folds), truth, k) for lam in lambdas}
    return max(found, key=lambda lam: (found[lam], lam)), found


@dataclass
class WidePart:
    """Ridge over the music history blended with item popularity: the part of a served
    model that keeps the item-level music signal and the popularity prior."""

    encoder: HistoryEncoder
    ridge: RidgeSolution
    blend: ScoreBlend
    log_listeners: np.ndarray  # popularity source, per target column
    # out-of-fold blended scores of the training rows (not saved; uncapped fits only)
    oof_scores: np.ndarray | None = None
    # Capped fits (`MAX_RIDGE_ROWS`, `MAX_RIDGE_ITEMS`): the target columns the ridge
    # models and every column's mean (the score of the others); not saved past `state`:
    # the sampled training rows, their out-of-fold ridge scores and the target matrix.
    columns: np.ndarray | None = None
    column_means: np.ndarray | None = None
    sample_rows: np.ndarray | None = None
    oof_ridge: np.ndarray | None = None
    targets: sparse.csr_matrix | None = None

    def _ridge_scores(self, x: sparse.csr_matrix) -> np.ndarray:
        ridge = self.ridge.scores(x)
        if self.columns is None:
            return ridge
        full = np.repeat(self.column_means[None, :], x.shape[0], axis=0)
        full[:, self.columns] = ridge
        return full

    def scores(self, histories: Sequence[dict[str, float]]) -> np.ndarray:
        ridge = self._ridge_scores(self.encoder.transform(histories))
        return self.blend.apply(
            {"ridge": ridge, "popularity": np.broadcast_to(self.log_listeners, ridge.shape)}
        )

    def held_out(self, rows: Sequence[int], histories: Sequence[dict[str, float]]) -> np.ndarray:
        """Blended scores of training rows `rows` (with their music `histories`) from a
        ridge that did not see them: out of fold. In a capped fit, rows outside the
        ridge's sample get the final ridge (it never saw them), and popularity leaves
        out each row's own plays. A row listed again (the same listener in both cold
        cases: the same music) is scored once and copied."""
        listed = np.asarray(rows, dtype=np.int64)
        if self.columns is None:
            return self.oof_scores[listed]
        out = np.zeros((len(listed), len(self.log_listeners)))
        block = max(1, BLEND_SCORES // max(len(self.log_listeners), 1))  # rows at a time
        _, first, inverse = np.unique(listed, return_index=True, return_inverse=True)
        firsts = np.sort(first)  # each row's first place in the list, in list order
        for lo in range(0, len(firsts), block):
            at = firsts[lo : lo + block]
            out[at] = self._held_out_block(listed[at], [histories[i] for i in at.tolist()])
        source = first[inverse.ravel()]
        again = np.flatnonzero(source != np.arange(len(listed)))
        for lo in range(0, len(again), block):
            out[again[lo : lo + block]] = out[source[again[lo : lo + block]]]
        return out

    def _held_out_block(self, rows: np.ndarray, histories) -> np.ndarray:
        ridge = self._ridge_scores(self.encoder.transform(histories))
        at = np.searchsorted(self.sample_rows, rows).clip(max=len(self.sample_rows) - 1)
        sampled = self.sample_rows[at] == rows
        ridge[np.ix_(np.flatnonzero(sampled), self.columns)] = self.oof_ridge[at[sampled]]
        own = self.targets[rows].toarray()
        pop = np.log1p(np.maximum(np.expm1(self.log_listeners)[None, :] - own, 0.0))
        return self.blend.apply({"ridge": ridge, "popularity": pop})

    def add_columns(self, n: int) -> None:
        if self.columns is None:
            self.ridge.add_columns(n)
        else:  # new items are not modelled by the ridge: they score 0, like new columns
            self.column_means = np.concatenate([self.column_means, np.zeros(n)])
        self.log_listeners = np.concatenate([self.log_listeners, np.zeros(n)])

    def state(self) -> dict:
        return {
            "items": self.encoder.state(),
            "ridge": self.ridge.state(),
            "weights": self.blend.weights,
            "validation": self.blend.validation,
            "log_listeners": torch.from_numpy(self.log_listeners),
            **(
                {}
                if self.columns is None
                else {
                    "columns": torch.from_numpy(self.columns.astype(np.int64)),
                    "column_means": torch.from_numpy(self.column_means),
                }
            ),
        }

    @classmethod
    def from_state(cls, state: dict) -> WidePart:
        return cls(
            HistoryEncoder.from_state(list(state["items"]), binary=True),
            RidgeSolution.from_state(state["ridge"]),
            ScoreBlend(dict(state["weights"]), dict(state["validation"])),
            state["log_listeners"].numpy(),
            columns=state["columns"].numpy() if "columns" in state else None,
            column_means=state["column_means"].numpy() if "column_means" in state else None,
        )


def served_blend_metrics(
    served: ScoreBlend, wide: WidePart, k: int, listeners: np.ndarray, own: np.ndarray, truth
) -> dict:
    """The manifest's blend figures: both stages' weights and validation, and the served
    blend's validation NDCG@k next to popularity's, with the validation users' own plays
    (`own`, per target column) left out of the counts."""
    # Every user's popularity row is the same: ranked once, judged against each truth.
    ranked = top_columns(-np.log1p(np.maximum(listeners - own, 0.0)), k)
    per_user = np.array([ndcg_at_k(ranked, t, k) for t in truth], dtype=np.float64)
    return {
        "blend": {
            "weights": served.weights,
            "wide_weights": wide.blend.weights,
            "wide_validation": wide.blend.validation,
            "validation": served.validation,
        },
        f"val_ndcg@{k}_served": served.validation["blend"],
        f"val_ndcg@{k}_popularity": float(per_user.mean()) if len(truth) else 0.0,
    }


def fit_wide(
    histories: Sequence[dict[str, float]],
    y: sparse.csr_matrix,
    listeners: np.ndarray,
    music_items,
    seed: int,
    n_folds: int = 5,
    k: int = 10,
    lambdas: Sequence[float] | None = None,
    one_se: bool = False,
    max_rows: int = MAX_RIDGE_ROWS,
    max_items: int = MAX_RIDGE_ITEMS,
) -> WidePart:
    """λ and the ridge/popularity weights by k-fold over the training rows.

    The weights are the best point of the grid: judged out of fold on every training
    row (hundreds of listeners), not on a small validation share, so the one-SE rule
    that guards the network's weight in the second stage (`training.blend`) is off
    here by default (Douban dev seeds 100-109: best point 1.051x popularity, one-SE
    rule 1.050x).

    `y` holds the rows' target items; `listeners` counts each target item's listeners
    over all training data. A held-out fold's own plays are taken out of the counts,
    so popularity is judged the way the model will be used (on users it has not seen).

    Past `max_rows` training rows or `max_items` target items, the ridge is fitted (and
    λ and the weights judged) on a seeded sample of rows and the most-listened items
    (`MAX_RIDGE_ROWS`, `MAX_RIDGE_ITEMS`)."""
    encoder = HistoryEncoder.fit(music_items, binary=True)
    x = encoder.transform(histories)
    listeners = np.asarray(listeners, float)
    if y.shape[0] > max_rows or y.shape[1] > max_items:
        return _fit_wide_capped(
            encoder, x, y, listeners, seed, n_folds, k, lambdas, one_se, max_rows, max_items
        )
    lam, blend, sources = _choose_ridge_blend(x, y, listeners, seed, n_folds, k, lambdas, one_se)
    return WidePart(
        encoder, RidgeSolution.fit(x, y, lam), blend, np.log1p(listeners), blend.apply(sources)
    )


def _choose_ridge_blend(x, y, listeners, seed, n_folds, k, lambdas, one_se):
    """(λ, ridge/popularity blend, out-of-fold sources) with the best out-of-fold blend;
    each held-out fold's own plays are taken out of the popularity counts."""
    folds = _folds(x.shape[0], seed, n_folds)
    truth = [set(y[r].indices) for r in range(y.shape[0])]
    pop = np.zeros(y.shape, np.float64)
    for fold in folds:
        pop[fold] = np.log1p(np.maximum(listeners - np.asarray(y[fold].sum(axis=0)).ravel(), 0.0))
    best = None
    for lam in lambdas or ridge_lambdas(x):
        sources = {"ridge": out_of_fold_ridge(x, y, lam, folds), "popularity": pop}
        blend = choose_blend(sources, truth, k, one_se=one_se)
        if best is None or blend.validation["blend"] > best[1].validation["blend"]:
            best = (lam, blend, sources)
    best[1].validation["ridge_lambda"] = best[0]
    return best


def _fit_wide_capped(
    encoder, x, y, listeners, seed, n_folds, k, lambdas, one_se, max_rows, max_items
):
    """`fit_wide` on a seeded sample of `max_rows` rows and the `max_items` most-listened
    target items (λ and the weights judged on those items)."""
    n = y.shape[0]
    sample = np.sort(np.random.default_rng(seed).choice(n, size=n, replace=False)[:max_rows])
    columns = np.sort(np.argsort(-listeners, kind="stable")[:max_items])
    xs, ys = x[sample], y[sample][:, columns]
    lam, blend, sources = _choose_ridge_blend(
        xs, ys, listeners[columns], seed, n_folds, k, lambdas, one_se
    )
    blend.validation.update(ridge_rows=len(sample), ridge_items=len(columns))
    return WidePart(
        encoder,
        RidgeSolution.fit(xs, ys, lam),
        blend,
        np.log1p(listeners),
        columns=columns,
        column_means=np.asarray(y[sample].mean(axis=0)).ravel(),
        sample_rows=sample,
        oof_ridge=sources["ridge"],
        targets=y.tocsr(),
    )


class CrossDomainRidge(Recommender):
    """Baseline: closed-form ridge from the music matrix to the target matrix."""

    name = "cross_domain_ridge"

    def __init__(self, target: str = "podcast", seed: int = 0, lam: float | None = None) -> None:
        super().__init__(target, seed)
        self.lam = lam

    def fit(self, data: InteractionData) -> CrossDomainRidge:
        pop = popularity(data, self.target)
        self._ids = pop.index.to_numpy(dtype=object)
        self._pop = pop.to_numpy(dtype=np.float64)
        users, histories, pairs = training_pairs(data, self.target)
        self.encoder = HistoryEncoder.fit(
            data.music_interactions()["item_id"].astype(str), binary=True
        )
        x = self.encoder.transform(histories)
        y = target_matrix(pairs, users, [str(i) for i in self._ids])
        self.validation: dict[float, float] = {}
        lam = self.lam
        if lam is None:
            lam, self.validation = choose_ridge(x, y, self.seed)
        self.solution = RidgeSolution.fit(x, y, lam)
        return self

    def score_batch(self, users: Sequence[UserProfile]) -> tuple[np.ndarray, np.ndarray]:
        """(scores [users x catalog], usable mask: some music item is known)."""
        histories = [u.music for u in users]
        return self.solution.scores(self.encoder.transform(histories)), self.encoder.known_counts(
            histories
        ) > 0

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        return self.recommend_batch([user], k, exclude)[0]

    def recommend_batch(
        self, users: Sequence[UserProfile], k: int = 10, exclude: Sequence[str] = ()
    ) -> list[Ranking]:
        scores, usable = self.score_batch(users)
        out = []
        for u, s, ok in zip(users, scores, usable):
            unknown = [i for i in u.music if i not in self.encoder.vocabulary]
            out.append(
                top_k(
                    self._ids,
                    s if ok else self._pop,
                    k,
                    exclude,
                    fallback=not ok,
                    unknown_items=unknown,
                )
            )
        return out


class MusicItemKNN(Recommender):
    """Baseline: user-kNN on the music items themselves (cosine, shrunk by overlap)."""

    name = "music_knn"

    def __init__(
        self, target: str = "podcast", seed: int = 0, neighbours: int = 50, shrinkage: float = 5.0
    ) -> None:
        super().__init__(target, seed)
        self.neighbours = neighbours
        self.shrinkage = shrinkage

    def fit(self, data: InteractionData) -> MusicItemKNN:
        pop = popularity(data, self.target)
        self._ids = pop.index.to_numpy(dtype=object)
        self._pop = pop.to_numpy(dtype=np.float64)
        # Popularity only orders items the neighbours tie on.
        self._tiebreak = 1e-6 * self._pop / (self._pop.max() + 1.0) if len(pop) else self._pop
        users, histories, pairs = training_pairs(data, self.target)
        self.encoder = HistoryEncoder.fit(data.music_interactions()["item_id"].astype(str))
        self._x = self.encoder.transform(histories).tocsr()
        self._binary = self._x.copy()
        self._binary.data[:] = 1.0
        self._y = target_matrix(pairs, users, [str(i) for i in self._ids])
        return self

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        row = self.encoder.transform([user.music])
        unknown = [i for i in user.music if i not in self.encoder.vocabulary]
        if row.nnz == 0 or self._x.shape[0] == 0:
            return top_k(self._ids, self._pop, k, exclude, fallback=True, unknown_items=unknown)
        cosine = np.asarray((self._x @ row.T).todense()).ravel()
        binary = row.copy()
        binary.data[:] = 1.0
        shared = np.asarray((self._binary @ binary.T).todense()).ravel()
        sims = cosine * shared / (shared + self.shrinkage)
        n = min(self.neighbours, len(sims))
        nearest = np.argpartition(-sims, n - 1)[:n]
        weights = np.clip(sims[nearest], 0.0, None)
        scores = np.asarray(self._y[nearest].T @ weights).ravel() + self._tiebreak
        return top_k(self._ids, scores, k, exclude, unknown_items=unknown)
