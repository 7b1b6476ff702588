"""The embedded store: SQLAlchemy Core over SQLite (WAL) by default, any URL by config."""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    Boolean,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    String,
    Table,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from coldstart.core import interaction_columns
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.interaction_columns import InteractionColumns
from training.data import CodedPlays

__all__ = ["Store", "utcnow", "upsert", "worker_id"]

# Rows fetched at a time when reading a query into a frame.
READ_ROWS = 100_000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def worker_id() -> str:
    """A lease owner name unique to this process: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def upsert(conn: Connection, table: Table, rows: Sequence[dict], chunk: int = 5000) -> None:
    """Insert rows, replacing the non-key columns of rows whose primary key exists."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        insert = sqlite.insert
    elif dialect == "postgresql":
        insert = postgresql.insert
    else:  # pragma: no cover - other back-ends are not supported yet
        raise RuntimeError(f"upsert is not implemented for the {dialect!r} dialect")
    keys = [c.name for c in table.primary_key.columns]
    for start in range(0, len(rows), chunk):
        batch = rows[start : start + chunk]
        stmt = insert(table)
        update_cols = {c: stmt.excluded[c] for c in batch[0] if c not in keys}
        stmt = (
            stmt.on_conflict_do_update(index_elements=keys, set_=update_cols)
            if update_cols
            else stmt.on_conflict_do_nothing(index_elements=keys)
        )
        conn.execute(stmt, list(batch))


def _sqlite_typed(values: pd.Series, sql_type) -> pd.Series:
    """A column of SQLite's stored values as SQLAlchemy's types would have returned it:
    DateTime text as datetime64 (an all-missing column stays None), Boolean 0/1 as bool
    (as objects where some are missing)."""
    if isinstance(sql_type, DateTime) and values.notna().any():
        return pd.to_datetime(values, format="ISO8601").astype("datetime64[us]")
    if isinstance(sql_type, Boolean):
        if values.notna().all():
            return values.astype(bool)
        return values.astype(object).map(bool, na_action="ignore").where(values.notna(), None)
    return values


# Column types whose SQLite values are converted column-wise (`_sqlite_typed`).
_SQLITE_PLAIN_TYPES = (String, Integer, Float, DateTime, Boolean)


