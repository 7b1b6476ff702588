"""The compact serving catalogue (`coldstart.recommend.catalog_file`) equals the one
built from SQL, and a file that no longer matches the store is rebuilt."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from coldstart.batch.uploads import register_upload
from coldstart.core import tables as t
from coldstart.core.config import RulesSettings, Settings
from coldstart.core.store import Store
from coldstart.data.ingest import ingest_dataset
from coldstart.demo.world import WorldConfig, build_world, write_world
from coldstart.recommend.catalog import Catalog
from coldstart.recommend.catalog_file import load_catalog, load_popularity, read_catalog
from coldstart.recommend.columns import CatalogColumns, RuleColumns, micros
from coldstart.recommend.loading import load_popularity_data
from training.data import UserProfile


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


def _rankings(models) -> dict:
    """Every segment's and the global top 10 of each target's fallback."""
    users = [
        UserProfile("a", {}, country=c, language=lang)
        for c in ("US", "GB", None)
        for lang in ("en", None)
    ]
    return {
        target: [model.recommend(user, k=10).item_ids for user in users]
        for target, model in models.items()
    }


def test_popularity_fallbacks_are_saved_and_refitted_when_the_tables_change(store, tmp_path):
    directory, targets = tmp_path / "catalog", ["podcast", "audiobook"]
    fits: list[int] = []

    def data():
        fits.append(1)
        return load_popularity_data(store)

    fitted, source = load_popularity(store, directory, targets, data)
    assert source == "fitted" and len(fits) == 1
    saved, source = load_popularity(store, directory, targets, data)
    assert source == "file" and len(fits) == 1
    assert _rankings(saved) == _rankings(fitted)
    # Fallbacks saved with other settings are fitted again, not served.
    manifest_path = directory / "popularity-podcast" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["fitted_from"]["min_users"] += 1
    manifest_path.write_text(json.dumps(manifest))
    assert load_popularity(store, directory, targets, data)[1] == "fitted" and len(fits) == 2
    assert load_popularity(store, directory, targets, data)[1] == "file"
    # A listener moves to another country: the segments change, so they are fitted again.
    user = store.users()["user_id"].iloc[0]
    (tmp_path / "more").mkdir()
    items = next((tmp_path / "dataset").glob("items.*"))
    (tmp_path / "more" / items.name).write_bytes(items.read_bytes())  # unchanged
    pd.DataFrame({"user_id": [user], "country": ["ZZ"], "language": ["en"], "age": [30]}).to_csv(
        tmp_path / "more" / "users.csv", index=False
    )
    ingest_dataset(store, tmp_path / "more")
    refitted, source = load_popularity(store, directory, targets, data)
    assert source == "fitted" and len(fits) == 3
    assert _rankings(refitted) == _rankings(
        {t: type(m)(t).fit(load_popularity_data(store)) for t, m in refitted.items()}
    )
    # A write outside ingest that says so (an upload's item) is seen too.
    show = store.items(("show",))["item_id"].iloc[0]
    audio = tmp_path / "a.ogg"
    audio.write_bytes(b"x")
    register_upload(store, show_id=show, title="new", audio_path=audio)
    assert load_popularity(store, directory, targets, data)[1] == "fitted"
    assert load_popularity(store, directory, targets, data)[1] == "file"


def test_popularity_is_not_cached_for_a_store_without_versions(store, tmp_path):
    with store.begin() as conn:
        conn.execute(t.data_versions.delete())
    directory = tmp_path / "catalog"
    for _ in range(2):
        _, source = load_popularity(
            store, directory, ["podcast"], lambda: load_popularity_data(store)
        )
        assert source == "fitted"
    assert not directory.exists() or not any(directory.iterdir())


def test_catalogue_columns_hold_every_items_metadata(store):
    """`CatalogColumns` (the fast path's view of the catalogue) decodes back to the
    metadata, with empty languages and show ids treated as missing, as the rules do."""
    catalog = Catalog.from_store(store)
    metadata = dict(catalog.metadata)
    first, second = list(metadata)[:2]
    metadata[first] = {**metadata[first], "language": "", "genre": ""}
    metadata[second] = {**metadata[second], "show_id": "", "genre": None}
    columns = CatalogColumns(metadata, catalog.episodes, 3)

    def decode(codes, table):
        names = {code: name for name, code in table.items()}
        return [names.get(c) for c in codes.tolist()]

    ids = list(metadata)
    assert list(columns.ids) == ids
    assert [ids[i] for i in np.argsort(columns.id_rank)] == sorted(ids)
    assert decode(columns.kind, columns.kinds) == [m["kind"] for m in metadata.values()]
    assert decode(columns.language, columns.languages) == [
        m["language"] or None for m in metadata.values()
    ]
    assert decode(columns.genre, columns.genres) == [m["genre"] for m in metadata.values()]
    assert decode(columns.show, columns.shows) == [m["show_id"] or None for m in metadata.values()]
    assert columns.explicit.tolist() == [bool(m["explicit"]) for m in metadata.values()]
    published = [m["published_at"] for m in metadata.values()]
    assert columns.has_published.tolist() == [p is not None for p in published]
    assert [micros(p) if p is not None else 0 for p in published] == columns.published.tolist()
    assert any(p is not None for p in published)
    for show_id, episodes in catalog.episodes.items():
        row = columns.row_of[show_id]
        got = [ids[r] for r in columns.episodes[row].tolist() if r >= 0]
        assert got == episodes[:3]
    genre = next(m["genre"] for m in metadata.values() if m["genre"])
    rules = RulesSettings(boosts={f"genre:{genre}": 0.2, ids[2]: 0.3, "genre:": 5.0}, pins=[ids[3]])
    boosts = RuleColumns(columns, rules)
    expected = [
        rules.boosts.get(i, 0.0)
        + (rules.boosts.get(f"genre:{m['genre']}", 0.0) if m["genre"] else 0.0)
        for i, m in metadata.items()
    ]
    assert boosts.boost.tolist() == expected
    assert np.flatnonzero(boosts.pin >= 0).tolist() == [3]


def test_a_catalogue_from_frames_without_optional_columns():
    """An items frame with only the contract's required columns (no publication dates,
    genres or languages): missing metadata is None and episodes order by listeners,
    then id."""
    items = pd.DataFrame(
        {
            "item_id": ["s1", "e1", "e2", "e3", "b1"],
            "kind": ["show", "episode", "episode", "episode", "audiobook"],
            "show_id": [None, "s1", "s1", "s1", None],
        }
    )
    catalog = Catalog.from_frames(items, {"e2": 5, "e3": 5, "e1": 1})
    assert catalog.episodes == {"s1": ["e2", "e3", "e1"]}
    assert catalog.metadata["b1"] == {
        "kind": "audiobook",
        "title": None,
        "language": None,
        "genre": None,
        "explicit": False,
        "show_id": None,
        "published_at": None,
    }


def _episodes_by_show_reference(items: pd.DataFrame, listeners: dict[str, int]) -> dict:
    """The pandas ordering the Arrow sort replaced: newest first, then most listened,
    then by id (object columns, Python string comparisons)."""
    shows = items["show_id"].astype(object)
    keep = (items["kind"] == "episode").to_numpy() & shows.notna().to_numpy()
    keep &= (shows.fillna("") != "").to_numpy()
    episodes = pd.DataFrame(
        {
            "show": shows[keep].astype(str).to_numpy(),
            "item_id": items["item_id"].astype(object).to_numpy()[keep],
            "published": pd.to_datetime(items["published_at"])
            .fillna(pd.Timestamp(1900, 1, 1))
            .to_numpy()[keep],
        }
    )
    episodes["listeners"] = episodes["item_id"].map(listeners).fillna(0).to_numpy()
    episodes = episodes.sort_values(
        ["show", "published", "listeners", "item_id"],
        ascending=[True, False, False, True],
        kind="stable",
    )
    return {show: list(group["item_id"]) for show, group in episodes.groupby("show", sort=True)}


def test_episode_order_and_metadata_equal_the_row_by_row_build():
    """The Arrow sort orders every show's episodes as the pandas sort did (ties on date
    and listeners, missing dates, empty and missing show ids, non-ASCII ids), and the
    metadata held as columns equals a dict per item built row by row."""
    rng = np.random.default_rng(3)
    n = 3_000
    ids = [f"e{i:05d}" for i in rng.permutation(n)] + ["é1", "Z9", "a-ü", "show-x"]
    shows = [f"s{i % 40}" if i % 97 else (None if i % 2 else "") for i in range(n)]
    shows += ["sß", "sß", "s1", None]
    kinds = ["episode"] * (n + 3) + ["show"]
    days = rng.integers(0, 20, n + 4)
    published = [
        None if d == 0 else pd.Timestamp(2026, 1, 1) + pd.Timedelta(days=int(d)) for d in days
    ]
    items = pd.DataFrame(
        {
            "item_id": ids,
            "kind": kinds,
            "title": [f"t{i}" for i in range(n + 4)],
            "show_id": shows,
            "published_at": pd.to_datetime(pd.Series(published, dtype=object)),
            "explicit": [i % 3 == 0 for i in range(n + 4)],
        }
    )
    listeners = {i: int(rng.integers(0, 4)) for i in ids[::2]}
    catalog = Catalog.from_frames(items, listeners)
    assert catalog.episodes == _episodes_by_show_reference(items, listeners)
    expected = {
        row["item_id"]: {
            "kind": row["kind"],
            "title": row["title"],
            "language": None,
            "genre": None,
            "explicit": row["explicit"],
            "show_id": None if pd.isna(row["show_id"]) else row["show_id"],
            "published_at": None if pd.isna(row["published_at"]) else row["published_at"],
        }
        for row in items.to_dict("records")
    }
    assert dict(catalog.metadata) == expected
    assert list(catalog.metadata) == ids


def test_ids_of_kind_read_from_columns_equal_the_metadata(store):
    catalog = Catalog.from_store(store)
    plain = Catalog(dict(catalog.metadata), catalog.listeners, catalog.episodes)
    for kind in ("show", "episode", "audiobook", "artist"):
        expected = [i for i, m in catalog.metadata.items() if m["kind"] == kind]
        assert catalog.ids_of_kind(kind) == plain.ids_of_kind(kind) == expected
