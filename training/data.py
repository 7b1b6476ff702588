"""The in-memory view of a contract dataset that every model trains on.

`training` never reads the store: `coldstart` loads these frames and hands them over,
so models, baselines and the evaluation harness run on any contract dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from training.history import sum_per_code_pair

__all__ = [
    "InteractionData",
    "CodedPlays",
    "UserProfile",
    "Ranking",
    "TARGET_KINDS",
    "MUSIC_KINDS",
    "SPOKEN_KINDS",
    "episodes_to_shows",
    "episode_shows",
    "user_profile",
    "user_profiles",
    "id_set",
    "item_rows",
]

MUSIC_KINDS = ("artist", "track")
SPOKEN_KINDS = ("show", "episode", "audiobook")
# What each evaluation target ranks. Episode plays count towards their show.
TARGET_KINDS = {"podcast": ("show",), "audiobook": ("audiobook",)}


class CodedPlays(NamedTuple):
    """The interactions as typed columns, the ids as int32 codes: code i of a column is
    the i-th of its distinct ids (`user_ids`, `item_ids`: every one used by some row, in
    sorted order, as `pd.factorize(ids, sort=True)` lists them; no id is missing). 24
    bytes per interaction, against about 53 for the frame with string ids."""

    user_ids: pd.Index
    user_code: np.ndarray
    item_ids: pd.Index
    item_code: np.ndarray
    timestamp: np.ndarray
    weight: np.ndarray

    def frame(self) -> pd.DataFrame:
        """The frame with the contract's columns these codes stand for: the same frame,
        dtypes included, as the columnar copy's string read (`tests/test_training_data_codes.py`)."""

        def strings(ids: pd.Index, code: np.ndarray) -> pd.arrays.ArrowStringArray:
            return pd.array(pa.array(ids.array).take(pa.array(code)), dtype=ids.dtype)

        return pd.DataFrame(
            {
                "user_id": strings(self.user_ids, self.user_code),
                "item_id": strings(self.item_ids, self.item_code),
                "timestamp": self.timestamp,
                "weight": self.weight,
            }
        )


