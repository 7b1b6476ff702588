"""Ingest's fast paths against the exact ones they replace: numbers parsed by Arrow,
catalogue ids hashed once (`IdSet`), the sorted insert in multi-row statements, and the
SQLite bulk load in rollback-journal mode (WAL restored)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import coldstart.data.ingest as ingest
from coldstart.core.interaction_columns import _key_order
from coldstart.core.store import Store
from coldstart.data.contract import (
    ContractError,
    IdSet,
    _as_float,
    _datetimes,
    _parse_datetimes,
    ids_in,
    validate_table,
)
from coldstart.data.ingest import ingest_dataset

ITEMS = "item_id,kind\n" + "\n".join(f"t{i},track" for i in range(7))


def write(directory: Path, **tables: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (directory / f"{name}.csv").write_text(text.strip() + "\n")
    return directory


def arrow_text(values: list) -> pd.Series:
    return pd.Series(values, dtype=pd.StringDtype("pyarrow"))


def test_arrow_numbers_are_pandas_numbers():
    rng = np.random.default_rng(7)
    floats = (rng.random(20_000) * 10.0 ** rng.integers(-30, 30, 20_000)).tolist()
    text = [repr(v) for v in floats] + [f"{v:.12e}" for v in floats[:5000]]
    text += [str(i) for i in range(-50, 50)] + ["1.", "-.5", "+3", "1E5", "007", "1e-400"]
    text += ["1e400", "4.9406564584124654e-324", "123456789012345678901234567890"]
    text += ["nan", "NaN", "inf", "-Infinity", None]
    series = arrow_text(text)
    exact = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    np.testing.assert_array_equal(_as_float(series), exact)  # NaN where NaN
    # Text that is not a number: pandas marks just those values, as before.
    mixed = arrow_text(["1.5", "abc", "0x10", "2", " 1_0", None])
    exact = pd.to_numeric(mixed, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    np.testing.assert_array_equal(_as_float(mixed), exact)


def test_a_bad_number_is_still_named_by_file_row_and_column():
    frame = pd.DataFrame(
        {
            "user_id": arrow_text(["u1", "u2", "u3", "u4"]),
            "item_id": arrow_text(["t1", "t1", "t2", "t3"]),
            "weight": arrow_text(["1.5", "abc", "nan", "2"]),
        }
    )
    good, errors = validate_table("interactions", frame, "inter.csv", {"t1": "track"}, 11)
    assert [(e.file, e.row, e.column) for e in errors] == [
        ("inter.csv", 12, "weight"),
        ("inter.csv", 13, "item_id"),
        ("inter.csv", 13, "weight"),
        ("inter.csv", 14, "item_id"),
    ]
    assert errors[0].reason == "expected a number, got 'abc'"
    assert good["weight"].tolist() == [1.5]


def test_id_set_answers_as_is_in_does():
    rng = np.random.default_rng(3)
    allowed = [f"i{k}" for k in rng.permutation(5000)[:3000]] + ["i1"]  # i1 twice
    asked = [f"i{k}" if k >= 0 else None for k in rng.integers(-10, 6000, 20_000)]
    chunked = pd.Series(
        pd.arrays.ArrowExtensionArray(
            pa.chunked_array([asked[:7000], asked[7000:], []], pa.string())
        )
    )
    ids = IdSet(pd.Index(allowed, dtype=pd.StringDtype("pyarrow")))
    for values in (chunked, arrow_text(asked), pd.Series(asked, dtype=object)):
        np.testing.assert_array_equal(ids.contains(values), ids_in(values, allowed))
    assert ids.contains(arrow_text([])).tolist() == []


def test_validation_with_an_id_set_gives_the_same_rows_and_errors():
    known = pd.Series({"t1": "track", "t2": "track", "e1": "episode"})
    frame = pd.DataFrame(
        {
            "user_id": arrow_text(["u1", "u2", "u3", "u4", None]),
            "item_id": arrow_text(["t1", "ghost", None, "e1", "t2"]),
            "weight": arrow_text(["1", "2", "3", "-1", "5"]),
        }
    )
    for name in ("interactions", "playlists"):
        table = frame if name == "interactions" else frame.rename(columns={"user_id": "x"})
        if name == "playlists":
            table = table.assign(playlist_id="p", position=arrow_text(["1", "2", "3", "4", "5"]))
        exact = validate_table(name, table, "f.csv", known, 3)
        fast = validate_table(name, table, "f.csv", known, 3, IdSet(pd.Index(known.index)))
        pd.testing.assert_frame_equal(fast[0], exact[0])
        assert fast[1] == exact[1] and exact[1]


def stored_rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM interactions").fetchall()


def test_multi_row_statements_store_the_rows_one_row_statements_do(tmp_path, monkeypatch):
    """The sorted insert in statements of several rows (and a shorter last one per
    batch) stores exactly what one row per statement stores, in the same order."""
    monkeypatch.setattr(ingest, "ROWS_PER_SLICE", 5)
    rows = [
        f"u{u},t{i},{(u * 7 + i) % 5 + 0.25},2026-01-0{1 + i % 3}"
        for u in range(6)
        for i in range(7)
        if (u + i) % 3
    ] + ["u0,t1,2,2026-01-02", "u5,t6,,", ",t1,1,"]  # a repeated play; a missing user
    ds = write(
        tmp_path / "ds",
        items=ITEMS,
        interactions="user_id,item_id,weight,timestamp\n" + "\n".join(rows),
    )
    results = []
    for per_statement in (1, 4, 1000):
        monkeypatch.setattr(ingest, "ROWS_PER_STATEMENT", per_statement)
        path = tmp_path / f"store-{per_statement}.db"
        report = ingest_dataset(
            Store(f"sqlite:///{path}"),
            ds,
            skip_bad_rows=True,
            rejects_path=tmp_path / "rejects.csv",
        )
        assert report.rejected == 1
        results.append(stored_rows(path))
    assert results[0] == results[1] == results[2] and len(results[0]) > 20


def journal(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()


def test_bulk_load_uses_a_rollback_journal_and_restores_wal(tmp_path, monkeypatch):
    path = tmp_path / "store.db"
    store = Store(f"sqlite:///{path}")
    modes = []
    real_insert = ingest._insert_sorted

    def watched_insert(conn, target, rows):
        modes.append(conn.exec_driver_sql("PRAGMA journal_mode").scalar_one())
        real_insert(conn, target, rows)

    monkeypatch.setattr(ingest, "_insert_sorted", watched_insert)
    inter = "user_id,item_id\nu1,t1\nu2,t2"
    # Refused: nothing written, WAL back.
    with pytest.raises(ContractError):
        ingest_dataset(store, write(tmp_path / "bad", items=ITEMS, interactions=inter + "\nu3,x"))
    assert journal(path) == "wal"
    # Another connection open: the load stays in WAL mode.
    other = store.connect()
    other.exec_driver_sql("SELECT count(*) FROM items").all()
    store2 = Store(f"sqlite:///{path}")
    ingest_dataset(store2, write(tmp_path / "ds", items=ITEMS, interactions=inter))
    other.close()
    store2.engine.dispose()
    assert modes == ["wal"]
    rows = stored_rows(path)
    # Alone: rollback journal while loading, WAL and NORMAL sync after the commit.
    path3 = tmp_path / "alone.db"
    store3 = Store(f"sqlite:///{path3}")
    ingest_dataset(store3, write(tmp_path / "ds", items=ITEMS, interactions=inter))
    assert modes == ["wal", "delete"]
    assert stored_rows(path3) == rows
    assert journal(path3) == "wal"
    with store3.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == 1  # NORMAL


@pytest.mark.parametrize(
    "rows, users, items, stamps",
    [
        (0, 1, 1, 1),
        (1, 1, 1, 1),
        (5000, 5, 7, 3),  # many repeated keys: the order among equals is the file's
        (50_000, 50, 70, 10**9),  # timestamps packed as offsets
        (50_000, 1 << 20, 1 << 21, 1 << 40),  # as ranks
        (20_000, 1 << 30, 1 << 30, 1 << 62),  # too wide: lexsort itself
    ],
)
def test_packed_key_order_is_lexsort_order(rows, users, items, stamps):
    rng = np.random.default_rng(rows)
    user_codes = rng.integers(0, users, rows).astype(np.int32)
    item_codes = rng.integers(0, items, rows).astype(np.int32)
    times = rng.integers(-stamps, stamps, rows) if stamps > 1 else np.zeros(rows, np.int64)
    is_new = rng.random(rows) < 0.5
    np.testing.assert_array_equal(
        _key_order(user_codes, item_codes, times, is_new),
        np.lexsort((is_new, times, item_codes, user_codes)),
    )


def test_times_parsed_once_per_distinct_text_are_the_rows_times():
    rng = np.random.default_rng(5)
    pool = [
        "2026-01-01T10:00:00",
        "2026-01-01 10:00",
        "2026-03-04T05:06:07.123456",
        "2026-01-01T10:00:00+02:00",
        "2026-01-01T10:00:00Z",
        "02/03/2026 10:30",
        "March 5, 2026",
        "not a date",
        "2026-13-45",
        None,
    ]
    for size, kinds in ((5000, 10), (5000, 3), (4, 10), (0, 1)):
        cells = [pool[k] for k in rng.integers(0, kinds, size)]
        text = arrow_text(cells)
        fast = _datetimes(text)
        pd.testing.assert_series_equal(fast, _parse_datetimes(text))
    only_iso = arrow_text(["2026-01-01T10:00:00", None] * 100)
    assert str(_datetimes(only_iso).dtype) == str(_parse_datetimes(only_iso).dtype)
