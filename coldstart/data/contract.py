"""The data contract: what a dataset directory holds, and row-level validation of it.

A dataset is a directory of CSV (optionally gzipped) or Parquet files named after
the tables below. Only `items` is required. Validation never touches the store: it
turns each file into clean rows plus a list of `RowError`s that name file, row and column.
Row numbers are 1-based data rows (the CSV header is not counted).
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from training.data import MUSIC_KINDS, SPOKEN_KINDS

__all__ = [
    "KINDS",
    "MUSIC_KINDS",
    "SPOKEN_KINDS",
    "SCHEMAS",
    "Column",
    "RowError",
    "ContractError",
    "IdSet",
    "find_dataset_files",
    "iter_table",
    "read_table",
    "validate_table",
]

KINDS = MUSIC_KINDS + SPOKEN_KINDS
FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # str | float | int | bool | datetime | kind | language
    required: bool = False
    default: object = None


SCHEMAS: dict[str, list[Column]] = {
    "items": [
        Column("item_id", "str", required=True),
        Column("kind", "kind", required=True),
        Column("title", "str"),
        Column("description", "str"),
        Column("language", "language"),
        Column("genre", "str"),
        Column("show_id", "str"),
        Column("author", "str"),
        Column("audio_path", "str"),
        Column("explicit", "bool", default=False),
        Column("published_at", "datetime"),
    ],
    "interactions": [
        Column("user_id", "str", required=True),
        Column("item_id", "str", required=True),
        Column("weight", "float", default=1.0),
        Column("timestamp", "datetime"),
    ],
    "users": [
        Column("user_id", "str", required=True),
        Column("country", "str"),
        Column("language", "language"),
        Column("age", "float"),
    ],
    "playlists": [
        Column("playlist_id", "str", required=True),
        Column("item_id", "str", required=True),
        Column("position", "int", required=True),
    ],
    # Extension: transcripts a publisher already has, as timed segments.
    "transcripts": [
        Column("item_id", "str", required=True),
        Column("start", "float", required=True),
        Column("end", "float", required=True),
        Column("text", "str", required=True),
    ],
}
LOAD_ORDER = ("items", "users", "interactions", "playlists", "transcripts")


@dataclass(frozen=True)
class RowError:
    file: str
    row: int | None  # 1-based data row; None for file-level problems
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.reason}"


class ContractError(ValueError):
    """A dataset broke the contract. `errors` holds every problem found."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        shown = "\n".join(f"  {e}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} problem(s) in dataset:\n{shown}{more}")


