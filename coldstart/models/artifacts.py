"""Train, save and register every served model on the whole store; load them back.

* `load_interaction_data(store)` is what every model trains on: the contract tables
  plus the spoken-word items' content vectors when the embedding stage has run.
* `train_and_save(store, settings, target)` fits taste vectors + the affinity MLP and
  registers artifacts "taste" and "affinity" (podcast) / "affinity-audiobook".
* `train_two_tower(store, data, directory)` fits the audiobook two-tower and registers
  it as `TWO_TOWER_ARTIFACT`.
* `load_models(settings, store)` returns `{target: AffinityModel}` for every target
  with a registered affinity artifact. The server loads any kind through
  `coldstart.models.registry`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store
from training.affinity import AffinityConfig, AffinityModel
from training.data import TARGET_KINDS, InteractionData
from training.taste import TasteConfig

if TYPE_CHECKING:
    from training.two_tower import TwoTowerRecommender

__all__ = [
    "TWO_TOWER_ARTIFACT",
    "affinity_config",
    "artifact_name",
    "check_target",
    "content_model_id",
    "load_interaction_data",
    "load_models",
    "train_and_save",
    "train_two_tower",
]

TWO_TOWER_ARTIFACT = "two_tower:audiobook"


def content_model_id(store: Store) -> str | None:
    """The embedding model with the most stored vectors (None when nothing is embedded)."""
    cv = t.content_vectors
    with store.connect() as conn:
        row = conn.execute(
            select(cv.c.model_id, func.count())
            .group_by(cv.c.model_id)
            .order_by(func.count().desc())
            .limit(1)
        ).first()
    return row[0] if row else None


def load_interaction_data(store: Store, content: bool = True) -> InteractionData:
    """The store's contract tables, plus item content vectors of spoken-word items when
    the embedding stage has run (an empty dict otherwise: models then use ids only)."""
    data = InteractionData(
        items=store.items(),
        interactions=store.interactions(),
        users=store.users(),
        playlists=store.playlists(),
    )
    model_id = content_model_id(store) if content else None
    if model_id:
        from coldstart.content.embeddings import item_vectors

        data.content = item_vectors(store, model_id, kinds=("show", "audiobook"))
    return data


def check_target(data: InteractionData, target: str) -> None:
    if target not in TARGET_KINDS:
        raise ValueError(f"unknown target {target!r}; expected one of {sorted(TARGET_KINDS)}")
    if data.catalog(target).empty:
        raise ValueError(
            f"the store has no {'/'.join(TARGET_KINDS[target])} items to rank for target {target!r}"
        )


def artifact_name(target: str) -> str:
    return "affinity" if target == "podcast" else f"affinity-{target}"


def affinity_config(settings: Settings, target: str) -> AffinityConfig:
    """The evaluated defaults, with the knobs exposed in `settings.train` applied."""
    seed = settings.train.seed
    return replace(
        AffinityConfig(),
        target=target,
        seed=seed,
        taste=replace(TasteConfig(), dim=settings.train.taste_dim, seed=seed),
        max_epochs=settings.train.epochs,
    )


def train_and_save(
    store: Store, settings: Settings, target: str = "podcast", data: InteractionData | None = None
) -> dict:
    """Fit taste vectors + the affinity MLP on the whole store and register them.

    Returns the affinity manifest (with the artifact path)."""
    data = data if data is not None else load_interaction_data(store)
    check_target(data, target)
    started = time.perf_counter()
    model = AffinityModel(target, settings.train.seed, affinity_config(settings, target)).fit(data)
    directory = settings.artifacts_path / artifact_name(target)
    manifest = model.save(
        directory,
        {
            "trained_seconds": round(time.perf_counter() - started, 2),
            "content_items": len(data.content),
        },
    )
    store.register_artifact("taste", directory / "taste", model.taste.manifest)
    store.register_artifact(artifact_name(target), directory, manifest)
    return {**manifest, "path": str(directory)}


def train_two_tower(
    store: Store, data: InteractionData, directory, seed: int = 0, progress: bool = False
) -> "TwoTowerRecommender":
    """Fit the audiobook two-tower on all of `data`, save it with its manifest and register it."""
    # Imported here: the affinity path (`coldstart train`) does not pay for torch_geometric.
    from training.two_tower import TwoTowerConfig, TwoTowerRecommender

    started = time.perf_counter()
    model = TwoTowerRecommender(
        "audiobook", seed, TwoTowerConfig(seed=seed, progress=progress)
    ).fit(data)
    manifest = model.save(
        directory,
        {"trained_seconds": round(time.perf_counter() - started, 2), "path": str(directory)},
    )
    store.register_artifact(TWO_TOWER_ARTIFACT, directory, manifest)
    return model


def load_models(settings: Settings, store: Store | None = None) -> dict[str, AffinityModel]:
    """Fitted affinity models by target, from the registered artifacts."""
    store = store or Store.from_settings(settings)
    models = {}
    for target in TARGET_KINDS:
        row = store.artifact(artifact_name(target))
        if row is not None:
            models[target] = AffinityModel.load(row["path"])
    return models
