"""Small helpers every recommender shares: popularity counts and top-k selection."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from training.data import MUSIC_KINDS, InteractionData, Ranking

__all__ = ["popularity", "top_k", "best_positions", "music_catalog"]


def popularity(data: InteractionData, target: str, leave_out: Collection[str] = ()) -> pd.Series:
    """Score per catalog item: distinct listeners, ties broken by total plays.

    Every catalog item is present (0 for items nobody played), sorted best first and
    then by id, so popularity rankings are deterministic. The target plays of the
    users in `leave_out` are not counted (the scores of `data` less those plays).
    """
    catalog = data.catalog(target)["item_id"].astype(str)
    inter = data.target_interactions(target)
    if len(leave_out):
        inter = inter[~inter["user_id"].isin(list(leave_out))]
    listeners = inter.groupby("item_id")["user_id"].nunique()
    plays = inter.groupby("item_id")["weight"].sum()
    top_plays = max(float(plays.max()), 1.0) if len(plays) else 1.0
    # plays / (top_plays + 1) < 1, so it only orders items with equal listener counts.
    score = listeners.reindex(catalog, fill_value=0).astype(float) + plays.reindex(
        catalog, fill_value=0.0
    ) / (top_plays + 1)
    frame = pd.DataFrame({"item_id": catalog.to_numpy(), "score": score.to_numpy()})
    frame = frame.sort_values(["score", "item_id"], ascending=[False, True])
    return pd.Series(
        frame["score"].to_numpy(), index=frame["item_id"].to_numpy(), name="popularity"
    )


def top_k(
    item_ids: np.ndarray,
    scores: np.ndarray,
    k: int,
    exclude: Sequence[str] = (),
    fallback: bool = False,
    unknown_items: Sequence[str] = (),
) -> Ranking:
    """Best `k` items by score (ties by position in `item_ids`), skipping `exclude`."""
    scores = np.asarray(scores, dtype=np.float64)
    keep = np.ones(len(item_ids), bool)
    if exclude:
        keep &= ~np.isin(item_ids, np.asarray(list(exclude), dtype=object))
    idx = np.flatnonzero(keep)
    order = idx[best_positions(-scores[idx], max(int(k), 0))]
    return Ranking(
        item_ids=[str(i) for i in item_ids[order]],
        scores=scores[order].astype(np.float32),
        fallback=fallback,
        unknown_items=list(unknown_items),
    )


def best_positions(cost: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` smallest costs in a stable ascending sort (equal costs keep
    their order, so results are deterministic), without sorting every cost: the k-th
    smallest cost is found by partition, and only the costs up to it (ties included) are
    sorted. The same positions as `np.argsort(cost, kind="stable")[:k]`."""
    if 0 < k < len(cost):
        kth = np.partition(cost, k - 1)[k - 1]
        if not np.isnan(kth):  # NaN sorts last: then the whole sort decides
            head = np.flatnonzero(cost <= kth)
            return head[np.argsort(cost[head], kind="stable")][:k]
    return np.argsort(cost, kind="stable")[:k]


def music_catalog(data: InteractionData) -> set[str]:
    """Music item ids the training data knows (for reporting unknown profile items)."""
    return set(data.items.loc[data.items["kind"].isin(MUSIC_KINDS), "item_id"].astype(str))