def find_dataset_files(dataset_dir: Path) -> dict[str, Path]:
    """Map table name -> file. Raises ContractError for a missing directory or items file."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise ContractError([RowError(str(dataset_dir), None, None, "not a directory")])
    found: dict[str, Path] = {}
    for name in SCHEMAS:
        candidates = [dataset_dir / f"{name}{suffix}" for suffix in FILE_SUFFIXES]
        present = [p for p in candidates if p.exists()]
        if len(present) > 1:
            raise ContractError(
                [
                    RowError(
                        str(dataset_dir), None, None, f"several files for table '{name}': {present}"
                    )
                ]
            )
        if present:
            found[name] = present[0]
    if "items" not in found:
        raise ContractError(
            [
                RowError(
                    str(dataset_dir),
                    None,
                    None,
                    "no items file (items.csv, items.csv.gz or items.parquet)",
                )
            ]
        )
    return found


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        return next(csv.reader(f), [])


def _arrow_strings(arrow_type):
    if arrow_type in (pa.string(), pa.large_string()):
        return pd.StringDtype("pyarrow")
    return None


def iter_table(path: Path, rows: int | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
    """A contract file in slices of about `rows` rows (all of it at once when None):
    (1-based number of the slice's first data row, frame). CSV columns are read as Arrow
    strings, blanks as missing; Parquet keeps its types. Memory is one slice's."""
    first = 1
    try:
        if path.name.endswith(".parquet"):
            source = pq.ParquetFile(path)
            batches = source.iter_batches(batch_size=rows or max(source.metadata.num_rows, 1))
            header = source.schema_arrow.names
        else:
            header = _csv_header(path)
            batches = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(
                    block_size=max(1 << 20, min(1 << 30, (rows or 1 << 40) * 48))
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in header},
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
        pending = None  # rows read and not yet handed out, as an Arrow table
        for batch in batches:
            table = pa.Table.from_batches([batch])
            pending = table if pending is None else pa.concat_tables([pending, table])
            while rows is not None and pending.num_rows >= rows:
                yield first, pending.slice(0, rows).to_pandas(types_mapper=_arrow_strings)
                first += rows
                pending = pending.slice(rows)
        if pending is not None and (pending.num_rows or first == 1):
            yield first, pending.to_pandas(types_mapper=_arrow_strings)
        elif first == 1:
            yield first, pd.DataFrame({name: pd.Series(dtype=object) for name in header})
    except ContractError:
        raise
    except Exception as exc:  # pyarrow raises many types; the user needs the file and the cause
        raise ContractError([RowError(str(path), None, None, f"cannot read file: {exc}")]) from exc


def read_table(path: Path) -> pd.DataFrame:
    """A whole contract file (see `iter_table`)."""
    return next(iter_table(path, None))[1]


def _text(series: pd.Series) -> pd.Series:
    """Cells as stripped Arrow strings, missing (NA) when blank, NaN or None."""
    if not isinstance(series.dtype, pd.StringDtype):
        objects = series.astype(object)
        series = objects.where(series.notna(), None).map(str, na_action="ignore")
    text = series.astype(pd.StringDtype("pyarrow")).str.strip()
    return text.mask(text == "")


def _as_float(values: pd.Series) -> np.ndarray:
    """Numbers from text, NaN where missing or not a number. Arrow parses a column whose
    every value is a number (or nan/inf, which validation rejects either way) about ten
    times faster than pandas and to the same doubles (`tests/test_ingest.py`); a column
    with any other text goes through pandas, which marks just those values."""
    try:
        parsed = pc.cast(pa.array(values, pa.string(), from_pandas=True), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return parsed.to_numpy(zero_copy_only=False)


def _convert(series: pd.Series, col: Column) -> tuple[pd.Series, pd.Series, pd.Series, str]:
    """(converted values, mask of missing values, mask of bad values, reason for bad
    values), column-wise: no Python object per value."""
    index = series.index
    no = pd.Series(False, index=index)
    if col.type in ("float", "int") and pd.api.types.is_numeric_dtype(series.dtype):
        values = pd.Series(series.to_numpy(dtype="float64", na_value=np.nan), index=index)
        missing = values.isna()
        text = None
    elif col.type == "datetime" and pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = pd.to_datetime(series, utc=True).dt.tz_convert(None)
        return values, values.isna(), no, ""
    else:
        text = _text(series)
        missing = pd.Series(text.isna().to_numpy(dtype=bool), index=index)
    if col.type == "str":
        return text, missing, no, ""
    if col.type in ("float", "int"):
        if text is not None:
            values = pd.Series(_as_float(text), index=index)
        bad = ~missing & values.isna()
        if col.type == "int":
            bad |= ~missing & values.notna() & (values != np.floor(values.fillna(0)))
            return values, missing, bad, "expected an integer"
        bad |= ~missing & values.notna() & ~np.isfinite(values)
        return values, missing, bad, "expected a number"
    assert text is not None  # only numeric columns skip the text form, and they returned
    if col.type == "datetime":
        values = _datetimes(text)
        bad = ~missing & values.isna()
        return values.dt.tz_convert(None), missing, bad, "expected a date/time (ISO 8601)"
    lowered = text.str.lower()
    if col.type == "bool":
        bad = ~missing & ~lowered.isin(sorted(_TRUE | _FALSE)).to_numpy(dtype=bool)
        truth = pd.Series(lowered.isin(sorted(_TRUE)).to_numpy(dtype=bool), index=index)
        return truth.astype(object).where(~missing, None), missing, bad, "expected true/false"
    if col.type == "kind":
        bad = ~missing & ~lowered.isin(KINDS).to_numpy(dtype=bool)
        return lowered, missing, bad, f"unknown kind (expected one of {', '.join(KINDS)})"
    if col.type == "language":
        fits = lowered.str.fullmatch(r"[a-z]{2}").fillna(False).to_numpy(dtype=bool)
        bad = ~missing & ~fits
        return lowered, missing, bad, "expected an ISO 639-1 language code (two letters)"
    raise ValueError(f"unknown column type {col.type!r}")


def _parse_datetimes(text: pd.Series) -> pd.Series:
    """UTC times of stripped text (NaT where missing or unreadable): ISO 8601 with the
    vectorised parser; the rest as the mixed-format parser reads it."""
    values = pd.Series(pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601"))
    retry = (text.notna() & values.isna()).to_numpy(dtype=bool)
    if retry.any():
        mixed = values.astype(object)
        mixed[retry] = pd.to_datetime(
            text[retry].astype(object), errors="coerce", utc=True, format="mixed"
        )
        values = pd.Series(pd.to_datetime(mixed, utc=True))
    return values


def _datetimes(text: pd.Series) -> pd.Series:
    """`_parse_datetimes` of each distinct text once (dictionary-encoded in Arrow), taken
    back to the rows: a column of plays has a few hundred distinct times in 500,000 rows,
    and pandas' own cache of them turns every row into a Python object."""
    ids = pa.array(text, pa.string(), from_pandas=True)
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    encoded = ids.dictionary_encode()
    if not 0 < len(encoded.dictionary) <= len(text) // 2:
        return _parse_datetimes(text)
    distinct = pd.Series(
        encoded.dictionary.to_numpy(zero_copy_only=False), dtype=pd.StringDtype("pyarrow")
    )
    parsed = _parse_datetimes(distinct).array
    rows = encoded.indices.fill_null(-1).to_numpy()
    return pd.Series(parsed.take(rows, allow_fill=True), index=text.index)


def known_kinds(known_items: pd.Series | dict[str, str] | None) -> pd.Series:
    """item_id -> kind as a Series indexed by Arrow strings (from a dict or a Series)."""
    series = (
        known_items
        if isinstance(known_items, pd.Series)
        else pd.Series(known_items or {}, dtype=object)
    )
    return pd.Series(
        series.to_numpy(dtype=object),
        index=pd.Index(series.index.astype(object), dtype=pd.StringDtype("pyarrow")),
        dtype=object,
    )


def validate_table(
    name: str,
    frame: pd.DataFrame,
    file: str,
    known_items: pd.Series | dict[str, str] | None = None,
    first_row: int = 1,
    known_ids: IdSet | None = None,
) -> tuple[pd.DataFrame, list[RowError]]:
    """Validate one table, or one slice of it whose first data row is `first_row`.
    Returns (good rows with contract columns, errors).

    `known_items` maps item_id -> kind (a dict, or a Series indexed by item_id) for
    everything already valid (this dataset's good items plus the store's), for the
    reference checks of later tables; `known_ids`, when given, is the same ids as an
    `IdSet` (hashed once for all the slices of a large file).
    """
    schema = SCHEMAS[name]
    errors: list[RowError] = []
    missing_cols = [c.name for c in schema if c.required and c.name not in frame.columns]
    if missing_cols:
        empty = pd.DataFrame({c.name: pd.Series(dtype=object) for c in schema})
        return empty, [RowError(file, None, c, "required column is missing") for c in missing_cols]

    frame = frame.reset_index(drop=True)
    bad_rows = np.zeros(len(frame), dtype=bool)
    out = pd.DataFrame(index=frame.index)

    def flag(mask, column: str, reason) -> None:
        mask = np.asarray(pd.Series(mask).fillna(False), dtype=bool)
        for idx in np.flatnonzero(mask):
            msg = reason(idx) if callable(reason) else reason
            errors.append(RowError(file, first_row + int(idx), column, msg))
        bad_rows[mask] = True

    for col in schema:
        if col.name not in frame.columns:
            out[col.name] = col.default
            continue
        values, missing, bad, reason = _convert(frame[col.name], col)
        flag(bad, col.name, lambda i, s=frame[col.name], r=reason: f"{r}, got {s.iloc[i]!r}")
        if col.required:
            flag(missing, col.name, "required value is missing")
        if col.default is not None:
            values = values.where(values.notna(), col.default)
        out[col.name] = values

    known = known_items if _is_known(known_items) else known_kinds(known_items)
    _check_relations(name, out, file, known, flag, first_row, known_ids)
    errors.sort(key=lambda e: (e.row or 0, e.column or ""))
    return out[~bad_rows].reset_index(drop=True), errors


def _is_known(value) -> bool:
    return isinstance(value, pd.Series) and isinstance(value.index.dtype, pd.StringDtype)


def _isin(values: pd.Series, allowed) -> pd.Series:
    """`values.isin(allowed)` for id columns, in Arrow: pandas' own Arrow-string `isin`
    turns every allowed id into a Python object, on every slice of a large file."""
    return pd.Series(ids_in(values, allowed), index=values.index)


def ids_in(values, allowed) -> np.ndarray:
    """Which of `values` (ids: a Series, an Index or an array) are in `allowed`, as a
    boolean array, by Arrow's `is_in` (missing ids are not in)."""
    found = pc.is_in(
        pa.array(values, pa.string(), from_pandas=True),
        value_set=pa.array(allowed, pa.string(), from_pandas=True),
    )
    return found.fill_null(False).to_numpy(zero_copy_only=False)


class IdSet:
    """A fixed set of ids hashed once, for the membership checks of many slices (`pc.is_in`
    would hash the whole set again for every slice: 1.25M catalogue ids, 76 slices at
    1M listeners). A slice's ids are dictionary-encoded in Arrow and only its distinct
    ids are looked up (in a pandas Index, whose hash table is built on first use)."""

    def __init__(self, ids) -> None:
        distinct = pc.unique(pa.array(ids, pa.string(), from_pandas=True).drop_null())
        self._index = pd.Index(distinct.to_numpy(zero_copy_only=False), dtype=object)

    def contains(self, values) -> np.ndarray:
        """Which of `values` (a Series, Index or array of ids) are in the set, as a
        boolean array; a missing id is not."""
        ids = pa.array(values, pa.string(), from_pandas=True)
        if isinstance(ids, pa.ChunkedArray):  # a pandas column of several Arrow chunks
            ids = ids.combine_chunks()
        encoded = ids.dictionary_encode()
        distinct = encoded.dictionary.to_numpy(zero_copy_only=False)
        found = np.append(self._index.get_indexer(distinct) >= 0, False)
        return found[encoded.indices.fill_null(len(distinct)).to_numpy()]


def _check_relations(
    name, out: pd.DataFrame, file: str, known: pd.Series, flag, first, known_ids=None
) -> None:
    if name == "items":
        dup = out["item_id"].notna() & out.duplicated("item_id", keep="first")
        if dup.any():
            first_row = out.reset_index().groupby("item_id")["index"].min() + first
            flag(
                dup,
                "item_id",
                lambda i: (
                    f"duplicate item_id {out['item_id'].iloc[i]!r} (first at row {first_row[out['item_id'].iloc[i]]})"
                ),
            )
        shows_here = out.loc[out["kind"] == "show", "item_id"]
        needs_show = (out["kind"] == "episode") & out["show_id"].notna()
        flag(
            needs_show
            & ~_isin(out["show_id"], shows_here)
            & ~_isin(out["show_id"], known.index[known == "show"]),
            "show_id",
            lambda i: f"unknown show {out['show_id'].iloc[i]!r}",
        )
    elif name == "interactions":
        in_catalogue = (
            _isin(out["item_id"], known.index)
            if known_ids is None
            else pd.Series(known_ids.contains(out["item_id"]), index=out.index)
        )
        flag(
            out["item_id"].notna() & ~in_catalogue,
            "item_id",
            lambda i: f"interaction with unknown item {out['item_id'].iloc[i]!r}",
        )
        flag(out["weight"].notna() & (out["weight"] < 0), "weight", "weight must be >= 0")
    elif name == "users":
        flag(
            out["user_id"].notna() & out.duplicated("user_id", keep="first"),
            "user_id",
            lambda i: f"duplicate user_id {out['user_id'].iloc[i]!r}",
        )
        flag(
            out["age"].notna() & ((out["age"] < 0) | (out["age"] > 130)),
            "age",
            "age must be between 0 and 130",
        )
    elif name == "playlists":
        in_catalogue = (
            _isin(out["item_id"], known.index)
            if known_ids is None
            else pd.Series(known_ids.contains(out["item_id"]), index=out.index)
        )
        flag(
            out["item_id"].notna() & ~in_catalogue,
            "item_id",
            lambda i: f"playlist entry with unknown item {out['item_id'].iloc[i]!r}",
        )
        flag(
            out.duplicated(["playlist_id", "position"], keep="first"),
            "position",
            "duplicate (playlist_id, position)",
        )
    elif name == "transcripts":
        # The kinds of the ids named here only (a dict of the whole catalogue would be
        # a Python object per item).
        kinds = (
            out["item_id"].astype(object).map(known[ids_in(known.index, out["item_id"])].to_dict())
        )
        flag(
            out["item_id"].notna() & (kinds != "episode"),
            "item_id",
            lambda i: f"transcript for unknown episode {out['item_id'].iloc[i]!r}",
        )
        flag(
            out["start"].notna() & out["end"].notna() & (out["end"] < out["start"]),
            "end",
            "segment ends before it starts",
        )


def table_names(found: Iterable[str]) -> list[str]:
    return [n for n in LOAD_ORDER if n in set(found)]
