"""What one two-tower fit splits the training data into: who trains and who
validates, which target plays are labels (never edges of the graph the item tower
reads), and the training pairs; plus the data fingerprint its manifest records.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from training.data import InteractionData, id_set
from training.history import EventsByUser, user_histories
from training.item_graph import spoken_events
from training.sampling import sample_listeners

__all__ = [
    "Listeners",
    "Pairs",
    "split_listeners",
    "label_pairs",
    "data_hash",
]


@dataclass
class Listeners:
    """Who trains and who validates (fit step 1)."""

    events: pd.DataFrame  # spoken-word plays, episodes mapped to shows (every listener's)
    target_ev: pd.DataFrame  # ... of the target kind (only the sample's when one is drawn)
    histories: dict[str, dict[str, float]]  # user -> music history, for `listeners`
    listeners: list[str]  # target listeners with music (at most `max_listeners`)
    val_users: set[str]
    music_players: pd.Series  # music item id -> listeners who played it (every listener)
    eligible: int  # target listeners with music before the sample


@dataclass
class Pairs:
    """Training rows: one per (training listener, label item)."""

    users: list[str]
    user: np.ndarray  # row into `users` per pair
    item: np.ndarray  # catalog position per pair
    base: dict[str, torch.Tensor]  # user-tower inputs per training listener
    other_sum: np.ndarray  # per listener: GNN embedding sum/count of other spoken kinds
    other_cnt: np.ndarray
    tgt_sum: np.ndarray  # ... and of graph-side target items
    tgt_cnt: np.ndarray
    log_q: torch.Tensor  # per catalog item: log share of pairs (logQ correction)


def split_listeners(
    data: InteractionData,
    target: str,
    item_kind: str,
    val_fraction: float,
    max_listeners: int,
    seed: int,
    rng: np.random.Generator,
) -> Listeners:
    """Listeners of `target` (plays of `item_kind`) with known music taste (at most `max_listeners`, a seeded
    sample: `training.sampling`), `val_fraction` of them drawn from `rng` to validate.
    Only the sample's music histories are built; the music items' listener counts come
    from every listener."""
    events = spoken_events(data)
    target_ev = events[events["kind"] == item_kind]
    music = data.music_interactions()
    eligible = sorted(id_set(target_ev["user_id"]) & id_set(music["user_id"]))
    if len(eligible) < 4:
        raise ValueError(
            f"need at least 4 users with both music and {target} history to train (found {len(eligible)})"
        )
    listeners, available = sample_listeners(eligible, max_listeners, seed)
    if len(listeners) < available:
        # Labels are drawn for the sample only; the others' plays all feed the graph.
        target_ev = target_ev[target_ev["user_id"].isin(listeners)]
    own = user_histories(music[music["user_id"].isin(listeners)])
    histories = {u: own[str(u)] for u in listeners}
    players = music["item_id"].astype(str).value_counts()  # rows are distinct (user, item)
    n_val = max(1, int(round(val_fraction * len(listeners))))
    val_users = set(rng.choice(listeners, size=n_val, replace=False).tolist())
    return Listeners(events, target_ev, histories, listeners, val_users, players, available)


def label_pairs(
    target_ev: pd.DataFrame, val_users: set[str], share: float, rng: np.random.Generator
) -> set[tuple[str, str]]:
    """(user, item) target pairs of training listeners held out of the graph as labels:
    `share` of each listener's distinct target items, at least one."""
    labels: set[tuple[str, str]] = set()
    by_user = EventsByUser.of(target_ev[~target_ev["user_id"].isin(val_users)], "")
    for user in by_user:  # sorted, as the rng draws in this order
        items = sorted(set(by_user.rows(user)[0]))
        n = max(1, int(round(share * len(items))))
        labels.update((str(user), i) for i in rng.choice(items, size=n, replace=False).tolist())
    return labels


def data_hash(data: InteractionData) -> str:
    """A fingerprint of the interactions (user, item, weight; in id order) and the
    items' kinds: sha256 of pandas' row hashes of the frames sorted by id."""
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(_sorted_plays(data), index=False).values.tobytes())
    h.update(
        pd.util.hash_pandas_object(
            data.items[["item_id", "kind"]].sort_values("item_id"), index=False
        ).values.tobytes()
    )
    return h.hexdigest()[:16]


def _sorted_plays(data: InteractionData) -> pd.DataFrame:
    """(user_id, item_id, weight) of every interaction, stably sorted by user then item:
    the ids as categoricals over the interactions' codes (`InteractionData.codes`),
    which pandas hashes as it hashes the strings themselves, sorted as integers. The
    string sort when some play's item is not an item (it has no row to rank by) or an
    item has no id."""
    item_row, user_code, users = data.codes()
    if (len(item_row) and item_row.min() < 0) or data.items["item_id"].isna().any():
        columns = data.interactions[["user_id", "item_id", "weight"]]
        return columns.sort_values(["user_id", "item_id"])
    item_code, item_ids = pd.factorize(data.items["item_id"], sort=True)  # unique: a rank each
    item_code = item_code[item_row]
    user_code = np.where(user_code < 0, len(users), user_code)  # a missing id sorts last
    order = np.argsort(
        user_code.astype(np.int64) * max(len(item_ids), 1) + item_code, kind="stable"
    )
    user_code = user_code[order]
    return pd.DataFrame(
        {
            "user_id": pd.Categorical.from_codes(
                np.where(user_code == len(users), -1, user_code), categories=users
            ),
            "item_id": pd.Categorical.from_codes(item_code[order], categories=item_ids),
            "weight": data.play_weights()[order],
        }
    )
