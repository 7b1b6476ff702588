"""The serving catalogue as typed columns, for the pipeline's vectorised fast path.

`CatalogColumns` holds, once per load, what the candidate merge and the business
rules read of every recommendable item: a row number per item id, the rank of the id
in sorted order (ties are broken by item id), kind, language, genre and show codes,
the explicit flag, the publication time in integer microseconds, and the newest
episodes of every show as a row matrix. `RuleColumns` adds what one `RulesSettings`
makes of each row (editorial boosts, pin positions). A request then works on small
integer and float arrays of its candidates; Python objects are made only for the `k`
items answered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from coldstart.core.config import RulesSettings
from coldstart.recommend.catalog import ItemMetadata

__all__ = [
    "EPOCH",
    "CatalogColumns",
    "RuleColumns",
    "micros",
    "first_places",
    "sorted_groups",
]

EPOCH = dt.datetime(1970, 1, 1)
_COLUMNS = ("kind", "language", "genre", "explicit", "show_id", "published_at")
_MICRO = dt.timedelta(microseconds=1)
# ScoredItem fields kept per catalogue row (`CatalogColumns.fields`), at most this many rows
FIELDS_KEPT = 131_072


def micros(when: dt.datetime) -> int:
    """A naive UTC datetime as integer microseconds since 1970 (exact, ordered as datetimes)."""
    return (when - EPOCH) // _MICRO


def sorted_groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stable sort permutation of `values`, mask of the first of each value in it)."""
    perm = values.argsort(kind="stable")
    ordered = values[perm]
    first = np.empty(len(ordered), bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return perm, first


def first_places(values: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each distinct value, ascending:
    `np.sort(np.unique(values, return_index=True)[1])`."""
    perm, first = sorted_groups(values)
    return np.sort(perm[first])


def _codes(values: pd.Series, truthy: bool) -> tuple[np.ndarray, dict]:
    """Integer codes of `values`; -1 for None (and for empty strings when `truthy`)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    codes = codes.astype(np.int64)
    table = {value: n for n, value in enumerate(uniques.tolist())}
    if truthy and "" in table:
        codes[codes == table.pop("")] = -1
    return codes, table


class CatalogColumns:
    """Every item of a `Catalog` as one row of typed columns."""

    def __init__(
        self,
        metadata: Mapping[str, dict],
        episodes: Mapping[str, list[str]],
        per_show: int,
    ):
        self.metadata = metadata
        self._fields: dict[int, tuple] = {}
        if isinstance(metadata, ItemMetadata):  # its columns and rows, not a dict per item
            ids = metadata.ids
            frame = pd.DataFrame(
                {c: pd.Series(metadata.columns[c], dtype=object) for c in _COLUMNS}
            )
            self.row_of: dict[str, int] = metadata.row_of
        else:
            ids = list(metadata)
            frame = pd.DataFrame.from_records(
                list(metadata.values()), columns=list(_COLUMNS), coerce_float=False
            )
            self.row_of = dict(zip(ids, range(len(ids))))
        self.ids = np.array(ids, dtype=object)
        # Rank by id: one stable Arrow sort (code point order, as Python compares strings).
        self.id_rank = np.empty(len(ids), np.int64)
        by_id = pc.sort_indices(pa.array(ids, pa.string())).to_numpy()
        self.id_rank[by_id] = np.arange(len(ids))
        self.kind, self.kinds = _codes(frame["kind"], truthy=False)
        # Language: a falsy language (None, "") matches every listener (`language_match`).
        self.language, self.languages = _codes(frame["language"], truthy=True)
        # `genre_diversity` counts any genre that is not None; `boost` only truthy ones.
        self.genre, self.genres = _codes(frame["genre"], truthy=False)
        self.genre_names = frame["genre"].tolist()
        self.explicit = frame["explicit"].fillna(False).astype(bool).to_numpy()
        self.show, self.shows = _codes(frame["show_id"], truthy=True)
        published = pd.to_datetime(frame["published_at"])
        self.has_published = published.notna().to_numpy()
        # Integer microseconds since 1970 (the datetimes are microsecond-exact).
        self.published = np.where(
            self.has_published, published.to_numpy("datetime64[us]").astype(np.int64), 0
        )
        # The same, with the smallest int64 where nothing is published: never within a
        # window of real dates (one comparison pair instead of three masks per request).
        self.published_or_never = np.where(
            self.has_published, self.published, np.iinfo(np.int64).min
        )
        episode = self.kinds.get("episode", -2)
        self.episode_with_show = (self.kind == episode) & (self.show >= 0)
        # What the rules read of a row, one int64 row per item (`ranked.apply_rule_rows`
        # gathers a list's candidates with one index): id rank, language code,
        # explicit, publication time (or never), episode with a show, show and genre codes.
        self.rule_table = np.stack(
            [
                self.id_rank,
                self.language,
                self.explicit,
                self.published_or_never,
                self.episode_with_show,
                self.show,
                self.genre,
            ],
            axis=1,
        ).astype(np.int64)
        # The newest `per_show` episodes of every show, as rows (-1 pads).
        self.episodes = np.full((len(ids), per_show), -1, np.int64)
        for show_id, episode_ids in episodes.items():
            row = self.row_of.get(show_id)
            if row is None:
                continue
            rows = [self.row_of[e] for e in episode_ids[:per_show] if e in self.row_of]
            self.episodes[row, : len(rows)] = rows

    def __len__(self) -> int:
        return len(self.ids)

    def fields(self, row: int) -> tuple:
        """`ScoredItem`'s fields of a row but its score and reasons, in its order
        (item_id, kind, title, language, genre, explicit, show_id, published_at); made
        on a row's first use and kept (the first FIELDS_KEPT rows asked for)."""
        kept = self._fields.get(row)
        if kept is None:
            item_id = self.ids[row]
            meta = self.metadata[item_id]
            kept = (
                item_id,
                meta["kind"],
                meta["title"],
                meta["language"],
                meta["genre"],
                bool(meta["explicit"]),
                meta["show_id"],
                meta["published_at"],
            )
            if len(self._fields) < FIELDS_KEPT:  # bounded: a 1M catalogue has 1.2M rows
                self._fields[row] = kept
        return kept

    def rows(self, item_ids) -> np.ndarray:
        """Rows of `item_ids` (-1 for ids not in the catalogue)."""
        row_of = self.row_of
        if len(item_ids) <= 64:  # a request's few ids: a list is cheaper than an iterator
            return np.array([row_of.get(i, -1) for i in item_ids], np.int64)
        return np.fromiter((row_of.get(i, -1) for i in item_ids), np.int64, len(item_ids))


class RuleColumns:
    """What one `RulesSettings` makes of every catalogue row, computed once."""

    def __init__(self, columns: CatalogColumns, rules: RulesSettings):
        self.rules = rules
        n = len(columns)
        # `editorial_boost`: the item's own boost, plus its (truthy) genre's.
        self.boost = np.zeros(n, np.float64)
        if rules.boosts:
            boosts = pd.Series(rules.boosts, dtype=np.float64)
            own = pd.Series(columns.ids, dtype=object).map(boosts).fillna(0.0).to_numpy()
            genres = pd.Series(columns.genre_names, dtype=object)
            truthy = (genres.notna() & (genres != "")).to_numpy()
            keys = "genre:" + genres[truthy].astype(str)
            by_genre = np.zeros(n, np.float64)
            by_genre[truthy] = keys.map(boosts).fillna(0.0).to_numpy()
            self.boost = own + by_genre
        self.columns = columns
        # `pin`: the position of the item in the configured pins (-1: not pinned).
        self.pin = np.full(n, -1, np.int64)
        for position, item_id in enumerate(rules.pins):
            row = columns.row_of.get(item_id)
            if row is not None:
                self.pin[row] = position
