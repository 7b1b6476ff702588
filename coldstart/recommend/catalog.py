"""The spoken-word catalog as the server sees it: item metadata for the rules, the
episodes of every show (newest first), and which items are not recommendable yet
(uploads that have not been scored)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import func, select

from coldstart.core import tables as t
from coldstart.core.store import Store
from training.data import SPOKEN_KINDS

__all__ = ["Catalog", "SPOKEN_KINDS"]

METADATA_COLUMNS = ("kind", "title", "language", "genre", "explicit", "show_id", "published_at")


def _clean(value):
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


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
        """From an items frame (contract columns; spoken-word rows are kept) and listener counts."""
        items = items[items["kind"].isin(SPOKEN_KINDS)]
        metadata = {
            str(row["item_id"]): {col: _clean(row.get(col)) for col in METADATA_COLUMNS}
            for row in items.to_dict("records")
        }
        for meta in metadata.values():
            meta["explicit"] = bool(meta["explicit"])
        episodes: dict[str, list[str]] = {}
        oldest = dt.datetime(1900, 1, 1)
        for item_id, meta in metadata.items():
            if meta["kind"] == "episode" and meta["show_id"]:
                episodes.setdefault(meta["show_id"], []).append(item_id)
        for ids in episodes.values():
            # Newest first; among equally dated episodes the most listened; then id.
            ids.sort(
                key=lambda i: (
                    -(metadata[i]["published_at"] or oldest).timestamp(),
                    -listeners.get(i, 0),
                    i,
                )
            )
        return cls(metadata, listeners, episodes)

    def kind_of(self, item_id: str) -> str | None:
        meta = self.metadata.get(item_id)
        return meta["kind"] if meta else None

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.metadata
