"""The co-listening graph: spoken-word items joined when one listener consumed both.

Nodes are items of a few kinds (by default podcast shows and audiobooks); an
undirected edge joins two items that at least one user consumed (optionally within
a time window of each other), weighted by the number of such users. Edges are
stored in both directions, typed by the kinds of their ends, so a heterogeneous
GNN can pass messages along every pair of kinds:
('show', 'colisten', 'show'), ('show', 'colisten', 'audiobook'),
('audiobook', 'colisten', 'show'), ('audiobook', 'colisten', 'audiobook').

Every catalog item becomes a node, listened to or not, so a brand-new audiobook is
an isolated node whose embedding comes from its own features alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from torch_geometric.data import HeteroData

__all__ = ["ColistenGraph", "build_colisten_graph", "colisten_pairs", "RELATION", "NODE_TYPES"]

RELATION = "colisten"
NODE_TYPES = ("show", "audiobook")


@dataclass
class ColistenGraph:
    """A `HeteroData` plus the item id of every node, in node order per type.

    Node stores carry `x` (content vector or zeros), `has_content` (bool),
    `log_degree` (log1p of the weighted degree) and `num_nodes`; edge stores carry
    `edge_index` and `edge_weight` (co-listening count).
    """

    data: HeteroData
    item_ids: dict[str, list[str]]

    @property
    def node_types(self) -> list[str]:
        return list(self.item_ids)

    @property
    def edge_types(self) -> list[tuple[str, str, str]]:
        return [(s, RELATION, d) for s in self.item_ids for d in self.item_ids]

    @property
    def num_edges(self) -> int:
        return sum(int(self.data[et].edge_index.size(1)) for et in self.edge_types)


def colisten_pairs(
    events: pd.DataFrame, *, max_items_per_user: int = 50, window_seconds: float | None = None
) -> pd.DataFrame:
    """Unordered item pairs (item_a < item_b) with the number of users who consumed both.

    `events` has user_id, item_id and optionally timestamp (epoch seconds, 0 = unknown)
    and weight. A user's repeated plays of one item count once (first play). Users
    with more than `max_items_per_user` items keep their most recent ones, so the cost
    is O(sum over users of min(h, cap)^2) however long the heaviest histories are.
    With `window_seconds`, two items pair only if first played within that many
    seconds of each other (an unknown time pairs with anything).
    """
    missing = {"user_id", "item_id"} - set(events.columns)
    if missing:
        raise ValueError(f"co-listening events need columns {sorted(missing)}")
    ev = events[["user_id", "item_id"]].copy()
    ev["timestamp"] = events["timestamp"].astype("float64") if "timestamp" in events else 0.0
    ev["weight"] = events["weight"].astype("float64") if "weight" in events else 1.0
    ev = ev.groupby(["user_id", "item_id"], as_index=False).agg(
        timestamp=("timestamp", "min"), weight=("weight", "sum")
    )

    # Most recent first (ties: heaviest), then cut each history at the cap.
    ev = ev.sort_values(
        ["user_id", "timestamp", "weight", "item_id"], ascending=[True, False, False, True]
    )
    ev = ev[ev.groupby("user_id").cumcount() < max_items_per_user]

    # Integer codes in string order (so code_a < code_b is item_id_a < item_id_b), and
    # each user's rows contiguous (sorted above).
    codes, items = pd.factorize(ev["item_id"], sort=True)
    users = pd.factorize(ev["user_id"])[0]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(ev) else np.zeros(0, int)
    sizes = np.diff(np.r_[starts, len(ev)])
    timestamps = ev["timestamp"].to_numpy(np.float64)
    keys, counts = [], []
    for first, last in _user_blocks(sizes, PAIRS_PER_BLOCK):
        lo, hi = starts[first], starts[first] + sizes[first:last].sum()
        key = _pair_keys(
            codes[lo:hi], timestamps[lo:hi], sizes[first:last], len(items), window_seconds
        )
        block_keys, block_counts = np.unique(key, return_counts=True)
        keys.append(block_keys)
        counts.append(block_counts)
    key = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    unique, where = np.unique(key, return_inverse=True)
    total = np.bincount(
        where, weights=np.concatenate(counts) if counts else None, minlength=len(unique)
    )
    return pd.DataFrame(
        {
            "item_id_a": items.take(unique // max(len(items), 1)),
            "item_id_b": items.take(unique % max(len(items), 1)),
            "count": total.astype(np.int64),
        }
    )


# Candidate (a, b) rows built at once: users are taken in blocks whose histories give at
# most this many (int64 codes: 128 MiB per array), so memory does not grow with users.
PAIRS_PER_BLOCK = 2**24


def _user_blocks(sizes: np.ndarray, budget: int):
    """(first, last) user ranges whose sum of size² stays within `budget` (at least one user)."""
    cost = np.cumsum(sizes.astype(np.int64) ** 2)
    first = 0
    while first < len(sizes):
        done = cost[first - 1] if first else 0
        last = max(first + 1, int(np.searchsorted(cost, done + budget, side="right")))
        yield first, last
        first = last


def _pair_keys(codes, timestamps, sizes, n_items: int, window_seconds: float | None) -> np.ndarray:
    """a * n_items + b for every ordered pair of items a < b within one user's rows."""
    group_start = np.repeat(np.cumsum(np.r_[0, sizes[:-1]]), sizes)  # per row
    per_row = np.repeat(sizes, sizes)  # partners of each row (its user's rows)
    left = np.repeat(np.arange(len(codes)), per_row)
    offsets = np.arange(len(left)) - np.repeat(np.cumsum(np.r_[0, per_row[:-1]]), per_row)
    right = np.repeat(group_start, per_row) + offsets
    a, b = codes[left].astype(np.int64), codes[right].astype(np.int64)
    keep = a < b
    if window_seconds is not None:
        ta, tb = timestamps[left], timestamps[right]
        keep &= (np.abs(ta - tb) <= window_seconds) | (ta <= 0) | (tb <= 0)
    return a[keep] * n_items + b[keep]


