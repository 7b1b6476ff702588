"""`{kind: class}` for every model the server can load: a saved model's manifest names
its `kind`, and `load_model` loads any of them the same way (no branching on kind)."""

from __future__ import annotations

from pathlib import Path

from training.affinity import AffinityModel
from training.base import Recommender
from training.baselines import (
    MusicKNNRecommender,
    PopularityRecommender,
    SegmentPopularityRecommender,
)
from training.two_tower import TwoTowerRecommender

__all__ = ["MODEL_KINDS", "load_model"]

MODEL_KINDS: dict[str, type[Recommender]] = {
    "affinity": AffinityModel,
    "two_tower": TwoTowerRecommender,
    PopularityRecommender.name: PopularityRecommender,
    SegmentPopularityRecommender.name: SegmentPopularityRecommender,
    MusicKNNRecommender.name: MusicKNNRecommender,
}


def load_model(kind: str, path: Path | str) -> Recommender:
    """The model saved in `path`, of manifest kind `kind`."""
    if kind not in MODEL_KINDS:
        raise KeyError(f"unknown model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[kind].load(path)