@dataclass
class InteractionData:
    """Frames with the contract's columns (see README, "Data contract").

    `interactions` may be given as `CodedPlays`: the derived views and codes are then
    computed from the codes, and the frame with string ids is made only when something
    reads `interactions` (taste and affinity never do)."""

    items: pd.DataFrame
    interactions: pd.DataFrame
    users: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["user_id", "country", "language", "age"])
    )
    playlists: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["playlist_id", "item_id", "position"])
    )
    # item_id -> normalised content vector, for items that have text (may be empty).
    content: dict[str, np.ndarray] = field(default_factory=dict)
    # Views derived from the frames (`_derived`), keyed by the frames' identities.
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _cache_key: tuple | None = field(default=None, init=False, repr=False, compare=False)
    # What `interactions` holds: the frame, or the codes it is made from when first read.
    _plays: pd.DataFrame | CodedPlays | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)  # the derived views are not shipped to other processes
        state.update(_cache={}, _cache_key=None)
        return state

    def kind_of(self) -> pd.Series:
        return self.items.set_index("item_id")["kind"]

    def target_interactions(self, target: str) -> pd.DataFrame:
        """Interactions mapped onto the target's catalog (episode plays -> their show),
        summed per (user_id, item_id), sorted by both."""
        kinds = TARGET_KINDS[target]
        return self._derived(f"target:{target}", kinds, episodes_to_show=target == "podcast")

    def music_interactions(self) -> pd.DataFrame:
        """Music plays summed per (user_id, item_id), sorted by both."""
        return self._derived("music", MUSIC_KINDS)

    def _derived(
        self, name: str, kinds: tuple[str, ...], episodes_to_show: bool = False
    ) -> pd.DataFrame:
        """`_sum_per_user_item` of the frames, once per pair of frames (computed again
        when `interactions` or `items` is replaced by another frame); the interactions'
        item rows and user codes are shared by every view. Callers get a shallow copy:
        under pandas' copy-on-write their edits never reach the cached frame."""
        cache = self._views()
        if name not in cache:
            item_row, user_code, users = self.codes()
            cache[name] = _sum_per_user_item(
                self.play_weights(),
                self.items,
                item_row,
                (user_code, users),
                kinds,
                episodes_to_show,
            )
        return cache[name].copy(deep=False)

    def codes(self) -> tuple[np.ndarray, np.ndarray, pd.Index]:
        """(each interaction's row in `items`, -1 for an unknown item; its user's code,
        -1 for a missing id; the user ids sorted, code i is users[i]): computed once per
        pair of frames and shared by every view, so no later pass over the interactions
        has to hash their id strings again."""
        cache = self._views()
        if "item_row" not in cache:
            plays = self._source()
            if isinstance(plays, CodedPlays):  # an id's row looked up once per distinct id
                rows = item_rows(self.items, pd.Series(plays.item_ids))[plays.item_code]
                codes, users = plays.user_code, plays.user_ids
            else:
                rows = item_rows(self.items, plays["item_id"])
                codes, users = pd.factorize(plays["user_id"], sort=True)
            # int32 while the ids fit: 4 bytes per interaction each, not 8
            cache["item_row"] = _narrow(rows)
            cache["user_codes"] = (_narrow(codes), users)
        user_code, users = cache["user_codes"]
        return cache["item_row"], user_code, users

    def _views(self) -> dict:
        """The derived views of the current frames (emptied when either is replaced)."""
        key = (id(self._plays), id(self.items))
        if self._cache_key != key:
            # the frames are held, so their ids cannot be reused while cached
            self._cache, self._cache_key = {"frames": (self._plays, self.items)}, key
        return self._cache

    def _source(self) -> pd.DataFrame | CodedPlays:
        """The frame or the codes `interactions` was given (set by `__init__`)."""
        assert self._plays is not None
        return self._plays

    def play_weights(self) -> np.ndarray:
        """Each interaction's weight as float64, without making the frame."""
        plays = self._source()
        if isinstance(plays, CodedPlays):
            return plays.weight.astype(np.float64, copy=False)
        return plays["weight"].to_numpy(dtype=np.float64)

    def play_columns(self, rows: np.ndarray) -> dict:
        """user_id, weight and timestamp (when there is one) of the interactions at
        `rows`, as the frame's `take(rows).array` gives them, without making the frame."""
        plays = self._source()
        if not isinstance(plays, CodedPlays):
            names = ["user_id", "weight", *(["timestamp"] if "timestamp" in plays else [])]
            return {c: plays[c].take(rows).array for c in names}
        _, user_code, users = self.codes()
        return {
            "user_id": users.take(user_code[rows]).array,
            "weight": pd.arrays.NumpyExtensionArray(plays.weight[rows]),
            "timestamp": pd.arrays.NumpyExtensionArray(plays.timestamp[rows]),
        }

    def interaction_count(self) -> int:
        plays = self._source()
        return len(plays.weight) if isinstance(plays, CodedPlays) else len(plays)

    def catalog(self, target: str) -> pd.DataFrame:
        return self.items[self.items["kind"].isin(TARGET_KINDS[target])].reset_index(drop=True)


def _interactions(self: InteractionData) -> pd.DataFrame:
    plays = self._plays
    if isinstance(plays, CodedPlays):
        frame = plays.frame()
        kept = self._cache_key == (id(plays), id(self.items))
        self._plays = frame
        if kept:  # the views and codes stand for the same rows: keep them
            self._cache["frames"] = (frame, self.items)
            self._cache_key = (id(frame), id(self.items))
        return frame
    assert plays is not None
    return plays


def _set_interactions(self: InteractionData, value: pd.DataFrame | CodedPlays) -> None:
    self._plays = value


# A property over the field: `InteractionData(items, interactions)` and
# `dataclasses.replace(data, interactions=...)` set it as before.
InteractionData.interactions = property(_interactions, _set_interactions)  # type: ignore[assignment,method-assign]


@dataclass(frozen=True)
class UserProfile:
    """What is known about a listener at request time."""

    user_id: str
    music: dict[str, float]  # music item_id -> weight (plays)
    spoken: dict[str, float] = field(default_factory=dict)  # spoken-word history; empty when cold
    country: str | None = None
    language: str | None = None
    age: float | None = None


@dataclass
class Ranking:
    """A ranked list for one user. `fallback` is True when the model could not use the
    user's history (e.g. no known music) and answered with popularity instead."""

    item_ids: list[str]
    scores: np.ndarray
    fallback: bool = False
    unknown_items: list[str] = field(default_factory=list)


def id_set(ids: pd.Series) -> set[str]:
    """The distinct ids of a column as a set: the column's own unique (columnar) first,
    so only distinct values become Python strings (not one per row)."""
    return set(ids.dropna().unique().tolist())


def _narrow(codes: np.ndarray) -> np.ndarray:
    """Row positions or codes as int32 when every value fits (else as they are)."""
    if len(codes) and codes.max() < np.iinfo(np.int32).max:
        return codes.astype(np.int32, copy=False)
    return codes


