"""The cold-item protocol: how well does a new upload find its audience?

Per seed: hide every play of `hidden_fraction` of the catalog items that have text
and at least one listener; build the training side from the other plays; score every
known listener (at least one training play) for each hidden item with every model,
and compare with the item's real listeners.

Metrics, per model, as the mean and the standard error over (item, seed) pairs:

* per upload: `auc` (ties count half), `recall@100`, `recall@1%` (recall in the top
  1% of the known listeners, at least one);
* per listener: `ndcg@10` over the set of hidden items, for known listeners who played
  at least one of them;
* the per-upload figures per cohort of text length (words of the embedded text) and of
  group size (how many training catalog items share the upload's author or show).

Served vs baselines: `served` minus the best baseline on each per-upload metric, as
the mean and standard error of the paired per-item difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import rankdata
from tqdm.auto import tqdm

from training.metrics import per_user_ndcg
from training.upload_audience import (
    BLEND_SOURCES,
    MIN_VALIDATION_UPLOADS,
    SOURCES,
    AudienceData,
    UploadAudienceModel,
    source_scores,
)

__all__ = [
    "UploadCatalog",
    "evaluate_uploads",
    "fit_served",
    "served_audience",
    "auc_per_row",
    "recall_per_row",
    "BASELINES",
    "TEXT_COHORTS",
    "GROUP_COHORTS",
]

BASELINES = SOURCES  # every source alone is a baseline; `served` is the blend
UPLOAD_METRICS = ("auc", "recall@100", "recall@1%")
TEXT_COHORTS = {"1-10 words": (1, 10), "11-20 words": (11, 20), ">20 words": (21, None)}
# Validation uploads the served blend is chosen on, at most (a seeded sample).
MAX_VALIDATION_UPLOADS = 500
GROUP_COHORTS = {"group 0": (0, 0), "group 1-4": (1, 4), "group 5+": (5, None)}


class UploadCatalog:
    """The catalog side of the protocol, as arrays: `item_ids`, unit content vectors
    (zero rows for items without text), `groups` [items x groups] binary, words of
    text per item; and `plays` (user_id, item_id) pairs."""

    def __init__(
        self,
        item_ids: Sequence[str],
        vectors: np.ndarray,
        groups: sparse.csr_matrix,
        text_words: np.ndarray,
        plays: pd.DataFrame,
    ) -> None:
        self.item_ids = np.asarray(item_ids, dtype=object)
        self.vectors = np.asarray(vectors, dtype=np.float64)
        self.groups = groups.tocsr()
        self.text_words = np.asarray(text_words, dtype=np.int64)
        column = pd.Series(np.arange(len(self.item_ids)), index=pd.Index(self.item_ids))
        plays = plays.assign(col=plays["item_id"].map(column)).dropna(subset=["col"])
        self.users = np.sort(plays["user_id"].astype(str).unique()).astype(object)
        row = pd.Series(np.arange(len(self.users)), index=pd.Index(self.users))
        matrix = sparse.csr_matrix(
            (
                np.ones(len(plays)),
                (plays["user_id"].astype(str).map(row).to_numpy(), plays["col"].astype(np.int64)),
            ),
            shape=(len(self.users), len(self.item_ids)),
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        self.plays = matrix

    @property
    def has_text(self) -> np.ndarray:
        return np.linalg.norm(self.vectors, axis=1) > 0

    def listeners(self) -> np.ndarray:
        return np.diff(self.plays.tocsc().indptr)

    def hide(self, hidden: np.ndarray) -> tuple[AudienceData, np.ndarray]:
        """(the training side without any play of the `hidden` items, known-listener
        rows: listeners left with at least one play)."""
        keep = np.ones(len(self.item_ids), bool)
        keep[hidden] = False
        plays = (self.plays @ sparse.diags(keep.astype(np.float64))).tocsr()
        plays.eliminate_zeros()
        known = np.flatnonzero(np.diff(plays.indptr) > 0)
        vectors = self.vectors * keep[:, None]
        groups = (sparse.diags(keep.astype(np.float64)) @ self.groups).tocsr()
        return AudienceData(plays[known], vectors, groups), known


def _choose(rng: np.random.Generator, pool: np.ndarray, fraction: float) -> np.ndarray:
    n = int(round(fraction * len(pool)))
    if len(pool) and n == 0:
        n = 1
    return np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False))


def auc_per_row(scores: np.ndarray, truth: Sequence[np.ndarray]) -> np.ndarray:
    """ROC AUC of each row's scores against its positive columns (ties count half);
    NaN where a row has no positives or no negatives."""
    out = np.full(len(truth), np.nan)
    n = scores.shape[1]
    for r, positives in enumerate(truth):
        p = len(positives)
        if 0 < p < n:
            ranks = rankdata(scores[r])
            out[r] = (ranks[positives].sum() - p * (p + 1) / 2) / (p * (n - p))
    return out


def recall_per_row(scores: np.ndarray, truth: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Share of each row's positive columns among its `k` best (ties by column)."""
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.array(
        [np.isin(pos, row).sum() / len(pos) if len(pos) else np.nan for row, pos in zip(top, truth)]
    )


