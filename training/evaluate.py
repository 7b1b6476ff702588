"""The cold-start evaluation harness.

For each seed: hide all target-domain history of `cold_fraction` of the users who
have both music and target history (`training.splits.cold_user_split`), fit every
model on the rest, rank the target catalog for the hidden users from their music
(UserProfile.spoken holds no target items), and score the top k. Results are the
mean and std over seeds.

Adding a model
--------------
`default_models(target, seed)` returns `{name: factory}` where `factory()` builds an
unfitted `training.base.Recommender` for that target and seed. To add a model, add an
entry there (guarded by the targets it supports), e.g.::

    if target == "audiobook":
        models["gnn_two_tower"] = lambda: TwoTowerRecommender(target, seed)

or pass your own `models=` mapping (same shape, but taking `(target, seed)`) to
`evaluate`. Every model must pass `tests/recommender_contract.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from training.affinity import AffinityConfig, AffinityModel
from training.base import Recommender
from training.baselines import PopularityRecommender, SegmentPopularityRecommender
from training.cmf import CMFALSRecommender
from training.cross_domain import CrossDomainRidge, MusicItemKNN
from training.data import InteractionData
from training.ease import EASERecommender
from training.gnn_only import GNNOnlyRecommender
from training.metrics import ndcg_at_k, summarise
from training.splits import cold_user_split
from training.two_tower import TwoTowerConfig, TwoTowerRecommender

__all__ = ["default_models", "evaluate", "ModelFactory"]

ModelFactory = Callable[[str, int], Recommender]


def default_models(target: str, seed: int) -> dict[str, Callable[[], Recommender]]:
    """Every model the harness runs for `target`; baselines always come first."""
    models: dict[str, Callable[[], Recommender]] = {
        "popularity": lambda: PopularityRecommender(target, seed),
        "segment_popularity": lambda: SegmentPopularityRecommender(target, seed),
        "music_knn": lambda: MusicItemKNN(target, seed),
        "cross_domain_ridge": lambda: CrossDomainRidge(target, seed),
        "cmf_als": lambda: CMFALSRecommender(target, seed),
        "ease": lambda: EASERecommender(target, seed),
        "affinity_mlp": lambda: AffinityModel(target, seed, AffinityConfig()),
    }
    if target == "audiobook":
        # 2T-HGNN and its ablations (docs/audiobooks.md); imported here so other
        # targets do not pay for torch_geometric and faiss.

        models["two_tower"] = lambda: TwoTowerRecommender(target, seed)
        models["two_tower_gnn"] = lambda: TwoTowerRecommender(
            target, seed, TwoTowerConfig(use_gnn=True)
        )
        models["gnn_only"] = lambda: GNNOnlyRecommender(target, seed)
    return models


def _factories(
    models: Mapping[str, ModelFactory] | None, target: str, seed: int
) -> dict[str, Callable[[], Recommender]]:
    if models is None:
        return default_models(target, seed)
    return {name: (lambda f=f: f(target, seed)) for name, f in models.items()}


# Cohorts of music-history size (items): the gain over popularity should grow with history.
COHORTS = {"1-5": (1, 5), "6-20": (6, 20), ">20": (21, None)}


def cohort_of(n_music: int) -> str | None:
    for name, (low, high) in COHORTS.items():
        if n_music >= low and (high is None or n_music <= high):
            return name
    return None


def _cohort_ndcg(rankings, truth, users, k: int) -> dict[str, float]:
    by_cohort: dict[str, list[float]] = {}
    for ranked, relevant, user in zip(rankings, truth, users):
        cohort = cohort_of(len(user.music))
        if cohort is not None:
            by_cohort.setdefault(cohort, []).append(ndcg_at_k(ranked, relevant, k))
    return {f"ndcg@{k}[{c}]": float(np.mean(by_cohort[c])) for c in COHORTS if c in by_cohort}


def evaluate(
    data: InteractionData,
    target: str = "podcast",
    cold_fraction: float = 0.2,
    seeds: Sequence[int] = (0, 1, 2),
    k: int = 10,
    models: Mapping[str, ModelFactory] | None = None,
    progress: bool = False,
    cold_history: str = "non-target",
    cold_users: Sequence[str] | None = None,
) -> dict:
    """Run the cold-start protocol; returns the JSON-ready result (see docs/evaluation.md).

    `cold_history`: what cold users keep besides music ("non-target" or "music", see
    `training.splits`); `cold_users`: hide exactly these users instead of a random
    share (every seed then differs only in the models' own seeds)."""
    per_seed: dict[str, list[dict]] = {}
    split_sizes = []
    catalog_size = len(data.catalog(target))
    for seed in tqdm(list(seeds), desc="seeds", disable=not progress):
        split = cold_user_split(data, target, cold_fraction, seed, cold_history, cold_users)
        cohorts = [cohort_of(len(u.music)) for u in split.users]
        split_sizes.append(
            {
                "seed": int(seed),
                "cold_users": len(split.users),
                "eligible_users": split.eligible,
                "cohorts": {c: cohorts.count(c) for c in COHORTS},
            }
        )
        for name, factory in _factories(models, target, seed).items():
            started = time.perf_counter()
            model = factory().fit(split.train)
            fitted = time.perf_counter()
            rankings = model.recommend_batch(split.users, k)
            scores = summarise([r.item_ids for r in rankings], split.truth, k, catalog_size)
            scores.update(_cohort_ndcg([r.item_ids for r in rankings], split.truth, split.users, k))
            scores["fallback_share"] = (
                float(np.mean([r.fallback for r in rankings])) if rankings else 0.0
            )
            scores["fit_seconds"] = fitted - started
            scores["recommend_seconds"] = time.perf_counter() - fitted
            per_seed.setdefault(name, []).append({"seed": int(seed), **scores})

    results = {}
    for name, runs in per_seed.items():
        keys = [key for key in dict.fromkeys(key for r in runs for key in r) if key != "seed"]
        results[name] = {key: float(np.mean([r[key] for r in runs if key in r])) for key in keys}
        results[name]["std"] = {
            key: float(np.std([r[key] for r in runs if key in r])) for key in keys
        }
        results[name]["per_seed"] = runs
    if "popularity" in results:
        base = results["popularity"]
        for model in results.values():
            model["ratio_to_popularity"] = {
                key: (model[key] / base[key] if base.get(key) else None)
                for key in model
                if key.startswith(f"ndcg@{k}")
            }
    return {
        "target": target,
        "k": k,
        "cold_history": cold_history,
        "cold_users_file": cold_users is not None,
        "cold_fraction": cold_fraction,
        "seeds": [int(s) for s in seeds],
        "catalog_size": catalog_size,
        "splits": split_sizes,
        "models": results,
    }
