"""The data contract: what a dataset directory holds, and row-level validation of it.

A dataset is a directory of CSV (optionally gzipped) or Parquet files named after
the tables below. Only `items` is required. Validation never touches the store: it
turns each file into clean rows plus a list of `RowError`s that name file, row and column.
Row numbers are 1-based data rows (the CSV header is not counted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from training.data import MUSIC_KINDS, SPOKEN_KINDS

__all__ = [
    "KINDS",
    "MUSIC_KINDS",
    "SPOKEN_KINDS",
    "SCHEMAS",
    "Column",
    "RowError",
    "ContractError",
    "find_dataset_files",
    "read_table",
    "validate_table",
]

KINDS = MUSIC_KINDS + SPOKEN_KINDS
FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_LANGUAGE = re.compile(r"^[a-z]{2}$")
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


def read_table(path: Path) -> pd.DataFrame:
    """Read a contract file as strings (CSV) or native types (Parquet), blanks as missing."""
    try:
        if path.name.endswith(".parquet"):
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as exc:  # pandas raises many types; the user needs the file and the cause
        raise ContractError([RowError(str(path), None, None, f"cannot read file: {exc}")]) from exc


def _clean(value) -> str | None:
    """A cell as stripped text, None when missing (NaN, None, blank)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    return text or None


def _is_missing(series: pd.Series) -> pd.Series:
    return series.isna() | (series.astype(str).str.strip() == "")


def _convert(series: pd.Series, col: Column) -> tuple[pd.Series, pd.Series, str]:
    """Return (converted values, mask of bad values, reason for bad values)."""
    missing = _is_missing(series)
    text = pd.Series([_clean(v) for v in series.astype(object)], index=series.index, dtype=object)
    if col.type == "str":
        return text, pd.Series(False, index=series.index), ""
    if col.type in ("float", "int"):
        values = pd.to_numeric(text, errors="coerce")
        bad = ~missing & values.isna()
        if col.type == "int":
            bad |= ~missing & values.notna() & (values != np.floor(values.fillna(0)))
            return values, bad, "expected an integer"
        bad |= ~missing & values.notna() & ~np.isfinite(values.astype(float))
        return values, bad, "expected a number"
    if col.type == "bool":
        lowered = text.map(lambda v: v.lower() if isinstance(v, str) else None)
        bad = ~missing & ~lowered.isin(_TRUE | _FALSE | {"true", "false"})
        return (
            lowered.map(lambda v: v in _TRUE if isinstance(v, str) else None),
            bad,
            "expected true/false",
        )
    if col.type == "datetime":
        values = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
        bad = ~missing & values.isna()
        return values.dt.tz_convert(None), bad, "expected a date/time (ISO 8601)"
    if col.type == "kind":
        lowered = text.map(lambda v: v.lower() if isinstance(v, str) else None)
        bad = ~missing & ~lowered.isin(KINDS)
        return lowered, bad, f"unknown kind (expected one of {', '.join(KINDS)})"
    if col.type == "language":
        lowered = text.map(lambda v: v.lower() if isinstance(v, str) else None)
        bad = ~missing & ~lowered.map(lambda v: isinstance(v, str) and bool(_LANGUAGE.match(v)))
        return lowered, bad, "expected an ISO 639-1 language code (two letters)"
    raise ValueError(f"unknown column type {col.type!r}")


def validate_table(
    name: str,
    frame: pd.DataFrame,
    file: str,
    known_items: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, list[RowError]]:
    """Validate one table. Returns (good rows with contract columns, errors).

    `known_items` maps item_id -> kind for everything already valid (this dataset's
    good items plus the store's), for the reference checks of later tables.
    """
    schema = SCHEMAS[name]
    errors: list[RowError] = []
    missing_cols = [c.name for c in schema if c.required and c.name not in frame.columns]
    if missing_cols:
        empty = pd.DataFrame({c.name: pd.Series(dtype=object) for c in schema})
        return empty, [RowError(file, None, c, "required column is missing") for c in missing_cols]

    frame = frame.reset_index(drop=True)
    rows = pd.Series(np.arange(1, len(frame) + 1), index=frame.index)
    bad_rows = pd.Series(False, index=frame.index)
    out = pd.DataFrame(index=frame.index)

    def flag(mask: pd.Series, column: str, reason) -> None:
        nonlocal bad_rows
        for idx in np.flatnonzero(mask.to_numpy()):
            msg = reason(idx) if callable(reason) else reason
            errors.append(RowError(file, int(rows.iloc[idx]), column, msg))
        bad_rows |= mask

    for col in schema:
        if col.name not in frame.columns:
            out[col.name] = col.default
            continue
        values, bad, reason = _convert(frame[col.name], col)
        flag(bad, col.name, lambda i, s=frame[col.name], r=reason: f"{r}, got {s.iloc[i]!r}")
        if col.required:
            flag(_is_missing(frame[col.name]), col.name, "required value is missing")
        if col.default is not None:
            values = values.where(values.notna(), col.default)
        out[col.name] = values

    _check_relations(name, out, file, known_items or {}, flag)
    errors.sort(key=lambda e: (e.row or 0, e.column or ""))
    return out[~bad_rows].reset_index(drop=True), errors


def _check_relations(name, out: pd.DataFrame, file: str, known: dict[str, str], flag) -> None:
    if name == "items":
        dup = out["item_id"].notna() & out.duplicated("item_id", keep="first")
        first_row = out.reset_index().groupby("item_id")["index"].min() + 1
        flag(
            dup,
            "item_id",
            lambda i: (
                f"duplicate item_id {out['item_id'].iloc[i]!r} (first at row {first_row[out['item_id'].iloc[i]]})"
            ),
        )
        shows_here = set(out.loc[out["kind"] == "show", "item_id"])
        shows = shows_here | {i for i, k in known.items() if k == "show"}
        needs_show = (out["kind"] == "episode") & out["show_id"].notna()
        flag(
            needs_show & ~out["show_id"].isin(shows),
            "show_id",
            lambda i: f"unknown show {out['show_id'].iloc[i]!r}",
        )
    elif name == "interactions":
        flag(
            out["item_id"].notna() & ~out["item_id"].isin(known),
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
        flag(
            out["item_id"].notna() & ~out["item_id"].isin(known),
            "item_id",
            lambda i: f"playlist entry with unknown item {out['item_id'].iloc[i]!r}",
        )
        flag(
            out.duplicated(["playlist_id", "position"], keep="first"),
            "position",
            "duplicate (playlist_id, position)",
        )
    elif name == "transcripts":
        kinds = out["item_id"].map(known)
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
