"""Ranking metrics with binary relevance, and `METRICS`, the one registry of them.

A per-user metric takes one ranked list and the set of relevant items for one user;
a list-level metric (coverage) takes all the lists together. `summarise`, the
evaluation table and plot (`coldstart.batch.eval_report`) and early stopping (the
models' `early_stopping` setting) all go through `METRICS`: a metric added there is
reported everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Metric",
    "METRICS",
    "per_user_metric",
    "recall_at_k",
    "ndcg_at_k",
    "hit_rate_at_k",
    "mrr_at_k",
    "coverage",
    "summarise",
    "mean_ndcg",
    "per_user_ndcg",
    "top_columns",
]


def recall_at_k(ranked: Sequence, relevant: Collection, k: int) -> float:
    """Share of the user's relevant items found in the top k."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def ndcg_at_k(ranked: Sequence, relevant: Collection, k: int) -> float:
    """DCG of the top k over the best possible DCG (all relevant items first)."""
    if not relevant:
        return 0.0
    gains = [1.0 / np.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant]
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return float(sum(gains) / ideal)


def hit_rate_at_k(ranked: Sequence, relevant: Collection, k: int) -> float:
    """1 when at least one relevant item is in the top k."""
    return float(any(item in relevant for item in ranked[:k]))


def mrr_at_k(ranked: Sequence, relevant: Collection, k: int) -> float:
    """1 / rank of the first relevant item in the top k (0 when none)."""
    for rank, item in enumerate(ranked[:k]):
        if item in relevant:
            return 1.0 / (rank + 1)
    return 0.0


def coverage(rankings: Sequence[Sequence], catalog_size: int, k: int) -> float:
    """Share of the catalog that appears in at least one user's top k."""
    if catalog_size == 0:
        return 0.0
    return len({item for ranked in rankings for item in ranked[:k]}) / catalog_size


@dataclass(frozen=True)
class Metric:
    """One metric: `name` keys results as "name@k"; `header` is its table column."""

    name: str
    header: str
    per_user: Callable[[Sequence, Collection, int], float] | None = None
    # list-level: (rankings, catalog_size, k) -> value
    over_lists: Callable[[Sequence[Sequence], int, int], float] | None = None

    def key(self, k: int) -> str:
        return f"{self.name}@{k}"

    def value(
        self, rankings: Sequence[Sequence], truths: Sequence[Collection], k: int, catalog_size: int
    ) -> float:
        if self.per_user is None:
            return self.over_lists(rankings, catalog_size, k)
        return (
            float(np.mean([self.per_user(r, t, k) for r, t in zip(rankings, truths)]))
            if len(rankings)
            else 0.0
        )


# In report order: the table's columns and the plot's groups follow it.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("ndcg", "ndcg", per_user=ndcg_at_k),
        Metric("recall", "recall", per_user=recall_at_k),
        Metric("hit_rate", "hit", per_user=hit_rate_at_k),
        Metric("mrr", "mrr", per_user=mrr_at_k),
        Metric("coverage", "cover", over_lists=coverage),
    )
}


def per_user_metric(name: str) -> Callable[[Sequence, Collection, int], float]:
    """The per-user function of metric `name` (what early stopping averages)."""
    metric = METRICS.get(name)
    if metric is None or metric.per_user is None:
        per_user = sorted(n for n, m in METRICS.items() if m.per_user is not None)
        raise ValueError(f"early stopping needs a per-user metric, one of {per_user}; got {name!r}")
    return metric.per_user


def summarise(
    rankings: Sequence[Sequence], truths: Sequence[Collection], k: int, catalog_size: int
) -> dict[str, float]:
    """Every metric of `METRICS`, keyed like "ndcg@10" (coverage over all lists)."""
    return {m.key(k): m.value(rankings, truths, k, catalog_size) for m in METRICS.values()}


def per_user_ndcg(scores: np.ndarray, truth: Sequence[Collection[int]], k: int) -> np.ndarray:
    """NDCG@k of each score row [users x items] against that row's relevant column indices."""
    return np.array(
        [ndcg_at_k(top_columns(row, k), rel, k) for row, rel in zip(-np.asarray(scores), truth)],
        dtype=np.float64,
    )


def top_columns(neg: np.ndarray, k: int) -> list[int]:
    """Column indices of the k smallest values of `neg`, ties by index: what a stable full
    argsort gives, in O(items) (partition, then sort only the candidates)."""
    if k < len(neg):
        candidates = np.flatnonzero(neg <= np.partition(neg, k - 1)[k - 1])
        return candidates[np.argsort(neg[candidates], kind="stable")][:k].tolist()
    return np.argsort(neg, kind="stable")[:k].tolist()


def mean_ndcg(scores: np.ndarray, truth: Sequence[Collection[int]], k: int) -> float:
    """Mean of `per_user_ndcg` (0 for no users)."""
    return float(per_user_ndcg(scores, truth, k).mean()) if len(truth) else 0.0