def _cohort(value: int, cohorts: dict) -> str:
    for name, (low, high) in cohorts.items():
        if value >= low and (high is None or value <= high):
            return name
    return "other"


def fit_served(
    catalog: UploadCatalog,
    pool: np.ndarray,
    rng: np.random.Generator,
    hidden: np.ndarray | None = None,
    fraction: float = 0.2,
    neighbours: int = 50,
    seed: int = 0,
) -> tuple[UploadAudienceModel | None, dict]:
    """(the served blend, or None when there are too few validation uploads; facts
    about the fit). Validation uploads are `fraction` of `pool` (at most
    `MAX_VALIDATION_UPLOADS`, drawn with `rng`), hidden with `hidden` (the test
    items, in the protocol) exactly as a test upload is; the weights and the
    calibration are chosen on them. `coldstart train-upload-audience` and the
    protocol both fit the served scorer here."""
    hidden = np.zeros(0, np.int64) if hidden is None else np.asarray(hidden, np.int64)
    val = _choose(rng, pool, fraction)
    if len(val) > MAX_VALIDATION_UPLOADS:
        val = np.sort(rng.choice(val, size=MAX_VALIDATION_UPLOADS, replace=False))
    val_train, val_known = catalog.hide(np.concatenate([hidden, val]))
    val_truth = _truth(catalog, val, val_known)
    val_used = [i for i, t in enumerate(val_truth) if len(t)]
    facts = {"validation_items": len(val_used), "known_listeners": int(len(val_known))}
    if len(val_used) < MIN_VALIDATION_UPLOADS or len(val_known) < 2:
        return None, facts
    val_sources = source_scores(
        val_train,
        catalog.vectors[val][val_used],
        catalog.groups[val][val_used],
        seed=seed,
        neighbours=neighbours,
    )
    served = UploadAudienceModel.choose(
        val_sources, [set(val_truth[i].tolist()) for i in val_used], neighbours=neighbours
    )
    return served, facts


