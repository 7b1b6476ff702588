"""Both kinds of content query, every search mode side by side, on the Apple Podcasts catalogue.

* Broad queries (benchmarks/search_queries.py, 6 per genre): a request for a kind of show,
  never naming the genre; a returned show is relevant when its Apple genre is the
  query's genre: precision@10 and nDCG@10.
* Known-item queries (benchmarks/known_item_queries.py, 6 per genre): one show half-
  remembered, paraphrased from its description without its title's words; MRR@10 and
  found@10 (the show is in the top 10).

The catalogue is imported and indexed exactly as `coldstart import apple-podcasts` +
`coldstart ingest` + `coldstart index` do, in two homes: the base encoder (`embed.adapt`
off) and the adapted one (`embed.adapt` on, `coldstart/content/adapt.py`). Both homes get
their own intent classifier (`coldstart/content/intent.py`) from `coldstart index`.

Weights are chosen on the TUNING halves of both query sets (`--tune` prints the grid):
`intent_weight` for mode intent (genre precision alone, as before), and for mode fused
`lexical_weight`, `fused_intent_weight` and `intent_confidence_power`, by the sum of
tuning genre precision@10 and tuning known-item MRR@10; for mode gated (the default) the
query-type gate and its two weight sets, by the same sum (`tune_gate`), written with
`--write-gate` (the packaged gate is coldstart/content/query_gate.json). The tables report
the VALIDATION halves, mean and standard error over queries, and the fresh broad set
(benchmarks/search_queries_fresh.py, written after the first validation half had been
studied query by query; it never chooses anything). Latency is measured per query
with the real encoder (no cache), one query at a time, over every query of both sets,
after two warm-up queries.

    .venv/bin/python benchmarks/search_quality.py /work/shared/data/apple-podcasts/podcasts_info.json \
        --home /tmp/sq --no-adapt --tune --write-gate coldstart/content/query_gate.json \
        --json benchmarks/results/search_quality-gated.json
    .venv/bin/python benchmarks/search_quality.py --report benchmarks/results/search_quality-gated.json
    .venv/bin/python benchmarks/search_quality.py     # the 200-show slice in tests/data (smoke run)
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from known_item_queries import split as known_split  # noqa: E402
from search_queries import QUERIES, split  # noqa: E402
from search_queries_fresh import fresh  # noqa: E402

from coldstart.content.embeddings import Encoder, load_encoder  # noqa: E402
from coldstart.content.index import index_content  # noqa: E402
from coldstart.content.query_gate import GATE_FEATURES, QueryGate  # noqa: E402
from coldstart.content.search import SearchService  # noqa: E402
from coldstart.core.config import Settings  # noqa: E402
from coldstart.core.store import Store  # noqa: E402
from coldstart.data.importers import apple_podcasts  # noqa: E402
from coldstart.data.ingest import ingest_dataset  # noqa: E402

INTENT_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
# mode fused: lexical_weight x fused_intent_weight x intent_confidence_power
LEXICAL_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
FUSED_INTENT_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
POWER_GRID = (0.0, 1.0, 2.0, 4.0)
# mode gated: each of its two weight sets (broad, specific) is lexical_weight x intent_weight
GATED_LEXICAL_GRID = LEXICAL_GRID
GATED_INTENT_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
GATE_C = 1.0
# mode gated's p(genre | query): the classifier blended with the genre shares of the top 20
# candidates by cosine + 0.5 * BM25 / best and with a softmax (temperature 0.05) of the
# query's best cosine to each genre's genre-tree phrases; chosen among the routes of
# benchmarks/query_genre_routes.py on the tuning halves (issue 28)
GATE_FEEDBACK = {
    "weight": 0.25,
    "depth": 20,
    "lexical_weight": 0.5,
    "tree_weight": 0.5,
    "tree_temperature": 0.05,
}
MODES = ("dense", "lexical", "hybrid", "intent", "fused", "gated")


class CachedEncoder(Encoder):
    """The real encoder with a query cache: the tuning sweeps re-rank the same queries."""

    def __init__(self, inner: Encoder) -> None:
        super().__init__(inner.model, inner.model_id, inner.path, inner.precision, inner.batch_size)
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts, progress: bool = False) -> np.ndarray:
        missing = [t for t in texts if t not in self._cache]
        if missing:
            for t, v in zip(missing, super().encode(missing)):
                self._cache[t] = v
        return np.stack([self._cache[t] for t in texts]) if len(texts) else super().encode([])


def build(src: Path, home: Path, adapt: bool) -> tuple[Store, Settings, dict]:
    settings = Settings(home=home)
    settings.embed.adapt = adapt
    store = Store.from_settings(settings)
    if not (home / "dataset" / "items.csv").exists():
        apple_podcasts(src, home / "dataset")
        ingest_dataset(store, home / "dataset")
    started = time.perf_counter()
    report, syncs = index_content(store, settings, progress=False)
    info = {
        "index_seconds": round(time.perf_counter() - started, 1),
        "embed": report.to_dict(),
        "indexes": [s.to_dict() for s in syncs],
    }
    return store, settings, info


def _ndcg(relevant: list[bool], k: int) -> float:
    dcg = sum(1.0 / np.log2(r + 2) for r, rel in enumerate(relevant[:k]) if rel)
    ideal = sum(1.0 / np.log2(r + 2) for r in range(k))
    return dcg / ideal


def _se(values) -> float:
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def score(service: SearchService, mode: str, queries: list[tuple[str, str]], k: int = 10) -> dict:
    """Broad queries: per-query precision@k and nDCG@k (binary genre relevance), mean and SE."""
    genre_of = service.items["genre"].to_dict()
    prec, ndcg = [], []
    for genre, query in queries:
        hits = service.search(query, k=k, kind="show", mode=mode)
        rel = [genre_of.get(h.item_id) == genre for h in hits] + [False] * (k - len(hits))
        prec.append(sum(rel) / k)
        ndcg.append(_ndcg(rel, k))
    return {
        "precision": float(np.mean(prec)),
        "precision_se": _se(prec),
        "ndcg": float(np.mean(ndcg)),
        "ndcg_se": _se(ndcg),
        "per_query_precision": prec,
    }


def score_known(
    service: SearchService, mode: str, queries: list[tuple[str, str, str]], k: int = 10
) -> dict:
    """Known-item queries: reciprocal rank of the one show (0 past rank k) and found@k."""
    ranks = []
    for _, item_id, query in queries:
        hits = [h.item_id for h in service.search(query, k=k, kind="show", mode=mode)]
        ranks.append(hits.index(item_id) + 1 if item_id in hits else 0)
    rr = [1.0 / r if r else 0.0 for r in ranks]
    found = [1.0 if r else 0.0 for r in ranks]
    return {
        "mrr": float(np.mean(rr)),
        "mrr_se": _se(rr),
        "found": float(np.mean(found)),
        "found_se": _se(found),
        "ranks": ranks,
    }


FUSED_PARAMS = ("lexical_weight", "fused_intent_weight", "intent_confidence_power")


def _top(c, weights: tuple[float, float, float], k: int = 10) -> list[str]:
    """The top k of `service.search(mode="fused")` at these weights, from its candidates."""
    keep = c.in_dense if weights[0] == 0 else np.ones(len(c.keys), bool)
    scores = c.score(*weights)
    order = sorted(np.flatnonzero(keep), key=lambda i: (-scores[i], c.keys[i]))
    return [c.keys[i] for i in order[:k]]


def tune(service: SearchService) -> dict:
    """On the tuning halves only: intent_weight of mode intent (broad precision, as before),
    then the fused weights by broad precision@10 + known-item MRR@10 (ties: smaller weights).

    The fused grid reads each query's candidates once (`SearchService.candidates`: cosine,
    BM25 / best BM25, p(genre), confidence) and ranks them as mode fused does at each
    grid point (tests/test_adapt_intent.py checks that the two agree).
    """
    cfg = service.settings.embed
    broad, known = split("tuning"), known_split("tuning")
    saved = cfg.intent_weight
    intent_grid = {}
    for w in INTENT_GRID:
        cfg.intent_weight = w
        intent_grid[str(w)] = score(service, "intent", broad)["precision"]
    cfg.intent_weight = saved
    best_intent = max(INTENT_GRID, key=lambda w: (intent_grid[str(w)], -w))
    genre_of = service.items["genre"].to_dict()
    broad_c = [(genre, service.candidates(q, kind="show")) for genre, q in broad]
    known_c = [(item_id, service.candidates(q, kind="show")) for _, item_id, q in known]
    fused_grid = {}
    for point in itertools.product(LEXICAL_GRID, FUSED_INTENT_GRID, POWER_GRID):
        if point[1] == 0 and point[2] != POWER_GRID[0]:
            continue  # no boost: the power does nothing
        prec = [np.mean([genre_of.get(i) == g for i in _top(c, point)]) for g, c in broad_c]
        rr = []
        for item_id, c in known_c:
            top = _top(c, point)
            rr.append(1.0 / (top.index(item_id) + 1) if item_id in top else 0.0)
        fused_grid["/".join(map(str, point))] = {
            "precision": float(np.mean(prec)),
            "mrr": float(np.mean(rr)),
        }
    best = max(
        fused_grid,
        key=lambda key: (
            round(fused_grid[key]["precision"] + fused_grid[key]["mrr"], 9),
            *(-float(x) for x in key.split("/")),
        ),
    )
    return {
        "precision_by_intent_weight": intent_grid,
        "intent_weight": best_intent,
        "fused_grid (lexical_weight/fused_intent_weight/intent_confidence_power)": fused_grid,
        "fused": dict(zip(FUSED_PARAMS, map(float, best.split("/")))),
        "gated": tune_gate(broad_c, known_c, genre_of),
    }


def _first(c, lw: float, iw: float, k: int = 10) -> np.ndarray:
    """Indices of the top k candidates at these weights (ties by key, as `search` breaks them)."""
    scores = c.score(lw, iw, 0.0)  # mode gated always ranks the dense and the BM25 candidates
    return np.lexsort((c.key_rank, -scores))[:k]


def tune_gate(broad_c: list, known_c: list, genre_of: dict) -> dict:
    """Mode gated, on the tuning halves only: the gate (logistic regression, broad = 0 /
    specific = 1, over GATE_FEATURES of the tuning queries of both sets), then its two weight
    sets by broad precision@10 + known-item MRR@10, each query ranked with the gate's
    out-of-fold probability (5 folds, seeded), so the weights are chosen with the gate's real
    errors and not with its fit to the query itself. Ties: smaller weights."""
    from sklearn.model_selection import StratifiedKFold

    cands = [c for _, c in broad_c] + [c for _, c in known_c]
    # p(genre | query) as mode gated reads it (the classifier + pseudo-relevance feedback)
    cands = [dataclasses.replace(c, genre_p=c.feedback_genre_p(**GATE_FEEDBACK)) for c in cands]
    for c in cands:  # for ties broken by key, as `search` breaks them
        object.__setattr__(c, "key_rank", np.argsort(np.argsort(np.array(c.keys))))
    X = np.stack([c.gate_features for c in cands])
    y = np.array([0] * len(broad_c) + [1] * len(known_c))
    oof = np.zeros(len(y))
    unit = {"lexical_weight": 0.0, "intent_weight": 0.0}
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(X, y):
        gate = QueryGate.fit(X[train], y[train], unit, unit, c=GATE_C)
        oof[test] = [gate.p_specific(x) for x in X[test]]
    cv_accuracy = float(np.mean((oof > 0.5) == y))
    relevant = [np.array([genre_of.get(k) == g for k in c.keys]) for g, c in broad_c]
    target = [np.array([k == item_id for k in c.keys]) for item_id, c in known_c]
    sets = list(itertools.product(GATED_LEXICAL_GRID, GATED_INTENT_GRID))
    # the top 10 of each query at every (broad, specific) pair of weight sets
    grid = {}
    for wb, ws in itertools.product(sets, sets):
        prec, rr = [], []
        for i, c in enumerate(cands):
            g = oof[i]
            top = _first(c, (1 - g) * wb[0] + g * ws[0], (1 - g) * wb[1] + g * ws[1])
            if i < len(broad_c):
                prec.append(relevant[i][top].mean())
            else:
                hit = np.flatnonzero(target[i - len(broad_c)][top])
                rr.append(1.0 / (hit[0] + 1) if len(hit) else 0.0)
        grid[wb + ws] = (float(np.mean(prec)), float(np.mean(rr)))
    best = max(grid, key=lambda w: (round(sum(grid[w]), 9), *(-x for x in w)))
    names = ("lexical_weight", "intent_weight")
    return {
        "features": list(GATE_FEATURES),
        "C": GATE_C,
        "genre_feedback": GATE_FEEDBACK,
        "cv_accuracy": cv_accuracy,
        "broad": dict(zip(names, best[:2])),
        "specific": dict(zip(names, best[2:])),
        "tuning_precision": grid[best][0],
        "tuning_mrr": grid[best][1],
        "grid_top10 (broad lw/iw, specific lw/iw: precision, mrr)": {
            "/".join(map(str, w)): grid[w] for w in sorted(grid, key=lambda w: -sum(grid[w]))[:10]
        },
        "_features": X,
        "_labels": y,
    }


def latency(service: SearchService, mode: str, queries: list[str]) -> dict:
    """Wall-clock and CPU (this thread's) milliseconds per query, p50 and p95.

    A query runs on one thread (torch and faiss pinned to 1 by `SearchService.search`),
    so its thread CPU time is what it costs on an idle core; the wall time also counts
    the waits for a core when the machine is shared (the load average is recorded).
    """
    for q in queries[:2]:
        service.search(q, k=10, kind="show", mode=mode)
    wall, cpu = [], []
    for q in queries:
        t0, c0 = time.perf_counter(), time.thread_time()
        service.search(q, k=10, kind="show", mode=mode)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    pct = lambda v, p: round(float(np.percentile(v, p)), 2)  # noqa: E731
    return {
        "p50_ms": pct(wall, 50),
        "p95_ms": pct(wall, 95),
        "cpu_p50_ms": pct(cpu, 50),
        "cpu_p95_ms": pct(cpu, 95),
        "load_average": round(os.getloadavg()[0], 2),
    }


def query_encoding(encoder: Encoder, queries: list[str]) -> dict:
    """Thread CPU ms per single query: `encode_query` (fp32, modules called directly) vs
    `encode([q])` (SentenceTransformer.encode with the configured precision), interleaved."""
    from training.threads import torch_threads

    fast, batch = [], []
    with torch_threads(1):
        encoder.encode_query(queries[0]), encoder.encode(queries[:1])
        for q in queries:
            c0 = time.thread_time()
            encoder.encode_query(q)
            c1 = time.thread_time()
            encoder.encode([q])
            c2 = time.thread_time()
            fast.append((c1 - c0) * 1000)
            batch.append((c2 - c1) * 1000)
    pct = lambda v, p: round(float(np.percentile(v, p)), 2)  # noqa: E731
    return {
        "encode_query_cpu_p50_ms": pct(fast, 50),
        "encode_query_cpu_p95_ms": pct(fast, 95),
        f"encode_{encoder.precision}_cpu_p50_ms": pct(batch, 50),
        f"encode_{encoder.precision}_cpu_p95_ms": pct(batch, 95),
    }


def fitted_gate(tuned: dict, model_id: str, catalogue: Path) -> QueryGate:
    """The gate refitted on every tuning query, with the weight sets `tune_gate` chose."""
    X, y = tuned.pop("_features"), tuned.pop("_labels")
    manifest = {
        "kind": "query-type-gate",
        "model": "logistic regression (scikit-learn, lbfgs), standardised features",
        "features": list(GATE_FEATURES),
        "C": GATE_C,
        "genre_feedback": "p(genre | query) = (1 - weight - tree_weight) * classifier + weight "
        "* genre shares of the top `depth` candidates by cosine + lexical_weight * BM25 / best "
        "BM25 + tree_weight * softmax(best cosine to each genre's genre-tree phrases / "
        "tree_temperature); chosen on the tuning halves by benchmarks/query_genre_routes.py",
        "fitted_on": {
            "catalogue": Path(catalogue).name,
            "encoder": model_id,
            "broad_queries": "benchmarks/search_queries.py, tuning half",
            "known_item_queries": "benchmarks/known_item_queries.py, tuning half",
            "broad": int((y == 0).sum()),
            "specific": int((y == 1).sum()),
        },
        "cv_accuracy_5fold": round(tuned["cv_accuracy"], 4),
        "tuning_precision_at_10": round(tuned["tuning_precision"], 4),
        "tuning_mrr_at_10": round(tuned["tuning_mrr"], 4),
        "command": "benchmarks/search_quality.py CATALOGUE --home DIR --tune --write-gate PATH",
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return QueryGate.fit(
        X, y, tuned["broad"], tuned["specific"], c=GATE_C, manifest=manifest,
        feedback=GATE_FEEDBACK,
    )  # fmt: skip


def run_home(
    src: Path,
    home: Path,
    adapt: bool,
    do_tune: bool,
    timed: bool = True,
    write_gate: Path | None = None,
) -> dict:
    store, settings, info = build(src, home, adapt)
    real = load_encoder(settings)
    service = SearchService(store, settings, CachedEncoder(real))
    adapted = store.artifact("encoder:adapted") if adapt else None
    out = {
        "model_id": real.model_id,
        "info": info,
        "intent_manifest": service.intent.manifest if service.intent else None,
        "adapted_manifest": adapted["manifest"] if adapted else None,
    }
    cfg = settings.embed
    if do_tune:
        out["tuning"] = tune(service)
        cfg.intent_weight = out["tuning"]["intent_weight"]
        for name, value in out["tuning"]["fused"].items():
            setattr(cfg, name, value)
        service.gate = fitted_gate(out["tuning"]["gated"], real.model_id, src)
        if write_gate:
            service.gate.save(write_gate)
    out["gate"] = service.gate.to_dict()
    out["weights"] = {name: getattr(cfg, name) for name in ("intent_weight", *FUSED_PARAMS)}
    # the smoke run's 200-show slice lacks most of the known items: only those present count
    _present = lambda half: [q for q in known_split(half) if q[1] in service.items.index]  # noqa: E731
    out["known_item_queries"] = {h: len(_present(h)) for h in ("tuning", "validation")}
    results = {}
    for half in ("tuning", "validation"):
        results[half] = {
            m: {**score(service, m, split(half)), **score_known(service, m, _present(half))}
            for m in MODES
        }
    # the fresh broad set (benchmarks/search_queries_fresh.py): reported, never used to choose
    results["fresh"] = {m: score(service, m, fresh()) for m in MODES}
    out["results"] = results
    if timed:
        gate, service = service.gate, SearchService(store, settings, real)
        service.gate = gate
        texts = [q for _, q in split("all")] + [q for _, _, q in known_split("all")]
        out["latency"] = {m: latency(service, m, texts) for m in MODES}
        out["query_encoding"] = query_encoding(real, texts)
    return out


COLUMNS = [
    ("base", "dense", "dense"),
    ("base", "lexical", "lexical (BM25)"),
    ("base", "hybrid", "hybrid (RRF)"),
    ("base", "intent", "intent-boosted"),
    ("base", "fused", "fused"),
    ("base", "gated", "gated"),
    ("adapted", "dense", "adapted dense"),
    ("adapted", "intent", "adapted + intent"),
    ("adapted", "fused", "adapted fused"),
    ("adapted", "gated", "adapted gated"),
]
METRICS = (
    ("precision", "broad: genre precision@10"),
    ("ndcg", "broad: nDCG@10"),
    ("mrr", "known item: MRR@10"),
    ("found", "known item: found@10"),
)


def markdown(result: dict, half: str = "validation") -> str:
    cols = [c for c in COLUMNS if c[0] in result["homes"]]
    default = result.get("default_mode")
    names = [f"**{c[2]} (default)**" if c[:2] == ("base", default) else c[2] for c in cols]
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(cols)]
    for metric, label in METRICS:
        cells = []
        for home, mode, _ in cols:
            r = result["homes"][home]["results"][half][mode]
            cells.append(f"{r[metric]:.3f} ± {r[metric + '_se']:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    timed = all("latency" in result["homes"][home] for home, _, _ in cols)
    for label, p50, p95 in (("wall", "p50_ms", "p95_ms"), ("CPU", "cpu_p50_ms", "cpu_p95_ms")):
        if not timed:
            break
        cells = []
        for home, mode, _ in cols:
            lat = result["homes"][home]["latency"][mode]
            cells.append(f"{lat[p50]:.1f} / {lat[p95]:.1f}")
        lines.append(f"| {label} ms p50 / p95 | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_genre(result: dict, half: str = "validation") -> str:
    """Precision@10 (broad) and MRR@10 (known item) per genre, mean over the genre's queries."""
    cols = [c for c in COLUMNS if c[0] in result["homes"]]
    genres = [g for g, _ in split(half)]
    known_genres = [g for g, _, _ in known_split(half)]
    lines = [
        "| genre | " + " | ".join(c[2] for c in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for genre in sorted(set(genres)):
        cells = []
        for home, mode, _ in cols:
            r = result["homes"][home]["results"][half][mode]
            prec = np.mean([p for p, g in zip(r["per_query_precision"], genres) if g == genre])
            rr = [1 / k if k else 0 for k, g in zip(r["ranks"], known_genres) if g == genre]
            cells.append(f"{prec:.2f} / " + (f"{np.mean(rr):.2f}" if rr else "-"))
        lines.append(f"| {genre} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def by_origin(result: dict) -> str:
    """Broad precision@10 over both halves, the project's original 38 queries (positions 0
    and 1 of each genre, the set the issue measured) apart from the 76 written later."""
    cols = [c for c in COLUMNS if c[0] in result["homes"]]
    pos = {
        half: np.array([QUERIES[g].index(q) for g, q in split(half)])
        for half in ("tuning", "validation")
    }
    lines = ["| queries | " + " | ".join(c[2] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for label, wanted in (
        ("original 38 (positions 0-1)", (0, 1)),
        ("later 76 (2-5)", (2, 3, 4, 5)),
    ):
        cells = []
        for home, mode, _ in cols:
            values = []
            for half in ("tuning", "validation"):
                prec = np.array(result["homes"][home]["results"][half][mode]["per_query_precision"])
                values.extend(prec[np.isin(pos[half], wanted)])
            cells.append(f"{np.mean(values):.3f} ± {_se(values):.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fresh_table(result: dict) -> str:
    """Genre precision@10 and nDCG@10 on the fresh broad set, every mode."""
    cols = [c for c in COLUMNS if c[0] in result["homes"]]
    lines = ["| metric | " + " | ".join(c[2] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for metric, label in METRICS[:2]:
        cells = []
        for home, mode, _ in cols:
            r = result["homes"][home]["results"]["fresh"][mode]
            cells.append(f"{r[metric]:.3f} ± {r[metric + '_se']:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(result: dict) -> None:
    for half in ("tuning", "validation"):
        print(
            f"\n{half} halves ({result['queries'][half]} broad, "
            f"{result['known_item_queries'][half]} known-item queries), mean ± standard error:\n"
        )
        print(markdown(result, half))
    if all("fresh" in home["results"] for home in result["homes"].values()):
        print(f"\nfresh broad set ({len(fresh())} queries), mean ± standard error:\n")
        print(fresh_table(result))
    print("\nvalidation halves, broad precision@10 / known-item MRR@10 per genre:\n")
    print(per_genre(result))
    print("\nbroad precision@10 by the queries' origin, both halves:\n")
    print(by_origin(result))
    for name, home in result["homes"].items():
        print(
            f"\n{name}: model {home['model_id']}, index {home['info']['index_seconds']} s, "
            f"query encoding {json.dumps(home.get('query_encoding'))}, "
            f"weights {json.dumps(home['weights'])}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "catalogue", nargs="?", type=Path, default=ROOT / "tests/data/apple-podcasts-sample.json"
    )
    parser.add_argument(
        "--home", type=Path, help="Keep the two homes here (base/, adapted/); reruns reuse them."
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="Choose the weights on the tuning half (else: settings).",
    )
    parser.add_argument("--no-adapt", action="store_true", help="Skip the adapted-encoder home.")
    parser.add_argument(
        "--only-adapted", action="store_true", help="Run the adapted-encoder home alone."
    )
    parser.add_argument("--json", type=Path, help="Write the results as JSON here.")
    parser.add_argument(
        "--write-gate",
        type=Path,
        help="With --tune: write the fitted query-type gate here (the packaged one is "
        "coldstart/content/query_gate.json).",
    )
    parser.add_argument(
        "--no-latency", action="store_true", help="Skip the latency pass (quality only)."
    )
    parser.add_argument(
        "--report",
        type=Path,
        help="Print the tables of a result JSON written earlier; run nothing.",
    )
    args = parser.parse_args()
    if args.report:
        report(json.loads(args.report.read_text()))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.home or Path(tmp)
        homes = {"base": False} if args.no_adapt else {"base": False, "adapted": True}
        homes = {"adapted": True} if args.only_adapted else homes
        result = {
            "catalogue": str(args.catalogue),
            "queries": {h: len(split(h)) for h in ("tuning", "validation")},
            "known_item_queries": {h: len(known_split(h)) for h in ("tuning", "validation")},
            "default_mode": Settings().embed.search_mode,
            "genres": len(QUERIES),
            "homes": {},
        }
        for name, adapt in homes.items():
            result["homes"][name] = run_home(
                args.catalogue,
                root / name,
                adapt,
                args.tune,
                timed=not args.no_latency,
                write_gate=args.write_gate if name == "base" else None,
            )
    report(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
