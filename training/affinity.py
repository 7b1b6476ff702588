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

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from training.base import Recommender, new_item_ids
from training.blend import ScoreBlend, choose_blend, validation_sample
from training.cross_domain import WidePart, fit_wide, served_blend_metrics
from training.data import TARGET_KINDS, InteractionData, Ranking, UserProfile
from training.metrics import per_user_metric, top_columns
from training.ranking import popularity, top_k
from training.splits import profiles_for
from training.taste import TasteConfig, TasteModel, fit_taste
from training.threads import torch_threads

__all__ = ["AffinityConfig", "AffinityNet", "AffinityModel"]

CHECKPOINT_FILE = "affinity.pt"
MANIFEST_FILE = "manifest.json"
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
    progress: bool = False
    # Wide part and blend (see the module docstring); False serves the network alone.
    blend: bool = True
    # Intra-op threads while training and scoring: the network is small, and one
    # thread is both faster (no sync overhead) and bit-for-bit reproducible.
    threads: int = 1

    @classmethod
    def from_dict(cls, data: dict) -> "AffinityConfig":
        data = dict(data)
        data["taste"] = TasteConfig(**data.get("taste", {}))
        return cls(**data)


class AffinityNet(nn.Module):
    """User tower (MLP) and item vectors (content projection + id embedding)."""

    def __init__(
        self,
        taste_dim: int,
        n_ids: int,
        content_dim: int,
        n_countries: int,
        n_languages: int,
        cfg: AffinityConfig,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        extra = 0
        if cfg.demographics:
            # index 0 = unknown; age arrives standardised, with a "known" flag
            self.country = nn.Embedding(n_countries + 1, 8)
            self.language = nn.Embedding(n_languages + 1, 8)
            extra = 8 + 8 + 2
        layers: list[nn.Module] = []
        width = taste_dim + extra
        for _ in range(cfg.layers):
            layers += [nn.Linear(width, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        self.user = nn.Sequential(*layers, nn.Linear(width, cfg.dim))
        self.skip = (
            nn.Linear(taste_dim + extra, cfg.dim, bias=False) if cfg.skip and cfg.layers else None
        )
        self.item_id = nn.Embedding(max(n_ids, 1), cfg.dim)
        nn.init.normal_(self.item_id.weight, std=0.01)
        self.item_bias = nn.Embedding(max(n_ids, 1), 1)
        nn.init.zeros_(self.item_bias.weight)
        self.content = nn.Linear(content_dim, cfg.dim, bias=False) if content_dim else None

    def user_vectors(
        self, taste: torch.Tensor, demo: dict[str, torch.Tensor] | None
    ) -> torch.Tensor:
        parts = [taste]
        if self.cfg.demographics:
            parts += [self.country(demo["country"]), self.language(demo["language"]), demo["age"]]
        x = torch.cat(parts, dim=-1)
        return self.user(x) if self.skip is None else self.user(x) + self.skip(x)

    def item_vectors(
        self, content: torch.Tensor | None, ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(vectors, biases) for items; `ids` is -1 for items without history."""
        has_id = (ids >= 0).float()
        if self.training and self.content is not None and self.cfg.id_dropout > 0:
            has_id = has_id * (torch.rand_like(has_id) >= self.cfg.id_dropout).float()
        safe = ids.clamp(min=0)
        vectors = self.item_id(safe) * has_id[:, None]
        if self.content is not None:
            vectors = vectors + self.content(content)
        return vectors, self.item_bias(safe).squeeze(-1) * has_id

    def forward(
        self, users: torch.Tensor, vectors: torch.Tensor, biases: torch.Tensor
    ) -> torch.Tensor:
        return users @ vectors.T + biases


@dataclass
class _Features:
    """Everything the network reads about a set of users, as tensors."""

    taste: torch.Tensor
    country: torch.Tensor
    language: torch.Tensor
    age: torch.Tensor

    def rows(self, idx) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.taste[idx], {
            "country": self.country[idx],
            "language": self.language[idx],
            "age": self.age[idx],
        }


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

    feats: _Features  # features of every training user (rows of `profiles`)
    train_user: np.ndarray  # per training pair: user row
    train_item: np.ndarray  # ... and id index of the item
    train_rows: np.ndarray  # user rows that train
    val_rows: np.ndarray  # user rows that validate
    val_truth: list[set[int]]  # per user row: id indexes of their held-out items
    n_ids: int  # warm items
    warm_rows: np.ndarray  # catalog row of each id index
    content: torch.Tensor | None  # content rows of the warm items
    all_ids: torch.Tensor


class AffinityModel(Recommender):
    """The fitted taste model + affinity network + catalog, as one `Recommender`."""

    name = "affinity_mlp"

    def __init__(
        self, target: str = "podcast", seed: int = 0, config: AffinityConfig | None = None
    ) -> None:
        super().__init__(target, seed)
        if target not in TARGET_KINDS:
            raise ValueError(f"unknown target {target!r}; expected one of {sorted(TARGET_KINDS)}")
        base = config or AffinityConfig()
        self.config = replace(base, target=target, seed=seed, taste=replace(base.taste, seed=seed))
        self.metrics: dict = {}

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
    ) -> tuple[_Features, np.ndarray, list[list[str]]]:
        taste = np.zeros((len(users), self.taste.dim), np.float32)
        known = np.zeros(len(users), bool)
        unknown: list[list[str]] = []
        for r, u in enumerate(users):
            vec, missing = self.taste.user_vector(u.music)
            unknown.append(missing)
            if vec is not None:
                taste[r], known[r] = vec, True
        # Standardise each taste dimension over the training users: item2vec vectors
        # share a large common direction, and the MLP learns from the differences.
        taste[known] = (taste[known] - self.taste_mean) / self.taste_std
        country, language, age = self._demographics(users)
        return _Features(torch.from_numpy(taste), country, language, age), known, unknown

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

    def _training_users(self, data: InteractionData, inter: pd.DataFrame, n_warm: int):
        """Profiles and feature tensors of users with both music and target history;
        sets the vocabularies and standardisation the features use."""
        music_users = set(data.music_interactions()["user_id"])
        profiles = profiles_for(data, sorted(set(inter["user_id"]) & music_users))
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

    def fit(self, data: InteractionData) -> "AffinityModel":
        with torch_threads(self.config.threads):
            return self._fit(data)

    def _fit(self, data: InteractionData) -> "AffinityModel":
        cfg = self.config
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self.taste: TasteModel = fit_taste(data, cfg.taste)
        inter = data.target_interactions(self.target)
        warm, position, content = self._build_catalog(data, inter)
        profiles, feats = self._training_users(data, inter, n_warm=len(warm))
        run = self._training_run(profiles, feats, inter, position, content, len(warm), rng)
        self.net = AffinityNet(
            self.taste.dim,
            run.n_ids,
            0 if content is None else content.shape[1],
            len(self.countries),
            len(self.languages),
            cfg,
        )
        history, best = self._train(run, rng)

        self.net.load_state_dict(best[2])
        self.net.eval()
        self.metrics = {
            f"val_{cfg.early_stopping}@{cfg.val_k}": best[0],
            "best_epoch": best[1],
            "epochs": len(history),
            "train_users": int(len(run.train_rows)),
            "val_users": int(len(run.val_rows)),
            "warm_items": run.n_ids,
            "catalog": len(self.item_ids),
            "content_items": 0 if content is None else int((np.abs(content).sum(1) > 0).sum()),
            "history": history,
        }
        self._refresh_items()
        self.blend: ScoreBlend | None = None
        if cfg.blend:
            val_items = [set(run.warm_rows[list(t)].tolist()) for t in run.val_truth]
            self._fit_blend(data, inter, profiles, feats, run.train_rows, run.val_rows, val_items)
        return self

    # --- fit, step by step -------------------------------------------------------

    def _training_run(self, profiles, feats, inter, position, content, n_ids: int, rng) -> "_Run":
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

    def _train(self, run: "_Run", rng: np.random.Generator):
        """Epochs of sampled softmax, early-stopped on the validation metric: (history, best)."""
        cfg = self.config
        optimiser = torch.optim.AdamW(
            self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        best = (-1.0, 0, copy.deepcopy(self.net.state_dict()))
        history = []
        for epoch in tqdm(range(cfg.max_epochs), desc="affinity", disable=not cfg.progress):
            losses = self._train_epoch(run, optimiser, rng)
            score = self._estimate_metric(run)
            history.append(
                {
                    "epoch": epoch,
                    "loss": float(np.mean(losses)) if losses else 0.0,
                    f"val_{cfg.early_stopping}": score,
                }
            )
            if score > best[0]:
                best = (score, epoch, copy.deepcopy(self.net.state_dict()))
            elif epoch - best[1] >= cfg.patience:
                break
        return history, best

    def _train_epoch(self, run: "_Run", optimiser, rng: np.random.Generator) -> list[float]:
        cfg = self.config
        self.net.train()
        perm = rng.permutation(len(run.train_user))
        losses = []
        for start in range(0, len(perm), cfg.batch_size):
            batch = perm[start : start + cfg.batch_size]
            taste, demo = run.feats.rows(torch.from_numpy(run.train_user[batch]))
            pos = torch.from_numpy(run.train_item[batch])
            loss = self._batch_loss(run, self.net.user_vectors(taste, demo), pos, rng)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        return losses

    def _batch_loss(
        self, run: "_Run", users: torch.Tensor, pos: torch.Tensor, rng: np.random.Generator
    ) -> torch.Tensor:
        """Softmax loss of a batch: over every warm item when the catalog is small,
        else over the positive and `negatives` shared uniform negatives."""
        cfg = self.config
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

    def _estimate_metric(self, run: "_Run") -> float:
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

    def _fit_blend(self, data, inter, profiles, feats, train_rows, val_rows, val_items) -> None:
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
        music_items = data.music_interactions()["item_id"].astype(str)
        self.wide = fit_wide(
            [p.music for p in profiles], y, listeners, music_items, cfg.seed, k=cfg.val_k
        )
        with torch.no_grad():
            taste, demo = feats.rows(torch.from_numpy(val_rows))
            network = (
                self.net.user_vectors(taste, demo).numpy() @ self._item_vecs.T + self._item_bias
            )
        truth = [val_items[r] for r in val_rows]
        self.blend = choose_blend(
            {
                "wide": self.wide.held_out(val_rows, [profiles[r].music for r in val_rows]),
                "network": network,
            },
            truth,
            cfg.val_k,
        )
        # The manifest's headline validation figures: the served blend against popularity.
        own = np.asarray(y[val_rows].sum(axis=0)).ravel()
        self.metrics.update(
            served_blend_metrics(self.blend, self.wide, cfg.val_k, listeners, own, truth)
        )

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
        if getattr(self, "blend", None) is not None:
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

    def score_batch(
        self, users: Sequence[UserProfile]
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """(scores [users x catalog], known-taste mask, unknown items per user)."""
        u, known, unknown = self.user_vectors(users)
        return u @ self._item_vecs.T + self._item_bias, known, unknown

    def served_scores(
        self, users: Sequence[UserProfile]
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """What the model ranks by: the validation-chosen blend of network, wide ridge
        and popularity (the network alone when trained with `blend=False`)."""
        network, known, unknown = self.score_batch(users)
        if getattr(self, "blend", None) is None:
            return network, known, unknown
        sources = {"network": network, "wide": self.wide.scores([u.music for u in users])}
        return self.blend.apply(sources), known, unknown

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        return self._rank(user, *(x[0] for x in self.served_scores([user])), k, exclude)

    def recommend_batch(self, users: Sequence[UserProfile], k: int = 10) -> list[Ranking]:
        scores, known, unknown = self.served_scores(users)
        return [
            self._rank(u, s, ok, miss, k, ())
            for u, s, ok, miss in zip(users, scores, known, unknown)
        ]

    def _rank(self, user, scores, known, unknown, k, exclude) -> Ranking:
        if not known:  # no usable music: answer with popularity, and say so
            return top_k(
                self._ids, self.pop_scores, k, exclude, fallback=True, unknown_items=unknown
            )
        return top_k(self._ids, scores, k, exclude, unknown_items=unknown)

    # --- persistence (nanoGPT style: the config travels inside the checkpoint) -----

    def save(self, directory: Path | str, extra_manifest: dict | None = None) -> dict:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.taste.save(directory / "taste")
        checkpoint = {
            "config": asdict(self.config),
            "model_args": {
                "taste_dim": self.taste.dim,
                "n_ids": int(self.net.item_id.num_embeddings),
                "content_dim": 0 if self.net.content is None else int(self.net.content.in_features),
                "n_countries": len(self.countries),
                "n_languages": len(self.languages),
            },
            "state_dict": self.net.state_dict(),
            "item_ids": list(self.item_ids),
            "pop_scores": torch.tensor(self.pop_scores),
            "id_index": torch.tensor(self.id_index),
            "content_matrix": None
            if self.content_matrix is None
            else torch.tensor(self.content_matrix),
            "countries": self.countries,
            "languages": self.languages,
            "age_stats": list(self.age_stats),
            "taste_mean": torch.tensor(self.taste_mean),
            "taste_std": torch.tensor(self.taste_std),
            "blend": None
            if getattr(self, "blend", None) is None
            else {
                "weights": self.blend.weights,
                "validation": self.blend.validation,
                "wide": self.wide.state(),
            },
        }
        torch.save(checkpoint, directory / CHECKPOINT_FILE)
        manifest = {
            "kind": "affinity",
            "target": self.target,
            "model": "AffinityNet (taste MLP -> item dot product, content path + id embeddings), "
            "blended with a wide cross-domain ridge and popularity (weights chosen on validation users)",
            "blend": None if getattr(self, "blend", None) is None else self.blend.weights,
            "config": asdict(self.config),
            "taste": self.taste.manifest,
            "data_hash": self.taste.manifest.get("data_hash"),
            "metrics": {k: v for k, v in self.metrics.items() if k != "history"},
            **(extra_manifest or {}),
        }
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        return manifest

    @classmethod
    def load(cls, directory: Path | str) -> "AffinityModel":
        directory = Path(directory)
        path = directory / CHECKPOINT_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: no affinity checkpoint (run `coldstart train`)")
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        cfg = AffinityConfig.from_dict(ckpt["config"])
        model = cls(cfg.target, cfg.seed, cfg)
        model.taste = TasteModel.load(directory / "taste")
        model.net = AffinityNet(cfg=cfg, **ckpt["model_args"])
        model.net.load_state_dict(ckpt["state_dict"])
        model.net.eval()
        model.item_ids = list(ckpt["item_ids"])
        model.pop_scores = ckpt["pop_scores"].numpy()
        model.id_index = ckpt["id_index"].numpy()
        model.content_matrix = (
            None if ckpt["content_matrix"] is None else ckpt["content_matrix"].numpy()
        )
        model.countries, model.languages = dict(ckpt["countries"]), dict(ckpt["languages"])
        model.age_stats = tuple(ckpt["age_stats"])
        model.taste_mean, model.taste_std = ckpt["taste_mean"].numpy(), ckpt["taste_std"].numpy()
        model.blend = None
        if ckpt.get("blend") is not None:
            part = ckpt["blend"]
            model.blend = ScoreBlend(dict(part["weights"]), dict(part["validation"]))
            model.wide = WidePart.from_state(part["wide"])
        manifest_path = directory / MANIFEST_FILE
        model.metrics = (
            json.loads(manifest_path.read_text()).get("metrics", {})
            if manifest_path.exists()
            else {}
        )
        model._refresh_items()
        return model
