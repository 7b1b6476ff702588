"""The spoken-word catalog as the server sees it: item metadata for the rules, the
episodes of every show (newest first), and which items are not recommendable yet
(uploads that have not been scored)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from coldstart.core import tables as t
from coldstart.core.store import Store
from training.data import SPOKEN_KINDS

__all__ = ["Catalog", "SPOKEN_KINDS"]

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


def _published(items: pd.DataFrame) -> np.ndarray:
    """Each item's publication time; the oldest date where it has none."""
    if "published_at" not in items:
        return np.full(len(items), OLDEST.to_datetime64())
    return pd.to_datetime(items["published_at"]).fillna(OLDEST).to_numpy()


def _episodes_by_show(items: pd.DataFrame, ids: list[str], listeners: dict[str, int]) -> dict:
    """show_id -> its episode ids: newest first; among equally dated episodes the most
    listened; then by id."""
    if "show_id" not in items:
        return {}
    shows = items["show_id"].astype(object)
    keep = (items["kind"] == "episode").to_numpy() & shows.notna().to_numpy()
    keep &= (shows.fillna("") != "").to_numpy()
    if not keep.any():
        return {}
    episodes = pd.DataFrame(
        {
            "show": shows[keep].astype(str).to_numpy(),
            "item_id": np.asarray(ids, dtype=object)[keep],
            "published": _published(items)[keep],
        }
    )
    episodes["listeners"] = episodes["item_id"].map(listeners).fillna(0).to_numpy()
    episodes = episodes.sort_values(
        ["show", "published", "listeners", "item_id"],
        ascending=[True, False, False, True],
        kind="stable",
    )
    shows = episodes["show"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, shows[1:] != shows[:-1]])
    runs = np.split(episodes["item_id"].to_numpy(dtype=object), starts[1:])
    return {shows[start]: run.tolist() for start, run in zip(starts, runs, strict=True)}


@dataclass
class Catalog:
    metadata: dict[
        str, dict
    ]  # item_id -> kind, title, language, genre, explicit, show_id, published_at
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
        columns["explicit"] = [bool(v) for v in columns["explicit"]]
        ids = items["item_id"].astype(str).tolist()
        metadata = {
            item_id: dict(zip(METADATA_COLUMNS, values, strict=True))
            for item_id, values in zip(ids, zip(*columns.values(), strict=True), strict=True)
        }
        return cls(metadata, listeners, _episodes_by_show(items, ids, listeners))

    def kind_of(self, item_id: str) -> str | None:
        meta = self.metadata.get(item_id)
        return meta["kind"] if meta else None

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.metadata
