"""Genre precision@10 and nDCG@10 of every search mode on the Apple Podcasts catalogue.

Each query (benchmarks/search_queries.py, 6 per genre) is a natural-language request
written for one genre, never its name; a returned show is relevant when its Apple genre
is the query's genre. The catalogue is imported and indexed exactly as `coldstart import
apple-podcasts` + `coldstart ingest` + `coldstart index` do, in two homes: the base
encoder (`embed.adapt` off) and the adapted one (`embed.adapt` on, `coldstart/content/adapt.py`).
Both homes get their own intent classifier (`coldstart/content/intent.py`) from `coldstart index`.

Weights (`intent_weight`, `lexical_weight`) are chosen on the TUNING half of the
queries (`--tune` prints the grid); the tables report the VALIDATION half, mean and
standard error over queries. Latency is measured per query with the real encoder
(no cache), one query at a time, over every query, after two warm-up queries.

    .venv/bin/python benchmarks/search_quality.py /work/shared/data/apple-podcasts/podcasts_info.json \
        --home /tmp/sq --tune --json benchmarks/results/search_quality.json
    .venv/bin/python benchmarks/search_quality.py     # the 200-show slice in tests/data (smoke run)
"""

from __future__ import annotations

import argparse
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

from search_queries import QUERIES, split  # noqa: E402

from coldstart.content.embeddings import Encoder, load_encoder  # noqa: E402
from coldstart.content.index import index_content  # noqa: E402
from coldstart.content.search import SearchService  # noqa: E402
from coldstart.core.config import Settings  # noqa: E402
from coldstart.core.store import Store  # noqa: E402
from coldstart.data.importers import apple_podcasts  # noqa: E402
from coldstart.data.ingest import ingest_dataset  # noqa: E402

INTENT_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
LEXICAL_GRID = (0.0, 0.05, 0.1, 0.2)


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


def score(service: SearchService, mode: str, queries: list[tuple[str, str]], k: int = 10) -> dict:
    """Per-query precision@k and nDCG@k (binary genre relevance), with mean and standard error."""
    genre_of = service.items["genre"].to_dict()
    prec, ndcg = [], []
    for genre, query in queries:
        hits = service.search(query, k=k, kind="show", mode=mode)
        rel = [genre_of.get(h.item_id) == genre for h in hits] + [False] * (k - len(hits))
        prec.append(sum(rel) / k)
        ndcg.append(_ndcg(rel, k))
    se = lambda v: float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0  # noqa: E731
    return {
        "precision": float(np.mean(prec)),
        "precision_se": se(prec),
        "ndcg": float(np.mean(ndcg)),
        "ndcg_se": se(ndcg),
        "per_query_precision": prec,
    }


