"""Reading the store as typed columns: the fast paths give the frame the plain
`fetchall` of every row would (same rows, dtypes and values)."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select

import coldstart.core.store as store_module
from coldstart.core import tables as t
from coldstart.core.store import Store
from coldstart.data.ingest import ingest_dataset

ITEMS = """item_id,kind,title,description,language,genre,show_id,explicit,published_at
a1,artist,Band One,,,rock,,false,
t1,track,Song,,,rock,,true,
s1,show,Science Hour,All about physics,en,science,,false,2026-01-01
e1,episode,Black holes,Stars and gravity,en,science,s1,0,2026-02-01T10:30:00
e2,episode,Quasars,,en,science,s1,1,
b1,audiobook,A Book,About things,es,history,,,
"""
INTER = """user_id,item_id,weight,timestamp
u1,a1,10,2026-01-01T10:00:00
u1,e1,30,
u2,b1,,
u2,t1,2.5,2026-03-01
u3,e2,1,
u3,s1,4,2026-01-02
"""
USERS = "user_id,country,language,age\nu1,US,en,33\nu2,,,\nu3,FR,fr,51.5\n"


def reference(store: Store, table, where=None, columns=None) -> pd.DataFrame:
    """Every row as Python tuples at once, as the store read before (the exact frame)."""
    cols = [table.c[c] for c in columns] if columns else [table]
    stmt = select(*cols)
    if where is not None:
        stmt = stmt.where(where)
    with store.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


@pytest.fixture
def store(db_url, tmp_path) -> Store:
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "items.csv").write_text(ITEMS)
    (ds / "interactions.csv").write_text(INTER)
    (ds / "users.csv").write_text(USERS)
    store = Store(db_url)
    ingest_dataset(store, ds)
    return store


@pytest.mark.parametrize("read_rows", [100_000, 2])
def test_store_frames_equal_the_rows_read_whole(store, monkeypatch, read_rows):
    monkeypatch.setattr(store_module, "READ_ROWS", read_rows)
    for table in (t.items, t.interactions, t.users, t.playlists):
        pd.testing.assert_frame_equal(store.frame(table), reference(store, table))
    spoken = store.plays_of(["episode", "show"], ["user_id", "item_id", "weight"])
    of_kinds = select(t.items.c.item_id).where(t.items.c.kind.in_(["episode", "show"]))
    expected = reference(
        store,
        t.interactions,
        t.interactions.c.item_id.in_(of_kinds),
        ["user_id", "item_id", "weight"],
    )
    pd.testing.assert_frame_equal(spoken, expected)
    assert sorted(spoken["item_id"]) == ["e1", "e2", "s1"]


def test_sqlite_columns_are_typed_as_sqlalchemy_types_them(store):
    items = store.frame(t.items).set_index("item_id")
    assert items["published_at"].dtype == "datetime64[us]"
    assert items.loc["e1", "published_at"] == pd.Timestamp("2026-02-01T10:30:00")
    assert items["explicit"].dtype == bool and bool(items.loc["t1", "explicit"])
