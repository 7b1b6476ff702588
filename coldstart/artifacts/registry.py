"""Every kind of model the server can load, and how each served kind is trained.

* `MODEL_KINDS`: `{kind: class}`; a saved model's manifest names its `kind`, and
  `load_model` loads any of them the same way (no branching on kind).
* `SERVED_KINDS`: `{kind: ServedKind}` for the trained models (`training.served.ServedModel`
  subclasses): the class, the config built from `Settings`, and the artifact names.
  `coldstart.artifacts.training.train_model` trains any of them the same way.

Adding a served model is one entry in each table (docs/served_models.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from coldstart.core.config import Settings
from training.affinity import AffinityConfig, AffinityModel
from training.base import Recommender
from training.baselines import (
    MusicKNNRecommender,
    PopularityRecommender,
    SegmentPopularityRecommender,
)
from training.served import ServedModel
from training.taste import TasteConfig
from training.two_tower import TwoTowerConfig, TwoTowerRecommender

__all__ = ["MODEL_KINDS", "SERVED_KINDS", "ServedKind", "affinity_config", "load_model"]


def affinity_config(settings: Settings, target: str, seed: int, progress: bool) -> AffinityConfig:
    """The evaluated defaults, with the knobs exposed in `settings.train` applied."""
    return replace(
        AffinityConfig(),
        target=target,
        seed=seed,
        taste=replace(TasteConfig(), dim=settings.train.taste_dim, seed=seed),
        max_epochs=settings.train.epochs,
        progress=progress,
    )


def two_tower_config(settings: Settings, target: str, seed: int, progress: bool) -> TwoTowerConfig:
    """The evaluated defaults (docs/audiobooks.md)."""
    return TwoTowerConfig(seed=seed, progress=progress)


@dataclass(frozen=True)
class ServedKind:
    """How `train_model` trains, saves and registers one served kind."""

    model: type[ServedModel]
    config: Callable[[Settings, str, int, bool], Any]  # (settings, target, seed, progress)
    artifact: Callable[[str], str]  # target -> artifact name in the store
    directory: Callable[[str], str]  # target -> folder under settings.artifacts_path
    # Also register the model's taste vectors under this artifact name (None: no).
    taste_artifact: str | None = None


def _affinity_name(target: str) -> str:
    return "affinity" if target == "podcast" else f"affinity-{target}"


SERVED_KINDS: dict[str, ServedKind] = {
    "affinity": ServedKind(
        AffinityModel, affinity_config, _affinity_name, _affinity_name, taste_artifact="taste"
    ),
    "two_tower": ServedKind(
        TwoTowerRecommender,
        two_tower_config,
        lambda target: f"two_tower:{target}",
        lambda target: f"two_tower-{target}",
    ),
}

MODEL_KINDS: dict[str, type[Recommender]] = {
    **{kind: served.model for kind, served in SERVED_KINDS.items()},
    PopularityRecommender.name: PopularityRecommender,
    SegmentPopularityRecommender.name: SegmentPopularityRecommender,
    MusicKNNRecommender.name: MusicKNNRecommender,
}


def load_model(kind: str, path: Path | str) -> Recommender:
    """The model saved in `path`, of manifest kind `kind`."""
    if kind not in MODEL_KINDS:
        raise KeyError(f"unknown model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    return MODEL_KINDS[kind].load(path)
