"""Ranking metrics with binary relevance. Each takes one ranked list and the set of
relevant items for one user; `summarise` averages them over users and adds catalog
coverage (a property of all the lists together)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

__all__ = ["recall_at_k", "ndcg_at_k", "hit_rate_at_k", "mrr_at_k", "coverage", "summarise", "mean_ndcg", "per_user_ndcg"]


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


def summarise(rankings: Sequence[Sequence], truths: Sequence[Collection], k: int, catalog_size: int) -> dict[str, float]:
    """Mean of each per-user metric, plus catalog coverage, keyed like "ndcg@10"."""
    per_user = {
        f"recall@{k}": recall_at_k,
        f"ndcg@{k}": ndcg_at_k,
        f"hit_rate@{k}": hit_rate_at_k,
        f"mrr@{k}": mrr_at_k,
    }
    out = {
        name: float(np.mean([fn(r, t, k) for r, t in zip(rankings, truths)])) if len(rankings) else 0.0
        for name, fn in per_user.items()
    }
    out[f"coverage@{k}"] = coverage(rankings, catalog_size, k)
    return out


def per_user_ndcg(scores: np.ndarray, truth: Sequence[Collection[int]], k: int) -> np.ndarray:
    """NDCG@k of each score row [users x items] against that row's relevant column indices."""
    return np.array([ndcg_at_k(_top_k(row, k), rel, k) for row, rel in zip(-np.asarray(scores), truth)],
                    dtype=np.float64)


def _top_k(neg: np.ndarray, k: int) -> list[int]:
    """Column indices of the k smallest values of `neg`, ties by index: what a stable full
    argsort gives, in O(items) (partition, then sort only the candidates)."""
    if k < len(neg):
        candidates = np.flatnonzero(neg <= np.partition(neg, k - 1)[k - 1])
        return candidates[np.argsort(neg[candidates], kind="stable")][:k].tolist()
    return np.argsort(neg, kind="stable")[:k].tolist()


def mean_ndcg(scores: np.ndarray, truth: Sequence[Collection[int]], k: int) -> float:
    """Mean of `per_user_ndcg` (0 for no users)."""
    return float(per_user_ndcg(scores, truth, k).mean()) if len(truth) else 0.0
