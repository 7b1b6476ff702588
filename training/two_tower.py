"""2T-HGNN: a GNN over co-listening feeding a two-tower retriever (De Nadai et al., WWW 2024).

Why: a listener with no audiobook history still has music taste and, often,
podcasts. A heterogeneous GraphSAGE over the show/audiobook co-listening graph
places every spoken-word item near the items its audience also plays; the user
tower turns music taste, demographics and the mean graph embedding of whatever
spoken-word items the user did play into one 128-d vector; the item tower turns
an item's graph embedding, text embedding, language and genre into another.
Retrieval is an inner product (faiss IndexFlatIP); the user vector is computed at
request time, so a new listener needs no retraining.

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

Ablations: `use_gnn=True` (the GNN item encoder; off by default: no measurable gain on
the demo world or Douban dev) and `GNNOnlyRecommender` (graph-embedding similarity to the
user's own spoken-word items and to those of their music-taste neighbours).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

import faiss
import numpy as np
import pandas as pd
import torch

from graph import in_batch_softmax
from graph.fit import GNNConfig
from training.blend import validation_sample
from training.cross_domain import WidePart, fit_wide
from training.data import TARGET_KINDS, InteractionData, Ranking, UserProfile, user_profiles
from training.history import EventsByUser, target_matrix
from training.item_graph import ItemGraph
from training.metrics import per_user_metric
from training.ranking import popularity, top_k
from training.served import ServedModel
from training.taste import TasteConfig
from training.threads import torch_threads
from training.towers import ItemTower, UserTower
from training.two_tower_data import (
    Listeners,
    Pairs,
    data_hash,
    label_pairs,
    split_listeners,
)
from training.two_tower_features import ITEM_KEYS, USER_KEYS, TwoTowerFeatures

__all__ = ["TwoTowerConfig", "TwoTowerRecommender"]


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
    # Train, validate and blend on a seeded sample of at most this many listeners with
    # music and target history (`training.sampling`; 0: all); the item side reads every
    # play. Not binding on Douban or the demo world. Both counts go in the metrics.
    max_listeners: int = 50_000
    seed: int = 0
    progress: bool = False
    # Small sparse ops lose badly to thread hand-off on a shared CPU (measured: fit
    # 36 s with 2 threads vs 2.4 s with 1 on a loaded 2-core box); None keeps torch's.
    torch_threads: int | None = 1

    @classmethod
    def from_dict(cls, data: dict) -> TwoTowerConfig:
        data = dict(data)
        gnn = data.pop("gnn", {})
        gnn["fanouts"] = tuple(gnn.get("fanouts", GNNConfig.fanouts))
        taste = TasteConfig(**data.pop("taste", {}))
        known = {f.name for f in fields(cls)}
        return cls(
            gnn=GNNConfig(**gnn), taste=taste, **{k: v for k, v in data.items() if k in known}
        )


@dataclass
class _Run:
    """What the early-stopping loop iterates over: training pairs, every catalog item's
    tower inputs, and the validation users that judge the epochs."""

    pairs: Pairs
    items_in: dict[str, torch.Tensor]
    val_profiles: list[UserProfile]
    val_truth: list[set[str]]


class TwoTowerRecommender(TwoTowerFeatures, ServedModel):
    """The two towers + catalog + faiss index, as one served model.

    Fitted state besides `ServedModel`'s (set by `fit` or `load`):

    * `graph` (`ItemGraph` | None): the co-listening graph and item encoder (`use_gnn`);
    * `gnn_dim`, `content_dim` (int): widths of the graph and text inputs (0 = none);
    * `countries`, `languages`, `item_languages`, `genres` (dict[str, int]): feature
      vocabularies, 0 = unknown; `music_vocab`: music items of the bag; `id_index`:
      labelled items with an id vector;
    * `listeners` (dict[str, float]): training listeners per item (popularity input);
    * `_items_in` (dict of tensors): every catalog item's tower inputs;
    * `item_vectors` (float32 [catalog x 128]) and `index` (faiss): item-tower outputs,
      and the exact inner-product index over them (popularity coordinate appended);
    * `val_users`, `_label_pairs`, `_graph_pairs`, `_catalog`: the fit's split, kept for
      the leak tests; not saved.
    """

    name = "two_tower"
    kind = "two_tower"
    description = (
        "2T-HGNN: hetero GraphSAGE over co-listening + two towers (in-batch softmax, logQ), "
        "faiss IndexFlatIP, blended with a wide cross-domain ridge and popularity"
    )
    train_command = "coldstart train-two-tower"
    config_class = TwoTowerConfig

    def __init__(
        self, target: str = "audiobook", seed: int = 0, config: TwoTowerConfig | None = None
    ) -> None:
        super().__init__(target, seed, replace(config or TwoTowerConfig(), seed=seed))
        if self.config.use_gnn:
            self.name = "two_tower_gnn"
        self.item_kind = TARGET_KINDS[target][0]
        self.graph: ItemGraph | None = None
        self.gnn_dim = 0
        self.content_dim = 0
        self.countries: dict[str, int] = {}
        self.languages: dict[str, int] = {}
        self.item_languages: dict[str, int] = {}
        self.genres: dict[str, int] = {}
        self.music_vocab: dict[str, int] = {}
        self.id_index: dict[str, int] = {}
        self.listeners: dict[str, float] = {}
        self._items_in: dict[str, torch.Tensor] = {}
        self.item_vectors: np.ndarray = np.zeros((0, self.config.out_dim), np.float32)
        self.index: faiss.Index | None = None
        self.val_users: list[str] = []
        self._label_pairs: set[tuple[str, str]] = set()
        self._graph_events: pd.DataFrame | None = None  # (user_id, item_id) of the graph
        self._catalog: pd.DataFrame | None = None

    @property
    def user_tower(self) -> UserTower:
        return self.net.user

    @property
    def item_tower(self) -> ItemTower:
        return self.net.item

    @property
    def _graph_pairs(self) -> set[tuple[str, str]]:
        """(user, item) pairs of the graph's events, for the leak tests (on demand)."""
        ev = self._graph_events if self._graph_events is not None else pd.DataFrame(columns=[0, 1])
        return set(zip(ev.iloc[:, 0].astype(str), ev.iloc[:, 1].astype(str)))

    # --- training ------------------------------------------------------------------

    def _threads(self) -> int | None:
        return self.config.torch_threads

    def _fit(self, data: InteractionData, rng: np.random.Generator) -> None:
        cfg = self.config
        split = self._split_listeners(data, rng)
        catalog = self._catalog_frame(data, split.val_users)
        graph_stats = self._fit_graph(data, split, rng)
        users_frame = data.users.drop_duplicates("user_id").set_index("user_id")
        self._build_towers(users_frame, catalog, split.music_players)
        items_in = self._item_inputs(catalog, data.content)
        pairs = self._training_pairs(split, users_frame)
        val, blend_val = self._validation_halves(data, split, users_frame, rng)
        trained = self._train(_Run(pairs, items_in, *val), len(pairs.user), rng)
        history = trained.pop("history")

        self._catalog = catalog
        self._index_items(items_in)
        self.metrics = {
            **trained,
            "train_pairs": int(len(pairs.user)),
            "train_users": len(pairs.users),
            "val_users": len(split.val_users),
            "target_listeners": split.eligible,  # before the sample (`max_listeners`)
            "sampled_listeners": len(split.listeners),
            "catalog": len(self.item_ids),
            "content_items": int(items_in["has_content"].sum()),
            "history": history,
            **graph_stats,
        }
        self.data_hash = data_hash(data)
        if cfg.blend:
            profiles, truth = blend_val
            keep = validation_sample(np.arange(len(profiles)), cfg.seed)  # at most MAX_BLEND_USERS
            profiles, truth = [profiles[i] for i in keep], [truth[i] for i in keep]
            blend_music_only = [replace(p, spoken={}) for p in profiles]
            self._fit_wide_and_blend(
                split.listeners,
                split.histories,
                split.music_players,
                split.target_ev,
                profiles + blend_music_only,
                truth + truth,
            )

    # --- fit, step by step -------------------------------------------------------

    def _split_listeners(self, data: InteractionData, rng: np.random.Generator) -> Listeners:
        """Listeners of the target with known music taste (at most `max_listeners`, a
        seeded sample); some are kept for validation."""
        cfg = self.config
        split = split_listeners(
            data, self.target, self.item_kind, cfg.val_fraction, cfg.max_listeners, cfg.seed, rng
        )
        self.val_users = sorted(split.val_users)
        return split

    def _catalog_frame(self, data: InteractionData, val_users: set[str]) -> pd.DataFrame:
        """Catalog, best-known first; popularity is also the answer when nothing is known.
        Popularity (a feature and the fallback) counts training pairs only: the
        validation users' target plays are the answers early stopping is judged on."""
        pop = popularity(data, self.target)
        self.item_ids = [str(i) for i in pop.index]
        self.pop_scores = pop.to_numpy(dtype=np.float64)
        counted = popularity(data, self.target, leave_out=val_users)
        self.listeners = {str(i): float(np.floor(v)) for i, v in counted.items()}
        self.content_dim = len(next(iter(data.content.values()))) if data.content else 0
        return (
            data.catalog(self.target)
            .drop_duplicates("item_id")
            .set_index("item_id")
            .loc[self.item_ids]
            .reset_index()
        )

    def _fit_graph(self, data: InteractionData, split: Listeners, rng: np.random.Generator) -> dict:
        """Label pairs, and the co-listening graph + item encoder (when `use_gnn`).

        Each training listener's target plays are split: `label_share` of them become
        training labels, the rest feed the graph and the listener's history. The graph
        never holds a (user, item) pair that is a label, nor the validation users'
        target plays (the answers early stopping is judged on)."""
        events = split.events
        labels = label_pairs(split.target_ev, split.val_users, self.config.label_share, rng)
        is_label = pd.MultiIndex.from_frame(events[["user_id", "item_id"]].astype(str)).isin(labels)
        graph_events = events[
            ~(events["user_id"].isin(split.val_users) & (events["kind"] == self.item_kind))
            & ~is_label
        ]
        self._label_pairs = labels  # for the leak tests; not saved
        self._graph_events = graph_events[["user_id", "item_id"]]
        self.graph, graph_stats = (None, {})
        if self.config.use_gnn:
            self.graph, graph_stats = ItemGraph.fit(data, graph_events, self.config)
        self.gnn_dim = self.graph.dim if self.graph is not None else 0
        return graph_stats

    def _training_pairs(self, split: Listeners, users_frame: pd.DataFrame) -> Pairs:
        """Training rows: one per (listener, label item) pair, with each listener's
        graph history kept as sums so a batch can drop parts of it."""
        position = {i: p for p, i in enumerate(self.item_ids)}
        labelled = self._label_pairs
        train_users = [u for u in split.listeners if u not in split.val_users]
        events = split.events
        spoken_of = EventsByUser.of(events[events["user_id"].isin(train_users)], self.item_kind)
        profiles = user_profiles(
            train_users, [split.histories[u] for u in train_users], None, users_frame
        )
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
            labels = [i for i in tgt if (str(u), i) in labelled]
            pair_user += [r] * len(labels)
            pair_item += [position[i] for i in labels]
            if self.graph is not None:
                other = self.graph.rows({i: 1.0 for i in items[~is_tgt]})
                mine = self.graph.rows({i: 1.0 for i in tgt if (str(u), i) not in labelled})
                other_sum[r], other_cnt[r] = self.graph.emb[other].sum(0), len(other)
                tgt_sum[r], tgt_cnt[r] = self.graph.emb[mine].sum(0), len(mine)
        pair_user, pair_item = np.asarray(pair_user), np.asarray(pair_item)
        # logQ: in-batch sampling follows pair frequency, so Q(item) = its share of pairs.
        counts = np.bincount(pair_item, minlength=len(self.item_ids)).astype(np.float64)
        log_q = torch.from_numpy(np.log(np.maximum(counts, 1.0) / counts.sum()).astype(np.float32))
        return Pairs(
            train_users, pair_user, pair_item, base, other_sum, other_cnt, tgt_sum, tgt_cnt, log_q
        )

    def _validation_halves(self, data, split: Listeners, users_frame, rng: np.random.Generator):
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

    def _batch_loss(
        self, run: _Run, rows: np.ndarray, rng: np.random.Generator
    ) -> torch.Tensor | None:
        """In-batch softmax (logQ-corrected) over the label items of pairs `rows`."""
        if len(rows) < 2:
            return None
        users, it = self._get_batch(run.pairs, rows, rng)
        items = self.item_tower(*(run.items_in[k][it] for k in ITEM_KEYS))
        queries, keys = self._score_vectors(users, items, run.items_in["popularity"][it])
        return in_batch_softmax(
            queries,
            keys,
            temperature=1.0,
            log_q=run.pairs.log_q[it] if self.config.logq else None,
            key_ids=it,
        )

    def _validation_score(self, run: _Run) -> float:
        """Early stopping on the test-time task: validation users ranked from music
        and non-target history, all target items scored. Judged on both cold cases:
        music + other spoken kinds, and music only."""
        k = self.config.val_k
        metric = per_user_metric(self.config.early_stopping)
        profiles, truth = run.val_profiles, run.val_truth
        self._index_items(run.items_in)
        music_only = [replace(p, spoken={}) for p in profiles]
        ranked = [r.item_ids for r in self._network_rankings(profiles + music_only, k, ())]
        return float(np.mean([metric(r, t, k) for r, t in zip(ranked, truth + truth)]))

    def _fit_wide(self, listeners, histories, music_players, target_ev) -> WidePart:
        """Wide part (ridge + popularity) by k-fold over the training listeners (the
        sample); its vocabulary is every music item anyone played."""
        y = target_matrix(target_ev[["user_id", "item_id"]], listeners, self.item_ids)
        counts = np.floor(self.pop_scores)  # all training listeners: each fold's own plays come out
        music_items = sorted(music_players.index)
        return fit_wide(
            [histories[u] for u in listeners],
            y,
            counts,
            music_items,
            self.config.seed,
            k=self.config.val_k,
        )

    def _fit_wide_and_blend(
        self, listeners, histories, music_players, target_ev, val_profiles, val_truth
    ) -> None:
        """The towers' weight next to the wide part on the blend-validation users (both
        cold cases), whose wide scores are out of fold: the ridge that scored them never
        saw them."""
        wide = self._fit_wide(listeners, histories, music_players, target_ev)
        y = target_matrix(target_ev[["user_id", "item_id"]], listeners, self.item_ids)
        counts = np.floor(self.pop_scores)
        row = {u: r for r, u in enumerate(listeners)}
        position = {i: p for p, i in enumerate(self.item_ids)}
        truth = [{position[i] for i in t if i in position} for t in val_truth]
        held_out = wide.held_out(
            [row[p.user_id] for p in val_profiles], [p.music for p in val_profiles]
        )
        network, _, _ = self.network_scores(val_profiles)
        # Two copies per validation user (both cold cases): count their own plays once.
        own = np.asarray(y[[row[p.user_id] for p in val_profiles]].sum(axis=0)).ravel() / 2
        self._fit_blend(wide, held_out, network, truth, counts, own)

    @torch.no_grad()
    def network_scores(
        self, users: Sequence[UserProfile]
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """(the towers' logit for every catalog item [users x catalog], usable mask,
        unknown music items)."""
        with torch_threads(self.config.torch_threads):
            vecs, usable, unknown = self.user_vectors(users)
            queries, keys = self._score_vectors(
                torch.from_numpy(vecs),
                torch.from_numpy(self.item_vectors),
                self._items_in["popularity"],
            )
            return queries.numpy() @ keys.numpy().T, usable, unknown

    def _blend_usable(self, users: Sequence[UserProfile], usable: np.ndarray) -> np.ndarray:
        """The blend also ranks a listener whose music only the wide part knows."""
        return usable | (self.wide.encoder.known_counts([u.music for u in users]) > 0)

    # --- serving ---------------------------------------------------------------------

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

    def _network_rankings(
        self, users: Sequence[UserProfile], k: int, exclude: Sequence[str]
    ) -> list[Ranking]:
        """The towers alone, through the faiss index (a model trained with `blend=False`,
        and early stopping)."""
        if not users:
            return []
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

    # --- persistence (`ServedModel.save` / `load` write and read the checkpoint) ----

    def _network_state(self) -> tuple[dict, dict]:
        tensors = {"items_in": dict(self._items_in)}
        metadata = {
            "network_args": {
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
            "graph": None,
        }
        if self.graph is not None:
            graph = self.graph.state()
            tensors.update(
                graph_encoder=graph["encoder"], graph_emb=graph["emb"], graph_degree=graph["degree"]
            )
            metadata["graph"] = {k: graph[k] for k in ("encoder_args", "node_ids", "episode_show")}
        return tensors, metadata

    def _restore_network(self, tensors: dict, metadata: dict) -> None:
        args = metadata["network_args"]
        self.gnn_dim, self.content_dim = args["gnn_dim"], args["content_dim"]
        self.countries, self.languages = args["countries"], args["languages"]
        self.item_languages, self.genres = args["item_languages"], args["genres"]
        graph = metadata["graph"]
        self.graph = (
            None
            if graph is None
            else ItemGraph.from_state(
                {
                    **graph,
                    "encoder": tensors["graph_encoder"],
                    "emb": tensors["graph_emb"],
                    "degree": tensors["graph_degree"],
                }
            )
        )
        self.music_vocab = {i: c + 1 for c, i in enumerate(args["music_vocab"])}
        self.id_index = {i: c + 1 for c, i in enumerate(args["id_items"])}
        self.net = self._towers()
        self.net.load_state_dict(tensors["network"])
        self.listeners = {}  # only items added from now on need it: they have none
        self._index_items(dict(tensors["items_in"]))
