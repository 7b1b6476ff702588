"""Taste -> spoken-word affinity: an MLP from a listener's music taste vector (plus
country, language and age when known) to a score for every show (or audiobook).

After Nazari et al., SIGIR 2020 ("Recommending podcasts for cold-start users based
on music listening and taste"): the model is trained the way it is used, as a softmax
over the catalog with sampled negatives, on users who have both music and target
history, and is asked at test time about users whose target history it never saw.

Scoring is a dot product between the user tower's output and an item vector, so new
items are scorable from content alone:

    item vector = P @ content_embedding            (every item that has text)
                + id_embedding  (+ bias)           (items with listening history)

During training the id part is dropped for a random share of items (as in DropoutNet)
so that the content path alone ranks sensibly; with no content vectors at all
(ID-only catalogs) the model uses learned id embeddings only.

What is served is a blend (wide & deep, `training.blend`): the network's scores
(deep), a closed-form cross-domain ridge over the raw music history (wide: the
32-d taste average throws most of the item-level signal away), and item
popularity. The blend weights are chosen on validation users that neither part was
fitted on, so the model leans on popularity where the music signal is weak (real,
sparse, ID-only data) and on taste where it is strong. `score_batch` keeps the
network's own scores (the content path that scores new uploads).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from torch.nn import functional as F

from training.affinity_net import AffinityNet, UserFeatures
from training.base import new_item_ids
from training.blend import validation_sample
from training.cross_domain import fit_wide
from training.data import TARGET_KINDS, InteractionData, UserProfile, id_set
from training.metrics import per_user_metric, top_columns
from training.ranking import popularity
from training.sampling import sample_listeners
from training.served import ServedModel
from training.splits import profiles_for
from training.taste import TasteConfig
from training.threads import torch_threads

__all__ = ["AffinityConfig", "AffinityNet", "AffinityModel"]

# Validation users x items scores held at once by early stopping (float32: 64 MiB).
VAL_SCORES = 2**24


@dataclass(frozen=True)
class AffinityConfig:
    target: str = "podcast"
    seed: int = 0
    taste: TasteConfig = field(default_factory=TasteConfig)
    # user tower
    hidden: int = 256
    layers: int = 2  # hidden layers in the user tower (0 = a linear map)
    skip: bool = True  # add a linear map of the input to the MLP's output (wide & deep)
    dim: int = 64  # shared user/item space
    dropout: float = 0.2
    demographics: bool = True  # country, language and age features when known
    # training: softmax over the positive and `negatives` sampled items
    negatives: int = 256
    id_dropout: float = 0.1  # share of items scored from content only, when content exists
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    l2: float = 0.0  # penalty on user and item vector norms (as in matrix factorisation)
    max_epochs: int = 30
    patience: int = 6  # epochs without a better validation score before stopping
    early_stopping: str = "ndcg"  # the validation metric (training.metrics.METRICS, per-user)
    val_fraction: float = 0.15
    val_k: int = 10
    # Large audiences: train (and validate) on a seeded uniform sample of at most this
    # many listeners with both music and target history (`training.sampling`); the item
    # side (catalogue, popularity, warm items) still reads every interaction. Binds above
    # 50k such listeners (the scale benchmark's large worlds), not on Douban or the demo
    # world. 0: every listener. The manifest's metrics record both counts.
    max_listeners: int = 50_000
    progress: bool = False
    # Wide part and blend (see the module docstring); False serves the network alone.
    blend: bool = True
    # Intra-op threads while training and scoring: the network is small, and one
    # thread is both faster (no sync overhead) and bit-for-bit reproducible.
    threads: int = 1

    @classmethod
    def from_dict(cls, data: dict) -> AffinityConfig:
        data = dict(data)
        data["taste"] = TasteConfig(**data.get("taste", {}))
        return cls(**data)


def _content_matrix(data: InteractionData, item_ids: list[str]) -> np.ndarray | None:
    """Content vectors aligned to the catalog; items with no text get zeros. None when
    no item has one. (A show's vector already folds in its episodes' text:
    `coldstart.content.embeddings.item_vectors`.)"""
    if not data.content:
        return None
    dim = len(next(iter(data.content.values())))
    vectors = {i: np.asarray(v, np.float32) for i, v in data.content.items() if len(v) == dim}
    matrix = np.zeros((len(item_ids), dim), np.float32)
    found = 0
    for r, item_id in enumerate(item_ids):
        if item_id in vectors:
            matrix[r] = vectors[item_id]
            found += 1
    return matrix if found else None


@dataclass
class _Run:
    """What one training run iterates over (fit step 2)."""

    feats: UserFeatures  # features of every training user (rows of `profiles`)
    train_user: np.ndarray  # per training pair: user row
    train_item: np.ndarray  # ... and id index of the item
    train_rows: np.ndarray  # user rows that train
    val_rows: np.ndarray  # user rows that validate
    val_truth: list[set[int]]  # per user row: id indexes of their held-out items
    n_ids: int  # warm items
    warm_rows: np.ndarray  # catalog row of each id index
    content: torch.Tensor | None  # content rows of the warm items
    all_ids: torch.Tensor


class AffinityModel(ServedModel):
    """The fitted taste model + affinity network + catalog, as one served model.

    Fitted state besides `ServedModel`'s (set by `fit` or `load`):

    * `countries`, `languages` (dict[str, int]): demographic vocabularies, 0 = unknown;
    * `age_stats` (mean, std) and `taste_mean`, `taste_std` (arrays): standardisation;
    * `id_index` (int64 array per catalog item): its id embedding row, -1 for none;
    * `content_matrix` (float32 [catalog x dim] | None): content vectors (zeros for
      items without text; None when the catalog had none at fit time);
    * `_item_vecs`, `_item_bias`: every catalog item's vector and bias (eval mode).
    """

    name = "affinity_mlp"
    kind = "affinity"
    description = (
        "AffinityNet (taste MLP -> item dot product, content path + id embeddings), "
        "blended with a wide cross-domain ridge and popularity (weights chosen on validation users)"
    )
    train_command = "coldstart train"
    config_class = AffinityConfig

    def __init__(
        self, target: str = "podcast", seed: int = 0, config: AffinityConfig | None = None
    ) -> None:
        if target not in TARGET_KINDS:
            raise ValueError(f"unknown target {target!r}; expected one of {sorted(TARGET_KINDS)}")
        base = config or AffinityConfig()
        super().__init__(
            target,
            seed,
            replace(base, target=target, seed=seed, taste=replace(base.taste, seed=seed)),
        )
        self.countries: dict[str, int] = {}
        self.languages: dict[str, int] = {}
        self.age_stats: tuple[float, float] = (0.0, 1.0)
        self.taste_mean: np.ndarray = np.zeros(0, np.float32)
        self.taste_std: np.ndarray = np.ones(0, np.float32)
        self.id_index: np.ndarray = np.zeros(0, np.int64)
        self.content_matrix: np.ndarray | None = None
        self._item_vecs: np.ndarray = np.zeros((0, self.config.dim), np.float32)
        self._item_bias: np.ndarray = np.zeros(0, np.float32)

    # --- features ----------------------------------------------------------------

    def _demographics(
        self, users: Sequence[UserProfile]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        country = torch.tensor(
            [self.countries.get(str(u.country), 0) for u in users], dtype=torch.long
        )
        language = torch.tensor(
            [self.languages.get(str(u.language), 0) for u in users], dtype=torch.long
        )
        age = np.zeros((len(users), 2), np.float32)
        for r, u in enumerate(users):
            if u.age is not None and not (isinstance(u.age, float) and math.isnan(u.age)):
                age[r] = ((float(u.age) - self.age_stats[0]) / self.age_stats[1], 1.0)
        return country, language, torch.from_numpy(age)

    def _features(
        self, users: Sequence[UserProfile]
    ) -> tuple[UserFeatures, np.ndarray, list[list[str]]]:
        assert self.taste is not None, "fit or load the model first"
        taste, known, unknown = self.taste.user_vectors([u.music for u in users])
        # Standardise each taste dimension over the training users: item2vec vectors
        # share a large common direction, and the MLP learns from the differences.
        taste[known] = (taste[known] - self.taste_mean) / self.taste_std
        country, language, age = self._demographics(users)
        return UserFeatures(torch.from_numpy(taste), country, language, age), known, unknown

    def _build_catalog(self, data: InteractionData, inter: pd.DataFrame):
        """Every target item, most popular first (popularity is also the fallback);
        items with history get an id index, items with text a content row."""
        pop = popularity(data, self.target)
        self.item_ids = [str(i) for i in pop.index]
        self.pop_scores = pop.to_numpy(dtype=np.float64)
        position = {item: i for i, item in enumerate(self.item_ids)}
        warm = sorted(set(inter["item_id"].astype(str)), key=position.__getitem__)
        self.id_index = np.full(len(self.item_ids), -1, np.int64)
        self.id_index[[position[i] for i in warm]] = np.arange(len(warm))
        self.content_matrix = _content_matrix(data, self.item_ids)
        return warm, position, self.content_matrix

    def _training_users(
        self, data: InteractionData, inter: pd.DataFrame, music: pd.DataFrame, n_warm: int
    ):
        """Profiles and feature tensors of users with both music and target history (at
        most `max_listeners` of them, a seeded sample); sets the vocabularies and
        standardisation the features use, and the listener counts of the metrics."""
        eligible = sorted(id_set(inter["user_id"]) & id_set(music["user_id"]))
        chosen, available = sample_listeners(eligible, self.config.max_listeners, self.config.seed)
        self.metrics = {"target_listeners": available, "sampled_listeners": len(chosen)}
        profiles = profiles_for(data, chosen)
        self.countries = {
            c: i + 1 for i, c in enumerate(sorted({str(p.country) for p in profiles if p.country}))
        }
        self.languages = {
            c: i + 1
            for i, c in enumerate(sorted({str(p.language) for p in profiles if p.language}))
        }
        ages = np.array([float(p.age) for p in profiles if p.age is not None], np.float64)
        self.age_stats = (float(ages.mean()), float(ages.std() or 1.0)) if len(ages) else (0.0, 1.0)
        raw, known = self.taste.user_matrix([p.music for p in profiles])
        if known.sum() < 2 or not n_warm:
            raise ValueError(
                f"need at least 2 users with both music and {self.target} history to train the affinity model "
                f"(found {int(known.sum())})"
            )
        self.taste_mean, self.taste_std = raw[known].mean(0), raw[known].std(0) + 1e-6
        profiles = [p for p, ok in zip(profiles, known) if ok]
        feats, _, _ = self._features(profiles)
        return profiles, feats

    # --- training ----------------------------------------------------------------

    def _threads(self) -> int | None:
        return self.config.threads

    def _fit(self, data: InteractionData, rng: np.random.Generator) -> None:
        cfg = self.config
        inter = data.target_interactions(self.target)
        warm, position, content = self._build_catalog(data, inter)
        music = data.music_interactions()  # one pass over every play
        profiles, feats = self._training_users(data, inter, music, n_warm=len(warm))
        music_items = music["item_id"].astype(str).unique()  # the wide part's vocabulary
        del music
        run = self._training_run(profiles, feats, inter, position, content, len(warm), rng)
        self.net = AffinityNet(
            self.taste.dim,
            run.n_ids,
            0 if content is None else content.shape[1],
            len(self.countries),
            len(self.languages),
            cfg,
        )
        trained = self._train(run, len(run.train_user), rng)
        history = trained.pop("history")
        self.metrics = {
            **trained,
            "train_users": int(len(run.train_rows)),
            "val_users": int(len(run.val_rows)),
            **self.metrics,  # listeners eligible and sampled (`_training_users`)
            "warm_items": run.n_ids,
            "catalog": len(self.item_ids),
            "content_items": 0 if content is None else int((np.abs(content).sum(1) > 0).sum()),
            "history": history,
        }
        self.data_hash = self.taste.manifest.get("data_hash")
        self._refresh_items()
        if cfg.blend:
            val_items = [set(run.warm_rows[list(t)].tolist()) for t in run.val_truth]
            self._fit_wide_and_blend(inter, music_items, profiles, feats, run.val_rows, val_items)

    # --- fit, step by step -------------------------------------------------------

    def _training_run(self, profiles, feats, inter, position, content, n_ids: int, rng) -> _Run:
        """Training pairs and validation users (taken out of the training users: the
        harness's test users are not in `data` at all, so they never influence training
        or model selection). Items are addressed by id index (all warm items)."""
        n_val = max(1, int(round(self.config.val_fraction * len(profiles))))
        order = rng.permutation(len(profiles))
        val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
        user_row = {p.user_id: r for r, p in enumerate(profiles)}
        pairs = inter[inter["user_id"].isin(user_row)]
        pair_user = pairs["user_id"].map(user_row).to_numpy()
        pair_item = self.id_index[pairs["item_id"].astype(str).map(position).to_numpy()]
        is_train = np.isin(pair_user, train_rows)
        val_truth = [set() for _ in range(len(profiles))]
        for u, i in zip(pair_user[~is_train], pair_item[~is_train]):
            val_truth[u].add(int(i))
        warm_rows = np.flatnonzero(self.id_index >= 0)
        warm_rows = warm_rows[np.argsort(self.id_index[warm_rows])]
        return _Run(
            feats=feats,
            train_user=pair_user[is_train],
            train_item=pair_item[is_train],
            train_rows=train_rows,
            val_rows=val_rows,
            val_truth=val_truth,
            n_ids=n_ids,
            warm_rows=warm_rows,
            content=torch.from_numpy(content[warm_rows]) if content is not None else None,
            all_ids=torch.arange(n_ids),
        )

    def _batch_loss(self, run: _Run, rows: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Softmax loss of training pairs `rows`: over every warm item when the catalog is
        small, else over the positive and `negatives` shared uniform negatives."""
        cfg = self.config
        taste, demo = run.feats.rows(torch.from_numpy(run.train_user[rows]))
        users = self.net.user_vectors(taste, demo)
        pos = torch.from_numpy(run.train_item[rows])
        if cfg.negatives >= run.n_ids - 1:
            # Small catalog: the exact softmax over every warm item is cheapest.
            vecs, bias = self.net.item_vectors(run.content, run.all_ids)
            loss = F.cross_entropy(self.net(users, vecs, bias), pos)
        else:
            # Shared uniform negatives for the batch; a negative equal to a row's
            # own positive is masked out (accidental hit).
            neg = torch.from_numpy(rng.choice(run.n_ids, size=cfg.negatives, replace=False))
            cand = torch.cat([pos, neg])
            vecs, bias = self.net.item_vectors(
                None if run.content is None else run.content[cand], cand
            )
            pos_logit = (users * vecs[: len(pos)]).sum(-1) + bias[: len(pos)]
            neg_logit = users @ vecs[len(pos) :].T + bias[len(pos) :]
            neg_logit = neg_logit.masked_fill(neg[None, :] == pos[:, None], float("-inf"))
            logits = torch.cat([pos_logit[:, None], neg_logit], dim=1)
            loss = F.cross_entropy(logits, torch.zeros(len(pos), dtype=torch.long))
        if cfg.l2:
            # Few listeners per item: keep vectors short so the softmax stays smooth.
            loss = loss + cfg.l2 * (users.pow(2).sum(-1).mean() + vecs.pow(2).sum(-1).mean())
        return loss

    def _validation_score(self, run: _Run) -> float:
        """Early stopping on the validation metric of ranking all warm items for the
        validation users from their music alone (exactly the test-time task)."""
        cfg = self.config
        metric = per_user_metric(cfg.early_stopping)
        self.net.eval()
        values = []
        # Validation users a block at a time: memory O(block x items), not users x items.
        block = max(1, VAL_SCORES // max(run.n_ids, 1))
        with torch.no_grad():
            vecs, bias = self.net.item_vectors(run.content, run.all_ids)
            for lo in range(0, len(run.val_rows), block):
                rows = run.val_rows[lo : lo + block]
                taste, demo = run.feats.rows(torch.from_numpy(rows))
                scores = self.net(self.net.user_vectors(taste, demo), vecs, bias).numpy()
                values += [
                    metric(top_columns(-s, cfg.val_k), run.val_truth[u], cfg.val_k)
                    for s, u in zip(scores, rows)
                ]
        return float(np.mean(values))

    def _fit_wide_and_blend(self, inter, music_items, profiles, feats, val_rows, val_items) -> None:
        """Wide part (ridge + popularity, k-fold over all training users), then the
        network's weight next to it, on the validation users the network never saw
        (at most `MAX_BLEND_USERS` of them)."""
        cfg = self.config
        val_rows = validation_sample(val_rows, cfg.seed)
        position = {item: i for i, item in enumerate(self.item_ids)}
        rows = pd.Series(np.arange(len(profiles)), index=[p.user_id for p in profiles])
        pairs = inter[inter["user_id"].isin(rows.index)]
        y = sparse.csr_matrix(
            (
                np.ones(len(pairs)),
                (
                    rows.reindex(pairs["user_id"]).to_numpy(),
                    pairs["item_id"].astype(str).map(position).to_numpy(),
                ),
            ),
            shape=(len(profiles), len(self.item_ids)),
        )
        y.data[:] = 1.0
        listeners = (
            inter.groupby("item_id")["user_id"]
            .nunique()
            .reindex(self.item_ids, fill_value=0)
            .to_numpy(float)
        )
        wide = fit_wide(
            [p.music for p in profiles], y, listeners, music_items, cfg.seed, k=cfg.val_k
        )
        with torch.no_grad():
            taste, demo = feats.rows(torch.from_numpy(val_rows))
            network = (
                self.net.user_vectors(taste, demo).numpy() @ self._item_vecs.T + self._item_bias
            )
        truth = [val_items[r] for r in val_rows]
        held_out = wide.held_out(val_rows, [profiles[r].music for r in val_rows])
        # The manifest's headline validation figures: the served blend against popularity.
        own = np.asarray(y[val_rows].sum(axis=0)).ravel()
        self._fit_blend(wide, held_out, network, truth, listeners, own)

    # --- scoring -----------------------------------------------------------------

    def _refresh_items(self) -> None:
        """Cache every catalog item's vector and bias (eval mode, no id dropout)."""
        content = None if self.content_matrix is None else torch.tensor(self.content_matrix)
        with torch.no_grad():
            vecs, bias = self.net.item_vectors(content, torch.tensor(self.id_index))
        self._item_vecs, self._item_bias = vecs.numpy(), bias.numpy()
        self._ids = np.asarray(self.item_ids, dtype=object)

    def add_items(
        self, items: pd.DataFrame, content: Mapping[str, np.ndarray] | None = None
    ) -> list[str]:
        """Make new items (e.g. a show just uploaded, with no listeners) scorable from
        their content vectors. Returns the ids added: those of `items` with a vector in
        `content` (an item with neither listeners nor text has nothing to score it by).
        Needs a model trained with content."""
        content = content or {}
        new = [i for i in new_item_ids(items, self.item_ids) if i in content]
        if not new:
            return []
        if self.content_matrix is None:
            raise ValueError(
                "this affinity model was trained without content vectors; new items cannot be scored"
            )
        rows = np.stack([np.asarray(content[i], np.float32) for i in new])
        if rows.shape[1] != self.content_matrix.shape[1]:
            raise ValueError(
                f"content vectors have {rows.shape[1]} dims; the model expects {self.content_matrix.shape[1]}"
            )
        self.item_ids += new
        self.pop_scores = np.concatenate([self.pop_scores, np.zeros(len(new))])
        self.id_index = np.concatenate([self.id_index, np.full(len(new), -1, np.int64)])
        self.content_matrix = np.concatenate([self.content_matrix, rows])
        if self.wide is not None:
            self.wide.add_columns(len(new))
        self._refresh_items()
        return new

    def similar_items(self, item_id: str, k: int = 10) -> list[str]:
        """Nearest catalog items to `item_id` by cosine of the network's item vectors
        (itself left out)."""
        self._check_known(item_id)
        vecs = self._item_vecs / np.maximum(
            np.linalg.norm(self._item_vecs, axis=1, keepdims=True), 1e-12
        )
        row = self.item_ids.index(item_id)
        sims = vecs @ vecs[row]
        sims[row] = -np.inf
        return [self.item_ids[r] for r in np.argsort(-sims, kind="stable")[:k]]

    def user_vectors(
        self, users: Sequence[UserProfile]
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """(user-tower outputs [users x dim], known-taste mask, unknown items per user).
        Rows of users with no known music are meaningless: check the mask."""
        feats, known, unknown = self._features(users)
        with torch.no_grad(), torch_threads(self.config.threads):
            taste, demo = feats.rows(slice(None))
            return self.net.user_vectors(taste, demo).numpy(), known, unknown

    def item_vectors(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(catalog item ids, item vectors [items x dim], item biases): score = u · v + b,
        e.g. for an inner-product index over `[v, b]` queried with `[u, 1]`."""
        return list(self.item_ids), self._item_vecs, self._item_bias

    def network_scores(
        self, users: Sequence[UserProfile]
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """(network scores [users x catalog], known-taste mask, unknown items per user)."""
        u, known, unknown = self.user_vectors(users)
        return u @ self._item_vecs.T + self._item_bias, known, unknown

    score_batch = network_scores  # the content path that scores new uploads

    # --- persistence (`ServedModel.save` / `load` write and read the checkpoint) ----

    def _network_state(self) -> tuple[dict, dict]:
        tensors = {
            "id_index": torch.tensor(self.id_index),
            "content_matrix": None
            if self.content_matrix is None
            else torch.tensor(self.content_matrix),
            "taste_mean": torch.tensor(self.taste_mean),
            "taste_std": torch.tensor(self.taste_std),
        }
        metadata = {
            "network_args": {
                "taste_dim": self.taste.dim,
                "n_ids": int(self.net.item_id.num_embeddings),
                "content_dim": 0 if self.net.content is None else int(self.net.content.in_features),
                "n_countries": len(self.countries),
                "n_languages": len(self.languages),
            },
            "countries": self.countries,
            "languages": self.languages,
            "age_stats": list(self.age_stats),
        }
        return tensors, metadata

    def _restore_network(self, tensors: dict, metadata: dict) -> None:
        self.net = AffinityNet(cfg=self.config, **metadata["network_args"])
        self.net.load_state_dict(tensors["network"])
        self.net.eval()
        self.id_index = tensors["id_index"].numpy()
        content = tensors["content_matrix"]
        self.content_matrix = None if content is None else content.numpy()
        self.countries, self.languages = dict(metadata["countries"]), dict(metadata["languages"])
        self.age_stats = tuple(metadata["age_stats"])
        self.taste_mean, self.taste_std = (
            tensors["taste_mean"].numpy(),
            tensors["taste_std"].numpy(),
        )
        self._refresh_items()
