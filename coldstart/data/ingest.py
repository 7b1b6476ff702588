"""Load a contract dataset into the store: validate everything, then write in one transaction.

A dataset with any bad row is refused whole and the store is left exactly as it was,
unless `skip_bad_rows` is set: then the good rows load and every rejected row is
written, with its reasons, to a CSV whose path the report names. Loading is an
upsert keyed on each table's primary key, so ingesting the same dataset twice
changes nothing and ingesting an updated one updates rows.

How it scales (docs/scale.md): a file is read in slices of `ROWS_PER_SLICE` rows as
Arrow string columns, each slice is validated column-wise and bulk-loaded into a
temporary staging table (large `executemany` batches on SQLite, `COPY` on
PostgreSQL), all inside the one transaction (an empty interactions table skips the
staging: its rows are merged in Arrow and inserted in key order, `_direct_load`). Only when every slice of every table
is valid are the staged rows merged into the store's tables, with one
`INSERT ... SELECT ... ON CONFLICT` per table (interactions summed per
(user, item, time) in SQL, so repeated plays add up across slices). Memory is one
slice's, whatever the size of the file.
"""

from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Column, Float, MetaData, Table, and_, delete, func, or_, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from coldstart.core import interaction_columns
from coldstart.core import tables as t
from coldstart.core.store import Store, upsert, utcnow
from coldstart.data.contract import (
    ContractError,
    IdSet,
    RowError,
    find_dataset_files,
    ids_in,
    iter_table,
    known_kinds,
    read_table,
    table_names,
    validate_table,
)

__all__ = ["IngestReport", "ingest_dataset", "ROWS_PER_SLICE"]

# Rows read, validated and staged at a time (only interactions are sliced: the other
# tables' checks - duplicate ids, show references - span the whole file).
ROWS_PER_SLICE = 500_000
SLICED_TABLES = ("interactions",)
# Tables loaded without staging when empty (`_direct_load`).
DIRECT_TABLES = ("interactions",)
# Tables whose changes give them a new version (`Store.table_changed`; the interactions'
# version also names their columnar copy, below).
VERSIONED_TABLES = ("users", "items")
# SQLite page cache of the ingest connection while it loads (KiB, as PRAGMA cache_size
# takes a negative size): the B-tree inserts of a large load stay in memory.
SQLITE_CACHE_KIB = 262_144
# Rows per multi-row `INSERT ... VALUES` statement of the sorted insert (SQLite).
ROWS_PER_STATEMENT = 100


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


def _prepare(name: str, good: pd.DataFrame) -> pd.DataFrame:
    """Shape validated rows into the store's columns. Repeated (user, item, time)
    interactions are summed when the staged rows are merged (`_merge`)."""
    if name == "interactions":
        good = good.assign(timestamp=_to_epoch(good["timestamp"]))
    elif name == "playlists":
        good = good.assign(position=good["position"].astype("int64"))
    elif name == "items":
        good = good.assign(explicit=good["explicit"].astype(bool))
    return good


# --- staging and bulk load -------------------------------------------------------------------


def _stage_table(conn, target: Table) -> Table:
    """An empty temporary table with `target`'s columns and no keys or indexes."""
    name = f"coldstart_stage_{target.name}"
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")
    else:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{name}")
    stage = Table(
        name,
        MetaData(),
        *[Column(c.name, c.type) for c in target.columns],
        prefixes=["TEMPORARY"],
    )
    stage.create(conn)
    return stage


