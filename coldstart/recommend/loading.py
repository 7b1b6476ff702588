"""Everything the server loads once: catalog, popularity, trained models, search.

Trained models are found through the store's `artifacts` table by their manifest's
`kind` ("affinity", "two_tower") and `target` ("podcast", "audiobook"), so the
loader does not depend on artifact names. A missing or broken component is recorded
in `errors` and the pipeline works without it (popularity is always there).

`store_version` is a cheap fingerprint (two aggregate queries) of what a reload
would pick up: the artifacts table and the set of scored uploads.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import func, select

from coldstart.artifacts.registry import MODEL_KINDS, load_model
from coldstart.artifacts.training import content_model_id
from coldstart.content.embeddings import item_vectors
from coldstart.content.search import SearchService
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store
from coldstart.recommend.catalog import Catalog, ItemMetadata
from coldstart.recommend.catalog_file import catalog_fingerprint, load_catalog, load_popularity
from training.base import Recommender
from training.data import MUSIC_KINDS, SPOKEN_KINDS, TARGET_KINDS, InteractionData

__all__ = [
    "ServingModels",
    "load_serving_models",
    "store_version",
    "load_popularity_data",
]

log = logging.getLogger(__name__)
TARGETS = ("podcast", "audiobook")


def store_version(store: Store) -> tuple:
    with store.connect() as conn:
        arts = conn.execute(select(func.count(), func.max(t.artifacts.c.created_at))).one()
        ups = conn.execute(
            select(func.count(), func.max(t.uploads.c.updated_at)).where(
                t.uploads.c.status == "scored"
            )
        ).one()
    return (tuple(arts), tuple(ups))


def load_popularity_data(store: Store, items: pd.DataFrame | None = None) -> InteractionData:
    """What the server fits its popularity fallbacks on: the catalogue, the listeners, and
    the spoken-word plays with user, item and weight only. The fallbacks rank shows and
    audiobooks from those plays alone, so they are the same as when fitted on every table
    (`coldstart.artifacts.training.load_interaction_data`); music plays, timestamps and playlists, most of a large store,
    are not read."""
    plays = store.plays_of(SPOKEN_KINDS, ["user_id", "item_id", "weight"])
    items = store.items() if items is None else items
    return InteractionData(items=items, interactions=plays, users=store.users())


@dataclass
class ServingModels:
    catalog: Catalog
    popularity: dict[str, Recommender]
    # Trained models by manifest kind, then target: {"affinity": {"podcast": model}, ...}
    trained: dict[str, dict[str, Recommender]] = field(default_factory=dict)
    search: SearchService | None = None  # when a content index exists
    music_ids: frozenset[str] = frozenset()  # artists and tracks in the store
    version: tuple = ()
    components: dict[str, dict] = field(default_factory=dict)  # what was loaded, from where
    errors: dict[str, str] = field(default_factory=dict)  # what could not be loaded, and why

    @property
    def affinity(self) -> dict[str, Recommender]:
        """target -> training.affinity.AffinityModel"""
        return self.trained.setdefault("affinity", {})

    @property
    def two_tower(self) -> dict[str, Recommender]:
        """target -> training.two_tower.TwoTowerRecommender"""
        return self.trained.setdefault("two_tower", {})

    def _kind_counts(self) -> Counter:
        metadata = self.catalog.metadata
        if isinstance(metadata, ItemMetadata):  # its kind column, no dict per item
            return Counter(metadata.columns["kind"])
        return Counter(m["kind"] for m in metadata.values())

    def describe(self) -> dict:
        return {
            "components": self.components,
            "errors": self.errors,
            "catalog": {
                kind: self._kind_counts().get(kind, 0) for kind in ("show", "episode", "audiobook")
            },
        }


def _artifacts(store: Store) -> pd.DataFrame:
    frame = store.frame(t.artifacts)
    return frame.sort_values("created_at") if len(frame) else frame


def _item_ids(store: Store, kinds) -> pd.Series:
    """The ids of the items of these kinds: one query over the items' kind index, not
    the items table (1.25M rows with their descriptions at a million listeners)."""
    return store.frame(t.items, t.items.c.kind.in_(list(kinds)), ["item_id"])["item_id"].astype(str)


def _add_new_items(
    model: Recommender, kind: str, store: Store, target: str, target_ids: pd.Series
) -> list[str]:
    """Catalog items ingested after the model was trained become scorable on (re)load
    (`Recommender.add_items`: from their text vectors when they have them, from their
    metadata alone for the two-tower). `target_ids`: the ids of the target's catalogue;
    its rows are read only when some are new. Returns the ids added."""
    known = set(model.known_items())
    if target_ids.isin(known).all():
        return []
    catalog = store.items(TARGET_KINDS[target]).reset_index(drop=True)
    new = catalog[~catalog["item_id"].astype(str).isin(known)]
    if new.empty:
        return []

    model_id = content_model_id(store)
    vectors = {}
    if model_id:
        wanted = set(new["item_id"].astype(str))
        vectors = {
            i: v
            for i, v in item_vectors(store, model_id, kinds=("show", "audiobook")).items()
            if i in wanted
        }
    try:
        return model.add_items(new, vectors)
    except ValueError as exc:  # e.g. vectors of another dimension: serve what the model knows
        log.warning("new %s items not added to the %s model: %s", target, kind, exc)
    return []


def _load_search(settings: Settings, store: Store):
    return SearchService(store, settings)


def load_serving_models(settings: Settings, store: Store, search: bool = True) -> ServingModels:
    version = store_version(store)  # read first: a change during loading triggers another reload
    target_ids = {target: _item_ids(store, TARGET_KINDS[target]) for target in TARGETS}
    directory, fingerprint = settings.home / "catalog", catalog_fingerprint(store)
    targets = [target for target in TARGETS if len(target_ids[target])]
    popularity, fitted = load_popularity(
        store, directory, targets, lambda: load_popularity_data(store), fingerprint
    )
    errors: dict[str, str] = {}
    music_ids = frozenset(_item_ids(store, MUSIC_KINDS))
    catalog, source = load_catalog(store, directory, fingerprint)
    models = ServingModels(
        catalog, dict(popularity), version=version, errors=errors, music_ids=music_ids
    )
    models.components["catalog"] = {"from": source, "items": len(catalog.metadata)}
    models.components["popularity"] = {"from": fitted, "targets": targets}

    # Newest artifact of each (kind, target) wins.
    for row in _artifacts(store).to_dict("records"):
        manifest = row["manifest"] or {}
        kind, target = manifest.get("kind"), manifest.get("target")
        if kind not in MODEL_KINDS or target not in TARGETS:
            continue
        key = f"{kind}:{target}"
        try:
            model = load_model(kind, row["path"])
        except Exception as exc:  # a broken artifact must not take the server down
            errors[key] = f"{row['name']}: {type(exc).__name__}: {exc}"
            log.warning("could not load %s from %s: %s", key, row["path"], exc)
            continue
        errors.pop(key, None)
        added = _add_new_items(model, kind, store, target, target_ids[target])
        models.trained.setdefault(kind, {})[target] = model
        models.components[key] = {
            "artifact": row["name"],
            "path": row["path"],
            "created_at": str(row["created_at"]),
            "items_added_since_training": len(added),
        }
    if search:
        try:
            models.search = _load_search(settings, store)
            models.components["search"] = {
                "model_id": models.search.encoder.model_id,
                "items_indexed": len(models.search.items_index),
                # "file": the search catalogue `coldstart index` saved; "built": from the store
                "catalogue": models.search.catalogue_source,
            }
        except Exception as exc:
            errors["search"] = f"{type(exc).__name__}: {exc}"
    return models
