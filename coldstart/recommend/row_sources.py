"""The pipeline's candidate sources as catalogue rows (its fast path).

`RowSource` asks one ranking source for its best `n` items and answers them as rows of
`CatalogColumns`, with float64 scores, the fallback flag and the listener's unknown
music items, without turning item ids into strings and back on every request:

* a served model with a fast scorer (`fast.ServedScorer`) gives positions into its
  item ids; a table made once per load turns them into catalogue rows;
* a segment popularity model (`fast.PopularityLists`) ranks every listener of a
  segment alike: its rows and scores are kept per (segment, n) for listeners who
  exclude nothing (every new listener);
* any other model answers through its own `recommend`, its ids looked up per request.

The rows, scores and ids are those of the model's own `recommend` (its `top_k` order,
its float32 scores): `tests/test_fast_serving.py` compares the pipeline's answers with
the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from coldstart.recommend.columns import CatalogColumns
from coldstart.recommend.fast import PopularityLists, ServedScorer
from training.data import UserProfile

__all__ = ["RowRanking", "RowSource"]


class RowRanking(NamedTuple):
    rows: np.ndarray  # catalogue rows, best first (-1: not in the catalogue)
    scores: np.ndarray  # float64
    item_ids: np.ndarray  # the model's item ids of the same places (object array)
    fallback: bool
    unknown: list[str]


class RowSource:
    """One ranking source of a list (a model of the list's target, or popularity)."""

    def __init__(self, name: str, model, columns: CatalogColumns, keep_fallback: bool) -> None:
        self.name, self.model, self.keep_fallback = name, model, keep_fallback
        self.columns = columns
        self.rows_of_position: np.ndarray | None = None
        if isinstance(model, ServedScorer) and model.wide is not None:
            self.rows_of_position = columns.rows(model.ids.tolist())
        # (segment, n) -> (rows, scores, ids, fallback) of a popularity model's list
        self.kept: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = {}
        # The same lists by the listener's values of the segment columns and n: a
        # request looks its list up without working out its segment.
        self.segment_fields: tuple[str, ...] = ()
        if isinstance(model, PopularityLists):
            fields = {c for columns in model.model.SEGMENTS for c in columns}
            self.segment_fields = tuple(sorted(fields))
        self.by_fields: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = {}

    def top(self, user: UserProfile, n: int, exclude: Sequence[str]) -> RowRanking:
        model = self.model
        if self.rows_of_position is not None:
            found = model.top(user, n, exclude)
            positions = found.positions
            return RowRanking(
                self.rows_of_position[positions],
                found.scores.astype(np.float64),
                model.ids[positions],
                found.fallback,
                found.unknown,
            )
        if isinstance(model, PopularityLists) and not exclude:
            return self._popularity(model, user, n)
        with torch.inference_mode():  # any model: its own recommend, maybe through torch
            ranking = model.recommend(user, n, exclude)
        ids = np.asarray(ranking.item_ids, dtype=object)
        return RowRanking(
            self.columns.rows(ranking.item_ids),
            np.asarray(ranking.scores, np.float64),
            ids,
            ranking.fallback,
            list(ranking.unknown_items),
        )

    def _popularity(self, lists: PopularityLists, user: UserProfile, n: int) -> RowRanking:
        fitted = lists.model
        # typed: values that compare equal but read differently (1, True) stay apart
        values = (*((type(v), v) for v in map(user.__getattribute__, self.segment_fields)), n)
        kept = self.by_fields.get(values)
        if kept is None:
            kept = self._popularity_list(fitted, user, n)
            if len(self.by_fields) < lists.MAX_LISTS:
                self.by_fields[values] = kept
        rows, scores, ids, fallback = kept
        return RowRanking(rows, scores, ids, fallback, fitted.unknown_items(user))

    def _popularity_list(self, fitted, user: UserProfile, n: int):
        key = (fitted.segment_of(user), n)
        kept = self.kept.get(key)
        if kept is None:
            ranking = fitted.recommend(user, n)
            kept = (
                self.columns.rows(ranking.item_ids),
                np.asarray(ranking.scores, np.float64),
                np.asarray(ranking.item_ids, dtype=object),
                ranking.fallback,
            )
            for array in kept[:3]:
                array.flags.writeable = False  # shared by every listener of the segment
            if len(self.kept) < PopularityLists.MAX_LISTS:
                self.kept[key] = kept
        return kept
