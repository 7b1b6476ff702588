"""Audiobooks ingested after the two-tower was trained are scorable once the server reloads."""

from __future__ import annotations

import pandas as pd
from recommender_contract import toy_world

from coldstart.core.config import Settings
from coldstart.core.store import Store
from coldstart.data.ingest import ingest_dataset
from coldstart.recommend.loading import load_serving_models
from training.data import UserProfile
from training.two_tower import TwoTowerConfig, TwoTowerRecommender


def _write(frames: dict[str, pd.DataFrame], out) -> None:
    out.mkdir(parents=True)
    for name, frame in frames.items():
        frame.to_csv(out / f"{name}.csv", index=False)


def test_new_audiobooks_get_vectors_on_reload(tmp_path):
    world = toy_world()
    settings = Settings(home=tmp_path / "home")
    store = Store.from_settings(settings)
    inter = world.interactions.drop(columns="timestamp", errors="ignore")
    _write({"items": world.items, "interactions": inter, "users": world.users}, tmp_path / "d1")
    ingest_dataset(store, tmp_path / "d1")
    model = TwoTowerRecommender("audiobook", 0, TwoTowerConfig(max_epochs=2)).fit(world)
    directory = settings.artifacts_path / "two-tower"
    store.register_artifact("two-tower", directory, model.save(directory))

    new_book = pd.DataFrame([{"item_id": "book-new", "kind": "audiobook", "language": "en"}])
    _write({"items": new_book}, tmp_path / "d2")
    ingest_dataset(store, tmp_path / "d2")

    served = load_serving_models(settings, store, search=False)
    tower = served.two_tower["audiobook"]
    assert "book-new" in tower.item_ids and "book-new" not in model.item_ids
    assert served.components["two_tower:audiobook"]["items_added_since_training"] == 1
    ranking = tower.recommend(UserProfile("listener", {"track-0-0": 3.0}), k=len(tower.item_ids))
    assert "book-new" in ranking.item_ids