class Store:
    """Owns the database engine. Readers return pandas frames; writers take dict rows."""

    def __init__(self, url: str, columns_dir: Path | str | None = None) -> None:
        """`columns_dir`: where the columnar copy of the interactions lives
        (coldstart/core/interaction_columns.py); without it every read goes through SQL."""
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.columns = InteractionColumns(columns_dir) if columns_dir else None
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        t.metadata.create_all(self.engine)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        settings.home.mkdir(parents=True, exist_ok=True)
        return cls(settings.db_url, columns_dir=settings.home / "columns")

    def after_fork(self) -> None:
        """In a forked child: forget the parent's pooled connections (never use a
        database connection across a fork); new ones open on first use."""
        self.engine.dispose(close=False)

    def begin(self):
        """A transaction: everything inside commits together or not at all."""
        return self.engine.begin()

    def connect(self):
        return self.engine.connect()

    # --- reads ---------------------------------------------------------------

    def frame(self, table: Table, where=None, columns: Iterable[str] | None = None) -> pd.DataFrame:
        """A query's rows as a frame of typed columns (strings as Arrow strings).

        Read in chunks of `READ_ROWS` rows, never all rows as Python tuples at once; on
        SQLite the driver's plain tuples are read and date/time and boolean columns
        converted column-wise (`_sqlite_typed`), not through SQLAlchemy's per-row
        processing. The same frame as all rows read at once: tests/test_store_read.py.
        (An Arrow reader with its own SQLite copy, such as the ADBC driver, is not used:
        two SQLite libraries in one process break each other's file locks.)"""
        selected = [table.c[name] for name in columns] if columns else list(table.columns)
        stmt = select(*selected)
        if where is not None:
            stmt = stmt.where(where)
        return self._chunked_frame(stmt, selected)

    def _chunked_frame(self, stmt, selected) -> pd.DataFrame:
        raw = self.engine.dialect.name == "sqlite" and all(
            isinstance(c.type, _SQLITE_PLAIN_TYPES) for c in selected
        )
        parts = []
        keys = [c.name for c in selected]
        with self.connect() as conn:
            if raw:  # the driver's plain tuples, converted column-wise below
                compiled = stmt.compile(self.engine, compile_kwargs={"render_postcompile": True})
                params = compiled.construct_params()
                cursor = conn.connection.driver_connection.cursor()
                cursor.execute(str(compiled), tuple(params[k] for k in compiled.positiontup))
                fetch = cursor.fetchmany
            else:
                result = conn.execution_options(
                    stream_results=True, max_row_buffer=READ_ROWS
                ).execute(stmt)
                fetch = lambda n: [tuple(row) for row in result.fetchmany(n)]  # noqa: E731
            while rows := fetch(READ_ROWS):
                parts.append(pd.DataFrame.from_records(rows, columns=keys))
            if raw:
                cursor.close()
        if not parts:
            return pd.DataFrame([], columns=keys)
        frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        # A chunk whose column was all missing inferred another dtype than the rest:
        # infer the column again over every row, as one frame of all rows would.
        mixed = [k for k in keys if len({str(p[k].dtype) for p in parts}) > 1]
        if mixed:
            frame[mixed] = frame[mixed].infer_objects()
        if raw:
            for col in selected:
                frame[col.name] = _sqlite_typed(frame[col.name], col.type)
        return frame

    def items(self, kinds: Iterable[str] | None = None) -> pd.DataFrame:
        where = t.items.c.kind.in_(list(kinds)) if kinds else None
        return self.frame(t.items, where)

    def interactions(self) -> pd.DataFrame:
        """Every interaction, from the columnar copy when it is current (rows in key
        order), else with SQL (and the copy is written for the next reader)."""
        copy = self._interaction_columns()
        return copy if copy is not None else self.frame(t.interactions)

    def interaction_codes(self) -> CodedPlays | None:
        """Every interaction as `CodedPlays` (ids as int32 codes), from the columnar
        copy when it is current; None when there is none (read `interactions`, which
        writes it)."""
        version = self.data_version("interactions")
        if version is None or self.columns is None:
            return None
        return self.columns.codes(version)

    def plays_of(self, kinds: Iterable[str], columns: Iterable[str] | None = None) -> pd.DataFrame:
        """The interactions with items of these kinds, these columns only (filtered in
        the columnar copy when it is current, else in SQL)."""
        kinds = list(kinds)
        of_kinds = select(t.items.c.item_id).where(t.items.c.kind.in_(kinds))
        if self.data_version("interactions") is not None:
            with self.connect() as conn:
                item_ids = conn.execute(of_kinds).scalars().all()
            copy = self._interaction_columns(list(columns) if columns else None, item_ids)
            if copy is not None:
                return copy
        return self.frame(t.interactions, t.interactions.c.item_id.in_(of_kinds), columns)

    @staticmethod
    def table_changed(conn, name: str) -> str:
        """Give table `name` (interactions, users, items) a new version inside the
        writer's transaction. Every writer of these tables calls it (ingest and
        `register_upload` do): a copy derived from the table as it was (the columnar copy
        of the interactions, the server's cached popularity fallbacks) is then no longer
        used, and its next reader rebuilds it."""
        version = interaction_columns.new_version()
        upsert(conn, t.data_versions, [{"name": name, "version": version, "updated_at": utcnow()}])
        return version

    def data_version(self, name: str) -> str | None:
        """The stored version of table `name` (None: never versioned)."""
        with self.connect() as conn:
            return conn.execute(
                select(t.data_versions.c.version).where(t.data_versions.c.name == name)
            ).scalar_one_or_none()

    def _interaction_columns(self, columns=None, item_ids=None) -> pd.DataFrame | None:
        """The interactions from their columnar copy, written first from SQL when the
        current version has none; None when the table has no version."""
        version = self.data_version("interactions")
        if version is None or self.columns is None:
            return None
        copy = self.columns.frame(version, columns, item_ids)
        if copy is None:
            # One statement reads the rows from one snapshot of the table; the version is
            # unchanged after it only if no ingest committed meanwhile (versions are unique).
            whole = self.frame(t.interactions)
            if self.data_version("interactions") != version:
                return None
            self.columns.write_frame(version, whole)
            copy = self.columns.frame(version, columns, item_ids)
        return copy

    def users(self) -> pd.DataFrame:
        return self.frame(t.users)

    def playlists(self) -> pd.DataFrame:
        return self.frame(t.playlists)

    def count(self, table: Table) -> int:
        with self.connect() as conn:
            return conn.execute(select(func.count()).select_from(table)).scalar_one()

    def stats(self) -> dict[str, Any]:
        """Catalog counts by kind and language, and interaction counts by domain."""
        with self.connect() as conn:
            by_kind = dict(
                conn.execute(select(t.items.c.kind, func.count()).group_by(t.items.c.kind)).all()
            )
            by_lang_rows = conn.execute(
                select(t.items.c.kind, t.items.c.language, func.count()).group_by(
                    t.items.c.kind, t.items.c.language
                )
            ).all()
            inter_rows = conn.execute(
                select(
                    t.items.c.kind,
                    func.count(),
                    func.count(func.distinct(t.interactions.c.user_id)),
                )
                .select_from(
                    t.interactions.join(t.items, t.items.c.item_id == t.interactions.c.item_id)
                )
                .group_by(t.items.c.kind)
            ).all()
        by_language: dict[str, dict[str, int]] = {}
        for kind, lang, n in by_lang_rows:
            by_language.setdefault(kind, {})[lang or "unknown"] = n
        return {
            "items": {
                "total": sum(by_kind.values()),
                "by_kind": by_kind,
                "by_language": by_language,
            },
            "interactions": {
                "total": self.count(t.interactions),
                "by_kind": {kind: n for kind, n, _ in inter_rows},
                "users_by_kind": {kind: u for kind, _, u in inter_rows},
            },
            "users": self.count(t.users),
            "playlists": {"entries": self.count(t.playlists)},
            "transcripts": self.count(t.transcripts),
            "uploads": self.count(t.uploads),
        }

    # --- artifacts -----------------------------------------------------------

    def register_artifact(self, name: str, path: Path | str, manifest: dict) -> None:
        with self.begin() as conn:
            upsert(
                conn,
                t.artifacts,
                [{"name": name, "path": str(path), "manifest": manifest, "created_at": utcnow()}],
            )

    def artifact(self, name: str) -> dict | None:
        with self.connect() as conn:
            row = (
                conn.execute(select(t.artifacts).where(t.artifacts.c.name == name))
                .mappings()
                .first()
            )
        return dict(row) if row else None

    # --- leases ----------------------------------------------------------------

    def claim(self, resource: str, owner: str, seconds: float) -> bool:
        """Take (or extend) the lease on `resource` for `seconds`: True when `owner`
        holds it afterwards. One transaction: an insert, or an update that only fires
        when the current lease has expired or is already `owner`'s, then a read-back.
        Two workers claiming at once can never both get it (SQLite serialises the
        writes; PostgreSQL locks the conflicting row for ON CONFLICT DO UPDATE)."""
        now = utcnow()
        row = {
            "resource": resource,
            "owner": owner,
            "acquired_at": now,
            "expires_at": now + dt.timedelta(seconds=seconds),
        }
        table = t.leases
        dialect = self.engine.dialect.name
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = insert(table).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.resource],
            set_={
                "owner": stmt.excluded.owner,
                "expires_at": stmt.excluded.expires_at,
                "acquired_at": stmt.excluded.acquired_at,
            },
            where=(table.c.expires_at < now) | (table.c.owner == owner),
        )
        with self.begin() as conn:
            conn.execute(stmt)
            holder = conn.execute(
                select(table.c.owner).where(table.c.resource == resource)
            ).scalar_one()
        return holder == owner

    def renew(self, resource: str, owner: str, seconds: float) -> bool:
        """Extend `owner`'s lease; False when it has lost it (expired and taken over)."""
        with self.begin() as conn:
            done = conn.execute(
                update(t.leases)
                .where(t.leases.c.resource == resource, t.leases.c.owner == owner)
                .values(expires_at=utcnow() + dt.timedelta(seconds=seconds))
            )
        return done.rowcount == 1

    def release(self, resource: str, owner: str) -> None:
        with self.begin() as conn:
            conn.execute(
                delete(t.leases).where(t.leases.c.resource == resource, t.leases.c.owner == owner)
            )

    @contextmanager
    def hold(
        self, resource: str, owner: str, seconds: float, wait: float = 600.0, poll: float = 0.2
    ):
        """A lease as a lock: wait (up to `wait` seconds) until `owner` holds `resource`,
        run the block, release. For shared files several workers update (the indexes)."""
        deadline = time.monotonic() + wait
        while not self.claim(resource, owner, seconds):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"lease {resource!r} still held by another worker after {wait:.0f} s"
                )
            time.sleep(poll)
        try:
            yield
        finally:
            self.release(resource, owner)

    def leases(self) -> pd.DataFrame:
        return self.frame(t.leases)