def _sqlite_values(series: pd.Series) -> list:
    """A column as the Python values the SQLite driver binds (None for missing),
    in the text format SQLAlchemy's SQLite DateTime type stores."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        text = series.dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        return pa.array(text.astype(object).where(series.notna(), None)).to_pylist()
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("int64").tolist()
    if series.dtype == object:
        return series.where(series.notna(), None).tolist()
    return pa.array(series, from_pandas=True).to_pylist()


def _bulk_insert(conn, stage: Table, frame: pd.DataFrame) -> None:
    """Append `frame`'s rows to `stage`: COPY on PostgreSQL, executemany on SQLite."""
    if frame.empty:
        return
    cols = [c.name for c in stage.columns]
    frame = frame[cols]
    quoted = ", ".join(f'"{c}"' for c in cols)
    if conn.dialect.name == "postgresql":
        text = frame.to_csv(index=False, header=False, date_format="%Y-%m-%d %H:%M:%S.%f")
        _copy_csv(conn, stage.name, cols, [text])
        return
    rows = list(zip(*[_sqlite_values(frame[c]) for c in cols]))
    marks = ", ".join("?" for _ in cols)
    conn.exec_driver_sql(f"INSERT INTO temp.{stage.name} ({quoted}) VALUES ({marks})", rows)


def _staged_rows(stage: Table, target: Table):
    """The staged rows in `target`'s column order; interactions summed per key."""
    keys = [c.name for c in target.primary_key.columns]
    if target.name == "interactions":
        return (
            select(*[stage.c[k] for k in keys], func.sum(stage.c.weight).label("weight"))
            .where(true())
            .group_by(*[stage.c[k] for k in keys])
        )
    return select(*[stage.c[c.name] for c in target.columns]).where(true())


def _diff_counts(conn, rows, target: Table) -> dict[str, int]:
    """How many of the staged rows are new, changed, or identical to what is stored."""
    keys = [c.name for c in target.primary_key.columns]
    src = rows.subquery()
    total = conn.execute(select(func.count()).select_from(src)).scalar_one()
    if conn.execute(select(func.count()).select_from(target)).scalar_one() == 0:
        return {"inserted": total, "updated": 0, "unchanged": 0}
    on = and_(*[src.c[k] == target.c[k] for k in keys])
    new = conn.execute(
        select(func.count())
        .select_from(src.outerjoin(target, on))
        .where(target.c[keys[0]].is_(None))
    ).scalar_one()
    same = []
    for col in target.columns:
        if col.name in keys:
            continue
        a, b = src.c[col.name], target.c[col.name]
        equal = a.is_not_distinct_from(b)
        if isinstance(col.type, Float):
            equal = or_(equal, func.abs(a - b) < 1e-9)
        same.append(equal)
    unchanged = conn.execute(
        select(func.count()).select_from(src.join(target, on)).where(and_(true(), *same))
    ).scalar_one()
    return {"inserted": new, "updated": total - new - unchanged, "unchanged": unchanged}


def _is_empty(conn, target: Table) -> bool:
    return conn.execute(select(true()).select_from(target).limit(1)).first() is None


@contextmanager
def _indexes_rebuilt(conn, target: Table):
    """Drop `target`'s secondary indexes for a bulk load into the empty table and build
    them again after it: one sort per index instead of a random B-tree insert per row
    (at 1M listeners the item index of the interactions outgrows the page cache)."""
    for index in target.indexes:
        index.drop(conn)
    yield
    # (SQLite's multi-threaded sorter, `PRAGMA threads=2`, was tried: on this shared
    # 2-core machine it took 40-60 % more CPU and more wall time; docs/scale.md.)
    for index in target.indexes:
        index.create(conn)


def _merge(conn, rows, target: Table) -> None:
    """Upsert the staged rows into `target` in one statement."""
    insert = sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert
    keys = [c.name for c in target.primary_key.columns]
    cols = [c.name for c in target.columns]
    stmt = insert(target).from_select(cols, rows)
    update = {c: stmt.excluded[c] for c in cols if c not in keys}
    stmt = (
        stmt.on_conflict_do_update(index_elements=keys, set_=update)
        if update
        else stmt.on_conflict_do_nothing(index_elements=keys)
    )
    conn.execute(stmt)


def _write_rejects(errors: list[RowError], values: dict, path: Path) -> None:
    rows = []
    for err in errors:
        row = {"file": err.file, "row": err.row, "column": err.column, "reason": err.reason}
        if (err.file, err.row) in values:
            row["values"] = values[(err.file, err.row)]
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["file", "row", "column", "reason", "values"]).to_csv(
        path, index=False
    )


