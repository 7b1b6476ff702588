"""The in-memory view of a contract dataset that every model trains on.

`training` never reads the store: `coldstart` loads these frames and hands them over,
so models, baselines and the evaluation harness run on any contract dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.history import sum_per_code_pair

__all__ = [
    "InteractionData",
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


@dataclass
class InteractionData:
    """Frames with the contract's columns (see README, "Data contract")."""

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
                self.interactions, self.items, item_row, (user_code, users), kinds, episodes_to_show
            )
        return cache[name].copy(deep=False)

    def codes(self) -> tuple[np.ndarray, np.ndarray, pd.Index]:
        """(each interaction's row in `items`, -1 for an unknown item; its user's code,
        -1 for a missing id; the user ids sorted, code i is users[i]): computed once per
        pair of frames and shared by every view, so no later pass over the interactions
        has to hash their id strings again."""
        cache = self._views()
        if "item_row" not in cache:
            inter = self.interactions
            # int32 while the ids fit: 4 bytes per interaction each, not 8
            cache["item_row"] = _narrow(item_rows(self.items, inter["item_id"]))
            codes, users = pd.factorize(inter["user_id"], sort=True)
            cache["user_codes"] = (_narrow(codes), users)
        user_code, users = cache["user_codes"]
        return cache["item_row"], user_code, users

    def _views(self) -> dict:
        """The derived views of the current frames (emptied when either is replaced)."""
        key = (id(self.interactions), id(self.items))
        if self._cache_key != key:
            # the frames are held, so their ids cannot be reused while cached
            self._cache, self._cache_key = {"frames": (self.interactions, self.items)}, key
        return self._cache

    def catalog(self, target: str) -> pd.DataFrame:
        return self.items[self.items["kind"].isin(TARGET_KINDS[target])].reset_index(drop=True)


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
        return codes.astype(np.int32)
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
    inter: pd.DataFrame,
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
    user_of, item_of, sums = sum_per_code_pair(
        user_code, code, len(item_ids), inter["weight"].to_numpy(dtype=np.float64)
    )
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
