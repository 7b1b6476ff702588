"""Small helpers every recommender shares: popularity counts and top-k selection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from training.data import MUSIC_KINDS, InteractionData, Ranking

__all__ = ["popularity", "top_k", "music_catalog"]


def popularity(data: InteractionData, target: str) -> pd.Series:
    """Score per catalog item: distinct listeners, ties broken by total plays.

    Every catalog item is present (0 for items nobody played), sorted best first and
    then by id, so popularity rankings are deterministic.
    """
    catalog = data.catalog(target)["item_id"].astype(str)
    inter = data.target_interactions(target)
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
    # Stable sort on -score: equal scores keep catalog order, so results are deterministic.
    order = idx[np.argsort(-scores[idx], kind="stable")][: max(int(k), 0)]
    return Ranking(
        item_ids=[str(i) for i in item_ids[order]],
        scores=scores[order].astype(np.float32),
        fallback=fallback,
        unknown_items=list(unknown_items),
    )


def music_catalog(data: InteractionData) -> set[str]:
    """Music item ids the training data knows (for reporting unknown profile items)."""
    return set(data.items.loc[data.items["kind"].isin(MUSIC_KINDS), "item_id"].astype(str))