def _remember_rejected(errors: list[RowError], raw: pd.DataFrame, first: int, values: dict):
    """Keep the raw values of a slice's rejected rows (for the rejects file)."""
    for err in errors:
        if err.row is not None and (err.file, err.row) not in values:
            values[(err.file, err.row)] = raw.iloc[err.row - first].to_json()


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
    stored = store.frame(t.items, columns=["item_id", "kind"])
    known = known_kinds(pd.Series(stored["kind"].to_numpy(), index=stored["item_id"]))
    del stored
    rejected_values: dict = {}
    staged: dict[str, Table] = {}
    transcripts = None
    # The interactions' good rows as Arrow columns, for their columnar copy (written
    # after the commit from these rows, not by reading the table back).
    staged_interactions: list[pa.Table] = []
    previous_version = store.data_version("interactions")
    versioned = None
    loaded: pa.Table | None = None  # the interactions, when loaded directly

    known_ids: IdSet | None = None  # the catalogue's ids, hashed once for the later tables
    with _transaction(store, bulk_load="interactions" in files) as conn:  # all or nothing
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        try:
            for name in table_names(files):
                path = files[name]
                if name == "transcripts":
                    raw = read_table(path)
                    good, errors = validate_table(name, raw, str(path), known)
                    report.errors.extend(errors)
                    _remember_rejected(errors, raw, 1, rejected_values)
                    transcripts = _prepare(name, good)
                    continue
                target = t.CONTRACT_TABLES[name]
                direct = name in DIRECT_TABLES and _direct_load(conn, target)
                stage = None if direct else _stage_table(conn, target)
                if stage is not None:
                    staged[name] = stage
                per_slice = ROWS_PER_SLICE if name in SLICED_TABLES else None
                if name in ("interactions", "playlists") and known_ids is None:
                    known_ids = IdSet(known.index)
                for first, raw in iter_table(path, per_slice):
                    good, errors = validate_table(name, raw, str(path), known, first, known_ids)
                    report.errors.extend(errors)
                    _remember_rejected(errors, raw, first, rejected_values)
                    del raw
                    good = _prepare(name, good)
                    if name == "items":
                        here = known_kinds(
                            pd.Series(good["kind"].to_numpy(object), index=good["item_id"])
                        )
                        known = pd.concat([known[~ids_in(known.index, here.index)], here])
                    if stage is not None:
                        _bulk_insert(conn, stage, good)
                    if name == "interactions" and (direct or store.columns is not None):
                        staged_interactions.append(_arrow_interactions(good))

            known_ids = None
            if report.errors:
                file_level = [e for e in report.errors if e.row is None]
                if not skip_bad_rows or file_level:
                    raise ContractError(report.errors)
                report.rejected = len({(e.file, e.row) for e in report.errors})
                stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
                rejects_path = rejects_path or dataset_dir / f"rejected-{stamp}.csv"
                _write_rejects(report.errors, rejected_values, Path(rejects_path))
                report.rejects_path = str(rejects_path)

            if "interactions" in files and "interactions" not in staged:
                loaded = interaction_columns.merge_interactions(None, staged_interactions)
                staged_interactions = []
                with _indexes_rebuilt(conn, t.interactions):
                    _insert_sorted(conn, t.interactions, loaded)
                report.tables["interactions"] = {
                    "inserted": len(loaded),
                    "updated": 0,
                    "unchanged": 0,
                }
                versioned = _new_version(conn, report.tables["interactions"], True)
            for name, stage in staged.items():
                target = t.CONTRACT_TABLES[name]
                rows = _staged_rows(stage, target)
                was_empty = _is_empty(conn, target)
                if was_empty:  # every staged row is new: count them as they are merged
                    with _indexes_rebuilt(conn, target):
                        _merge(conn, rows, target)
                    inserted = conn.execute(select(func.count()).select_from(target)).scalar_one()
                    counts = {"inserted": inserted, "updated": 0, "unchanged": 0}
                else:
                    counts = _diff_counts(conn, rows, target)
                    _merge(conn, rows, target)
                report.tables[name] = counts
                if name in VERSIONED_TABLES and (counts["inserted"] or counts["updated"]):
                    Store.table_changed(conn, name)
                if name == "interactions":
                    versioned = _new_version(conn, counts, was_empty)
                stage.drop(conn)
            if transcripts is not None:
                report.tables["transcripts"] = _load_transcripts(conn, transcripts)
        finally:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA cache_size=-2000")
    if versioned is not None and store.columns is not None:
        version, was_empty = versioned
        if loaded is not None:  # the table as loaded directly is its copy
            store.columns.write(version, loaded)
        else:
            previous = None if was_empty else previous_version
            _write_columns(store, version, previous, staged_interactions)
    return report


