"""Routes to p(genre | query) for mode gated, compared on the tuning halves (issue 28).

Mode gated scores `cosine + lw(g) * BM25 / best BM25 + iw(g) * p(item's genre | query)`; its
p(genre | query) comes from the intent classifier (coldstart/content/intent.py). This script
asks whether another p(genre | query) ranks better, each route replacing the classifier's
distribution in the same scoring:

* `classifier`: the shipped one (the baseline);
* `classifier^2`: the classifier sharpened (p^2, renormalised); `classifier^0.5` flattened;
* `prf dense k`: pseudo-relevance feedback, the genre distribution of the query's dense top k
  shows (uniform weights; with `T`, weights exp(cosine / T)) = a kNN classifier over the
  show vectors, blended with the classifier: (1 - a) * classifier + a * prf;
* `prf fused k`: the same over the top k by cosine + 0.5 * BM25 / best BM25 (dense and BM25
  neighbours);
* `poe ...`: product of experts, classifier * (prf + 0.001)^a, renormalised;
* `tree ...`: the genre tree (coldstart/content/genre_tree.json, Apple's subgenres per
  genre): (1 - a - b) * classifier + a * prf fused 20 + b * softmax(the query's best cosine
  to each genre's tree phrases / T), each name written as "podcasts about {name}" (the
  file's phrase) or as the bare name.

For each route the gate (GATE_FEATURES, unchanged: the classifier's confidence) is scored
with its 5-fold out-of-fold probability on the tuning queries, and the two weight sets are
chosen on the tuning halves by genre precision@10 + known-item MRR@10 over a reduced grid
(broad lw {0.3, 0.5, 0.75, 1} x iw {0.75, 1, 1.5, 2, 3}; specific (lw, iw) in SPECIFIC_GRID),
the same grid for every route, the baseline included. Then, and only to report it, the gate
refitted on all tuning queries ranks the validation halves at the chosen weights.

    COLDSTART_EMBED__PRECISION=fp32 COLDSTART_EMBED__THREADS=1 .venv/bin/python \\
        benchmarks/query_genre_routes.py /work/shared/data/apple-podcasts/podcasts_info.json \\
        --home /tmp/sq --json benchmarks/results/query_genre_routes.json

`--home` is the directory of benchmarks/search_quality.py (its `base/` home is reused).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from known_item_queries import split as known_split  # noqa: E402
from search_quality import GATE_C, build  # noqa: E402
from search_queries import split  # noqa: E402

from coldstart.content.intent import IntentModel, _tree_phrases, load_genre_tree  # noqa: E402
from coldstart.content.query_gate import QueryGate  # noqa: E402
from coldstart.content.search import SearchService  # noqa: E402

BROAD_GRID = list(itertools.product((0.3, 0.5, 0.75, 1.0), (0.75, 1.0, 1.5, 2.0, 3.0)))
SPECIFIC_GRID = [(0.75, 0.0), (0.5, 0.0), (1.0, 0.0), (0.75, 0.1), (0.75, 0.2)]
# (name, kind, a, k, T, source, power); for kind "tree": (name, "tree", a, b, T, phrase, 1.0)
TREE_PHRASES = {"about": "podcasts about {}", "bare": "{}"}
ROUTES = [
    ("classifier", "clf", 0.0, 0, 0.0, "dense", 1.0),
    ("classifier^2", "clf", 0.0, 0, 0.0, "dense", 2.0),
    ("classifier^0.5", "clf", 0.0, 0, 0.0, "dense", 0.5),
    ("prf dense 10, a 0.25", "lin", 0.25, 10, 0.0, "dense", 1.0),
    ("prf dense 20, a 0.5", "lin", 0.5, 20, 0.0, "dense", 1.0),
    ("prf dense 20, T 0.05, a 0.25", "lin", 0.25, 20, 0.05, "dense", 1.0),
    ("prf dense 20 alone (kNN)", "lin", 1.0, 20, 0.0, "dense", 1.0),
    ("prf fused 20, a 0.25", "lin", 0.25, 20, 0.0, "fused", 1.0),
    ("prf fused 20, a 0.5", "lin", 0.5, 20, 0.0, "fused", 1.0),
    ("prf fused 50, a 0.25", "lin", 0.25, 50, 0.0, "fused", 1.0),
    ("poe classifier x prf dense 20^0.5", "poe", 0.5, 20, 0.0, "dense", 1.0),
    ("poe classifier x prf fused 20^0.5", "poe", 0.5, 20, 0.0, "fused", 1.0),
    ("poe classifier x prf fused 50^1", "poe", 1.0, 50, 0.0, "fused", 1.0),
] + [
    (f"tree {phrase}, b {b}, T {t}, prf fused 20 a 0.25", "tree", 0.25, b, t, phrase, 1.0)
    for phrase in TREE_PHRASES
    for t in (0.02, 0.05, 0.1)
    for b in (0.15, 0.3, 0.5)
]


@dataclasses.dataclass
class Query:
    half: str
    broad: bool
    target: str  # the genre (broad) or the show's id (known item)
    cand: object  # Candidates
    p: np.ndarray  # the classifier's p(genre | query)
    cols: np.ndarray  # each candidate's genre column (-1: none the classifier knows)
    key_rank: np.ndarray
    tree: dict  # phrase -> the query's best cosine to each genre's tree phrases


def prf(q: Query, k: int, temperature: float, source: str, n_genres: int) -> np.ndarray:
    c = q.cand
    s = c.cosine if source == "dense" else c.cosine + 0.5 * c.lexical
    idx = np.flatnonzero(c.in_dense) if source == "dense" else np.arange(len(s))
    idx = idx[np.argsort(-s[idx], kind="stable")][:k]
    idx = idx[q.cols[idx] >= 0]
    w = np.exp((s[idx] - s[idx].max()) / temperature) if temperature else np.ones(len(idx))
    d = np.bincount(q.cols[idx], weights=w, minlength=n_genres)
    return d / max(d.sum(), 1e-12)


def route_distribution(q: Query, route: tuple, n_genres: int) -> np.ndarray:
    """The route's p(genre | query) over the classifier's genres."""
    _, kind, a, k, temperature, source, power = route
    p = q.p**power
    p = p / p.sum()
    if kind == "tree":
        z = (q.tree[source] - q.tree[source].max()) / temperature
        b = k
        p = (
            (1 - a - b) * p
            + a * prf(q, 20, 0.0, "fused", n_genres)
            + b * np.exp(z) / np.exp(z).sum()
        )
    elif kind == "lin":
        p = (1 - a) * p + a * prf(q, k, temperature, source, n_genres)
    elif kind == "poe":
        p = p * (prf(q, k, temperature, source, n_genres) + 1e-3) ** a
        p = p / p.sum()
    return p


def route_genre_p(q: Query, route: tuple, n_genres: int) -> np.ndarray:
    """p(each candidate's genre | query) under the route (0: no genre the classifier knows)."""
    p = route_distribution(q, route, n_genres)
    return np.where(q.cols >= 0, p[np.maximum(q.cols, 0)], 0.0)


def rank_metrics(queries, genre_p, g, wb, ws, genre_of) -> tuple[float, float, float]:
    prec, rr = [], []
    for q, gp, gi in zip(queries, genre_p, g):
        lw, iw = (1 - gi) * wb[0] + gi * ws[0], (1 - gi) * wb[1] + gi * ws[1]
        top = np.lexsort((q.key_rank, -(q.cand.cosine + lw * q.cand.lexical + iw * gp)))[:10]
        keys = [q.cand.keys[i] for i in top]
        if q.broad:
            prec.append(np.mean([genre_of.get(key) == q.target for key in keys]))
        else:
            rr.append(1.0 / (keys.index(q.target) + 1) if q.target in keys else 0.0)
    return float(np.mean(prec)), float(np.mean(rr)), float(np.mean(np.array(rr) > 0))


def tree_model(service: SearchService, settings, phrase: str) -> IntentModel:
    """The served classifier with the packaged genre tree's names embedded as `phrase`."""
    tree = load_genre_tree(
        settings.model_copy(
            update={"embed": settings.embed.model_copy(update={"genre_tree": None})}
        )
    )
    assert tree is not None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tree.json"
        path.write_text(json.dumps({"phrase": phrase, "genres": tree[1]}))
        embed = settings.embed.model_copy(update={"genre_tree": str(path)})
        texts, owner, _ = _tree_phrases(
            settings.model_copy(update={"embed": embed}), service.intent.labels
        )
    vectors = np.stack([service.encoder.encode_query(t) for t in texts])
    m = service.intent
    return IntentModel(m.labels, m.coef, m.intercept, m.manifest, vectors, owner)


def main() -> None:
    from sklearn.model_selection import StratifiedKFold

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("catalogue", type=Path)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    store, settings, _ = build(args.catalogue, args.home / "base", False)
    service = SearchService(store, settings)
    genre_of = service.items["genre"].to_dict()
    n_genres = len(service.intent.labels)
    tree_models = {
        name: tree_model(service, settings, phrase) for name, phrase in TREE_PHRASES.items()
    }
    queries: list[Query] = []
    for half in ("tuning", "validation"):
        texts = [(True, g, q) for g, q in split(half)]
        texts += [(False, item_id, q) for _, item_id, q in known_split(half)]
        for broad, target, text in texts:
            c = service.candidates(text, kind="show")
            p = service.intent.probabilities(service.encoder.encode_query(text))[0]
            cols = np.array([service._genre_col.get(key, -1) for key in c.keys])
            rank = np.argsort(np.argsort(np.array(c.keys)))
            qvec = service.encoder.encode_query(text)
            tree = {name: m.tree_similarity(qvec) for name, m in tree_models.items()}
            queries.append(Query(half, broad, target, c, p, cols, rank, tree))
    tun = [q for q in queries if q.half == "tuning"]
    val = [q for q in queries if q.half == "validation"]
    X = np.stack([q.cand.gate_features for q in tun])
    y = np.array([0 if q.broad else 1 for q in tun])
    unit = {"lexical_weight": 0.0, "intent_weight": 0.0}
    oof = np.zeros(len(y))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        gate = QueryGate.fit(X[train], y[train], unit, unit, c=GATE_C)
        oof[test] = [gate.p_specific(x) for x in X[test]]
    gate = QueryGate.fit(X, y, unit, unit, c=GATE_C)
    g_val = [gate.p_specific(q.cand.gate_features) for q in val]
    rows = []
    for route in ROUTES:
        gp_tun = [route_genre_p(q, route, n_genres) for q in tun]
        grid = {
            (wb, ws): rank_metrics(tun, gp_tun, oof, wb, ws, genre_of)
            for wb in BROAD_GRID
            for ws in SPECIFIC_GRID
        }
        wb, ws = max(grid, key=lambda w: (round(grid[w][0] + grid[w][1], 9), *(-x for x in w[0])))
        gp_val = [route_genre_p(q, route, n_genres) for q in val]
        v = rank_metrics(val, gp_val, g_val, wb, ws, genre_of)
        t = grid[(wb, ws)]
        labels = service.intent.labels
        acc = {
            name: float(
                np.mean(
                    [
                        labels[int(np.argmax(route_distribution(q, route, n_genres)))]
                        == (q.target if q.broad else genre_of.get(q.target))
                        for q in tun
                        if q.broad == broad
                    ]
                )
            )
            for name, broad in (("broad", True), ("known_item", False))
        }
        rows.append(
            {
                "route": route[0],
                "broad": wb,
                "specific": ws,
                "tuning": {"precision": t[0], "mrr": t[1], "found": t[2], "sum": t[0] + t[1]},
                "tuning_top1_genre_accuracy": acc,
                "validation": {"precision": v[0], "mrr": v[1], "found": v[2]},
            }
        )
        print(
            f"{route[0]:36s} top-1 genre {acc['broad']:.3f} / {acc['known_item']:.3f}  "
            f"tuning {t[0]:.3f} + {t[1]:.3f} = {t[0] + t[1]:.3f}   "
            f"validation precision {v[0]:.3f} MRR {v[1]:.3f} found {v[2]:.3f}   "
            f"(broad {wb}, specific {ws})",
            flush=True,
        )
    if args.json:
        out = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
        args.json.write_text(json.dumps({**out, "routes": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
