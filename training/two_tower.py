"""2T-HGNN: a GNN over co-listening feeding a two-tower retriever (De Nadai et al., WWW 2024).

Why: a listener with no audiobook history still has music taste and, often,
podcasts. A heterogeneous GraphSAGE over the show/audiobook co-listening graph
places every spoken-word item near the items its audience also plays; the user
tower turns music taste, demographics and the mean graph embedding of whatever
spoken-word items the user did play into one 128-d vector; the item tower turns
an item's graph embedding, text embedding, language and genre into another.
Retrieval is an inner product (faiss IndexFlatIP), and the user vector is computed
at request time, so a new listener needs no retraining.

fit(), top to bottom:
1. taste vectors (training.taste) and a validation share of the target's listeners;
2. the co-listening graph of the training split (validation users' target plays
   left out) and the item encoder trained by link prediction (graph.fit);
3. user/item features; the user's graph history is leave-one-out (the item being
   predicted is never part of it) and drops the target kind half of the time, so
   the tower learns both the warm case and the cold one the harness asks about;
4. the towers trained with in-batch negatives and a logQ popularity correction
   (plus a learned log-popularity prior added to the logit), early-stopped on
   validation NDCG@k from music + non-target history;
5. item vectors for the whole catalog into a faiss index.

Ablations: `use_gnn=True` (the GNN item encoder; off by default, since it adds
nothing measurable on the demo world or the Douban dev users) and
`GNNOnlyRecommender` (score = graph embedding similarity to the user's own
spoken-word items and to those of their music-taste neighbours).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from graph import ItemTower, UserTower, augment_for_search, in_batch_softmax
from graph.fit import GNNConfig
from training.base import Recommender
from training.blend import ScoreBlend, choose_blend, validation_sample
from training.cross_domain import WidePart, fit_wide, served_blend_metrics
from training.data import TARGET_KINDS, InteractionData, Ranking, UserProfile, user_profile
from training.history import EventsByUser, target_matrix
from training.item_graph import ItemGraph, spoken_events
from training.metrics import per_user_metric
from training.ranking import popularity, top_k
from training.splits import hidden_kinds
from training.taste import TasteConfig, TasteModel, fit_taste
from training.threads import torch_threads

__all__ = ["TwoTowerConfig", "TwoTowerRecommender", "GNNOnlyRecommender"]

CHECKPOINT_FILE = "two_tower.pt"
CHECKPOINT_META_FILE = "two_tower.json"
ITEM_KEYS = ("gnn", "has_gnn", "content", "has_content", "language", "genre", "item_index")
USER_KEYS = ("taste", "country", "language", "age", "gnn_mean", "has_history", "music")
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class TwoTowerConfig:
    # The GNN item encoder is a switch, off by default: on the demo world and on the
    # Douban dev users the towers without it score the same (docs/audiobooks.md).
    use_gnn: bool = False
    gnn: GNNConfig = field(default_factory=GNNConfig)
    taste: TasteConfig = field(default_factory=TasteConfig)
    out_dim: int = 128
    hidden: int = 256
    # Small batches: audiobook pairs are few, and more steps beat more in-batch
    # negatives here (demo world NDCG@10 0.322 at 256 vs 0.372 at 64, 3 seeds).
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-5
    max_epochs: int = 40
    patience: int = 5
    early_stopping: str = "ndcg"  # the validation metric (training.metrics.METRICS, per-user)
    temperature: float = 0.1
    logq: bool = True  # popularity correction of in-batch negatives
    # Score += w * log1p(training listeners), w learned: an item-popularity prior
    # kept out of the 128-d directions (so similar_items is not about popularity).
    item_popularity: bool = True
    gnn_dropout: float = 0.3  # item tower: share of rows trained without the GNN input
    # Ablations, off by default (`music_dim`, `id_dim` > 0 turn them on):
    # - the raw music history as a learned bag over music items played by at least
    #   `music_min_users` listeners (each listener's `max_music_items` most played),
    #   next to the taste vector;
    # - a learned id vector for every item with training labels, dropped for
    #   `id_dropout` of rows so items without one (new, unplayed) are placed from features.
    # Neither helped on the dev seeds (100-102), audiobook target, music-only cold users
    # (NDCG@10 of the served blend): demo world 0.309 with both against 0.320 without;
    # Douban the same 0.1576 on seed 100, where the blend gives the towers no weight.
    music_dim: int = 0
    music_min_users: int = 2
    max_music_items: int = 200
    id_dim: int = 0
    id_dropout: float = 0.2
    history_dropout: float = 0.5  # share of rows whose history hides the target kind
    # Share of rows whose whole spoken-word history is hidden (every kind): the tower
    # must work for a listener with music only, the mission's audiobook case.
    spoken_dropout: float = 0.5
    # Share of each training listener's target plays used as labels (at least one); the
    # rest build the co-listening graph and the listener's history, so no label pair is
    # ever an edge of the graph the item tower reads.
    label_share: float = 0.5
    # Serve a blend of the towers, a wide cross-domain ridge over the music history and
    # popularity, with weights chosen on validation users (training.blend).
    blend: bool = True
    # Validation users: half judge early stopping, the other half the blend weights
    # (a blend judged on the users that picked the epoch would flatter the towers).
    val_fraction: float = 0.2
    val_k: int = 10
    max_items_per_user: int = 50
    window_days: float | None = None
    seed: int = 0
    progress: bool = False
    # Small sparse ops lose badly to thread hand-off on a shared CPU (measured: fit
    # 36 s with 2 threads vs 2.4 s with 1 on a loaded 2-core box); None keeps torch's.
    torch_threads: int | None = 1

    @classmethod
    def from_dict(cls, data: dict) -> "TwoTowerConfig":
        data = dict(data)
        gnn = data.pop("gnn", {})
        gnn["fanouts"] = tuple(gnn.get("fanouts", GNNConfig.fanouts))
        taste = TasteConfig(**data.pop("taste", {}))
        known = {f.name for f in fields(cls)}
        return cls(
            gnn=GNNConfig(**gnn), taste=taste, **{k: v for k, v in data.items() if k in known}
        )


def _vocab(values) -> dict[str, int]:
    """Category -> index; 0 is reserved for unknown."""
    return {
        v: i + 1
        for i, v in enumerate(sorted({str(v) for v in values if v is not None and not pd.isna(v)}))
    }


@dataclass
class _Listeners:
    """Who trains and who validates (fit step 1)."""

    events: pd.DataFrame  # spoken-word plays, episodes mapped to shows
    target_ev: pd.DataFrame  # ... of the target kind
    histories: dict[str, dict[str, float]]  # user -> music history
    listeners: list[str]  # target listeners with music
    val_users: set[str]


@dataclass
class _Pairs:
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


class TwoTowerRecommender(Recommender):
    name = "two_tower"

    def __init__(
        self, target: str = "audiobook", seed: int = 0, config: TwoTowerConfig | None = None
    ) -> None:
        super().__init__(target, seed)
        self.config = replace(config or TwoTowerConfig(), seed=seed)
        if self.config.use_gnn:
            self.name = "two_tower_gnn"
        self.kind = TARGET_KINDS[target][0]
        self.metrics: dict = {}

    # --- features ------------------------------------------------------------------

    def _user_inputs(
        self, users: Sequence[UserProfile]
    ) -> tuple[dict[str, torch.Tensor], np.ndarray, list[list[str]]]:
        """Tower inputs for request-time profiles: (inputs, usable mask, unknown items)."""
        taste = np.zeros((len(users), self.taste.dim), np.float32)
        gnn = np.zeros((len(users), self.gnn_dim), np.float32)
        has_hist = np.zeros(len(users), bool)
        usable = np.zeros(len(users), bool)
        unknown = []
        for r, u in enumerate(users):
            vec, missing = self.taste.user_vector(u.music)
            unknown.append(missing)
            if vec is not None:
                taste[r], usable[r] = vec, True
            if self.graph is not None:
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
                    self.kind,
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

    # --- training ------------------------------------------------------------------

    def fit(self, data: InteractionData) -> "TwoTowerRecommender":
        with torch_threads(self.config.torch_threads):
            return self._fit(data)

    def _fit(self, data: InteractionData) -> "TwoTowerRecommender":
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.taste: TasteModel = fit_taste(data, cfg.taste)
        split = self._split_listeners(data, rng)
        catalog = self._catalog_frame(data, split.val_users)
        graph_stats = self._fit_graph(data, split, rng)
        users_frame = data.users.drop_duplicates("user_id").set_index("user_id")
        self._build_towers(users_frame, catalog, split.histories)
        items_in = self._item_inputs(catalog, data.content)
        pairs = self._training_pairs(split, users_frame)
        val, blend_val = self._validation_halves(data, split, users_frame, rng)
        history, best = self._train(pairs, items_in, val, rng)

        self.user_tower.load_state_dict(best[2][0])
        self.item_tower.load_state_dict(best[2][1])
        self._catalog = catalog
        self._index_items(items_in)
        self.metrics = {
            f"val_{cfg.early_stopping}@{cfg.val_k}": best[0],
            "best_epoch": best[1],
            "epochs": len(history),
            "train_pairs": int(len(pairs.user)),
            "train_users": len(pairs.users),
            "val_users": len(split.val_users),
            "catalog": len(self.item_ids),
            "content_items": int(items_in["has_content"].sum()),
            "history": history,
            **graph_stats,
        }
        self.data_hash = _data_hash(data)
        self.blend = None
        if cfg.blend:
            profiles, truth = blend_val
            keep = validation_sample(np.arange(len(profiles)), cfg.seed)  # at most MAX_BLEND_USERS
            profiles, truth = [profiles[i] for i in keep], [truth[i] for i in keep]
            blend_music_only = [replace(p, spoken={}) for p in profiles]
            self._fit_blend(
                split.listeners,
                split.histories,
                split.target_ev,
                profiles + blend_music_only,
                truth + truth,
            )
        return self

    # --- fit, step by step -------------------------------------------------------

    def _split_listeners(self, data: InteractionData, rng: np.random.Generator) -> "_Listeners":
        """Listeners of the target with known music taste; some are kept for validation."""
        events = spoken_events(data)
        target_ev = events[events["kind"] == self.kind]
        music = data.music_interactions()
        histories = {
            u: dict(zip(g["item_id"].astype(str), g["weight"])) for u, g in music.groupby("user_id")
        }
        listeners = sorted(set(target_ev["user_id"]) & set(histories))
        if len(listeners) < 4:
            raise ValueError(
                f"need at least 4 users with both music and {self.target} history to train (found {len(listeners)})"
            )
        n_val = max(1, int(round(self.config.val_fraction * len(listeners))))
        val_users = set(rng.choice(listeners, size=n_val, replace=False).tolist())
        self.val_users = sorted(val_users)
        return _Listeners(events, target_ev, histories, listeners, val_users)

    def _catalog_frame(self, data: InteractionData, val_users: set[str]) -> pd.DataFrame:
        """Catalog, best-known first; popularity is also the answer when nothing is known.
        Popularity (a feature and the fallback) counts training pairs only: the
        validation users' target plays are the answers early stopping is judged on."""
        pop = popularity(data, self.target)
        self.item_ids = [str(i) for i in pop.index]
        self.pop_scores = pop.to_numpy(dtype=np.float64)
        counted = popularity(_without_target_plays(data, val_users, self.target), self.target)
        self.listeners = {str(i): float(np.floor(v)) for i, v in counted.items()}
        self.content_dim = len(next(iter(data.content.values()))) if data.content else 0
        return (
            data.catalog(self.target)
            .drop_duplicates("item_id")
            .set_index("item_id")
            .loc[self.item_ids]
            .reset_index()
        )

    def _fit_graph(
        self, data: InteractionData, split: "_Listeners", rng: np.random.Generator
    ) -> dict:
        """Label pairs, and the co-listening graph + item encoder (when `use_gnn`).

        Each training listener's target plays are split: `label_share` of them become
        training labels, the rest feed the graph and the listener's history. The graph
        never holds a (user, item) pair that is a label, nor the validation users'
        target plays (the answers early stopping is judged on)."""
        events = split.events
        label_pairs = _label_pairs(split.target_ev, split.val_users, self.config.label_share, rng)
        is_label = pd.MultiIndex.from_frame(events[["user_id", "item_id"]].astype(str)).isin(
            label_pairs
        )
        graph_events = events[
            ~(events["user_id"].isin(split.val_users) & (events["kind"] == self.kind)) & ~is_label
        ]
        self._label_pairs = label_pairs  # for the leak tests; not saved
        self._graph_pairs = set(
            zip(graph_events["user_id"].astype(str), graph_events["item_id"].astype(str))
        )
        self.graph, graph_stats = (None, {})
        if self.config.use_gnn:
            self.graph, graph_stats = ItemGraph.fit(data, graph_events, self.config)
        self.gnn_dim = self.graph.dim if self.graph is not None else 0
        return graph_stats

    def _build_towers(
        self,
        users_frame: pd.DataFrame,
        catalog: pd.DataFrame,
        histories: dict[str, dict[str, float]],
    ) -> None:
        """Vocabularies (demographics, music items for the bag, labelled item ids) and
        the two towers."""
        cfg = self.config
        self.countries = _vocab(users_frame["country"]) if "country" in users_frame else {}
        self.languages = _vocab(users_frame["language"]) if "language" in users_frame else {}
        self.item_languages = _vocab(catalog["language"]) if "language" in catalog else {}
        self.genres = _vocab(catalog["genre"]) if "genre" in catalog else {}

        players = pd.Series([i for h in histories.values() for i in h], dtype=object).value_counts()
        self.music_vocab = {
            str(i): c + 1
            for c, i in enumerate(sorted(players.index[players >= cfg.music_min_users].astype(str)))
        }
        # Ids only for items with training labels: an untrained id would be noise.
        order = {i: p for p, i in enumerate(self.item_ids)}
        labelled = sorted({i for _, i in self._label_pairs} & set(order), key=order.get)
        self.id_index = {i: c + 1 for c, i in enumerate(labelled)}
        self.user_tower, self.item_tower = self._towers()

    def _training_pairs(self, split: "_Listeners", users_frame: pd.DataFrame) -> "_Pairs":
        """Training rows: one per (listener, label item) pair, with each listener's
        graph history kept as sums so a batch can drop parts of it."""
        position = {i: p for p, i in enumerate(self.item_ids)}
        spoken_of = EventsByUser.of(split.events, self.kind)
        label_pairs = self._label_pairs
        train_users = [u for u in split.listeners if u not in split.val_users]
        profiles = [user_profile(u, split.histories[u], {}, users_frame) for u in train_users]
        base, _, _ = self._user_inputs(profiles)
        # Per user: sum/count of GNN embeddings of other-kind items and of target items.
        other_sum = np.zeros((len(train_users), self.gnn_dim), np.float32)
        other_cnt = np.zeros(len(train_users), np.float32)
        tgt_sum = np.zeros_like(other_sum)
        tgt_cnt = np.zeros_like(other_cnt)
        pair_user, pair_item = [], []
        for r, u in enumerate(train_users):
            items, is_tgt = spoken_of.rows(u)
            tgt = sorted(set(items[is_tgt]) & position.keys())
            labels = [i for i in tgt if (str(u), i) in label_pairs]
            pair_user += [r] * len(labels)
            pair_item += [position[i] for i in labels]
            if self.graph is not None:
                other = self.graph.rows({i: 1.0 for i in items[~is_tgt]})
                mine = self.graph.rows({i: 1.0 for i in tgt if (str(u), i) not in label_pairs})
                other_sum[r], other_cnt[r] = self.graph.emb[other].sum(0), len(other)
                tgt_sum[r], tgt_cnt[r] = self.graph.emb[mine].sum(0), len(mine)
        pair_user, pair_item = np.asarray(pair_user), np.asarray(pair_item)
        # logQ: in-batch sampling follows pair frequency, so Q(item) = its share of pairs.
        counts = np.bincount(pair_item, minlength=len(self.item_ids)).astype(np.float64)
        log_q = torch.from_numpy(np.log(np.maximum(counts, 1.0) / counts.sum()).astype(np.float32))
        return _Pairs(
            train_users, pair_user, pair_item, base, other_sum, other_cnt, tgt_sum, tgt_cnt, log_q
        )

    def _validation_halves(self, data, split: "_Listeners", users_frame, rng: np.random.Generator):
        """Validation users split in two: ((profiles, truth) judging early stopping,
        (profiles, truth) judging the blend weights)."""
        all_profiles, all_truth = self._validation_profiles(
            data, sorted(split.val_users), split.events, split.histories, users_frame
        )
        halves = rng.permutation(len(all_profiles)) % 2 == 0
        val_profiles = [p for p, h in zip(all_profiles, halves) if h]
        val_truth = [t for t, h in zip(all_truth, halves) if h]
        blend_profiles = [p for p, h in zip(all_profiles, halves) if not h]
        blend_truth = [t for t, h in zip(all_truth, halves) if not h]
        return (val_profiles, val_truth), (blend_profiles, blend_truth)

    def _train(
        self, pairs: "_Pairs", items_in: dict[str, torch.Tensor], val, rng: np.random.Generator
    ):
        """Epochs of in-batch softmax, early-stopped on validation NDCG: (history, best)."""
        cfg = self.config
        optimiser = torch.optim.AdamW(
            [*self.user_tower.parameters(), *self.item_tower.parameters()],
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
        )
        best = (-1.0, -1, None)
        history = []
        for epoch in tqdm(range(cfg.max_epochs), desc="two-tower", disable=not cfg.progress):
            losses = self._train_epoch(pairs, items_in, optimiser, rng)
            score = self._estimate_metric(items_in, *val)
            history.append(
                {
                    "epoch": epoch,
                    "loss": float(np.mean(losses)) if losses else 0.0,
                    f"val_{cfg.early_stopping}": score,
                }
            )
            if score > best[0]:
                best = (
                    score,
                    epoch,
                    copy.deepcopy((self.user_tower.state_dict(), self.item_tower.state_dict())),
                )
            elif epoch - best[1] >= cfg.patience:
                break
        return history, best

    def _train_epoch(
        self, pairs: "_Pairs", items_in, optimiser, rng: np.random.Generator
    ) -> list[float]:
        cfg = self.config
        self.user_tower.train()
        self.item_tower.train()
        perm = rng.permutation(len(pairs.user))
        losses = []
        for start in range(0, len(perm), cfg.batch_size):
            b = perm[start : start + cfg.batch_size]
            if len(b) < 2:
                continue
            users, it = self._get_batch(pairs, b, rng)
            items = self.item_tower(*(items_in[k][it] for k in ITEM_KEYS))
            queries, keys = self._score_vectors(users, items, items_in["popularity"][it])
            loss = in_batch_softmax(
                queries,
                keys,
                temperature=1.0,
                log_q=pairs.log_q[it] if cfg.logq else None,
                key_ids=it,
            )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        return losses

    def _get_batch(
        self, pairs: "_Pairs", b: np.ndarray, rng: np.random.Generator
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

    def _estimate_metric(
        self, items_in, profiles: list[UserProfile], truth: list[set[str]]
    ) -> float:
        """Early stopping on the test-time task: validation users ranked from music
        and non-target history, all target items scored. Judged on both cold cases:
        music + other spoken kinds, and music only."""
        k = self.config.val_k
        metric = per_user_metric(self.config.early_stopping)
        self._index_items(items_in)
        music_only = [replace(p, spoken={}) for p in profiles]
        ranked = [r.item_ids for r in self._search(profiles + music_only, k, (), blend=False)]
        return float(np.mean([metric(r, t, k) for r, t in zip(ranked, truth + truth)]))

    def _towers(self) -> tuple[UserTower, ItemTower]:
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
        return user, item

    def _fit_wide(self, listeners, histories, target_ev) -> WidePart:
        """Wide part (ridge + popularity) by k-fold over every listener with music."""
        y = target_matrix(target_ev[["user_id", "item_id"]], listeners, self.item_ids)
        counts = np.floor(self.pop_scores)  # all training listeners: each fold's own plays come out
        music_items = sorted({i for h in histories.values() for i in h})
        return fit_wide(
            [histories[u] for u in listeners],
            y,
            counts,
            music_items,
            self.config.seed,
            k=self.config.val_k,
        )

    def _fit_blend(self, listeners, histories, target_ev, val_profiles, val_truth) -> None:
        """The towers' weight next to the wide part on the blend-validation users (both
        cold cases), whose wide scores are out of fold: the ridge that scored them never
        saw them."""
        self.wide = self._fit_wide(listeners, histories, target_ev)
        y = target_matrix(target_ev[["user_id", "item_id"]], listeners, self.item_ids)
        counts = np.floor(self.pop_scores)
        row = {u: r for r, u in enumerate(listeners)}
        position = {i: p for p, i in enumerate(self.item_ids)}
        truth = [{position[i] for i in t if i in position} for t in val_truth]
        wide = self.wide.held_out(
            [row[p.user_id] for p in val_profiles], [p.music for p in val_profiles]
        )
        sources = {"wide": wide, "towers": self._tower_scores(val_profiles)}
        self.blend = choose_blend(sources, truth, self.config.val_k)
        # Two copies per validation user (both cold cases): count their own plays once.
        own = np.asarray(y[[row[p.user_id] for p in val_profiles]].sum(axis=0)).ravel() / 2
        self.metrics.update(
            served_blend_metrics(self.blend, self.wide, self.config.val_k, counts, own, truth)
        )

    @torch.no_grad()
    def _tower_scores(self, users: Sequence[UserProfile]) -> np.ndarray:
        """The towers' logit for every catalog item ([users x catalog])."""
        vecs, _, _ = self.user_vectors(users)
        queries, keys = self._score_vectors(
            torch.from_numpy(vecs),
            torch.from_numpy(self.item_vectors),
            self._items_in["popularity"],
        )
        return queries.numpy() @ keys.numpy().T

    def _validation_profiles(self, data, val_users, events, histories, users_frame):
        profiles, truth = [], []
        spoken_of = EventsByUser.of(events[events["user_id"].isin(val_users)], self.kind)
        for u in val_users:
            items, is_tgt = spoken_of.rows(u)
            spoken = {i: 1.0 for i in items[~is_tgt]}
            profiles.append(user_profile(u, histories[u], spoken, users_frame))
            truth.append(set(items[is_tgt]))
        return profiles, truth

    # --- serving ---------------------------------------------------------------------

    def _score_vectors(
        self, users: torch.Tensor, items: torch.Tensor, popularity: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(queries, keys) whose inner product is the logit: u.v / T (+ w * popularity)."""
        if not self.config.item_popularity:
            return users / self.config.temperature, items
        return augment_for_search(
            users, items, popularity, self.user_tower.popularity_weight, self.config.temperature
        )

    @torch.no_grad()
    def _index_items(self, items_in: dict[str, torch.Tensor]) -> None:
        """Item vectors (eval mode) into an exact inner-product faiss index.

        `item_vectors` are the 128-d item-tower outputs; the index holds them with the
        popularity coordinate appended (when `item_popularity`)."""
        self.item_tower.eval()
        self._items_in = items_in
        vecs = self.item_tower(*(items_in[k] for k in ITEM_KEYS))
        self.item_vectors = np.ascontiguousarray(vecs.numpy().astype(np.float32))
        _, keys = self._score_vectors(vecs[:1], vecs, items_in["popularity"])
        keys = np.ascontiguousarray(keys.numpy().astype(np.float32))
        self.index = faiss.IndexFlatIP(keys.shape[1])
        self.index.add(keys)
        self._ids = np.asarray(self.item_ids, dtype=object)

    @torch.no_grad()
    def user_vectors(
        self, users: Sequence[UserProfile]
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """(128-d user vectors, usable mask, unknown music items), computed now."""
        self.user_tower.eval()
        x, usable, unknown = self._user_inputs(users)
        vecs = self.user_tower(*(x[k] for k in USER_KEYS))
        return np.ascontiguousarray(vecs.numpy().astype(np.float32)), usable, unknown

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        return self._search([user], k, exclude)[0]

    def recommend_batch(self, users: Sequence[UserProfile], k: int = 10) -> list[Ranking]:
        return self._search(users, k, ())

    def _search(
        self, users: Sequence[UserProfile], k: int, exclude: Sequence[str], blend: bool = True
    ) -> list[Ranking]:
        if not users:
            return []
        if blend and getattr(self, "blend", None) is not None:
            return self._blended(users, k, exclude)
        with torch_threads(self.config.torch_threads):
            vecs, usable, unknown = self.user_vectors(users)
            with torch.no_grad():
                queries, _ = self._score_vectors(
                    torch.from_numpy(vecs), torch.from_numpy(self.item_vectors[:1]), torch.zeros(1)
                )
            queries = np.ascontiguousarray(queries.numpy().astype(np.float32))
            # Items with identical inputs tie exactly; searching past the cut-off and
            # breaking ties by catalog position keeps rankings independent of `k`.
            depth = min(len(self.item_ids), 2 * (max(int(k), 0) + len(exclude)) + 16)
            scores, rows = self.index.search(queries, max(depth, 1))
        out = []
        for r in range(len(users)):
            if not usable[r]:  # nothing known about this listener: popularity, flagged
                out.append(
                    top_k(
                        self._ids,
                        self.pop_scores,
                        k,
                        exclude,
                        fallback=True,
                        unknown_items=unknown[r],
                    )
                )
                continue
            hit = rows[r] >= 0
            order = np.argsort(rows[r][hit], kind="stable")
            found, found_scores = rows[r][hit][order], scores[r][hit][order]
            out.append(top_k(self._ids[found], found_scores, k, exclude, unknown_items=unknown[r]))
        return out

    def _blended(
        self, users: Sequence[UserProfile], k: int, exclude: Sequence[str]
    ) -> list[Ranking]:
        """Rank the whole catalog by the validation-chosen blend (served path)."""
        with torch_threads(self.config.torch_threads):
            _, usable, unknown = self.user_vectors(users)
            towers = self._tower_scores(users)
        wide = self.wide.scores([u.music for u in users])
        wide = np.hstack(
            [wide, np.zeros((len(users), towers.shape[1] - wide.shape[1]))]
        )  # items added since
        scores = self.blend.apply({"wide": wide, "towers": towers})
        known_music = self.wide.encoder.known_counts([u.music for u in users]) > 0
        out = []
        for r in range(len(users)):
            if not (usable[r] or known_music[r]):
                out.append(
                    top_k(
                        self._ids,
                        self.pop_scores,
                        k,
                        exclude,
                        fallback=True,
                        unknown_items=unknown[r],
                    )
                )
            else:
                out.append(top_k(self._ids, scores[r], k, exclude, unknown_items=unknown[r]))
        return out

    def similar_items(self, item_id: str, k: int = 10) -> list[str]:
        """Nearest catalog items to `item_id` by cosine of item-tower vectors (itself left out)."""
        self._check_known(item_id)
        row = self.item_ids.index(item_id)
        # Cosine in the 128-d space only: the popularity coordinate is not similarity.
        sims = self.item_vectors @ self.item_vectors[row]
        sims[row] = -np.inf
        order = np.argsort(-sims, kind="stable")[:k]
        return [self.item_ids[r] for r in order]

    def add_items(
        self, items: pd.DataFrame, content: Mapping[str, np.ndarray] | None = None
    ) -> list[str]:
        """Make new target items (no listeners yet) retrievable from text and metadata.

        `items` has item_id (and optionally language, genre); `content` maps item_id ->
        content vector. Their GNN embedding comes from their own features with no
        edges, and the item tower places them. Returns the ids added.
        """
        content = content or {}
        new = items[~items["item_id"].astype(str).isin(set(self.item_ids))].drop_duplicates(
            "item_id"
        )
        if new.empty:
            return []
        for i, vec in content.items():
            if self.content_dim and len(vec) != self.content_dim:
                raise ValueError(
                    f"content vector of {i!r} has {len(vec)} dims; the model expects {self.content_dim}"
                )
        added = self._item_inputs(new, content)
        items_in = {k: torch.cat([self._items_in[k], added[k]]) for k in self._items_in}
        self.item_ids += new["item_id"].astype(str).tolist()
        self.pop_scores = np.concatenate([self.pop_scores, np.zeros(len(new))])
        self._index_items(items_in)
        return new["item_id"].astype(str).tolist()

    # --- persistence (nanoGPT style: the config travels inside the checkpoint) ------

    def save(self, directory: Path | str, extra_manifest: dict | None = None) -> dict:
        """Tensors only in `two_tower.pt` (loaded with `weights_only=True`), everything
        else as JSON in `two_tower.json`: loading a checkpoint never runs pickled code."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.taste.save(directory / "taste")
        graph = None if self.graph is None else self.graph.state()
        tensors = {
            "user_tower": self.user_tower.state_dict(),
            "item_tower": self.item_tower.state_dict(),
            "pop_scores": torch.tensor(self.pop_scores),
            "items_in": dict(self._items_in),
        }
        meta = {
            "config": asdict(self.config),
            "target": self.target,
            "name": self.name,
            "model_args": {
                "taste_dim": self.taste.dim,
                "gnn_dim": self.gnn_dim,
                "content_dim": self.content_dim,
                "countries": self.countries,
                "languages": self.languages,
                "item_languages": self.item_languages,
                "genres": self.genres,
                "music_vocab": sorted(self.music_vocab, key=self.music_vocab.get),
                "id_items": sorted(self.id_index, key=self.id_index.get),
            },
            "item_ids": list(self.item_ids),
            "graph": None,
        }
        if getattr(self, "blend", None) is not None:
            # The wide part is tensors and plain values: weights_only-safe.
            tensors["blend"] = {
                "weights": self.blend.weights,
                "validation": self.blend.validation,
                "wide": self.wide.state(),
            }
        if graph is not None:
            tensors.update(
                graph_encoder=graph["encoder"], graph_emb=graph["emb"], graph_degree=graph["degree"]
            )
            meta["graph"] = {k: graph[k] for k in ("encoder_args", "node_ids", "episode_show")}
        torch.save(tensors, directory / CHECKPOINT_FILE)
        (directory / CHECKPOINT_META_FILE).write_text(json.dumps(meta, default=_json_value) + "\n")
        faiss.write_index(self.index, str(directory / "items.faiss"))
        manifest = {
            "kind": "two_tower",
            "name": self.name,
            "target": self.target,
            "model": "2T-HGNN: hetero GraphSAGE over co-listening + two towers (in-batch softmax, logQ), faiss IndexFlatIP",
            "taste_model": self.taste.manifest,
            "data_hash": getattr(self, "data_hash", None),
            "settings": asdict(self.config),
            "metrics": {k: v for k, v in self.metrics.items() if k != "history"},
            "files": [CHECKPOINT_FILE, CHECKPOINT_META_FILE, "items.faiss", "taste/"],
            "torch": torch.__version__,
            "faiss": faiss.__version__,
            **(extra_manifest or {}),
        }
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        return manifest

    @classmethod
    def load(cls, directory: Path | str) -> "TwoTowerRecommender":
        directory = Path(directory)
        path = directory / CHECKPOINT_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: no two-tower checkpoint")
        # weights_only: tensors and plain containers only; a pickled object is refused
        # (torch raises UnpicklingError) instead of being executed.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        meta_path = directory / CHECKPOINT_META_FILE
        if not meta_path.exists():
            raise FileNotFoundError(
                f"{meta_path}: no two-tower metadata (a checkpoint from an older version: retrain)"
            )
        meta = json.loads(meta_path.read_text())
        cfg = TwoTowerConfig.from_dict(meta["config"])
        model = cls(meta["target"], cfg.seed, cfg)
        model.taste = TasteModel.load(directory / "taste")
        args = meta["model_args"]
        model.gnn_dim, model.content_dim = args["gnn_dim"], args["content_dim"]
        model.countries, model.languages = args["countries"], args["languages"]
        model.item_languages, model.genres = args["item_languages"], args["genres"]
        graph = meta["graph"]
        model.graph = (
            None
            if graph is None
            else ItemGraph.from_state(
                {
                    **graph,
                    "encoder": ckpt["graph_encoder"],
                    "emb": ckpt["graph_emb"],
                    "degree": ckpt["graph_degree"],
                }
            )
        )
        model.music_vocab = {i: c + 1 for c, i in enumerate(args.get("music_vocab", []))}
        model.id_index = {i: c + 1 for c, i in enumerate(args.get("id_items", []))}
        model.user_tower, model.item_tower = model._towers()
        model.user_tower.load_state_dict(ckpt["user_tower"])
        model.item_tower.load_state_dict(ckpt["item_tower"])
        model.listeners = {}  # only items added from now on need it: they have none
        model.item_ids = list(meta["item_ids"])
        model.pop_scores = ckpt["pop_scores"].numpy()
        manifest_path = directory / MANIFEST_FILE
        model.metrics = (
            json.loads(manifest_path.read_text()).get("metrics", {})
            if manifest_path.exists()
            else {}
        )
        items_in = dict(ckpt["items_in"])
        items_in.setdefault("item_index", torch.zeros(len(model.item_ids), dtype=torch.long))
        model._index_items(items_in)
        model.blend = None
        if ckpt.get("blend") is not None:
            model.blend = ScoreBlend(
                dict(ckpt["blend"]["weights"]), dict(ckpt["blend"]["validation"])
            )
            model.wide = WidePart.from_state(ckpt["blend"]["wide"])
        return model


def _label_pairs(
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


def _without_target_plays(data: InteractionData, users: set[str], target: str) -> InteractionData:
    """`data` less these users' plays of the target kind (what features may count)."""
    kinds = data.kind_of()
    inter = data.interactions
    hide = inter["user_id"].isin(users) & inter["item_id"].map(kinds).isin(hidden_kinds(target))
    return replace(data, interactions=inter[~hide].reset_index(drop=True))


def _json_value(value):
    """numpy scalars and tuples-in-disguise as plain JSON values (checkpoint metadata)."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _data_hash(data: InteractionData) -> str:
    h = hashlib.sha256()
    inter = data.interactions[["user_id", "item_id", "weight"]].sort_values(["user_id", "item_id"])
    h.update(pd.util.hash_pandas_object(inter, index=False).values.tobytes())
    h.update(
        pd.util.hash_pandas_object(
            data.items[["item_id", "kind"]].sort_values("item_id"), index=False
        ).values.tobytes()
    )
    return h.hexdigest()[:16]


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

    def fit(self, data: InteractionData) -> "GNNOnlyRecommender":
        with torch_threads(self.config.torch_threads):
            return self._fit(data)

    def _fit(self, data: InteractionData) -> "GNNOnlyRecommender":
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