@contextmanager
def _transaction(store: Store, bulk_load: bool):
    """The ingest's one transaction. On SQLite, when it loads the interactions into an
    empty table (`_direct_load`) and no other connection has the database open, it runs
    in rollback-journal mode (`journal_mode=DELETE`, `synchronous=FULL`) instead of WAL:
    the new pages are written once, into the database file, instead of into the WAL and
    again by the commit's checkpoint (about 30 s at 1M listeners). Still atomic and
    durable across a crash or power loss (the journal holds the pages the transaction
    changes); what it gives up is concurrent reading while the load runs. WAL and
    `synchronous=NORMAL` (`Store`'s settings) come back after the commit or rollback."""
    with store.connect() as conn:
        rollback_journal = False
        if bulk_load and conn.dialect.name == "sqlite" and _is_empty(conn, t.interactions):
            conn.rollback()  # the emptiness check's implicit transaction
            rollback_journal = _journal_mode(conn, "DELETE") == "delete"
            if rollback_journal:
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
        conn.rollback()
        try:
            with conn.begin():
                yield conn
        finally:
            if rollback_journal:
                conn.rollback()
                _journal_mode(conn, "WAL")
                conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
                conn.rollback()


def _journal_mode(conn, mode: str) -> str | None:
    """Set SQLite's journal mode (outside a transaction): the mode now in force, or None
    when another connection has the database open (SQLite refuses to leave WAL then)."""
    try:
        return str(conn.exec_driver_sql(f"PRAGMA journal_mode={mode}").scalar_one()).lower()
    except OperationalError:
        conn.rollback()
        return None


def _direct_load(conn, target: Table) -> bool:
    """Load `target` without a staging table when it is empty. Its rows are merged in
    Arrow (`merge_interactions`) and inserted in key order, so neither a staging table
    nor SQL's GROUP BY sort (nor, on PostgreSQL, the merge's conflict checks) is
    written: `executemany` on SQLite, `COPY` straight into the table on PostgreSQL."""
    return _is_empty(conn, target)


