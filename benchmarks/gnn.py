"""Co-listening GNN and two-tower retrieval: how time and memory grow with the graph.

    .venv/bin/python benchmarks/gnn.py                 # 10k and 100k edges, latency
    .venv/bin/python benchmarks/gnn.py --big           # adds the 1M-edge graph
    .venv/bin/python benchmarks/gnn.py --json out.json

Per graph size (synthetic listening with Zipf-popular items, each size in its own
process so peak RSS is that size's alone): graph build time, link-prediction
training time per step and per full pass over the edges (extrapolated from
`--steps` timed steps), full-graph embedding time, and peak RSS. Then per-request
latency (median / p99) of the two-tower's user vector + faiss search, on a model
fitted to the demo world, and of the faiss search alone for larger catalogs.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def synthetic_events(
    edges: int, seed: int = 0, per_user: int = 6
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Listening whose co-listening graph has roughly `edges` directed edges."""
    rng = np.random.default_rng(seed)
    n_items = max(50, edges // 20)
    users = int(edges / (per_user * (per_user - 1)) * 1.3)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop /= pop.sum()
    picks = rng.choice(n_items, size=(users, per_user), p=pop)
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n_items)],
            "kind": np.where(np.arange(n_items) % 3 == 0, "audiobook", "show"),
        }
    )
    events = pd.DataFrame(
        {
            "user_id": np.repeat([f"u{u}" for u in range(users)], per_user),
            "item_id": [f"i{i}" for i in picks.reshape(-1)],
            "timestamp": rng.integers(1_700_000_000, 1_710_000_000, size=users * per_user),
        }
    )
    dim = 384  # all-MiniLM-L6-v2
    vecs = rng.standard_normal((n_items, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    content = {f"i{i}": vecs[i] for i in range(0, n_items, 2)}  # half the items have text
    return items, events, content


def bench_graph(edges: int, steps: int) -> dict:
    import torch

    from graph import EdgeTypeBalancedSampler, build_colisten_graph
    from graph.fit import GNNConfig, embed_nodes, fit_item_encoder

    torch.set_num_threads(1)
    items, events, content = synthetic_events(edges)
    started = time.perf_counter()
    graph = build_colisten_graph(items, events, content)
    build_s = time.perf_counter() - started

    cfg = GNNConfig(epochs=1, max_steps_per_epoch=steps, val_batches=1)
    started = time.perf_counter()
    encoder, history = fit_item_encoder(graph, cfg)
    train_s = time.perf_counter() - started
    per_step = train_s / max(history.steps, 1)
    started = time.perf_counter()
    embed_nodes(encoder, graph)
    embed_s = time.perf_counter() - started
    # What one training step touches: the sampled 2-hop neighbourhood of a batch.
    sampler = EdgeTypeBalancedSampler(
        {et: graph.data[et].edge_index for et in graph.edge_types},
        {et: graph.data[et].edge_weight for et in graph.edge_types},
        {t: graph.data[t].num_nodes for t in graph.node_types},
        batch_size=cfg.batch_size,
        fanouts=cfg.fanouts,
    )
    sub = sampler.batch().subgraph
    return {
        "edges": graph.num_edges,
        "nodes": sum(len(v) for v in graph.item_ids.values()),
        "events": len(events),
        "build_s": round(build_s, 3),
        "train_s_per_step": round(per_step, 4),
        "steps_per_full_pass": math.ceil(graph.num_edges / cfg.batch_size),
        "train_s_per_full_pass": round(per_step * math.ceil(graph.num_edges / cfg.batch_size), 1),
        "embed_all_s": round(embed_s, 3),
        "batch_subgraph_nodes": sum(int(v.numel()) for v in sub.n_id.values()),
        "batch_subgraph_edges": sum(int(v.size(1)) for v in sub.edge_index.values()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def bench_latency(requests: int) -> dict:
    import faiss

    from coldstart.demo.world import WorldConfig, build_world
    from training.data import InteractionData
    from training.splits import cold_user_split
    from training.two_tower import TwoTowerRecommender

    world = build_world(WorldConfig(users=800, seed=0))
    inter = world.interactions.assign(
        timestamp=pd.to_datetime(world.interactions["timestamp"]).astype("int64") // 10**9
    )
    data = InteractionData(
        items=world.items, interactions=inter, users=world.users, playlists=world.playlists
    )
    split = cold_user_split(data, "audiobook", 0.2, seed=0)
    model = TwoTowerRecommender("audiobook", 0).fit(split.train)
    users = [split.users[i % len(split.users)] for i in range(requests)]
    model.recommend(users[0], k=10)  # warm-up
    times = []
    for user in users:
        started = time.perf_counter()
        model.recommend(user, k=10)
        times.append(time.perf_counter() - started)
    out = {"two_tower_request_ms": _stats(times), "catalog": len(model.item_ids)}

    faiss.omp_set_num_threads(1)  # one query at a time: threads only add hand-off cost
    rng = np.random.default_rng(0)
    for n in (10_000, 100_000):
        vecs = rng.standard_normal((n, 128)).astype(np.float32)
        faiss.normalize_L2(vecs)
        index = faiss.IndexFlatIP(128)
        index.add(vecs)
        queries = vecs[rng.integers(n, size=min(requests, 200))]
        times = []
        for q in queries:
            started = time.perf_counter()
            index.search(q[None, :], 10)
            times.append(time.perf_counter() - started)
        out[f"faiss_flat_{n}_items_ms"] = _stats(times)
    return out


def _stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"median": round(float(np.median(ms)), 3), "p99": round(float(np.percentile(ms, 99)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--big", action="store_true", help="also run the 1M-edge graph")
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per graph")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:  # child process: one graph size
        print(json.dumps(bench_graph(args.one, args.steps)))
        return

    sizes = [10_000, 100_000] + ([1_000_000] if args.big else [])
    report = {"graphs": [], "latency": None}
    for edges in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(edges), "--steps", str(args.steps)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        report["graphs"].append(row)
        print(json.dumps(row))
    report["latency"] = bench_latency(args.requests)
    print(json.dumps(report["latency"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
