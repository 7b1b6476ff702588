"""A columnar copy of the interactions table: Parquet beside the store, read in seconds.

The store (SQLite or PostgreSQL) stays the source of truth. Reading its interactions
row by row through a database driver costs about 3 µs a row (two minutes at 1M
listeners, 37.8M rows); the same rows as Parquet with dictionary-encoded ids read in a
few seconds. So:

* ingest, the only writer of interactions, gives the table a new **version** in
  `data_versions`, in the same transaction as the rows;
* after the commit it writes `<home>/columns/interactions-<version>.parquet`, built
  from the rows it staged (merged with the previous version's file when there was one),
  without reading the table back;
* a reader (`Store.interactions`, `Store.plays_of`) uses the file only when its
  version is the stored one; otherwise it reads the table with SQL and writes the file
  for the next reader. A store written before versions existed is read with SQL.

Rows are in primary-key order (user, item, timestamp: byte order, as SQLite's BINARY
collation sorts), which is also the order of a table filled by one ingest, and repeated
(user, item, timestamp) rows of one ingest are summed while a later ingest's row
replaces the stored one, as the SQL merge does (`coldstart.data.ingest._merge`).
`tests/test_store_read.py` checks the file against the table.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from training.data import CodedPlays

__all__ = [
    "InteractionColumns",
    "new_version",
    "merge_interactions",
    "KEY",
    "COLUMNS",
]

KEY = ["user_id", "item_id", "timestamp"]
COLUMNS = [*KEY, "weight"]
ROW_GROUP_ROWS = 4_000_000
SCHEMA = pa.schema(
    [
        ("user_id", pa.dictionary(pa.int32(), pa.string())),
        ("item_id", pa.dictionary(pa.int32(), pa.string())),
        ("timestamp", pa.int64()),
        ("weight", pa.float64()),
    ]
)


def new_version() -> str:
    return uuid.uuid4().hex


def _dictionary_key(dictionary: pa.Array) -> tuple:
    """What identifies a dictionary's data: chunks read from one Parquet row group share
    one dictionary (at 1M listeners 293 chunks, each with all 1M user ids)."""
    return (
        dictionary.offset,
        len(dictionary),
        *(b.address if b else 0 for b in dictionary.buffers()),
    )


def _sorted_codes(column: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """The distinct values of a (dictionary) column, sorted, and each row's int32 code
    into them: byte order of the strings is the order of the codes. The chunks'
    dictionaries are unified once per distinct dictionary (chunks that share one are
    unified once, never a lookup table of all the values per chunk) and the rows re-coded
    one chunk at a time, never concatenated as strings."""
    chunks = [c if pa.types.is_dictionary(c.type) else c.dictionary_encode() for c in column.chunks]
    if not chunks:
        return pa.array([], pa.string()), np.zeros(0, np.int32)
    which: dict[tuple, int] = {}
    dictionaries: list[pa.Array] = []
    for c in chunks:
        key = _dictionary_key(c.dictionary)
        if key not in which:
            which[key] = len(dictionaries)
            dictionaries.append(c.dictionary.cast(pa.string()))
    # each distinct dictionary's values -> their position in the unified one
    unified = pa.chunked_array(
        [
            pa.DictionaryArray.from_arrays(pa.array(np.arange(len(d), dtype=np.int32)), d)
            for d in dictionaries
        ],
        type=pa.dictionary(pa.int32(), pa.string()),
    ).unify_dictionaries()
    to_unified = [u.indices.to_numpy(zero_copy_only=False) for u in unified.chunks]
    distinct = unified.chunk(0).dictionary
    del dictionaries, unified
    order = pc.sort_indices(distinct).to_numpy()
    rank = np.empty(len(distinct), dtype=np.int32)
    rank[order] = np.arange(len(distinct), dtype=np.int32)
    codes = np.empty(sum(len(c) for c in chunks), dtype=np.int32)
    at = 0
    for c in chunks:
        ranked = rank[to_unified[which[_dictionary_key(c.dictionary)]]]
        codes[at : at + len(c)] = ranked[c.indices.to_numpy(zero_copy_only=False)]
        at += len(c)
    return distinct.take(order), codes


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    return np.concatenate([c.to_numpy(zero_copy_only=False) for c in column.chunks] or [[]])


def _key_order(
    user_codes: np.ndarray, item_codes: np.ndarray, stamps: np.ndarray, is_new: np.ndarray
) -> np.ndarray:
    """The rows' stable order by (user, item, timestamp, is_new): what
    `np.lexsort((is_new, stamps, item_codes, user_codes))` gives, by one stable argsort
    of the four packed into an int64 when they fit in 63 bits (the timestamps as their
    offset from the first, or as their rank among the distinct ones): one sort instead
    of four."""
    if not len(stamps):
        return np.zeros(0, dtype=np.intp)
    low = stamps.min()
    span = int(stamps.max()) - int(low)
    user_bits = max(int(user_codes.max()).bit_length(), 1)
    item_bits = max(int(item_codes.max()).bit_length(), 1)
    stamp_bits = max(span.bit_length(), 1)
    if user_bits + item_bits + stamp_bits + 1 <= 63:
        stamp_key = stamps - low
    else:  # the rank of each time among the distinct ones (hashed, then few sorted)
        encoded = pa.array(stamps).dictionary_encode()
        distinct = encoded.dictionary.to_numpy()
        rank = np.empty(len(distinct), dtype=np.int64)
        rank[np.argsort(distinct)] = np.arange(len(distinct))
        stamp_key = rank[encoded.indices.to_numpy()]
        stamp_bits = max((len(distinct) - 1).bit_length(), 1)
    if user_bits + item_bits + stamp_bits + 1 > 63:
        return np.lexsort((is_new, stamps, item_codes, user_codes))
    key = user_codes.astype(np.int64) << (item_bits + stamp_bits + 1)
    key |= item_codes.astype(np.int64) << (stamp_bits + 1)
    key |= stamp_key.astype(np.int64) << 1
    key |= is_new
    return np.argsort(key, kind="stable")


def merge_interactions(stored: pa.Table | None, staged: list[pa.Table]) -> pa.Table:
    """The table after an ingest: `stored` (the previous version, or None when the table
    was empty) with the `staged` rows merged in, as the SQL merge does: staged rows with
    the same (user, item, timestamp) are summed, and a staged key replaces a stored one.
    `staged` is emptied as it is read (its slices are the ingest's largest holding)."""
    parts = [] if stored is None else [stored.select(COLUMNS).cast(SCHEMA)]
    new_rows = sum(len(p) for p in staged)
    while staged:
        parts.append(staged.pop(0).select(COLUMNS).cast(SCHEMA))
    if not parts:
        return SCHEMA.empty_table()
    table = pa.concat_tables(parts)
    del parts
    users, user_codes = _sorted_codes(table["user_id"])
    items, item_codes = _sorted_codes(table["item_id"])
    stamps, weights = _numbers(table["timestamp"]).astype(np.int64), _numbers(table["weight"])
    del table
    is_new = np.zeros(len(stamps), dtype=bool)
    is_new[len(stamps) - new_rows :] = True
    # Stored rows (is_new False) first within a key, then the staged ones in file order.
    order = _key_order(user_codes, item_codes, stamps, is_new)
    user_codes, item_codes = user_codes[order], item_codes[order]
    stamps, weights, is_new = stamps[order], weights[order], is_new[order]
    del order
    change = user_codes[1:] != user_codes[:-1]
    change |= item_codes[1:] != item_codes[:-1]
    change |= stamps[1:] != stamps[:-1]
    starts = np.flatnonzero(np.concatenate([[len(stamps) > 0], change]))
    del change
    staged_sum = np.add.reduceat(np.where(is_new, weights, 0.0), starts) if len(starts) else weights
    has_staged = np.add.reduceat(is_new.astype(np.int32), starts) > 0 if len(starts) else is_new
    weight = np.where(has_staged, staged_sum, weights[starts])
    return pa.table(
        {
            "user_id": pa.DictionaryArray.from_arrays(pa.array(user_codes[starts]), users),
            "item_id": pa.DictionaryArray.from_arrays(pa.array(item_codes[starts]), items),
            "timestamp": pa.array(stamps[starts]),
            "weight": pa.array(weight),
        },
        schema=SCHEMA,
    )


def _used_codes(distinct: pa.Array, codes: np.ndarray) -> tuple[pd.Index, np.ndarray]:
    """(the distinct values some row uses, as an Index of strings; the rows' codes into
    them): a dictionary may hold values no row uses, which factorize would not list."""
    used = np.bincount(codes, minlength=len(distinct)) > 0
    if not used.all():
        rank = np.cumsum(used, dtype=np.int64) - 1
        codes = rank.astype(np.int32)[codes]
        distinct = distinct.filter(pa.array(used))
    return pd.Index(distinct.to_pandas(), name=None), codes


def _as_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow columns -> the frame `Store.frame` returns (ids as pandas' `str`)."""
    plain = pa.schema(
        [
            pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f
            for f in table.schema
        ]
    )
    return table.cast(plain).to_pandas()


class InteractionColumns:
    """The Parquet copies of the interactions table in one directory, one per version."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def path(self, version: str) -> Path:
        return self.directory / f"interactions-{version}.parquet"

    def table(self, version: str, columns: list[str] | None = None) -> pa.Table | None:
        """The copy of `version` as Arrow (ids dictionary-encoded), or None if absent."""
        path = self.path(version)
        if not path.exists():
            return None
        try:
            return pq.read_table(path, columns=columns or COLUMNS)
        except (OSError, pa.ArrowInvalid):  # a damaged file is rebuilt by the caller
            return None

    def frame(
        self,
        version: str,
        columns: list[str] | None = None,
        item_ids: Iterable[str] | None = None,
    ) -> pd.DataFrame | None:
        """The copy of `version` as a frame (only rows whose item is in `item_ids` when
        given), or None if there is no such copy."""
        wanted = list(columns or COLUMNS)
        read = wanted if item_ids is None or "item_id" in wanted else [*wanted, "item_id"]
        table = self.table(version, read)
        if table is None:
            return None
        if item_ids is not None:
            ids = table["item_id"].combine_chunks()
            keep_value = pc.is_in(ids.dictionary, value_set=pa.array(list(item_ids), pa.string()))
            mask = keep_value.to_numpy(zero_copy_only=False)[ids.indices.to_numpy()]
            table = table.filter(pa.array(mask)).select(wanted)
        frame = _as_frame(table)
        del table
        # The dictionary-encoded table and the string cast are freed into Arrow's pool
        # (mimalloc), which keeps the pages: at 1M listeners about 1 GB the process would
        # hold beside the frame for the rest of its life. Hand them back now.
        pa.default_memory_pool().release_unused()
        return frame

    def codes(self, version: str) -> CodedPlays | None:
        """The copy of `version` as `CodedPlays` (no id string per row is made), or
        None if there is no such copy."""
        table = self.table(version)
        if table is None:
            return None
        user_ids, user_code = _used_codes(*_sorted_codes(table["user_id"]))
        item_ids, item_code = _used_codes(*_sorted_codes(table["item_id"]))
        coded = CodedPlays(
            user_ids,
            user_code,
            item_ids,
            item_code,
            _numbers(table["timestamp"]).astype(np.int64, copy=False),
            _numbers(table["weight"]).astype(np.float64, copy=False),
        )
        del table
        pa.default_memory_pool().release_unused()  # as in `frame`
        return coded

    def write(self, version: str, table: pa.Table) -> Path:
        """Write `version`'s copy atomically (a reader sees the whole file or none) and
        remove the copies of older versions."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(version)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        pq.write_table(table, partial, row_group_size=ROW_GROUP_ROWS)
        os.replace(partial, path)
        for old in self.directory.glob("interactions-*.parquet"):
            if old != path:
                old.unlink(missing_ok=True)
        return path

    def write_frame(self, version: str, frame: pd.DataFrame) -> Path:
        """Write the copy from a frame of the table as read with SQL."""
        whole = pa.Table.from_pandas(frame[COLUMNS], preserve_index=False)
        return self.write(version, merge_interactions(None, [whole]))
