"""Who will listen to a new upload? Audience scores for items with text and no plays.

Everything here is arrays: listeners' histories as a sparse listeners x items matrix
over the catalog that has plays, content vectors as a dense matrix, an upload's
group (its author or show) as a sparse item x group matrix. Each scorer returns
[uploads x listeners] scores.

Sources (the baselines of `coldstart evaluate-uploads`, and the parts of the served
blend):

* `random`: seeded noise, the floor;
* `activity`: how many items a listener played (the most active listeners first);
* `group`: how many items of the upload's author / show a listener played (ties
  broken by activity; a constant row when nobody played the group): "calibrated to
  its show";
* `centroid`: cosine between the upload's content vector and the mean of the unit
  vectors of a listener's history;
* `max_sim`: the highest cosine between the upload and any item the listener played;
* `item_knn`: content kNN through the plays: the `neighbours` catalog items nearest
  to the upload by content vote for their listeners with their cosine.

`UploadAudienceModel` is the served blend: the sources standardised per upload and
weighted by `training.blend.choose_blend`, with the weights chosen on validation
uploads (catalog items whose plays are hidden from the sources, exactly like the
test protocol, inside the training data).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from training.blend import ScoreBlend, choose_blend

__all__ = [
    "AudienceData",
    "SOURCES",
    "BLEND_SOURCES",
    "source_scores",
    "UploadAudienceModel",
    "MIN_VALIDATION_UPLOADS",
]

SOURCES = ("random", "activity", "group", "centroid", "max_sim", "item_knn")
# What the served blend weighs; the first is the fallback it must beat (choose_blend).
BLEND_SOURCES = ("group", "item_knn", "max_sim", "centroid", "activity")
# The blend's weight grid (3^5 - 2^5 = 211 points over five sources).
UPLOAD_BLEND_GRID = (0.0, 0.5, 1.0)
# Fewer validation uploads with a known listener than this: no blend is fitted (the
# caller keeps its fallback scorer).
MIN_VALIDATION_UPLOADS = 5
# Uploads scored at once by max-sim: block x plays floats.
_MAX_SIM_BLOCK = 64


@dataclass
class AudienceData:
    """The training side: `plays` [listeners x catalog items] (binary), the catalog's
    unit content vectors [items x dim] (zero rows for items without text) and
    `groups` [items x groups] (binary: author or show)."""

    plays: sparse.csr_matrix
    vectors: np.ndarray
    groups: sparse.csr_matrix
    _centroids: np.ndarray | None = field(default=None, repr=False)

    @property
    def activity(self) -> np.ndarray:
        return np.diff(self.plays.indptr).astype(np.float64)

    def centroids(self) -> np.ndarray:
        """Each listener's unit-length mean of the unit vectors of what they played."""
        if self._centroids is None:
            mean = np.asarray(self.plays @ self.vectors)
            norms = np.linalg.norm(mean, axis=1, keepdims=True)
            self._centroids = mean / np.where(norms > 0, norms, 1.0)
        return self._centroids


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 0, norms, 1.0)


def _max_sim(data: AudienceData, uploads: np.ndarray) -> np.ndarray:
    """[uploads x listeners]: max cosine over each listener's played items."""
    plays = data.plays
    out = np.zeros((len(uploads), plays.shape[0]))
    has = np.diff(plays.indptr) > 0
    starts = plays.indptr[:-1][has]
    for lo in range(0, len(uploads), _MAX_SIM_BLOCK):
        sims = (data.vectors @ uploads[lo : lo + _MAX_SIM_BLOCK].T).astype(np.float32)
        gathered = sims[plays.indices]  # [plays x block]
        out[lo : lo + _MAX_SIM_BLOCK, has] = np.maximum.reduceat(gathered, starts, axis=0).T
    return out


def _item_knn(data: AudienceData, uploads: np.ndarray, neighbours: int) -> np.ndarray:
    """[uploads x listeners]: Σ over the upload's nearest catalog items (positive cosine)
    of cosine x played."""
    played = np.diff(data.plays.tocsc().indptr) > 0
    sims = uploads @ data.vectors.T
    sims[:, ~played] = -np.inf  # only items with listeners can vote
    n = min(neighbours, int(played.sum()))
    if n == 0:
        return np.zeros((len(uploads), data.plays.shape[0]))
    top = np.argpartition(-sims, n - 1, axis=1)[:, :n]
    weights = np.clip(np.take_along_axis(sims, top, axis=1), 0.0, None)
    rows = np.repeat(np.arange(len(uploads)), n)
    votes = sparse.csr_matrix(
        (weights.ravel(), (rows, top.ravel())), shape=(len(uploads), data.plays.shape[1])
    )
    return np.asarray((votes @ data.plays.T).todense())


