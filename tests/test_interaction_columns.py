"""The columnar copy of the interactions (coldstart/core/interaction_columns.py) holds the table's
rows: after a first ingest, after an ingest that updates and adds rows, when it is
written by a reader, and never when the version it carries is not the stored one."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import select

from coldstart.core import tables as t
from coldstart.core.interaction_columns import KEY, merge_interactions
from coldstart.core.store import Store
from coldstart.data.contract import ContractError
from coldstart.data.ingest import ingest_dataset

ITEMS = """item_id,kind,title,show_id
a1,artist,Band,
t1,track,Song,
s1,show,Science Hour,
e1,episode,Black holes,s1
e2,episode,Quasars,s1
b1,audiobook,A Book,
"""
FIRST = """user_id,item_id,weight,timestamp
u2,t1,2.5,2026-03-01
u1,a1,10,2026-01-01T10:00:00
u1,e1,30,
u1,e1,0.25,
u2,b1,,
u3,e2,1,
u3,s1,4,2026-01-02
ü9,e2,1.5,
"""
SECOND = """user_id,item_id,weight,timestamp
u1,e1,7,
u1,e1,0.5,
u4,b1,2,
u2,t1,2.5,2026-03-01
"""


def sql_rows(store: Store, where=None, columns=None) -> pd.DataFrame:
    """The table read with SQL only (a store without a columnar copy)."""
    plain = Store(store.url)
    if where is None:
        return plain.frame(t.interactions, columns=columns)
    return plain.frame(t.interactions, where, columns)


def by_key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(KEY).reset_index(drop=True)


def write(ds, interactions: str):
    ds.mkdir(exist_ok=True)
    (ds / "items.csv").write_text(ITEMS)
    (ds / "interactions.csv").write_text(interactions)
    return ds


@pytest.fixture
def store(db_url, tmp_path) -> Store:
    return Store(db_url, columns_dir=tmp_path / "columns")


def test_first_ingest_writes_the_copy_in_the_tables_order(store, tmp_path):
    ingest_dataset(store, write(tmp_path / "a", FIRST))
    version = store.data_version("interactions")
    assert store.columns.path(version).exists()
    copy, sql = store.interactions(), sql_rows(store)
    pd.testing.assert_frame_equal(by_key(copy), by_key(sql))
    assert copy[KEY].equals(by_key(copy)[KEY])  # key order
    if store.engine.dialect.name == "sqlite":  # one ingest fills the table in key order
        pd.testing.assert_frame_equal(copy, sql)
    summed = copy.set_index(["user_id", "item_id"]).loc[("u1", "e1"), "weight"]
    assert summed == pytest.approx(30.25)


def test_a_later_ingest_replaces_keys_and_adds_rows(store, tmp_path):
    ingest_dataset(store, write(tmp_path / "a", FIRST))
    first = store.data_version("interactions")
    ingest_dataset(store, write(tmp_path / "b", SECOND))
    second = store.data_version("interactions")
    assert second != first
    assert not store.columns.path(first).exists() and store.columns.path(second).exists()
    copy = store.interactions()
    pd.testing.assert_frame_equal(by_key(copy), by_key(sql_rows(store)))
    weights = copy.set_index(["user_id", "item_id"])["weight"]
    assert weights[("u1", "e1")] == pytest.approx(7.5)  # replaced by the new sum, as SQL
    assert weights[("u4", "b1")] == 2.0


def test_an_ingest_that_changes_nothing_keeps_the_version(store, tmp_path):
    ingest_dataset(store, write(tmp_path / "a", FIRST))
    version = store.data_version("interactions")
    ingest_dataset(store, write(tmp_path / "a", FIRST))
    assert store.data_version("interactions") == version


def test_a_reader_writes_a_missing_copy_from_sql(store, tmp_path):
    ingest_dataset(store, write(tmp_path / "a", FIRST))
    version = store.data_version("interactions")
    store.columns.path(version).unlink()
    pd.testing.assert_frame_equal(by_key(store.interactions()), by_key(sql_rows(store)))
    assert store.columns.path(version).exists()
    # a later ingest without the previous copy leaves the new one to the first reader
    store.columns.path(version).unlink()
    ingest_dataset(store, write(tmp_path / "b", SECOND))
    assert not store.columns.path(store.data_version("interactions")).exists()
    pd.testing.assert_frame_equal(by_key(store.interactions()), by_key(sql_rows(store)))


def test_a_writer_outside_ingest_retires_the_copy(store, tmp_path):
    ingest_dataset(store, write(tmp_path / "a", FIRST))
    before = store.interactions()
    with store.begin() as conn:
        conn.execute(t.interactions.delete().where(t.interactions.c.user_id == "u1"))
        store.table_changed(conn, "interactions")
    after = store.interactions()
    assert "u1" in set(before["user_id"]) and "u1" not in set(after["user_id"])
    pd.testing.assert_frame_equal(by_key(after), by_key(sql_rows(store)))
    assert store.columns.path(store.data_version("interactions")).exists()


def test_a_damaged_copy_is_not_used(store, tmp_path):
    ingest_dataset(store, write(tmp_path / "a", FIRST))
    store.columns.path(store.data_version("interactions")).write_bytes(b"not parquet")
    pd.testing.assert_frame_equal(by_key(store.interactions()), by_key(sql_rows(store)))


def test_plays_of_filters_the_copy_as_sql_does(store, tmp_path):
    ingest_dataset(store, write(tmp_path / "a", FIRST))
    cols = ["user_id", "item_id", "weight"]
    spoken = store.plays_of(["episode", "show"], cols)
    of_kinds = select(t.items.c.item_id).where(t.items.c.kind.in_(["episode", "show"]))
    expected = sql_rows(store, t.interactions.c.item_id.in_(of_kinds), cols)
    sort = ["user_id", "item_id"]
    pd.testing.assert_frame_equal(
        spoken.sort_values(sort).reset_index(drop=True),
        expected.sort_values(sort).reset_index(drop=True),
    )
    assert list(spoken.columns) == cols
    assert store.plays_of(["episode"], ["user_id"]).shape == (3, 1)


def test_a_refused_ingest_leaves_version_and_copy_as_they_were(store, tmp_path):
    ingest_dataset(store, write(tmp_path / "a", FIRST))
    version = store.data_version("interactions")
    before = store.interactions()
    with pytest.raises(ContractError):
        ingest_dataset(store, write(tmp_path / "b", SECOND + "u5,nope,1,\n"))
    assert store.data_version("interactions") == version
    pd.testing.assert_frame_equal(store.interactions(), before)


def test_merge_sums_staged_duplicates_and_replaces_stored_keys():
    def part(rows):
        users, items, stamps, weights = zip(*rows, strict=True)
        return pa.table(
            {"user_id": users, "item_id": items, "timestamp": stamps, "weight": weights}
        )

    stored = merge_interactions(None, [part([("b", "x", 0, 1.0), ("a", "y", 5, 2.0)])])
    merged = merge_interactions(
        stored, [part([("b", "x", 0, 3.0)]), part([("b", "x", 0, 4.0), ("c", "x", 1, 1.0)])]
    ).to_pandas()
    assert merged.astype({"user_id": str, "item_id": str}).values.tolist() == [
        ["a", "y", 5, 2.0],
        ["b", "x", 0, 7.0],
        ["c", "x", 1, 1.0],
    ]