def served_audience(
    model: UploadAudienceModel,
    catalog: UploadCatalog,
    uploads: np.ndarray,
    hidden: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """([uploads x known listeners] served scores, known-listener rows of `catalog`):
    the blend for catalog items `uploads`, from the catalog without any play of
    `hidden` (default: the uploads themselves). What `coldstart score-uploads` writes
    and what the protocol's `served` row measures."""
    uploads = np.asarray(uploads, np.int64)
    train, known = catalog.hide(uploads if hidden is None else np.asarray(hidden, np.int64))
    return model(train, catalog.vectors[uploads], catalog.groups[uploads]), known


def _seed_run(catalog: UploadCatalog, seed: int, fraction: float, k_listener: int, neighbours: int):
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(catalog.has_text & (catalog.listeners() > 0))
    hidden = _choose(rng, eligible, fraction)
    hidden_all = hidden
    train, known = catalog.hide(hidden)

    # Validation uploads inside the training side, hidden the same way: the blend's weights.
    served, facts = fit_served(
        catalog, np.setdiff1d(eligible, hidden), rng, hidden, fraction, neighbours, seed
    )

    truth = _truth(catalog, hidden, known)
    used = np.array([i for i, t in enumerate(truth) if len(t)], dtype=np.int64)
    hidden, truth = hidden[used], [truth[i] for i in used]
    scores = source_scores(
        train, catalog.vectors[hidden], catalog.groups[hidden], seed=seed, neighbours=neighbours
    )
    if served is None:  # too few validation uploads: the fallback source alone
        scores["served"] = scores[BLEND_SOURCES[0]]
    else:  # the same call as `coldstart score-uploads`, with every test item hidden
        scores["served"], served_known = served_audience(served, catalog, hidden, hidden_all)
        assert np.array_equal(served_known, known)

    group_sizes = np.asarray((catalog.groups[hidden] @ train.groups.T).todense())
    group_sizes = (group_sizes > 0).sum(axis=1)
    items = pd.DataFrame(
        {
            "seed": seed,
            "item_id": catalog.item_ids[hidden],
            "listeners": [len(t) for t in truth],
            "text_cohort": [_cohort(w, TEXT_COHORTS) for w in catalog.text_words[hidden]],
            "group_cohort": [_cohort(int(g), GROUP_COHORTS) for g in group_sizes],
        }
    )
    top_share = max(1, int(np.ceil(0.01 * len(known))))
    listener_truth = _listener_truth(truth, len(known))
    listener_rows = [r for r, t in enumerate(listener_truth) if len(t)]
    per_listener = {}
    for name, s in scores.items():
        items[f"{name}:auc"] = auc_per_row(s, truth)
        items[f"{name}:recall@100"] = recall_per_row(s, truth, 100)
        items[f"{name}:recall@1%"] = recall_per_row(s, truth, top_share)
        per_listener[name] = per_user_ndcg(
            s.T[listener_rows], [listener_truth[r] for r in listener_rows], k_listener
        )
    split = {
        "seed": seed,
        "hidden_items": int(len(hidden)),
        "eligible_items": int(len(eligible)),
        "known_listeners": int(len(known)),
        "listeners_with_hidden_items": len(listener_rows),
        "top_1pct_listeners": top_share,
        "served_blend": served.blend.weights if served else None,
        "served_validation": served.blend.validation if served else None,
        "served_calibration": list(served.calibration) if served else None,
        "validation_items": facts["validation_items"],
    }
    return items, per_listener, split


def _truth(catalog: UploadCatalog, items: np.ndarray, known: np.ndarray) -> list[np.ndarray]:
    """Per item, the known-listener positions (rows of `known`) that played it."""
    columns = catalog.plays.tocsc()[:, items]
    position = np.full(catalog.plays.shape[0], -1)
    position[known] = np.arange(len(known))
    out = []
    for j in range(len(items)):
        rows = position[columns.indices[columns.indptr[j] : columns.indptr[j + 1]]]
        out.append(np.sort(rows[rows >= 0]))
    return out


def _listener_truth(truth: Sequence[np.ndarray], n_listeners: int) -> list[set[int]]:
    out: list[set[int]] = [set() for _ in range(n_listeners)]
    for item, rows in enumerate(truth):
        for r in rows:
            out[r].add(item)
    return out


def _mean_se(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if not len(v):
        return {"mean": None, "se": None, "n": 0}
    se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
    return {"mean": float(v.mean()), "se": se, "n": int(len(v))}


def evaluate_uploads(
    catalog: UploadCatalog,
    seeds: Sequence[int] = (0, 1, 2),
    hidden_fraction: float = 0.2,
    k_listener: int = 10,
    neighbours: int = 50,
    progress: bool = False,
    jobs: int = 1,
) -> dict:
    """Run the protocol on every seed (`jobs` seeds at once, in forked processes); the
    JSON-ready result (docs/uploads-evaluation.md)."""
    if not 0 < hidden_fraction < 1:
        raise ValueError(f"hidden fraction must be between 0 and 1, got {hidden_fraction}")
    frames: list = []
    listener_ndcg: dict = {}
    splits: list = []
    run = partial(
        _seed_run,
        catalog,
        fraction=hidden_fraction,
        k_listener=k_listener,
        neighbours=neighbours,
    )
    seeds = [int(seed) for seed in seeds]
    if jobs > 1 and len(seeds) > 1:  # seeds are independent: the same result in parallel
        with ProcessPoolExecutor(min(jobs, len(seeds)), mp_context=get_context("fork")) as pool:
            runs: Iterable = list(
                tqdm(pool.map(run, seeds), total=len(seeds), desc="seeds", disable=not progress)
            )
    else:
        runs = (run(seed) for seed in tqdm(seeds, desc="seeds", disable=not progress))
    for items, per_listener, split in runs:
        frames.append(items)
        splits.append(split)
        for name, values in per_listener.items():
            listener_ndcg.setdefault(name, []).append(values)
    if not frames or not sum(len(f) for f in frames):
        raise ValueError("no hidden item has a known listener: nothing to evaluate")
    items = pd.concat(frames, ignore_index=True)
    models = {}
    for name in [*BASELINES, "served"]:
        entry = {m: _mean_se(items[f"{name}:{m}"]) for m in UPLOAD_METRICS}
        entry[f"ndcg@{k_listener}"] = _mean_se(np.concatenate(listener_ndcg[name]))
        entry["cohorts"] = {
            cohort: {m: _mean_se(group[f"{name}:{m}"]) for m in UPLOAD_METRICS}
            for column in ("text_cohort", "group_cohort")
            for cohort, group in items.groupby(column)
        }
        models[name] = entry
    served_vs = {}
    for metric in UPLOAD_METRICS:
        best = max(BASELINES, key=lambda n: models[n][metric]["mean"] or -np.inf)
        diff = items[f"served:{metric}"] - items[f"{best}:{metric}"]
        served_vs[metric] = {"best_baseline": best, **_mean_se(diff)}
    cohort_sizes = {
        column: items.groupby(column).size().to_dict() for column in ("text_cohort", "group_cohort")
    }
    return {
        "seeds": [int(s) for s in seeds],
        "hidden_fraction": hidden_fraction,
        "catalog_items": int(len(catalog.item_ids)),
        "items_with_text": int(catalog.has_text.sum()),
        "splits": splits,
        "evaluated_items": int(len(items)),
        "cohort_items": cohort_sizes,
        "models": models,
        "served_minus_best_baseline": served_vs,
    }
