"""Contract validation and ingest: errors name file/row/column, the store is all-or-nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from coldstart.cli import app
from coldstart.core import tables as t
from coldstart.core.store import Store
from coldstart.data.contract import ContractError
from coldstart.data.ingest import ingest_dataset


def write(dir: Path, **tables: str) -> Path:
    dir.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (dir / f"{name}.csv").write_text(text.strip() + "\n")
    return dir


ITEMS = """
item_id,kind,title,description,language,genre,show_id,explicit,published_at
a1,artist,Band One,,,rock,,false,
s1,show,Science Hour,All about physics,en,science,,false,2026-01-01
e1,episode,Black holes,Stars and gravity,en,science,s1,0,2026-02-01
b1,audiobook,A Book,About things,es,history,,,
"""
INTER = """
user_id,item_id,weight,timestamp
u1,a1,10,2026-01-01T10:00:00
u1,e1,30,
u2,b1,,
"""


@pytest.fixture
def store(db_url) -> Store:
    """Every store test runs on SQLite and on a real PostgreSQL server."""
    return Store(db_url)


def snapshot(store: Store) -> str:
    digest = hashlib.sha256()
    for table in (t.items, t.interactions, t.users, t.playlists, t.transcripts, t.segments):
        frame = store.frame(table)
        digest.update(frame.sort_values(list(frame.columns[:2])).to_csv(index=False).encode())
    return digest.hexdigest()


def test_round_trip(store, tmp_path):
    ds = write(
        tmp_path / "ds",
        items=ITEMS,
        interactions=INTER,
        users="user_id,country,language,age\nu1,US,en,33",
    )
    report = ingest_dataset(store, ds)
    assert report.tables["items"]["inserted"] == 4
    items = store.items().set_index("item_id")
    assert items.loc["e1", "show_id"] == "s1"
    assert items.loc["e1", "published_at"] == pd.Timestamp("2026-02-01")
    assert not bool(items.loc["e1", "explicit"])
    inter = store.interactions().set_index(["user_id", "item_id"])
    assert inter.loc[("u2", "b1"), "weight"] == 1.0  # default weight
    assert inter.loc[("u1", "e1"), "timestamp"] == 0  # unknown time
    assert inter.loc[("u1", "a1"), "timestamp"] == pd.Timestamp("2026-01-01T10:00:00").timestamp()
    assert store.users().iloc[0]["age"] == 33


def test_rows_are_staged_in_slices_inside_one_transaction(store, tmp_path, monkeypatch):
    """Large tables are read, validated and staged a slice at a time; repeated plays
    add up across slices; a failure in a later slice leaves the store exactly as it was."""
    import coldstart.data.ingest as ingest

    monkeypatch.setattr(ingest, "ROWS_PER_SLICE", 2)
    inter = "user_id,item_id,weight,timestamp\n" + "\n".join(
        f"u{i},{item},{i + 1}," for i in range(5) for item in ("a1", "e1", "b1")
    )
    # the same play twice, in different slices: summed, as within one slice
    inter += "\nu0,a1,7,\nu4,b1,1,2026-01-01\nu4,b1,2,2026-01-01"
    ds = write(tmp_path / "ds", items=ITEMS, interactions=inter)
    report = ingest_dataset(store, ds)
    stored = store.interactions().set_index(["user_id", "item_id", "timestamp"])["weight"]
    assert len(stored) == 16 and report.tables["interactions"]["inserted"] == 16
    assert stored[("u0", "a1", 0)] == 1 + 7
    assert stored.sum() == 3 * sum(range(1, 6)) + 7 + 3

    before = snapshot(store)
    calls = []
    real_insert = ingest._bulk_insert

    def failing_insert(conn, stage, frame):  # the database refuses the third slice
        calls.append((stage.name, len(frame)))
        if stage.name.endswith("interactions") and len(calls) == 4:
            raise RuntimeError("disk full")
        real_insert(conn, stage, frame)

    monkeypatch.setattr(ingest, "_bulk_insert", failing_insert)
    changed = write(tmp_path / "ds2", items=ITEMS, interactions=inter.replace(",1,", ",100,"))
    with pytest.raises(RuntimeError, match="disk full"):
        ingest_dataset(store, changed)
    assert [n for _, n in calls] == [4, 2, 2, 2] and snapshot(store) == before


def test_bad_row_in_a_later_slice_is_named_and_changes_nothing(store, tmp_path, monkeypatch):
    import coldstart.data.ingest as ingest

    monkeypatch.setattr(ingest, "ROWS_PER_SLICE", 2)
    ingest_dataset(store, write(tmp_path / "good", items=ITEMS, interactions=INTER))
    before = snapshot(store)
    inter = "user_id,item_id,weight\nu1,a1,1\nu2,a1,2\nu3,e1,3\nu4,e1,-4\nu5,ghost,1"
    with pytest.raises(ContractError) as info:
        ingest_dataset(store, write(tmp_path / "bad", items=ITEMS, interactions=inter))
    assert [(e.row, e.column) for e in info.value.errors] == [(4, "weight"), (5, "item_id")]
    assert "interactions.csv, row 5, column 'item_id'" in str(info.value)
    assert snapshot(store) == before


def test_parquet_dataset(store, tmp_path):
    ds = tmp_path / "pq"
    ds.mkdir()
    pd.DataFrame(
        {"item_id": ["x", "y"], "kind": ["show", "audiobook"], "title": ["X", None]}
    ).to_parquet(ds / "items.parquet")
    pd.DataFrame({"user_id": ["u"], "item_id": ["x"], "weight": [2.5]}).to_parquet(
        ds / "interactions.parquet"
    )
    ingest_dataset(store, ds)
    assert set(store.items()["item_id"]) == {"x", "y"}
    assert store.interactions()["weight"].tolist() == [2.5]


def test_id_only_catalog_is_valid(store, tmp_path):
    ds = write(
        tmp_path / "ids",
        items="item_id,kind\nx,show\ny,track",
        interactions="user_id,item_id\nu,x\nu,y",
    )
    ingest_dataset(store, ds)
    assert store.count(t.items) == 2


def test_reingest_is_idempotent_and_updates(store, tmp_path):
    ds = write(tmp_path / "ds", items=ITEMS, interactions=INTER)
    ingest_dataset(store, ds)
    before = snapshot(store)
    report = ingest_dataset(store, ds)
    assert snapshot(store) == before
    assert report.tables["items"] == {"inserted": 0, "updated": 0, "unchanged": 4}
    write(ds, items=ITEMS.replace("Science Hour", "Science Hour II"))
    report = ingest_dataset(store, ds)
    assert report.tables["items"]["updated"] == 1
    assert store.items().set_index("item_id").loc["s1", "title"] == "Science Hour II"


@pytest.mark.parametrize(
    "items,inter,file,row,column,reason",
    [
        ("item_id,title\nx,X", None, "items.csv", None, "kind", "required column is missing"),
        ("item_id,kind\nx,film", None, "items.csv", 1, "kind", "unknown kind"),
        ("item_id,kind\nx,show\nx,show", None, "items.csv", 2, "item_id", "duplicate item_id 'x'"),
        ("item_id,kind,language\nx,show,english", None, "items.csv", 1, "language", "ISO 639-1"),
        ("item_id,kind,explicit\nx,show,maybe", None, "items.csv", 1, "explicit", "true/false"),
        (
            "item_id,kind,show_id\ne,episode,nope",
            None,
            "items.csv",
            1,
            "show_id",
            "unknown show 'nope'",
        ),
        (
            "item_id,kind\nx,show",
            "user_id,item_id,weight\nu,x,1\nu,x,lots",
            "interactions.csv",
            2,
            "weight",
            "expected a number",
        ),
        (
            "item_id,kind\nx,show",
            "user_id,item_id\nu,x\nu,ghost",
            "interactions.csv",
            2,
            "item_id",
            "unknown item 'ghost'",
        ),
        (
            "item_id,kind\nx,show",
            "user_id,item_id,timestamp\nu,x,yesterday-ish",
            "interactions.csv",
            1,
            "timestamp",
            "date/time",
        ),
        (
            "item_id,kind\nx,show",
            "user_id,item_id\n,x",
            "interactions.csv",
            1,
            "user_id",
            "required value is missing",
        ),
    ],
)
def test_bad_input_names_file_row_column_and_changes_nothing(
    store, tmp_path, items, inter, file, row, column, reason
):
    ingest_dataset(store, write(tmp_path / "good", items=ITEMS, interactions=INTER))
    before = snapshot(store)
    tables = {"items": items} if inter is None else {"items": items, "interactions": inter}
    with pytest.raises(ContractError) as info:
        ingest_dataset(store, write(tmp_path / "bad", **tables))
    err = info.value.errors[0]
    assert err.file.endswith(file) and err.row == row and err.column == column
    assert reason in err.reason
    assert f"column '{column}'" in str(info.value)
    assert snapshot(store) == before


def test_unreadable_and_missing_files(store, tmp_path):
    with pytest.raises(ContractError, match="not a directory"):
        ingest_dataset(store, tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ContractError, match="no items file"):
        ingest_dataset(store, tmp_path / "empty")
    bad = tmp_path / "bin"
    bad.mkdir()
    (bad / "items.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ContractError, match="cannot read file"):
        ingest_dataset(store, bad)


def test_skip_bad_rows_loads_good_rows_and_writes_rejects(store, tmp_path):
    ds = write(
        tmp_path / "ds",
        items="item_id,kind\nx,show\ny,film\nz,audiobook",
        interactions="user_id,item_id\nu,x\nu,y",
    )
    rejects = tmp_path / "rejects.csv"
    report = ingest_dataset(store, ds, skip_bad_rows=True, rejects_path=rejects)
    assert set(store.items()["item_id"]) == {"x", "z"}
    assert store.interactions()["item_id"].tolist() == ["x"]
    assert report.rejected == 2
    frame = pd.read_csv(rejects)
    assert set(zip(frame["file"].map(lambda f: Path(f).name), frame["row"])) == {
        ("items.csv", 2),
        ("interactions.csv", 2),
    }
    assert frame["reason"].str.contains("unknown kind").any()


def test_provided_transcripts(store, tmp_path):
    ds = write(
        tmp_path / "ds",
        items=ITEMS,
        transcripts="item_id,start,end,text\ne1,5,9,second part\ne1,0,5,first part",
    )
    ingest_dataset(store, ds)
    segs = store.frame(t.segments)
    assert segs["text"].tolist() == ["first part", "second part"]
    assert store.frame(t.transcripts)["engine"].tolist() == ["provided"]
    report = ingest_dataset(store, ds)
    assert report.tables["transcripts"]["unchanged"] == 1


def test_cli_ingest_and_stats(tmp_path):
    ds = write(tmp_path / "ds", items=ITEMS, interactions=INTER)
    runner = CliRunner()
    home = tmp_path / "home"
    result = runner.invoke(app, ["--home", str(home), "ingest", str(ds), "--json"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["--home", str(home), "stats", "--json"])
    import json

    stats = json.loads(result.stdout)
    assert stats["items"]["by_kind"] == {"artist": 1, "show": 1, "episode": 1, "audiobook": 1}
    assert stats["items"]["by_language"]["audiobook"] == {"es": 1}
    assert stats["interactions"]["total"] == 3
    bad = write(tmp_path / "bad", items="item_id,kind\nx,film")
    result = runner.invoke(app, ["--home", str(home), "ingest", str(bad)])
    assert result.exit_code == 2
    # The console wraps at its width, and where depends on the temporary path's length.
    err = " ".join(result.stderr.split())
    assert "items.csv, row 1" in err and "unchanged" in err


def test_config_command_prints_effective_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("COLDSTART_TRANSCRIBE__BEAM_SIZE", "3")
    monkeypatch.setenv("COLDSTART_API_TOKEN", "secret")
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "config", "--json"])
    import json

    data = json.loads(result.stdout)
    assert data["transcribe"]["beam_size"] == 3
    assert data["api_token"] == "***"
    assert data["db_url"].endswith("coldstart.db")


def test_sliced_bulk_ingest_stores_what_the_row_by_row_rules_give(store, tmp_path, monkeypatch):
    """The column-wise, sliced path against the contract's rules applied row by row:
    stripped text, lower-cased kinds and languages, booleans, ISO and other date
    formats, default weights, and repeated plays summed (here across slices)."""
    import coldstart.data.ingest as ingest

    monkeypatch.setattr(ingest, "ROWS_PER_SLICE", 3)
    items = (
        "item_id,kind,title,language,explicit,published_at\n"
        " s1 ,SHOW, Hour ,EN,Yes,2026-01-01\n"
        "e1,Episode,Ep,en,no,02/03/2026 10:30\n"
        "t1,track,,,,\n"
    )
    inter_rows = [
        ("u1", "t1", "2", "2026-01-01T10:00:00"),
        ("u1", "t1", "3", "2026-01-01T10:00:00"),  # the same play: summed
        (" u2", "e1", "", ""),
        ("u1", "t1", "4", "2026-01-02 10:00"),
        ("u3", "s1", "1.5", "2026-01-01T10:00:00+02:00"),
        ("u2 ", "e1", "2", ""),  # the same (user, item, unknown time) as row 3
        ("u1", "t1", "1", "2026-01-01T10:00:00"),  # and again, in a later slice
    ]
    inter = "user_id,item_id,weight,timestamp\n" + "\n".join(",".join(r) for r in inter_rows)
    ds = write(tmp_path / "ds", items=items, interactions=inter)
    report = ingest_dataset(store, ds)

    def epoch(text: str) -> int:
        if not text:
            return 0
        ts = pd.to_datetime(text, utc=True, format="mixed").tz_convert(None)
        return int((ts - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1))

    expected: dict[tuple, float] = {}
    for user, item, weight, when in inter_rows:
        key = (user.strip(), item.strip(), epoch(when))
        expected[key] = expected.get(key, 0.0) + (float(weight) if weight else 1.0)
    stored = store.interactions()
    got = {(r.user_id, r.item_id, r.timestamp): r.weight for r in stored.itertuples()}
    assert got == expected
    assert report.tables["interactions"]["inserted"] == len(expected) == 4
    got_items = store.items().set_index("item_id")
    assert sorted(got_items.index) == ["e1", "s1", "t1"]
    assert got_items.loc["s1", "kind"] == "show" and got_items.loc["s1", "title"] == "Hour"
    assert got_items.loc["s1", "language"] == "en" and bool(got_items.loc["s1", "explicit"])
    assert got_items.loc["e1", "kind"] == "episode" and not bool(got_items.loc["e1", "explicit"])
    assert got_items.loc["e1", "published_at"] == pd.Timestamp("2026-02-03 10:30")
    assert pd.isna(got_items.loc["t1", "title"]) and not bool(got_items.loc["t1", "explicit"])
    again = ingest_dataset(store, ds)
    assert again.tables["interactions"] == {"inserted": 0, "updated": 0, "unchanged": 4}
