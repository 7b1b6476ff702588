"""The in-memory view of a contract dataset that every model trains on.

`training` never reads the store: `coldstart` loads these frames and hands them over,
so models, baselines and the evaluation harness run on any contract dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

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

    def kind_of(self) -> pd.Series:
        return self.items.set_index("item_id")["kind"]

    def target_interactions(self, target: str) -> pd.DataFrame:
        """Interactions mapped onto the target's catalog (episode plays -> their show)."""
        kinds = TARGET_KINDS[target]
        inter = self.interactions.merge(self.items[["item_id", "kind", "show_id"]], on="item_id")
        if target == "podcast":
            inter = episodes_to_shows(inter)
        inter = inter[inter["kind"].isin(kinds) & inter["item_id"].notna()]
        return inter.groupby(["user_id", "item_id"], as_index=False)["weight"].sum()

    def music_interactions(self) -> pd.DataFrame:
        inter = self.interactions.merge(self.items[["item_id", "kind"]], on="item_id")
        inter = inter[inter["kind"].isin(MUSIC_KINDS)]
        return inter.groupby(["user_id", "item_id"], as_index=False)["weight"].sum()

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
