"""The spoken-word side of 2T-HGNN: co-listening events, the training graph, and
the trained item encoder with every show's and audiobook's GNN embedding.

`ItemGraph` is what request-time code needs from the graph: the mean embedding of
a listener's spoken-word history, and an embedding for an item added after
training (computed from its own features, no edges).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from graph import NODE_TYPES, ColistenGraph, ItemEncoder, build_colisten_graph
from graph.fit import embed_nodes, fit_item_encoder
from training.data import InteractionData, episode_shows

if TYPE_CHECKING:
    from training.two_tower import TwoTowerConfig

__all__ = ["ItemGraph", "spoken_events", "training_graph"]


def spoken_events(data: InteractionData) -> pd.DataFrame:
    """Plays of shows and audiobooks (episode plays count for their show): the rows of
    merging `items` into the interactions by id and mapping episodes to their show
    (`tests/test_training_data.py` compares them), found by the interactions' item rows
    (`InteractionData.codes`): one gather per play, no pass over the id strings."""
    item_row, _, _ = data.codes()
    items = data.items
    kind = items["kind"]
    episode = (kind == "episode").to_numpy(dtype=bool, na_value=False)
    counted = items["item_id"].where(~episode, items["show_id"])  # the id a play counts for
    kind = kind.where(~episode, "show")
    spoken = kind.isin(NODE_TYPES).to_numpy(dtype=bool, na_value=False) & counted.notna().to_numpy()
    keep = item_row >= 0
    keep[keep] = spoken[item_row[keep]]
    rows = np.flatnonzero(keep)
    at = item_row[rows]
    played = data.play_columns(rows)  # user_id, weight and timestamp when there is one
    columns = {
        "user_id": played.pop("user_id"),
        "item_id": counted.take(at).array,
        "kind": kind.take(at).array,
        "weight": played.pop("weight"),
        **played,
    }
    return pd.DataFrame(columns)


def training_graph(
    data: InteractionData, events: pd.DataFrame, cfg: TwoTowerConfig
) -> ColistenGraph:
    """The co-listening graph of `events` (from `spoken_events` of the training split)
    over every show and audiobook of `data`, with `data.content` as node features."""
    items = data.items[data.items["kind"].isin(NODE_TYPES)]
    window = None if cfg.window_days is None else cfg.window_days * 86400.0
    return build_colisten_graph(
        items,
        events,
        data.content,
        max_items_per_user=cfg.max_items_per_user,
        window_seconds=window,
    )


class ItemGraph:
    """The trained item encoder and the GNN embedding of every show and audiobook.

    Keeps what request-time code needs: `history_mean(spoken)` for a profile, and
    `embed_new(...)` to place an item that has no edges from its features alone.
    """

    def __init__(
        self,
        encoder: ItemEncoder,
        node_ids: list[str],
        emb: np.ndarray,
        degree: np.ndarray,
        episode_show: dict[str, str],
    ) -> None:
        self.encoder = encoder
        self.node_ids = node_ids
        self.emb = emb
        self.degree = degree
        self.episode_show = episode_show
        self.position = {i: p for p, i in enumerate(node_ids)}

    @classmethod
    def fit(
        cls, data: InteractionData, events: pd.DataFrame, cfg: TwoTowerConfig
    ) -> tuple[ItemGraph, dict]:
        graph = training_graph(data, events, cfg)
        encoder, history = fit_item_encoder(
            graph, replace(cfg.gnn, seed=cfg.seed), progress=cfg.progress
        )
        emb = embed_nodes(encoder, graph)
        node_ids = [i for t in graph.node_types for i in graph.item_ids[t]]
        matrix = torch.cat([emb[t] for t in graph.node_types]).numpy()
        degree = torch.cat([graph.data[t].log_degree for t in graph.node_types]).numpy()
        ep_show = episode_shows(data.items)
        stats = {
            "graph_edges": graph.num_edges,
            "graph_nodes": len(node_ids),
            "gnn": history.as_dict(),
        }
        return cls(encoder, node_ids, matrix, degree, ep_show), stats

    @property
    def dim(self) -> int:
        return int(self.emb.shape[1])

    def rows(self, spoken: dict[str, float]) -> list[int]:
        rows = {self.position.get(self.episode_show.get(str(i), str(i))) for i in spoken}
        return sorted(r for r in rows if r is not None)

    def history_mean(self, spoken: dict[str, float]) -> np.ndarray | None:
        rows = self.rows(spoken)
        return self.emb[rows].mean(0) if rows else None

    @torch.no_grad()
    def embed_new(self, item_ids: list[str], kind: str, content: np.ndarray) -> np.ndarray:
        """GNN embeddings for items with no edges (content rows may be zero)."""
        has = torch.from_numpy(np.abs(content).sum(1) > 0)
        n = len(item_ids)
        big = self.encoder.inputs[kind].num_ids  # past the id table: content path only
        n_id = {
            t: torch.full((n if t == kind else 0,), big, dtype=torch.long)
            for t in self.encoder.node_types
        }
        dim = (
            self.encoder.inputs[kind].content.in_features
            if self.encoder.inputs[kind].content is not None
            else 0
        )
        x = {
            t: (torch.from_numpy(content[:, :dim]).float() if t == kind else torch.zeros(0, dim))
            for t in self.encoder.node_types
        }
        hc = {
            t: (has if t == kind else torch.zeros(0, dtype=torch.bool))
            for t in self.encoder.node_types
        }
        deg = {t: torch.zeros(n if t == kind else 0) for t in self.encoder.node_types}
        ei = {et: torch.empty(2, 0, dtype=torch.long) for et in self.encoder.edge_types}
        ew = {et: torch.empty(0) for et in self.encoder.edge_types}
        out = self.encoder.eval()(n_id, x, hc, deg, ei, ew)[kind].numpy()
        for i in item_ids:
            self.position[i] = len(self.node_ids)
            self.node_ids.append(i)
        self.emb = np.concatenate([self.emb, out])
        self.degree = np.concatenate([self.degree, np.zeros(n, np.float32)])
        return out

    def state(self) -> dict:
        return {
            "encoder_args": {
                "num_nodes": {t: m.num_ids for t, m in self.encoder.inputs.items()},
                "edge_types": [list(et) for et in self.encoder.edge_types],
                "content_dim": 0
                if self.encoder.inputs[self.encoder.node_types[0]].content is None
                else self.encoder.inputs[self.encoder.node_types[0]].content.in_features,
                "hidden": self.encoder.skip[self.encoder.node_types[0]].in_features,
                "out_dim": self.encoder.skip[self.encoder.node_types[0]].out_features,
                "use_ids": self.encoder.inputs[self.encoder.node_types[0]].ids is not None,
                "id_dropout": self.encoder.id_dropout,
            },
            "encoder": self.encoder.state_dict(),
            "node_ids": self.node_ids,
            "emb": torch.from_numpy(self.emb),
            "degree": torch.from_numpy(self.degree),
            "episode_show": self.episode_show,
        }

    @classmethod
    def from_state(cls, state: dict) -> ItemGraph:
        args = dict(state["encoder_args"])
        args["edge_types"] = [tuple(et) for et in args["edge_types"]]
        encoder = ItemEncoder(**args)
        encoder.load_state_dict(state["encoder"])
        return cls(
            encoder.eval(),
            list(state["node_ids"]),
            state["emb"].numpy(),
            state["degree"].numpy(),
            dict(state["episode_show"]),
        )
