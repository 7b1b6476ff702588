"""The compact serving catalogue (`coldstart.recommend.catalog_file`) equals the one
built from SQL, and a file that no longer matches the store is rebuilt."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import update

from coldstart.batch.uploads import register_upload
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store
from coldstart.data.ingest import ingest_dataset
from coldstart.demo.world import WorldConfig, build_world, write_world
from coldstart.recommend.catalog import Catalog
from coldstart.recommend.catalog_file import load_catalog, read_catalog


@pytest.fixture()
def store(tmp_path):
    world = build_world(
        WorldConfig(users=80, artists=12, shows=6, episodes_per_show=3, audiobooks=8)
    )
    write_world(world, tmp_path / "dataset")
    settings = Settings(home=tmp_path / "home")
    store = Store.from_settings(settings)
    ingest_dataset(store, tmp_path / "dataset")
    return store


def assert_same(left: Catalog, right: Catalog) -> None:
    assert left.metadata == right.metadata
    assert list(left.metadata) == list(right.metadata)
    assert left.listeners == right.listeners
    assert left.episodes == right.episodes


def test_the_compact_catalogue_equals_the_sql_one_and_is_read_next_time(store, tmp_path):
    directory = tmp_path / "catalog"
    built, source = load_catalog(store, directory)
    assert source == "sql"
    assert_same(built, Catalog.from_store(store))
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["kind"] == "serving_catalog" and manifest["items"] == len(built.metadata)
    again, source = load_catalog(store, directory)
    assert source == "file"
    assert_same(again, Catalog.from_store(store))
    assert any(m["published_at"] is not None for m in again.metadata.values())


def test_a_stale_file_is_rebuilt(store, tmp_path):
    directory = tmp_path / "catalog"
    load_catalog(store, directory)
    # A new play changes listener counts.
    plays = pd.DataFrame(
        {
            "user_id": ["u-new"],
            "item_id": [next(iter(Catalog.from_store(store).metadata))],
            "timestamp": [1],
            "weight": [1.0],
        }
    )
    with store.engine.begin() as conn:
        conn.execute(t.interactions.insert(), plays.to_dict("records"))
    fresh, source = load_catalog(store, directory)
    assert source == "sql"
    assert_same(fresh, Catalog.from_store(store))
    assert load_catalog(store, directory)[1] == "file"
    # An upload: hidden until scored, then recommendable; both are seen.
    show = next(i for i, m in fresh.metadata.items() if m["kind"] == "show")
    audio = tmp_path / "a.ogg"
    audio.write_bytes(b"x")
    upload = register_upload(store, show_id=show, title="new", audio_path=audio)
    hidden, source = load_catalog(store, directory)
    assert source == "sql" and upload["item_id"] not in hidden.metadata
    with store.engine.begin() as conn:
        conn.execute(update(t.uploads).values(status="scored"))
    shown, source = load_catalog(store, directory)
    assert source == "sql" and upload["item_id"] in shown.metadata
    assert_same(shown, Catalog.from_store(store))
    assert_same(read_catalog(directory), shown)


def test_an_unreadable_manifest_is_rebuilt(store, tmp_path):
    directory = tmp_path / "catalog"
    load_catalog(store, directory)
    (directory / "manifest.json").write_text("{not json")
    catalog, source = load_catalog(store, directory)
    assert source == "sql"
    assert_same(catalog, Catalog.from_store(store))
    assert load_catalog(store, directory)[1] == "file"