def item_rows(items: pd.DataFrame, item_ids: pd.Series) -> np.ndarray:
    """Each id's row in `items` (-1: not an item), by one hash lookup per interaction."""
    index = pd.Index(items["item_id"])
    if not index.is_unique:
        raise ValueError("items: item_id must be unique (found repeated ids)")
    return index.get_indexer(item_ids)


def _counted_items(
    items: pd.DataFrame, kinds: tuple[str, ...], episodes_to_show: bool
) -> tuple[np.ndarray, pd.Index]:
    """(code of the id each item's plays count under, -1 when they count for none of
    `kinds`; those ids, sorted: code i is id i). With `episodes_to_show` an episode's
    plays count under its show_id, as a show."""
    kind = items["kind"]
    counted = items["item_id"]
    if episodes_to_show:
        episode = (kind == "episode").to_numpy(dtype=bool, na_value=False)
        counted = counted.where(~episode, items["show_id"])
        kind = kind.where(~episode, "show")
    codes, ids = pd.factorize(counted, sort=True)
    codes = codes.astype(np.int64)
    codes[~kind.isin(kinds).to_numpy(dtype=bool, na_value=False)] = -1
    return codes, ids


def _sum_per_user_item(
    weight: np.ndarray,
    items: pd.DataFrame,
    item_row: np.ndarray,
    user_codes: tuple[np.ndarray, pd.Index],
    kinds: tuple[str, ...],
    episodes_to_show: bool = False,
) -> pd.DataFrame:
    """The interactions whose item is of one of `kinds` (with `episodes_to_show`: an
    episode play counts as a play of its show), weights summed per (user_id, item_id)
    and sorted by both. The same frame as merging `items` in and grouping by the two
    string ids (`tests/test_training_data.py` compares them), computed over integer
    codes: one gather per interaction, then `sum_per_code_pair`."""
    item_codes, item_ids = _counted_items(items, kinds, episodes_to_show)
    user_code, user_ids = user_codes
    code = np.where(item_row >= 0, item_codes[item_row], -1)
    user_of, item_of, sums = sum_per_code_pair(user_code, code, len(item_ids), weight)
    return pd.DataFrame(
        {
            "user_id": user_ids.take(user_of).array,
            "item_id": item_ids.take(item_of).array,
            "weight": sums,
        }
    )


def episodes_to_shows(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` (columns item_id, kind, show_id) in which every episode row
    stands for its show: item_id := show_id, kind := "show". Episode plays count for
    their show everywhere (popularity, histories, the co-listening graph)."""
    frame = frame.copy()
    episodes = frame["kind"] == "episode"
    frame.loc[episodes, "item_id"] = frame.loc[episodes, "show_id"]
    frame.loc[episodes, "kind"] = "show"
    return frame


def episode_shows(items: pd.DataFrame) -> dict[str, str]:
    """episode id -> show id, for episodes that name their show."""
    episodes = items[items["kind"] == "episode"].dropna(subset=["show_id"])
    return dict(zip(episodes["item_id"].astype(str), episodes["show_id"].astype(str)))


def _known(users: pd.DataFrame | None, user_id: str, column: str):
    if users is None or column not in users.columns or user_id not in users.index:
        return None
    value = users.at[user_id, column]
    return None if pd.isna(value) else value


def user_profiles(
    user_ids: Sequence[str],
    music: Sequence[dict[str, float]],
    spoken: Sequence[dict[str, float]] | None = None,
    users: pd.DataFrame | None = None,
) -> list[UserProfile]:
    """`user_profile` of each listener (aligned lists), the demographics read in one
    reindex of `users` instead of a lookup per listener and column."""
    ids = list(user_ids)
    known = None if users is None else users.reindex(ids)
    columns = [
        [None if pd.isna(v) else v for v in known[c].tolist()]
        if known is not None and c in known.columns
        else [None] * len(ids)
        for c in ("country", "language", "age")
    ]
    spoken = [{}] * len(ids) if spoken is None else spoken
    return [
        UserProfile(str(u), m, s or {}, country, language, age)
        for u, m, s, country, language, age in zip(ids, music, spoken, *columns)
    ]


def user_profile(
    user_id: str,
    music: dict[str, float],
    spoken: dict[str, float] | None = None,
    users: pd.DataFrame | None = None,
) -> UserProfile:
    """A listener's profile: music and spoken-word history, and the demographics
    `users` (the users frame indexed by user_id, one row per user) knows."""
    return UserProfile(
        str(user_id),
        music,
        spoken or {},
        _known(users, user_id, "country"),
        _known(users, user_id, "language"),
        _known(users, user_id, "age"),
    )
