"""The cold-start split: hide every target-domain play of a share of the users who
have both music and target history, and ask models about them from music alone."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from training.data import (
    MUSIC_KINDS,
    SPOKEN_KINDS,
    InteractionData,
    UserProfile,
    id_set,
    user_profile,
)
from training.history import user_histories

__all__ = [
    "ColdSplit",
    "cold_user_split",
    "profiles_for",
    "hidden_kinds",
    "COLD_HISTORIES",
    "SPOKEN_KINDS",
]

# What a cold user keeps: "non-target" hides only the target kind's plays (a podcast
# listener new to audiobooks); "music" hides every spoken-word play (a listener with
# no spoken-word history at all, the mission's audiobook case).
COLD_HISTORIES = ("non-target", "music")


def hidden_kinds(target: str) -> tuple[str, ...]:
    """Item kinds whose plays reveal the target domain (episodes reveal their show)."""
    return {"podcast": ("show", "episode"), "audiobook": ("audiobook",)}[target]


@dataclass
class ColdSplit:
    train: InteractionData  # everything except the cold users' target-domain plays
    users: list[UserProfile]  # cold users: music (and other spoken-word) history only
    truth: list[set[str]]  # their hidden target items, aligned with `users`
    eligible: int  # users with both music and target history


def profiles_for(
    data: InteractionData, user_ids: list[str], drop_kinds: tuple[str, ...] = ()
) -> list[UserProfile]:
    """UserProfiles built from `data`, leaving out plays of `drop_kinds`."""
    kinds = data.kind_of()
    inter = data.interactions[data.interactions["user_id"].isin(set(user_ids))]
    kind = inter["item_id"].map(kinds)
    keep = kind.notna() & ~kind.isin(drop_kinds)  # plays of unknown items count nowhere
    is_music = kind.isin(MUSIC_KINDS)
    music = user_histories(inter[keep & is_music])
    spoken = user_histories(inter[keep & ~is_music])
    users = data.users.drop_duplicates("user_id").set_index("user_id")
    return [user_profile(u, music.get(str(u), {}), spoken.get(str(u), {}), users) for u in user_ids]


def _chosen_cold_users(
    eligible: list[str], cold_users, cold_fraction: float, seed: int, target: str
) -> list[str]:
    if cold_users is not None:
        wanted = sorted({str(u) for u in cold_users})
        usable = [u for u in wanted if u in set(eligible)]
        if not usable:
            raise ValueError(
                f"none of the {len(wanted)} listed cold users has both music and {target} history"
            )
        if len(usable) >= len(eligible):
            raise ValueError(
                f"the cold users are all {len(eligible)} users with both music and {target} history: none left to train on"
            )
        return usable
    if not 0 < cold_fraction < 1:
        raise ValueError(f"cold fraction must be between 0 and 1, got {cold_fraction}")
    n_cold = int(round(cold_fraction * len(eligible)))
    if n_cold < 1 or n_cold >= len(eligible):
        raise ValueError(
            f"cannot hold out {cold_fraction:.0%} of {len(eligible)} users with both music and {target} history"
        )
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(eligible, size=n_cold, replace=False).tolist())


def cold_user_split(
    data: InteractionData,
    target: str,
    cold_fraction: float,
    seed: int,
    cold_history: str = "non-target",
    cold_users=None,
) -> ColdSplit:
    """Hide the target history of `cold_fraction` of eligible users (picked with `seed`),
    or of exactly `cold_users` (those of them with both music and target history).

    `cold_history` says what the cold users keep besides music (`COLD_HISTORIES`)."""
    if cold_history not in COLD_HISTORIES:
        raise ValueError(
            f"unknown cold history {cold_history!r}; expected one of {', '.join(COLD_HISTORIES)}"
        )
    target_inter = data.target_interactions(target)
    eligible = sorted(
        id_set(target_inter["user_id"]) & id_set(data.music_interactions()["user_id"])
    )
    cold = _chosen_cold_users(eligible, cold_users, cold_fraction, seed, target)

    kinds = data.kind_of()
    inter = data.interactions
    dropped = hidden_kinds(target) if cold_history == "non-target" else SPOKEN_KINDS
    # Training keeps the cold users' other spoken plays only when they keep them at test time.
    hide = inter["user_id"].isin(set(cold)) & inter["item_id"].map(kinds).isin(dropped)
    train = replace(data, interactions=inter[~hide].reset_index(drop=True))
    truth_frame = target_inter[target_inter["user_id"].isin(set(cold))]
    truth_by_user = {u: set(g["item_id"].astype(str)) for u, g in truth_frame.groupby("user_id")}
    users = profiles_for(data, cold, drop_kinds=dropped)
    return ColdSplit(
        train=train, users=users, truth=[truth_by_user[u] for u in cold], eligible=len(eligible)
    )
