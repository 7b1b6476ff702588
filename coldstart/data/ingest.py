"""Load a contract dataset into the store: validate everything, then write in one transaction.

A dataset with any bad row is refused whole and the store is left exactly as it was,
unless `skip_bad_rows` is set: then the good rows load and every rejected row is
written, with its reasons, to a CSV whose path the report names. Loading is an
upsert keyed on each table's primary key, so ingesting the same dataset twice
changes nothing and ingesting an updated one updates rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import delete, select

from coldstart.core import tables as t
from coldstart.core.store import Store, upsert, utcnow
from coldstart.data.contract import (
    ContractError,
    RowError,
    find_dataset_files,
    read_table,
    table_names,
    validate_table,
)

__all__ = ["IngestReport", "ingest_dataset"]

# Rows turned into Python dicts at a time when writing (all in one transaction).
RECORDS_PER_SLICE = 50_000


@dataclass
class IngestReport:
    dataset: str
    tables: dict[str, dict[str, int]] = field(
        default_factory=dict
    )  # table -> inserted/updated/unchanged
    rejected: int = 0
    rejects_path: str | None = None
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "tables": self.tables,
            "rejected": self.rejected,
            "rejects_path": self.rejects_path,
        }


def _to_epoch(values: pd.Series) -> pd.Series:
    """Datetime -> integer seconds since the epoch, 0 where unknown."""
    as_dt = pd.to_datetime(values)
    epoch = (as_dt - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    return epoch.fillna(0).astype("int64")


def _records(frame: pd.DataFrame) -> list[dict]:
    """Frame -> rows with None for missing values and Python scalars for SQLAlchemy."""
    frame = frame.astype(object).where(frame.notna(), None)
    rows = frame.to_dict("records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, pd.Timestamp):
                row[key] = value.to_pydatetime()
    return rows


def _prepare(name: str, good: pd.DataFrame) -> pd.DataFrame:
    """Shape validated rows into the store's columns."""
    if name == "interactions":
        good = good.assign(timestamp=_to_epoch(good["timestamp"]))
        # Repeated (user, item, time) rows are repeated plays: they add up.
        good = good.groupby(["user_id", "item_id", "timestamp"], as_index=False)["weight"].sum()
    elif name == "playlists":
        good = good.assign(position=good["position"].astype("int64"))
    elif name == "items":
        good = good.assign(explicit=good["explicit"].astype(bool))
    return good


def _diff_counts(store: Store, table, frame: pd.DataFrame) -> dict[str, int]:
    """How many rows of `frame` are new, changed, or identical to what is stored."""
    keys = [c.name for c in table.primary_key.columns]
    existing = store.frame(table, columns=list(frame.columns))
    if existing.empty or frame.empty:
        return {"inserted": len(frame), "updated": 0, "unchanged": 0}
    merged = frame.merge(existing, on=keys, how="left", suffixes=("", "__old"), indicator=True)
    new = merged["_merge"] == "left_only"
    changed = pd.Series(False, index=merged.index)
    for col in frame.columns:
        if col in keys:
            continue
        a, b = merged[col], merged[f"{col}__old"]
        same = (a == b) | (a.isna() & b.isna())
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
            same |= (
                pd.to_numeric(a, errors="coerce") - pd.to_numeric(b, errors="coerce")
            ).abs() < 1e-9
        changed |= ~same
    changed &= ~new
    return {
        "inserted": int(new.sum()),
        "updated": int(changed.sum()),
        "unchanged": int((~new & ~changed).sum()),
    }


def _write_rejects(errors: list[RowError], raw: dict[str, pd.DataFrame], path: Path) -> None:
    rows = []
    for err in errors:
        row = {"file": err.file, "row": err.row, "column": err.column, "reason": err.reason}
        table = next((n for n in raw if Path(err.file).name.startswith(n)), None)
        if err.row is not None and table is not None:
            row["values"] = raw[table].iloc[err.row - 1].to_json()
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["file", "row", "column", "reason", "values"]).to_csv(
        path, index=False
    )


def ingest_dataset(
    store: Store,
    dataset_dir: Path | str,
    skip_bad_rows: bool = False,
    rejects_path: Path | None = None,
) -> IngestReport:
    """Validate `dataset_dir` against the contract and upsert it into `store`."""
    dataset_dir = Path(dataset_dir)
    files = find_dataset_files(dataset_dir)
    report = IngestReport(dataset=str(dataset_dir))

    known = dict(
        store.frame(t.items, columns=["item_id", "kind"]).itertuples(index=False, name=None)
    )
    raw: dict[str, pd.DataFrame] = {}
    clean: dict[str, pd.DataFrame] = {}
    for name in table_names(files):
        raw[name] = read_table(files[name])
        good, errors = validate_table(name, raw[name], str(files[name]), known)
        report.errors.extend(errors)
        clean[name] = _prepare(name, good)
        if name == "items":
            known.update(dict(zip(good["item_id"], good["kind"])))

    if report.errors:
        file_level = [e for e in report.errors if e.row is None]
        if not skip_bad_rows or file_level:
            raise ContractError(report.errors)
        report.rejected = len({(e.file, e.row) for e in report.errors})
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
        rejects_path = rejects_path or dataset_dir / f"rejected-{stamp}.csv"
        _write_rejects(report.errors, raw, Path(rejects_path))
        report.rejects_path = str(rejects_path)

    del raw  # kept only to write the rejected rows' values
    for name, frame in clean.items():
        if name != "transcripts":
            report.tables[name] = _diff_counts(store, t.CONTRACT_TABLES[name], frame)

    with store.begin() as conn:  # all or nothing
        for name, frame in clean.items():
            if name == "transcripts":
                report.tables[name] = _load_transcripts(conn, frame)
                continue
            # Python row dicts take many times the frame's memory: build them a slice
            # at a time, inside the one transaction.
            for lo in range(0, len(frame), RECORDS_PER_SLICE):
                upsert(
                    conn, t.CONTRACT_TABLES[name], _records(frame.iloc[lo : lo + RECORDS_PER_SLICE])
                )
    return report


def _load_transcripts(conn, frame: pd.DataFrame) -> dict[str, int]:
    """Provided transcripts replace an item's transcript and segments whole."""
    now = utcnow()
    counts = {"inserted": 0, "updated": 0, "unchanged": 0}
    stored = dict(
        conn.execute(
            select(t.transcripts.c.item_id, t.transcripts.c.text).where(
                t.transcripts.c.engine == "provided"
            )
        ).all()
    )
    for item_id, segs in frame.sort_values(["item_id", "start"]).groupby("item_id", sort=False):
        if stored.get(item_id) == " ".join(segs["text"]):
            counts["unchanged"] += 1  # re-ingesting the same dataset changes nothing
            continue
        counts["updated" if item_id in stored else "inserted"] += 1
        conn.execute(delete(t.segments).where(t.segments.c.item_id == item_id))
        upsert(
            conn,
            t.transcripts,
            [
                {
                    "item_id": item_id,
                    "engine": "provided",
                    "model": "provided",
                    "language": None,
                    "duration": float(segs["end"].max()),
                    "text": " ".join(segs["text"]),
                    "created_at": now,
                }
            ],
        )
        upsert(
            conn,
            t.segments,
            [
                {
                    "item_id": item_id,
                    "idx": i,
                    "start": float(s),
                    "end": float(e),
                    "text": txt,
                    "avg_logprob": None,
                }
                for i, (s, e, txt) in enumerate(zip(segs["start"], segs["end"], segs["text"]))
            ],
        )
    return counts
