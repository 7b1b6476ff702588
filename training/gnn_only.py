"""Ablation of the two-tower model: the graph embeddings alone (`gnn_only` in the
evaluation harness; never served)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from training.base import Recommender
from training.data import TARGET_KINDS, InteractionData, Ranking, UserProfile
from training.history import EventsByUser
from training.item_graph import ItemGraph, spoken_events
from training.ranking import popularity, top_k
from training.taste import fit_taste
from training.threads import torch_threads
from training.two_tower import TwoTowerConfig

__all__ = ["GNNOnlyRecommender"]


class GNNOnlyRecommender(Recommender):
    """Ablation: the graph embeddings alone. A user's query is the mean GNN embedding
    of their own spoken-word items plus that of the items of their `neighbours`
    nearest training listeners by music taste; items are scored by inner product."""

    name = "gnn_only"

    def __init__(
        self,
        target: str = "audiobook",
        seed: int = 0,
        config: TwoTowerConfig | None = None,
        neighbours: int = 20,
    ) -> None:
        super().__init__(target, seed)
        self.config = replace(config or TwoTowerConfig(), seed=seed)
        self.neighbours = neighbours
        self.kind = TARGET_KINDS[target][0]

    def fit(self, data: InteractionData) -> GNNOnlyRecommender:
        with torch_threads(self.config.torch_threads):
            return self._fit(data)

    def _fit(self, data: InteractionData) -> GNNOnlyRecommender:
        self.taste = fit_taste(data, self.config.taste)
        events = spoken_events(data)
        self.graph, _ = ItemGraph.fit(data, events, self.config)
        pop = popularity(data, self.target)
        self._ids = pop.index.to_numpy(dtype=object)
        self.pop_scores = pop.to_numpy(dtype=np.float64)
        self._item_emb = self.graph.emb[[self.graph.position[str(i)] for i in self._ids]]
        music = data.music_interactions()
        users, taste, hist = [], [], []
        spoken_of = EventsByUser.of(events, "")
        for u, g in music.groupby("user_id"):
            vec, _ = self.taste.user_vector(dict(zip(g["item_id"].astype(str), g["weight"])))
            mean = (
                self.graph.history_mean({i: 1.0 for i in spoken_of.rows(u)[0]})
                if u in spoken_of
                else None
            )
            if vec is not None and mean is not None:
                users.append(u)
                taste.append(vec)
                hist.append(mean)
        self._taste = np.asarray(taste, np.float32).reshape(len(taste), self.taste.dim)
        self._hist = np.asarray(hist, np.float32).reshape(len(hist), self.graph.dim)
        return self

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        vec, unknown = self.taste.user_vector(user.music)
        query = np.zeros(self.graph.dim, np.float32)
        own = self.graph.history_mean(user.spoken)
        if own is not None:
            query += own
        if vec is not None and len(self._taste):
            sims = self._taste @ vec
            top = np.argsort(-sims, kind="stable")[: self.neighbours]
            query += np.average(self._hist[top], axis=0, weights=np.maximum(sims[top], 1e-6))
        if not query.any():
            return top_k(
                self._ids, self.pop_scores, k, exclude, fallback=True, unknown_items=unknown
            )
        return top_k(self._ids, self._item_emb @ query, k, exclude, unknown_items=unknown)
