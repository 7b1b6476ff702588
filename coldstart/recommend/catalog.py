"""The spoken-word catalog as the server sees it: item metadata for the rules, the
episodes of every show (newest first), and which items are not recommendable yet
(uploads that have not been scored)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select

from coldstart.core import tables as t
from coldstart.core.store import Store
from training.data import SPOKEN_KINDS

__all__ = ["Catalog", "ItemMetadata", "SPOKEN_KINDS"]

OLDEST = pd.Timestamp(1900, 1, 1)
METADATA_COLUMNS = ("kind", "title", "language", "genre", "explicit", "show_id", "published_at")


def _column_values(items: pd.DataFrame, col: str) -> list:
    """A metadata column as Python values, None where missing (datetimes as
    `datetime.datetime`)."""
    if col not in items:
        return [None] * len(items)
    series = items[col]
    if col == "published_at":
        # datetime64[us] as objects: datetime.datetime, and None for NaT
        stamps = pd.to_datetime(series).to_numpy().astype("datetime64[us]")
        return stamps.astype(object).tolist()
    values = series.astype(object).to_numpy(copy=True)
    values[series.isna().to_numpy()] = None
    return values.tolist()


def _published_micros(published: list) -> np.ndarray:
    """Microseconds since 1970 of `datetime` values; the oldest date where None."""
    stamps = pa.array(published, type=pa.timestamp("us"))
    oldest = pa.scalar(OLDEST.to_datetime64().astype("datetime64[us]"), type=pa.timestamp("us"))
    return pc.fill_null(stamps, oldest).cast(pa.int64()).to_numpy()


def _episodes_by_show(
    ids: list[str], kinds: list, shows: list, published: list, listeners: dict[str, int]
) -> dict[str, list[str]]:
    """show_id -> its episode ids: newest first; among equally dated episodes the most
    listened; then by id. One stable Arrow sort (strings compared in C++, by code point
    as Python compares them), then one split per show."""
    kind = np.asarray(kinds, dtype=object)
    show = np.asarray(shows, dtype=object)
    keep = (kind == "episode") & pd.notna(show)
    keep[keep] = show[keep] != ""
    if not keep.any():
        return {}
    rows = np.flatnonzero(keep)
    episode_ids = np.asarray(ids, dtype=object)[rows]
    table = pa.table(
        {
            "show": pa.array(show[rows].astype(str).tolist(), pa.string()),
            "published": _published_micros([published[r] for r in rows.tolist()]),
            "listeners": np.fromiter(
                (listeners.get(i, 0) for i in episode_ids.tolist()), np.int64, len(rows)
            ),
            "item_id": pa.array(episode_ids.tolist(), pa.string()),
        }
    )
    order = pc.sort_indices(
        table,
        sort_keys=[
            ("show", "ascending"),
            ("published", "descending"),
            ("listeners", "descending"),
            ("item_id", "ascending"),
        ],
    ).to_numpy()
    sorted_shows = np.asarray(table["show"].take(order).to_pylist(), dtype=object)
    starts = np.flatnonzero(np.r_[True, sorted_shows[1:] != sorted_shows[:-1]])
    runs = np.split(episode_ids[order], starts[1:])
    return {sorted_shows[start]: run.tolist() for start, run in zip(starts, runs, strict=True)}


class ItemMetadata(Mapping[str, dict]):
    """item_id -> {kind, title, language, genre, explicit, show_id, published_at}, held
    as one Python list per field (`columns`, in `ids` order); an item's dict is made when
    asked for. A million items load in a second instead of a million dicts (and their
    memory) made at start."""

    def __init__(self, ids: list[str], columns: dict[str, list]) -> None:
        row_of = dict(zip(ids, range(len(ids))))
        if len(row_of) < len(ids):  # a repeated id: its first place, its last values
            keep = list(row_of.values())
            ids = list(row_of)
            columns = {c: [values[r] for r in keep] for c, values in columns.items()}
            row_of = dict(zip(ids, range(len(ids))))
        self.ids = ids
        self.columns = {c: columns[c] for c in METADATA_COLUMNS}
        self.row_of = row_of

    def __getitem__(self, item_id: str) -> dict:
        row = self.row_of[item_id]
        return {c: values[row] for c, values in self.columns.items()}

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.row_of

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Catalog:
    # item_id -> kind, title, language, genre, explicit, show_id, published_at
    metadata: Mapping[str, dict]
    listeners: dict[str, int] = field(default_factory=dict)  # item_id -> distinct listeners
    episodes: dict[str, list[str]] = field(
        default_factory=dict
    )  # show_id -> episode ids, best first

    @classmethod
    def from_store(cls, store: Store) -> Catalog:
        items = store.items(SPOKEN_KINDS)
        # Uploads become recommendable once scored (transcribed, embedded, indexed).
        hidden = store.frame(t.uploads, t.uploads.c.status != "scored", ["item_id"])["item_id"]
        items = items[~items["item_id"].isin(set(hidden))]
        with store.connect() as conn:
            rows = conn.execute(
                select(
                    t.interactions.c.item_id, func.count(func.distinct(t.interactions.c.user_id))
                )
                .join(t.items, t.items.c.item_id == t.interactions.c.item_id)
                .where(t.items.c.kind.in_(SPOKEN_KINDS))
                .group_by(t.interactions.c.item_id)
            ).all()
        return cls.from_frames(items, {str(i): int(n) for i, n in rows})

    @classmethod
    def from_frames(cls, items, listeners: dict[str, int]) -> Catalog:
        """From an items frame (contract columns; spoken-word rows are kept) and listener
        counts. Column operations: a million items take seconds, not a minute."""
        items = items[items["kind"].isin(SPOKEN_KINDS)].reset_index(drop=True)
        columns = {col: _column_values(items, col) for col in METADATA_COLUMNS}
        return cls.from_columns(items["item_id"].astype(str).tolist(), columns, listeners)

    @classmethod
    def from_columns(cls, ids: list[str], columns: dict[str, list], listeners: dict[str, int]):
        """From spoken-word items as Python lists per metadata field (None where missing,
        `published_at` as `datetime.datetime`) and listener counts."""
        columns = {**columns, "explicit": [bool(v) for v in columns["explicit"]]}
        metadata = ItemMetadata(ids, columns)
        episodes = _episodes_by_show(
            metadata.ids,
            metadata.columns["kind"],
            metadata.columns["show_id"],
            metadata.columns["published_at"],
            listeners,
        )
        return cls(metadata, listeners, episodes)

    def ids_of_kind(self, kind: str) -> list[str]:
        """The ids of the items of `kind`, in catalogue order."""
        metadata = self.metadata
        if isinstance(metadata, ItemMetadata):  # its kind column, no dict per item
            return [i for i, k in zip(metadata.ids, metadata.columns["kind"]) if k == kind]
        return [i for i, meta in metadata.items() if meta["kind"] == kind]

    def kind_of(self, item_id: str) -> str | None:
        meta = self.metadata.get(item_id)
        return meta["kind"] if meta else None

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.metadata
