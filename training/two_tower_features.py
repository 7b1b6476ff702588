"""The two-tower model's features: tower inputs for listeners (music taste, the bag
of music items, demographics, the mean graph embedding of their spoken-word history)
and for catalog items (graph and text embeddings, language, genre, id, popularity),
and the vocabularies and towers built from the training data.

`TwoTowerFeatures` is mixed into `training.two_tower.TwoTowerRecommender`, which
declares the state these methods read and set (vocabularies, graph, dimensions).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from training.data import UserProfile, user_profiles
from training.history import EventsByUser
from training.towers import ItemTower, UserTower, augment_for_search
from training.two_tower_data import Pairs
from training.two_tower_net import TwoTowerNet

__all__ = ["ITEM_KEYS", "USER_KEYS", "TwoTowerFeatures", "vocabulary"]

ITEM_KEYS = ("gnn", "has_gnn", "content", "has_content", "language", "genre", "item_index")
USER_KEYS = ("taste", "country", "language", "age", "gnn_mean", "has_history", "music")


def vocabulary(values) -> dict[str, int]:
    """Category -> index; 0 is reserved for unknown. The distinct values are found
    first (columnar), so only they become strings, not every row."""
    distinct = pd.Series(values).dropna().unique()
    return {v: i + 1 for i, v in enumerate(sorted({str(v) for v in distinct}))}


class TwoTowerFeatures:
    """Tower inputs and the towers themselves (see the module docstring). The state
    below is declared (and documented) by `TwoTowerRecommender.__init__`."""

    config: Any  # TwoTowerConfig
    taste: Any  # TasteModel
    graph: Any  # ItemGraph | None
    net: Any  # TwoTowerNet
    user_tower: UserTower
    item_kind: str
    item_ids: list[str]
    gnn_dim: int
    content_dim: int
    countries: dict[str, int]
    languages: dict[str, int]
    item_languages: dict[str, int]
    genres: dict[str, int]
    music_vocab: dict[str, int]
    id_index: dict[str, int]
    listeners: dict[str, float]
    _label_pairs: set[tuple[str, str]]

    def _user_inputs(
        self, users: Sequence[UserProfile]
    ) -> tuple[dict[str, torch.Tensor], np.ndarray, list[list[str]]]:
        """Tower inputs for request-time profiles: (inputs, usable mask, unknown items)."""
        taste, usable, unknown = self.taste.user_vectors([u.music for u in users])
        gnn = np.zeros((len(users), self.gnn_dim), np.float32)
        has_hist = np.zeros(len(users), bool)
        for r, u in enumerate(users if self.graph is not None else ()):
            mean = self.graph.history_mean(u.spoken)
            if mean is not None:
                gnn[r], has_hist[r], usable[r] = mean, True, True
        inputs = {
            "taste": torch.from_numpy(taste),
            "country": torch.tensor(
                [self.countries.get(str(u.country), 0) for u in users], dtype=torch.long
            ),
            "language": torch.tensor(
                [self.languages.get(str(u.language), 0) for u in users], dtype=torch.long
            ),
            "age": torch.tensor(
                [np.nan if u.age is None else float(u.age) for u in users], dtype=torch.float32
            ),
            "gnn_mean": torch.from_numpy(gnn),
            "has_history": torch.from_numpy(has_hist),
            "music": self._music_bags(users),
        }
        return inputs, usable, unknown

    def _music_bags(self, users: Sequence[UserProfile]) -> torch.Tensor:
        """(users, L) indices of each listener's most played known music items, 0-padded."""
        cap = self.config.max_music_items
        bags = []
        for u in users:
            known = [(w, self.music_vocab[i]) for i, w in u.music.items() if i in self.music_vocab]
            known.sort(key=lambda t: (-t[0], t[1]))
            bags.append([c for _, c in known[:cap]])
        out = np.zeros((len(users), max([len(b) for b in bags] + [1])), np.int64)
        for r, b in enumerate(bags):
            out[r, : len(b)] = b
        return torch.from_numpy(out)

    def _item_inputs(
        self, frame: pd.DataFrame, content: dict[str, np.ndarray]
    ) -> dict[str, torch.Tensor]:
        ids = frame["item_id"].astype(str).tolist()
        cmat = np.zeros((len(ids), self.content_dim), np.float32)
        has_c = np.zeros(len(ids), bool)
        for r, i in enumerate(ids):
            if i in content and self.content_dim:
                cmat[r], has_c[r] = content[i], True
        gnn = np.zeros((len(ids), self.gnn_dim), np.float32)
        has_g = np.zeros(len(ids), bool)
        if self.graph is not None:
            rows = [r for r, i in enumerate(ids) if i not in self.graph.position]
            missing = [ids[r] for r in rows]
            if missing:
                self.graph.embed_new(
                    missing,
                    self.item_kind,
                    cmat[rows] if self.content_dim else np.zeros((len(rows), 0), np.float32),
                )
            pos = [self.graph.position[i] for i in ids]
            gnn = self.graph.emb[pos].astype(np.float32)
            # Only a node with co-listening edges has a graph position worth trusting;
            # the others are placed by the content path (trained via GNN dropout).
            has_g = self.graph.degree[pos] > 0
        lang = frame["language"] if "language" in frame else pd.Series([None] * len(ids))
        genre = frame["genre"] if "genre" in frame else pd.Series([None] * len(ids))
        return {
            "gnn": torch.from_numpy(gnn),
            "has_gnn": torch.from_numpy(np.asarray(has_g, bool)),
            "content": torch.from_numpy(cmat),
            "has_content": torch.from_numpy(has_c),
            "language": torch.tensor(
                [self.item_languages.get(str(v), 0) for v in lang], dtype=torch.long
            ),
            "genre": torch.tensor([self.genres.get(str(v), 0) for v in genre], dtype=torch.long),
            "item_index": torch.tensor([self.id_index.get(i, 0) for i in ids], dtype=torch.long),
            # Items added after training have no listeners yet: 0.
            "popularity": torch.tensor(
                [np.log1p(self.listeners.get(i, 0.0)) for i in ids], dtype=torch.float32
            ),
        }

    def _build_towers(
        self,
        users_frame: pd.DataFrame,
        catalog: pd.DataFrame,
        music_players: pd.Series,
    ) -> None:
        """Vocabularies (demographics, music items for the bag: those with at least
        `music_min_users` listeners in `music_players`, labelled item ids) and the two
        towers."""
        cfg = self.config
        self.countries = vocabulary(users_frame["country"]) if "country" in users_frame else {}
        self.languages = vocabulary(users_frame["language"]) if "language" in users_frame else {}
        self.item_languages = vocabulary(catalog["language"]) if "language" in catalog else {}
        self.genres = vocabulary(catalog["genre"]) if "genre" in catalog else {}

        players = music_players
        self.music_vocab = {
            str(i): c + 1
            for c, i in enumerate(sorted(players.index[players >= cfg.music_min_users].astype(str)))
        }
        # Ids only for items with training labels: an untrained id would be noise.
        order = {i: p for p, i in enumerate(self.item_ids)}
        labelled = sorted({i for _, i in self._label_pairs} & set(order), key=order.get)
        self.id_index = {i: c + 1 for c, i in enumerate(labelled)}
        self.net = self._towers()

    def _towers(self) -> TwoTowerNet:
        cfg = self.config
        user = UserTower(
            self.taste.dim,
            self.gnn_dim,
            len(self.countries),
            len(self.languages),
            cfg.out_dim,
            cfg.hidden,
            n_music=len(self.music_vocab),
            music_dim=cfg.music_dim,
        )
        item = ItemTower(
            self.gnn_dim,
            self.content_dim,
            len(self.item_languages),
            len(self.genres),
            cfg.out_dim,
            cfg.hidden,
            gnn_dropout=cfg.gnn_dropout,
            n_ids=len(self.id_index),
            id_dim=cfg.id_dim,
            id_dropout=cfg.id_dropout,
        )
        return TwoTowerNet(user, item)

    def _get_batch(
        self, pairs: Pairs, b: np.ndarray, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """User-tower outputs and item rows of the pairs `b`."""
        cfg = self.config
        u, i = pairs.user[b], pairs.item[b]
        # Leave-one-out history; half the rows also hide the target kind (cold case).
        keep_tgt = (rng.random(len(b)) >= cfg.history_dropout).astype(np.float32)
        # ... and some hide every spoken kind: music is all the tower sees.
        keep_any = (rng.random(len(b)) >= cfg.spoken_dropout).astype(np.float32)
        keep_tgt *= keep_any
        # (the label item is never part of the history: it is not a graph-side play)
        hist_sum = keep_any[:, None] * pairs.other_sum[u] + keep_tgt[:, None] * pairs.tgt_sum[u]
        hist_cnt = keep_any * pairs.other_cnt[u] + keep_tgt * pairs.tgt_cnt[u]
        gnn_mean = torch.from_numpy(
            (hist_sum / np.maximum(hist_cnt, 1)[:, None]).astype(np.float32)
        )
        ut = torch.from_numpy(u)
        base = pairs.base
        users = self.user_tower(
            base["taste"][ut],
            base["country"][ut],
            base["language"][ut],
            base["age"][ut],
            gnn_mean,
            torch.from_numpy(hist_cnt > 0),
            base["music"][ut],
        )
        return users, torch.from_numpy(i)

    def _validation_profiles(self, data, val_users, events, histories, users_frame):
        spoken, truth = [], []
        spoken_of = EventsByUser.of(events[events["user_id"].isin(val_users)], self.item_kind)
        for u in val_users:
            items, is_tgt = spoken_of.rows(u)
            spoken.append({i: 1.0 for i in items[~is_tgt]})
            truth.append(set(items[is_tgt]))
        music = [histories[u] for u in val_users]
        return user_profiles(val_users, music, spoken, users_frame), truth

    def _score_vectors(
        self, users: torch.Tensor, items: torch.Tensor, popularity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(queries, keys) whose inner product is the logit: u.v / T (+ w * popularity)."""
        if not self.config.item_popularity:
            return users / self.config.temperature, items
        return augment_for_search(
            users, items, popularity, self.user_tower.popularity_weight, self.config.temperature
        )
