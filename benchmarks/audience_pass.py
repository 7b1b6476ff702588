"""score-uploads' catalogue pass: the exact pass against the estimated one, side by side.

    nice -n 10 .venv/bin/python benchmarks/audience_pass.py --listeners 20000 \
        --catalogues 10000,100000 --repeats 3

Synthetic clustered listeners and catalogue in the affinity model's 64-d space (the
generator of tests/test_audience_pass.py). For each catalogue size: CPU seconds of the
exact pass (`uploads._catalog_summary`, listeners x catalogue scores) and of the
estimated one (`audience_pass.sampled_catalog_summary`: index build included), medians
over the repeats, and the estimate's error against the exact pass: relative error of
the normaliser (median, 99th percentile) and the share of each listener's 100 best
catalogue scores it finds. CPU time, not wall time: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import coldstart.batch.uploads as uploads  # noqa: E402
from coldstart.batch.audience_pass import sampled_catalog_summary  # noqa: E402


def world(listeners: int, items: int, dim: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim)) / np.sqrt(dim / 32)
    vecs = centres[rng.integers(0, 40, items)] + rng.normal(scale=0.7, size=(items, dim)) / np.sqrt(
        dim / 32
    )
    u = (
        centres[rng.integers(0, 40, listeners)] + rng.normal(scale=0.7, size=(listeners, dim))
    ) * 0.35
    return u.astype(np.float32), vecs.astype(np.float32), rng.normal(size=items).astype(np.float32)


def exact(u, vecs, bias, depth):
    catalog = len(vecs)
    rows = max(1, min(4096, uploads.CATALOG_PASS_SCORES // catalog))
    saved, uploads.SAMPLED_CATALOG_MIN = uploads.SAMPLED_CATALOG_MIN, 10**15
    try:
        return uploads._catalog_summary(SimpleNamespace(), u, vecs, bias, catalog, depth, rows)
    finally:
        uploads.SAMPLED_CATALOG_MIN = saved


def cpu(fn, *args):
    started = time.process_time()
    out = fn(*args)
    return time.process_time() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listeners", type=int, default=20_000)
    parser.add_argument("--catalogues", default="10000,100000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--results", type=Path, default=ROOT / "benchmarks/results/audience_pass.jsonl"
    )
    args = parser.parse_args()
    for catalog in [int(c) for c in args.catalogues.split(",")]:
        u, vecs, bias = world(args.listeners, catalog)
        runs = {"exact": [], "sampled": []}
        for _ in range(args.repeats):
            t_exact, (lse, best) = cpu(exact, u, vecs, bias, 100)
            t_sampled, (est, est_best) = cpu(sampled_catalog_summary, u, vecs, bias, catalog, 100)
            runs["exact"].append(t_exact)
            runs["sampled"].append(t_sampled)
        rel = np.abs(np.expm1(est - lse))
        gap = np.abs(best[::20, :, None] - est_best[::20, None, :]).min(axis=2)
        row = {
            "listeners": args.listeners,
            "catalogue": catalog,
            "exact_cpu_s": round(statistics.median(runs["exact"]), 2),
            "sampled_cpu_s": round(statistics.median(runs["sampled"]), 2),
            "normaliser_rel_error_median": round(float(np.median(rel)), 4),
            "normaliser_rel_error_p99": round(float(np.quantile(rel, 0.99)), 4),
            "head_found": round(float((gap < 1e-4).mean()), 4),
            "load_average": os.getloadavg()[0],
        }
        print(json.dumps(row), flush=True)
        with args.results.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
