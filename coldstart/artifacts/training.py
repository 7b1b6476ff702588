"""Train, save and register every served model on the whole store; load them back.

* `load_interaction_data(store)` is what every model trains on: the contract tables
  plus the spoken-word items' content vectors when the embedding stage has run.
* `train_model(store, settings, kind, target)` fits any served kind
  (`coldstart.artifacts.registry.SERVED_KINDS`: "affinity", "two_tower"), saves it with
  its manifest and registers it; `coldstart train` and `coldstart train-two-tower`
  both call it.
* `load_models(settings, store, kind)` returns `{target: model}` for every target with
  a registered artifact of that kind. The server loads any kind through
  `coldstart.artifacts.registry`.
"""

from __future__ import annotations

import time

from sqlalchemy import func, select

from coldstart.artifacts.registry import SERVED_KINDS
from coldstart.content.embeddings import item_vectors
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store
from training.data import TARGET_KINDS, InteractionData
from training.served import ServedModel

__all__ = [
    "check_target",
    "content_model_id",
    "load_interaction_data",
    "load_models",
    "train_model",
]


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
    items = store.items()
    # the interactions as int32 codes from the columnar copy when it is current (the
    # frame with string ids is made only if a model reads it: taste and affinity don't)
    coded = store.interaction_codes()
    data = InteractionData(
        items=items,
        interactions=coded if coded is not None else store.interactions(),
        users=store.users(),
        playlists=store.playlists(),
    )
    model_id = content_model_id(store) if content else None
    if model_id:
        data.content = item_vectors(store, model_id, kinds=("show", "audiobook"))
    return data


def check_target(data: InteractionData, target: str) -> None:
    if target not in TARGET_KINDS:
        raise ValueError(f"unknown target {target!r}; expected one of {sorted(TARGET_KINDS)}")
    if data.catalog(target).empty:
        raise ValueError(
            f"the store has no {'/'.join(TARGET_KINDS[target])} items to rank for target {target!r}"
        )


def train_model(
    store: Store,
    settings: Settings,
    kind: str,
    target: str,
    data: InteractionData | None = None,
    seed: int | None = None,
    progress: bool = False,
) -> tuple[ServedModel, dict]:
    """Fit a served model of `kind` for `target` on the whole store (or on `data`), save
    it under `settings.artifacts_path` and register it. `seed` defaults to
    `settings.train.seed`. Returns (model, manifest with the artifact path)."""
    if kind not in SERVED_KINDS:
        raise ValueError(f"unknown served model kind {kind!r}; known: {sorted(SERVED_KINDS)}")
    served = SERVED_KINDS[kind]
    data = data if data is not None else load_interaction_data(store)
    check_target(data, target)
    seed = settings.train.seed if seed is None else seed
    started = time.perf_counter()
    model = served.model(target, seed, served.config(settings, target, seed, progress)).fit(data)
    directory = settings.artifacts_path / served.directory(target)
    manifest = model.save(
        directory,
        {
            "trained_seconds": round(time.perf_counter() - started, 2),
            "content_items": len(data.content),
            "path": str(directory),
        },
    )
    if served.taste_artifact:
        store.register_artifact(served.taste_artifact, directory / "taste", model.taste.manifest)
    store.register_artifact(served.artifact(target), directory, manifest)
    return model, manifest


def load_models(
    settings: Settings, store: Store | None = None, kind: str = "affinity"
) -> dict[str, ServedModel]:
    """Fitted models of `kind` by target, from the registered artifacts."""
    store = store or Store.from_settings(settings)
    served = SERVED_KINDS[kind]
    models = {}
    for target in TARGET_KINDS:
        row = store.artifact(served.artifact(target))
        if row is not None:
            models[target] = served.model.load(row["path"])
    return models