def tune(service: SearchService, queries: list[tuple[str, str]]) -> dict:
    """Grid over intent_weight (mode intent) and lexical_weight x intent_weight (mode fused) on `queries`."""
    cfg = service.settings.embed
    saved = cfg.intent_weight, cfg.lexical_weight
    grid = {}
    for w in INTENT_GRID:
        for lw in LEXICAL_GRID:
            cfg.intent_weight, cfg.lexical_weight = w, lw
            grid[f"{w}/{lw}"] = score(service, "fused", queries)["precision"]
    cfg.intent_weight, cfg.lexical_weight = saved
    best_intent = max(INTENT_GRID, key=lambda w: (grid[f"{w}/0.0"], -w))
    # fused: the best grid point that gives BM25 some weight (ties: the smaller weights)
    fused = [key for key in grid if float(key.split("/")[1]) > 0]
    best_fused = max(
        fused, key=lambda key: (grid[key], -float(key.split("/")[1]), -float(key.split("/")[0]))
    )
    return {
        "precision_by_intent_weight/lexical_weight": grid,
        "intent_weight": best_intent,
        "fused": {
            "intent_weight": float(best_fused.split("/")[0]),
            "lexical_weight": float(best_fused.split("/")[1]),
        },
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


def run_home(src: Path, home: Path, adapt: bool, do_tune: bool) -> dict:
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
        out["tuning"] = tune(service, split("tuning"))
        cfg.intent_weight = out["tuning"]["intent_weight"]
    defaults = cfg.intent_weight, cfg.lexical_weight
    results = {}
    for half in ("tuning", "validation"):
        queries = split(half)
        results[half] = {
            m: score(service, m, queries) for m in ("dense", "lexical", "hybrid", "intent")
        }
        if do_tune:
            cfg.intent_weight = out["tuning"]["fused"]["intent_weight"]
            cfg.lexical_weight = out["tuning"]["fused"]["lexical_weight"]
        results[half]["fused"] = score(service, "fused", queries)
        cfg.intent_weight, cfg.lexical_weight = defaults
    out["results"] = results
    timed = SearchService(store, settings, real)
    texts = [q for _, q in split("all")]
    out["latency"] = {
        m: latency(timed, m, texts) for m in ("dense", "lexical", "hybrid", "intent", "fused")
    }
    out["query_encoding"] = query_encoding(real, texts)
    return out


COLUMNS = [
    ("base", "dense", "dense"),
    ("base", "lexical", "lexical (BM25)"),
    ("base", "hybrid", "hybrid (RRF)"),
    ("base", "intent", "intent-boosted"),
    ("base", "fused", "intent + BM25 (fused)"),
    ("adapted", "dense", "adapted dense"),
    ("adapted", "intent", "adapted + intent"),
]


def markdown(result: dict, half: str = "validation") -> str:
    cols = [c for c in COLUMNS if c[0] in result["homes"]]
    lines = ["| metric | " + " | ".join(c[2] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for metric in ("precision", "ndcg"):
        cells = []
        for home, mode, _ in cols:
            r = result["homes"][home]["results"][half][mode]
            cells.append(f"{r[metric]:.3f} ± {r[metric + '_se']:.3f}")
        lines.append(f"| {metric}@10 | " + " | ".join(cells) + " |")
    cells = []
    for home, mode, _ in cols:
        lat = result["homes"][home]["latency"][mode]
        cells.append(f"{lat['p50_ms']:.1f} / {lat['p95_ms']:.1f}")
    lines.append("| wall ms p50 / p95 | " + " | ".join(cells) + " |")
    cells = []
    for home, mode, _ in cols:
        lat = result["homes"][home]["latency"][mode]
        cells.append(f"{lat['cpu_p50_ms']:.1f} / {lat['cpu_p95_ms']:.1f}")
    lines.append("| CPU ms p50 / p95 | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_genre(result: dict, half: str = "validation") -> str:
    """Precision@10 per genre (mean over the genre's queries of `half`) for each column."""
    cols = [c for c in COLUMNS if c[0] in result["homes"]]
    genres = [g for g, _ in split(half)]
    lines = ["| genre | " + " | ".join(c[2] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for genre in sorted(set(genres)):
        cells = []
        for home, mode, _ in cols:
            prec = result["homes"][home]["results"][half][mode]["per_query_precision"]
            cells.append(f"{np.mean([p for p, g in zip(prec, genres) if g == genre]):.2f}")
        lines.append(f"| {genre} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
    parser.add_argument("--json", type=Path, help="Write the results as JSON here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.home or Path(tmp)
        homes = {"base": False} if args.no_adapt else {"base": False, "adapted": True}
        result = {
            "catalogue": str(args.catalogue),
            "queries": {h: len(split(h)) for h in ("tuning", "validation")},
            "genres": len(QUERIES),
            "homes": {},
        }
        for name, adapt in homes.items():
            result["homes"][name] = run_home(args.catalogue, root / name, adapt, args.tune)
    for half in ("tuning", "validation"):
        print(f"\n{half} half ({result['queries'][half]} queries), mean ± standard error:\n")
        print(markdown(result, half))
    print("\nvalidation half, precision@10 per genre:\n")
    print(per_genre(result))
    for name, home in result["homes"].items():
        print(
            f"\n{name}: model {home['model_id']}, index {home['info']['index_seconds']} s, "
            f"query encoding {json.dumps(home['query_encoding'])}, "
            f"tuning {json.dumps({k: v for k, v in home.get('tuning', {}).items() if k != 'precision_by_intent_weight/lexical_weight'})}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