def _insert_sorted(conn, target: Table, rows: pa.Table) -> None:
    """Insert `rows` (in key order, one row per key) into `target`: on SQLite in
    statements of `ROWS_PER_STATEMENT` rows, `ROWS_PER_SLICE` rows per `executemany`, where a key already stored (a concurrent writer)
    takes the new weight; on PostgreSQL by `COPY`, where such a key fails the ingest
    (nothing is written)."""
    if conn.dialect.name == "postgresql":
        _copy_sorted(conn, target, rows)
        return
    cols = [c.name for c in target.columns]
    keys = ", ".join(c.name for c in target.primary_key.columns)
    row = f"({', '.join('?' for _ in cols)})"

    def sql(count: int) -> str:  # one statement of `count` rows
        return (
            f"INSERT INTO {target.name} ({', '.join(cols)}) VALUES {', '.join([row] * count)} "
            f"ON CONFLICT ({keys}) DO UPDATE SET weight = excluded.weight"
        )

    if not rows.num_rows:
        return
    table = rows.select(cols).combine_chunks()
    columns = [table.column(c).chunk(0) for c in cols]
    # A dictionary column's values as Python objects, made once for the whole table
    # (every row of a batch shares them; a None last, for a missing value).
    lookups = [
        np.array(c.dictionary.to_pylist() + [None], dtype=object)
        if pa.types.is_dictionary(c.type)
        else None
        for c in columns
    ]
    # The DB-API cursor of the ingest's transaction: it takes each statement's values
    # as the list numpy makes (SQLAlchemy would want a tuple per statement).
    cursor = conn.connection.cursor()
    try:
        for start in range(0, table.num_rows, ROWS_PER_SLICE):
            count = min(ROWS_PER_SLICE, table.num_rows - start)
            # The batch's values row-major in one object array, `ROWS_PER_STATEMENT`
            # rows to a statement (no Python tuple per row).
            values = np.empty((count, len(cols)), dtype=object)
            for i, column in enumerate(columns):
                part = column.slice(start, count)
                lookup = lookups[i]
                if lookup is not None:
                    codes = part.indices.fill_null(len(lookup) - 1).to_numpy()
                    values[:, i] = lookup[codes]
                else:
                    values[:, i] = part.to_numpy(zero_copy_only=False).astype(object)
            whole = count - count % ROWS_PER_STATEMENT
            if whole:
                params = values[:whole].reshape(-1, ROWS_PER_STATEMENT * len(cols)).tolist()
                cursor.executemany(sql(ROWS_PER_STATEMENT), params)
            if whole < count:
                cursor.execute(sql(count - whole), values[whole:].ravel().tolist())
    finally:
        cursor.close()


def _copy_csv(conn, table: str, cols: list[str], chunks) -> None:
    """`COPY table (cols) FROM STDIN` in CSV, the text written chunk by chunk."""
    quoted = ", ".join(f'"{c}"' for c in cols)
    driver = conn.connection.driver_connection
    with (
        driver.cursor() as cur,
        cur.copy(f"COPY {table} ({quoted}) FROM STDIN (FORMAT csv)") as copy,
    ):
        for chunk in chunks:
            copy.write(chunk)


def _copy_sorted(conn, target: Table, rows: pa.Table) -> None:
    """`COPY target FROM STDIN` of `rows`, written as CSV by Arrow a batch at a time
    (no Python value per row); a null is an unquoted empty field (NULL)."""
    cols = [c.name for c in target.columns]
    options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")

    def chunks():
        for batch in rows.select(cols).to_batches(ROWS_PER_SLICE):
            plain = pa.Table.from_batches([batch]).cast(
                pa.schema(
                    pa.field(
                        f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type
                    )
                    for f in batch.schema
                )
            )
            sink = pa.BufferOutputStream()
            pa_csv.write_csv(plain, sink, options)
            yield sink.getvalue().to_pybytes()

    _copy_csv(conn, target.name, cols, chunks())


def _arrow_interactions(good: pd.DataFrame) -> pa.Table:
    """A slice's good interactions as Arrow columns, ids dictionary-encoded (small)."""
    return pa.table(
        {
            "user_id": pa.array(good["user_id"], pa.string()).dictionary_encode(),
            "item_id": pa.array(good["item_id"], pa.string()).dictionary_encode(),
            "timestamp": pa.array(good["timestamp"], pa.int64()),
            "weight": pa.array(good["weight"], pa.float64()),
        }
    )


def _new_version(conn, counts: dict[str, int], was_empty: bool) -> tuple[str, bool] | None:
    """A new version of the interactions when this ingest changes them, written in the
    ingest's transaction; with whether the table was empty before."""
    if counts["inserted"] == 0 and counts["updated"] == 0:
        return None
    return Store.table_changed(conn, "interactions"), was_empty


def _write_columns(store: Store, version: str, previous: str | None, staged: list) -> None:
    """The new version's columnar copy: the staged rows merged into the previous
    version's copy (or alone, when the table was empty). Without the previous copy
    nothing is written, and the first reader writes it from SQL."""
    assert store.columns is not None
    stored = store.columns.table(previous) if previous is not None else None
    if previous is not None and stored is None:
        return
    store.columns.write(version, interaction_columns.merge_interactions(stored, staged))


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
