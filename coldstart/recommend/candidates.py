"""Layer 1: candidate generation. Each source proposes items for one result list
("show" or "audiobook") with a score on its own scale.

Sources:

* `RecommenderSource`: any `training.base.Recommender`: every trained model (the
  pipeline makes one per loaded model, named by its manifest kind; a served model ranks
  through its blend) and segment popularity. Its `fallback` flag is passed on.
* `AffinitySource`: the affinity network alone, through faiss: the model's user tower
  gives a vector for the listener; an inner-product index over the model's item
  vectors (bias folded in as one extra dimension) returns its top items. Not used by
  the pipeline (a served model ranks with its blend); kept for the network's own
  ranking at catalog scale, where an approximate index can replace the exact one.
* `ContentSource`: items whose content is nearest (issue 4's faiss item index) to the best
  items the other sources found: it reaches items nobody has listened to yet.
* `EditorialSource`: the configured pins, so that they are in the list at all; the
  `pin` rule then puts them on top.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import faiss
import numpy as np

from coldstart.recommend.columns import first_places
from training.data import Ranking, UserProfile

__all__ = [
    "Candidate",
    "SourceResult",
    "CandidateSource",
    "AffinitySource",
    "RecommenderSource",
    "ContentSource",
    "ContentNeighbours",
    "EditorialSource",
]


@dataclass(frozen=True, slots=True)
class Candidate:
    item_id: str
    source: str
    score: float


@dataclass
class SourceResult:
    candidates: list[Candidate] = field(default_factory=list)
    # True when the source could not use the listener's history (popularity answered).
    fallback: bool = False
    unknown_items: list[str] = field(default_factory=list)


class CandidateSource(ABC):
    name: str = "source"

    @abstractmethod
    def generate(self, user: UserProfile, k: int, exclude: Sequence[str] = ()) -> SourceResult: ...


class RanksListeners(Protocol):
    """What a source ranks with: a fitted `Recommender`, or a fast scorer of one."""

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking: ...


class RecommenderSource(CandidateSource):
    """Wraps a fitted `Recommender`; when it falls back to popularity its candidates are
    dropped unless `keep_fallback` (the popularity source itself keeps them)."""

    def __init__(self, name: str, model: RanksListeners, keep_fallback: bool = False) -> None:
        self.name, self.model, self.keep_fallback = name, model, keep_fallback

    def generate(self, user: UserProfile, k: int, exclude: Sequence[str] = ()) -> SourceResult:
        ranking = self.model.recommend(user, k, exclude)
        if ranking.fallback and not self.keep_fallback:
            return SourceResult([], True, list(ranking.unknown_items))
        cands = [
            Candidate(str(i), self.name, float(s)) for i, s in zip(ranking.item_ids, ranking.scores)
        ]
        return SourceResult(cands, ranking.fallback, list(ranking.unknown_items))


class AffinitySource(CandidateSource):
    """Top items of an `training.affinity.AffinityModel` via faiss over its item vectors."""

    name = "affinity"

    def __init__(self, model, name: str = "affinity") -> None:
        self.name = name
        self.model = model
        item_ids, vectors, bias = model.item_vectors()
        vectors = np.asarray(vectors, dtype=np.float32)
        bias = np.asarray(bias, dtype=np.float32).reshape(-1, 1)
        # score = u·v + b is one inner product: index [v, b], query with [u, 1].
        folded = np.ascontiguousarray(np.hstack([vectors, bias]))
        self.ids = np.asarray(item_ids, dtype=object)
        self.index = faiss.IndexFlatIP(folded.shape[1])
        self.index.add(folded)
        self.user_vector(
            UserProfile("probe", {})
        )  # fails now, not per request, if the model changed

    def user_vector(self, user: UserProfile) -> tuple[np.ndarray | None, list[str]]:
        u, known, unknown = self.model.user_vectors([user])
        if not known[0]:
            return None, unknown[0]
        u = np.asarray(u, dtype=np.float32)
        return np.hstack([u, np.ones((1, 1), np.float32)]), unknown[0]

    def generate(self, user: UserProfile, k: int, exclude: Sequence[str] = ()) -> SourceResult:
        query, unknown = self.user_vector(user)
        if query is None:
            return SourceResult([], True, unknown)
        excluded = set(exclude)
        n = min(self.index.ntotal, k + len(excluded))
        scores, rows = self.index.search(np.ascontiguousarray(query), n)
        cands = [
            Candidate(str(self.ids[r]), self.name, float(s))
            for s, r in zip(scores[0], rows[0])
            if r >= 0 and str(self.ids[r]) not in excluded
        ][:k]
        return SourceResult(cands, False, unknown)


class ContentSource:
    """Content neighbours of seed items (the best personalised candidates).

    `neighbours(seed_ids, k)` returns, per seed, (item_id, score) pairs of the nearest
    items of this list's kind (issue 4's faiss item index, one batched query)."""

    name = "content"

    def __init__(
        self, neighbours: Callable[[list[str], int], list[list[tuple[str, float]]]]
    ) -> None:
        self.neighbours = neighbours

    def expand(
        self, seeds: Sequence[Candidate], k: int, exclude: Sequence[str] = ()
    ) -> SourceResult:
        excluded = set(exclude) | {c.item_id for c in seeds}
        best: dict[str, float] = {}
        for hits in self.neighbours([c.item_id for c in seeds], k):
            for item_id, score in hits:
                if item_id not in excluded:
                    best[item_id] = max(best.get(item_id, float("-inf")), float(score))
        ordered = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return SourceResult([Candidate(i, self.name, s) for i, s in ordered])


class EditorialSource(CandidateSource):
    name = "editorial"

    def __init__(self, pins: Sequence[str], accept: Callable[[str], bool]) -> None:
        self.pins = [p for p in pins if accept(p)]

    def generate(self, user: UserProfile, k: int, exclude: Sequence[str] = ()) -> SourceResult:
        excluded = set(exclude)
        return SourceResult([Candidate(p, self.name, 1.0) for p in self.pins if p not in excluded])


# (seed, n) neighbour lists a `ContentNeighbours` keeps (about 0.5 KiB each at n = 30).
NEAREST_KEPT = 65_536
# `expand` answers kept per (seeds, k, excluded rows): about 0.8 KiB each at k = 30, so at
# most about 13 MiB per list and worker.
EXPANDED_KEPT = 16_384


class ContentNeighbours:
    """`ContentSource` over arrays: the content neighbours of seed items as catalogue
    rows and scores, from one batched faiss query whose id selector (the recommendable
    items of one kind) is built once per load, not per request."""

    name = "content"

    def __init__(self, index, columns, kind: str) -> None:
        self.index, self.columns = index, columns
        self.nearest: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        # (seeds, k, excluded rows) -> the answer of `expand` (the seeds of a request
        # are the best items of its models: a few hundred sets cover most listeners)
        self.expanded: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        code = columns.kinds.get(kind, -2)
        allowed = sorted(i for i in columns.ids[columns.kind == code].tolist() if i in index)
        self.allowed = len(allowed)
        if not allowed:
            return
        ids = index.ids_of(allowed)
        rows = columns.rows(allowed)
        self.position_of: dict[str, int] = {}
        flat = index.index
        if isinstance(flat, faiss.IndexIDMap2) and isinstance(
            faiss.downcast_index(flat.index), faiss.IndexFlat
        ):
            # An exact index: the allowed vectors in an index of their own, in the order
            # they hold in the whole one (the same scores and the same order of ties as a
            # search of the whole index restricted to them, without scanning the rest).
            position = {int(i): n for n, i in enumerate(faiss.vector_to_array(flat.id_map))}
            by_position = np.argsort([position[int(i)] for i in ids], kind="stable")
            self.search_index = faiss.IndexFlat(flat.d, flat.metric_type)
            self.vectors = np.stack([flat.reconstruct(int(i)) for i in ids[by_position]])
            self.search_index.add(self.vectors)
            self.position_of = {allowed[n]: p for p, n in enumerate(by_position.tolist())}
            self.params: Any = None
            self.label_rows = rows[by_position]  # label = position in the sub-index
            return
        self.search_index = flat
        self.selector = faiss.IDSelectorBatch(ids)  # kept alive with the parameters
        if isinstance(flat, faiss.IndexIVF):
            self.params = faiss.SearchParametersIVF()
            self.params.nprobe = flat.nprobe
        else:
            self.params = faiss.SearchParameters()
        self.params.sel = self.selector
        by_id = np.argsort(ids)
        self.faiss_ids = ids[by_id]
        self.label_rows = rows[by_id]

    def _nearest(self, seed: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the `n` nearest allowed items of one seed, as faiss ranks
        them; kept per (seed, n). The index is exact or a fixed IVF probe, and faiss
        answers each query of a small batch on its own, so a seed's neighbours are the
        same alone as in the batch of seeds the reference sends."""
        key = (seed, n)
        kept = self.nearest.get(key)
        if kept is not None:
            return kept
        position = self.position_of.get(seed)
        vector = self.vectors[position] if position is not None else self.index.vector(seed)
        query = np.ascontiguousarray(np.reshape(vector, (1, -1)), np.float32)
        scores, labels = self.search_index.search(query, n, params=self.params)
        found = labels[0] >= 0
        labels, distances = labels[0][found], scores[0][found].astype(np.float64)
        if self.params is not None:  # labels are faiss ids of the whole index
            labels = np.searchsorted(self.faiss_ids, labels)
        kept = (self.label_rows[labels], distances)
        if len(self.nearest) < NEAREST_KEPT:
            self.nearest[key] = kept
        return kept

    def expand(
        self, seed_ids: Sequence[str], k: int, excluded_rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the best `k` neighbours of the seeds, best first (ties by
        item id), each item once with its best score, `excluded_rows` left out; kept
        per (seeds, k, excluded rows), up to EXPANDED_KEPT answers (read-only arrays)."""
        key = (tuple(seed_ids), k, excluded_rows.tobytes())
        kept = self.expanded.get(key)
        if kept is None:
            kept = self._expand(seed_ids, k, excluded_rows)
            for array in kept:
                array.flags.writeable = False  # shared by every request with these seeds
            if len(self.expanded) < EXPANDED_KEPT:
                self.expanded[key] = kept
        return kept

    def _expand(
        self, seed_ids: Sequence[str], k: int, excluded_rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        index = self.index
        seeds = [s for s in seed_ids if s in index]
        empty = np.zeros(0, np.int64), np.zeros(0)
        if not seeds or not self.allowed or len(index) == 0 or k <= 0:
            return empty
        n = min(k, self.allowed, len(index))
        hits = [self._nearest(seed, n) for seed in seeds]
        if len(hits) == 1:
            rows, scores = hits[0]
        else:
            rows = np.concatenate([r for r, _ in hits])
            scores = np.concatenate([s for _, s in hits])
        if len(excluded_rows):
            keep = np.ones(len(rows), bool)
            for row in excluded_rows.tolist():  # a few seeds
                keep &= rows != row
            rows, scores = rows[keep], scores[keep]
        if not len(rows):
            return empty
        # Best first (ties by item id): an item's first place holds its best score.
        order = np.lexsort((self.columns.id_rank[rows], -scores))
        rows, scores = rows[order], scores[order]
        first = first_places(rows)[:k]
        return rows[first], scores[first]