def source_scores(
    data: AudienceData,
    upload_vectors: np.ndarray,
    upload_groups: sparse.csr_matrix,
    names: Sequence[str] = SOURCES,
    seed: int = 0,
    neighbours: int = 50,
) -> dict[str, np.ndarray]:
    """{source: [uploads x listeners] scores} for uploads with these content vectors
    (zero rows: no text) and group rows [uploads x groups]."""
    uploads = _unit(upload_vectors)
    n_up, n_users = len(uploads), data.plays.shape[0]
    activity = data.activity
    tiebreak = activity / (activity.max() + 1.0) if n_users else activity
    out = {}
    for name in names:
        if name == "random":
            out[name] = np.random.default_rng(seed).random((n_up, n_users))
        elif name == "activity":
            out[name] = np.broadcast_to(activity, (n_up, n_users)).copy()
        elif name == "group":
            per_group = data.plays @ data.groups  # listeners x groups: plays of the group
            counts = np.asarray((upload_groups @ per_group.T).todense())  # uploads x listeners
            # An upload whose author/show nobody played says nothing: a constant row (which
            # the blend's standardisation turns into 0), not the activity tiebreak.
            heard = np.asarray(counts.any(axis=1), dtype=bool)
            out[name] = counts + np.where(heard[:, None], tiebreak[None, :], 0.0)
        elif name == "centroid":
            out[name] = uploads @ data.centroids().T
        elif name == "max_sim":
            out[name] = _max_sim(data, uploads)
        elif name == "item_knn":
            out[name] = _item_knn(data, uploads, neighbours)
        else:
            raise ValueError(f"unknown audience source {name!r}; expected one of {SOURCES}")
    return out


@dataclass
class UploadAudienceModel:
    """The served audience scorer: a validation-chosen blend of `BLEND_SOURCES`, and a
    logistic calibration of its score (fitted on the same validation uploads) that turns
    a listener's blend score into the probability that they play the upload."""

    blend: ScoreBlend
    neighbours: int = 50
    k: int = 100  # the blend is chosen on NDCG@k over listeners (recall@100's cut)
    calibration: tuple[float, float] = (1.0, 0.0)  # probability = sigmoid(a * score + b)

    @classmethod
    def choose(
        cls,
        validation_sources: dict[str, np.ndarray],
        validation_truth: Sequence[set[int]],
        k: int = 100,
        neighbours: int = 50,
    ) -> UploadAudienceModel:
        """Weights from validation uploads: `validation_sources` are their scores by a
        fit that never saw their plays; `validation_truth` their real listeners
        (column positions). The calibration is fitted on the same uploads."""
        sources = {name: validation_sources[name] for name in BLEND_SOURCES}
        model = cls(choose_blend(sources, validation_truth, k, UPLOAD_BLEND_GRID), neighbours, k)
        model.calibration = _calibrate(model.scores(sources), validation_truth)
        return model

    def scores(self, sources: dict[str, np.ndarray]) -> np.ndarray:
        return self.blend.apply({n: sources[n] for n in BLEND_SOURCES if n in sources})

    def probability(self, scores: np.ndarray) -> np.ndarray:
        a, b = self.calibration
        return 1.0 / (1.0 + np.exp(-(a * np.asarray(scores, np.float64) + b)))

    def __call__(
        self, data: AudienceData, upload_vectors: np.ndarray, upload_groups: sparse.csr_matrix
    ) -> np.ndarray:
        used = [n for n, w in self.blend.weights.items() if w]
        return self.scores(
            source_scores(data, upload_vectors, upload_groups, used, neighbours=self.neighbours)
        )

    def to_dict(self) -> dict:
        return {
            "weights": dict(self.blend.weights),
            "validation": dict(self.blend.validation),
            "neighbours": self.neighbours,
            "k": self.k,
            "calibration": list(self.calibration),
        }

    @classmethod
    def from_dict(cls, data: dict) -> UploadAudienceModel:
        blend = ScoreBlend(
            {n: float(w) for n, w in data["weights"].items()},
            {n: float(v) for n, v in data.get("validation", {}).items()},
        )
        a, b = data.get("calibration", (1.0, 0.0))
        return cls(blend, int(data["neighbours"]), int(data["k"]), (float(a), float(b)))


def _calibrate(scores: np.ndarray, truth: Sequence[set[int]]) -> tuple[float, float]:
    """(a, b) of a logistic regression of 'played' on the blend score over every
    (validation upload, listener) pair."""
    # Imported here: scikit-learn takes 5-7 s to import; only fitting the blend needs it.
    from sklearn.linear_model import LogisticRegression

    labels = np.zeros(scores.shape, dtype=bool)
    for r, positives in enumerate(truth):
        labels[r, list(positives)] = True
    if labels.all() or not labels.any():
        return (0.0, float(np.log(max(labels.mean(), 1e-9) / max(1 - labels.mean(), 1e-9))))
    fit = LogisticRegression(C=1e4).fit(scores.reshape(-1, 1), labels.ravel())
    return (float(fit.coef_[0, 0]), float(fit.intercept_[0]))
