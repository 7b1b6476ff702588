"""Layer 2: merge every source's candidates into one score per item.

Each source scores on its own scale (softmax logits, listener counts, cosine), so a
source's scores are min-max normalised over its own candidate list before they are
weighted (`settings.serve.source_weights`) and summed. The best candidate of a source
with weight 1 therefore contributes 1.0; an item several sources agree on rises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from coldstart.recommend.candidates import Candidate

__all__ = ["ScoredItem", "rank_candidates"]


@dataclass(slots=True)
class ScoredItem:
    """One recommendable item with its score, its metadata (for the rules) and the
    trail of what produced and touched it."""

    item_id: str
    kind: str
    score: float
    reasons: list[str] = field(default_factory=list)
    title: str | None = None
    language: str | None = None
    genre: str | None = None
    explicit: bool = False
    show_id: str | None = None
    published_at: dt.datetime | None = None

    def touch(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


def _normalise(scores: np.ndarray) -> np.ndarray:
    low, high = float(scores.min()), float(scores.max())
    if high - low < 1e-12:
        return np.ones_like(scores)
    return (scores - low) / (high - low)


def rank_candidates(
    candidates: Sequence[Candidate],
    weights: Mapping[str, float],
    metadata: Mapping[str, dict],
    default_weight: float = 0.5,
) -> list[ScoredItem]:
    """Weighted sum of normalised source scores, best first (ties by item id).

    `metadata` maps item_id -> catalog fields; candidates not in it (unknown to the
    serving catalog, e.g. deleted items) are dropped.
    """
    by_source: dict[str, list[Candidate]] = {}
    for cand in candidates:
        by_source.setdefault(cand.source, []).append(cand)
    total: dict[str, float] = {}
    contributions: dict[str, dict[str, float]] = {}
    for source, group in by_source.items():
        scores = np.fromiter((c.score for c in group), np.float64, len(group))
        weight = float(weights.get(source, default_weight))
        # weight * value per candidate, as Python floats (one array operation).
        for cand, part in zip(group, (weight * _normalise(scores)).tolist()):
            item_id = cand.item_id
            if item_id not in metadata:
                continue
            total[item_id] = total.get(item_id, 0.0) + part
            per_item = contributions.get(item_id)
            if per_item is None:
                contributions[item_id] = {source: max(0.0, part)}
            else:
                per_item[source] = max(per_item.get(source, 0.0), part)
    ranked = []
    for item_id, score in total.items():
        meta = metadata[item_id]
        # Reasons list sources strongest first, so the first reason is the main one.
        parts = contributions[item_id]
        sources = (
            sorted(parts.items(), key=lambda kv: (-kv[1], kv[0]))
            if len(parts) > 1
            else parts.items()
        )
        ranked.append(
            ScoredItem(
                item_id=item_id,
                kind=meta["kind"],
                score=score,
                reasons=[f"source:{s}" for s, _ in sources],
                title=meta.get("title"),
                language=meta.get("language"),
                genre=meta.get("genre"),
                explicit=bool(meta.get("explicit")),
                show_id=meta.get("show_id"),
                published_at=meta.get("published_at"),
            )
        )
    ranked.sort(key=lambda item: (-item.score, item.item_id))
    return ranked