def build_colisten_graph(
    items: pd.DataFrame,
    events: pd.DataFrame,
    content: Mapping[str, np.ndarray] | None = None,
    *,
    node_types: Sequence[str] = NODE_TYPES,
    max_items_per_user: int = 50,
    window_seconds: float | None = None,
) -> ColistenGraph:
    """Build the graph from `items` (item_id, kind) and `events` (user_id, item_id, ...).

    Pass training events only: the graph must not see held-out listening. Items whose
    kind is not in `node_types` are ignored; an event naming an item that is not in
    `items` is an error.
    """
    content = content or {}
    for col in ("item_id", "kind"):
        if col not in items.columns:
            raise ValueError(f"items frame has no column {col!r}")
    nodes = items[items["kind"].isin(node_types)].drop_duplicates("item_id")
    item_ids = {
        t: nodes.loc[nodes["kind"] == t, "item_id"].astype(str).tolist() for t in node_types
    }
    where = {i: (t, p) for t, ids in item_ids.items() for p, i in enumerate(ids)}

    unknown = sorted(set(events["item_id"].astype(str)) - set(where))
    if unknown:
        raise ValueError(
            f"{len(unknown)} co-listening event item(s) are not {'/'.join(node_types)} items, e.g. {unknown[:5]}"
        )
    ev = events.assign(item_id=events["item_id"].astype(str))
    pairs = colisten_pairs(ev, max_items_per_user=max_items_per_user, window_seconds=window_seconds)

    from torch_geometric.data import HeteroData  # here: importing it costs seconds

    data = HeteroData()
    dim = len(next(iter(content.values()))) if content else 0
    for t, ids in item_ids.items():
        x = np.zeros((len(ids), dim), dtype=np.float32)
        has = np.zeros(len(ids), dtype=bool)
        for p, i in enumerate(ids):
            vec = content.get(i)
            if vec is not None:
                x[p] = vec
                has[p] = True
        data[t].x = torch.from_numpy(x)
        data[t].has_content = torch.from_numpy(has)
        data[t].num_nodes = len(ids)

    # Both directions of every pair, grouped by (kind of source, kind of destination).
    type_of = pd.Series({i: t for i, (t, _) in where.items()}, dtype=object)
    pos_of = pd.Series({i: p for i, (_, p) in where.items()}, dtype="int64")
    a_type = pairs["item_id_a"].map(type_of).to_numpy()
    b_type = pairs["item_id_b"].map(type_of).to_numpy()
    a_pos = pairs["item_id_a"].map(pos_of).to_numpy(dtype=np.int64)
    b_pos = pairs["item_id_b"].map(pos_of).to_numpy(dtype=np.int64)
    count = pairs["count"].to_numpy(dtype=np.float32)
    src_t = np.concatenate([a_type, b_type]) if len(pairs) else np.array([], dtype=object)
    dst_t = np.concatenate([b_type, a_type]) if len(pairs) else np.array([], dtype=object)
    src = np.concatenate([a_pos, b_pos])
    dst = np.concatenate([b_pos, a_pos])
    weight = np.concatenate([count, count])
    degree = {t: torch.zeros(len(ids)) for t, ids in item_ids.items()}
    for s in item_ids:
        for d in item_ids:
            keep = (src_t == s) & (dst_t == d)
            order = np.lexsort((src[keep], dst[keep]))  # sorted by destination: CSR-ready
            ei = torch.from_numpy(np.stack([src[keep][order], dst[keep][order]]).astype(np.int64))
            w = torch.from_numpy(weight[keep][order].astype(np.float32))
            data[s, RELATION, d].edge_index = ei.reshape(2, -1)
            data[s, RELATION, d].edge_weight = w
            degree[d].index_add_(0, ei[1], w)
    for t in item_ids:
        data[t].log_degree = torch.log1p(degree[t])
    return ColistenGraph(data=data, item_ids=item_ids)
