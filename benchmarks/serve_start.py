"""Time to the first answer and memory of `coldstart serve`, one checkout after another.

    .venv/bin/python benchmarks/serve_start.py --home H --baseline /tmp/base --out R.json
    # a `benchmarks/scale.py` world's home, first given a serving search index:
    flock /var/tmp/1m.lock .venv/bin/python benchmarks/serve_start.py --home H --write-search-index

Each checkout's server (its default workers) is started alone on a free port and timed
to its first `/healthz` answer (`benchmarks/serve.py`'s `start_server`); once its
processes idle, the proportional set size (PSS) of the server and its workers is summed
(`/proc/<pid>/smaps_rollup`: pages shared copy-on-write are counted once), then it is
stopped. Order: baseline, current, `--rounds` times. `cpu_seconds`: the CPU time
the server's processes had used by then (less disturbed by other jobs than wall time).

`--write-search-index` gives the home of a `benchmarks/scale.py` world (which has no
search index: its index stage builds one in memory) what `coldstart index` leaves for
`coldstart serve`: the items index over synthetic vectors (`scale.content_matrix`: MiniLM
cannot embed 1.2M texts on 2 cores in the time) under the configured encoder's model id,
an empty passages index (the world has no transcripts), and the search catalogue from the
store's real titles (`write_search_catalogue`, timed as `coldstart index` runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import REPO, free_port, start_server  # noqa: E402

sys.path.insert(0, str(REPO))


def pss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def one_start(home: Path, repo: Path, workers: int | None) -> dict:
    proc, health = start_server(home, free_port(), workers, repo)
    try:
        server = psutil.Process(proc.pid)
        procs = [server, *server.children(recursive=True)]
        return {
            "first_answer_seconds": health["first_answer_seconds"],
            "cpu_seconds": round(sum(sum(p.cpu_times()[:2]) for p in procs), 1),
            "settled_seconds": health["settled_seconds"],
            "processes": len(procs),
            "rss_mb": [round(p.memory_info().rss / 2**20) for p in procs],
            "pss_total_mb": round(sum(pss_mb(p.pid) for p in procs)),
            "errors": health.get("errors", {}),
            "search": health.get("components", {}).get("search"),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def write_search_index(home: Path) -> dict:
    """The search indexes `coldstart serve` loads, for a world without an encoder's vectors."""
    import time

    import numpy as np
    from scale import content_matrix

    from coldstart.content.embeddings import model_id_for
    from coldstart.content.index import VectorIndex, index_dir
    from coldstart.content.search_file import write_search_catalogue
    from coldstart.core.config import Settings
    from coldstart.core.store import Store

    settings = Settings(home=home)
    store = Store.from_settings(settings)
    model_id, cfg = model_id_for(settings), settings.embed
    keys, vectors = content_matrix(store.items())
    seconds = {}
    for unit, unit_keys, x in (
        ("items", keys.tolist(), vectors),
        ("passages", [], np.zeros((0, vectors.shape[1]), np.float32)),
    ):
        started = time.perf_counter()
        index = VectorIndex.build(
            unit_keys,
            x,
            model_id=model_id,
            unit=unit,
            exact_max=cfg.exact_index_max,
            nprobe=cfg.nprobe,
            target_recall=cfg.target_recall,
            dim=x.shape[1],
        )
        manifest = index.save(index_dir(settings, unit))
        store.register_artifact(f"index:{unit}", index_dir(settings, unit), manifest)
        seconds[unit] = round(time.perf_counter() - started, 1)
    del vectors
    started, cpu = time.perf_counter(), time.process_time()
    _, manifest = write_search_catalogue(store, settings, model_id)
    return {
        "home": str(home),
        "model_id": model_id,
        "vectors": len(keys),
        "vector_index_seconds": seconds,
        "search_catalogue_seconds": round(time.perf_counter() - started, 1),
        "search_catalogue_cpu_seconds": round(time.process_time() - cpu, 1),
        "search_catalogue": {k: manifest[k] for k in ("items", "documents", "passages")},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--baseline", type=Path, help="The old checkout.")
    parser.add_argument(
        "--write-search-index",
        action="store_true",
        help="give the home a serving search index (synthetic vectors), then stop",
    )
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--codes", default="old,new", help="which checkouts to start: old,new (default), or one"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.write_search_index:
        result = write_search_index(args.home)
        print(json.dumps(result), flush=True)
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
        return
    if args.baseline is None:
        parser.error("--baseline is required (unless --write-search-index)")
    runs = []
    for _ in range(args.rounds):
        for code, repo in (("old", args.baseline), ("new", REPO)):
            if code not in args.codes.split(","):
                continue
            result = {"code": code, "repo": str(repo), **one_start(args.home, repo, args.workers)}
            print(json.dumps(result), flush=True)
            runs.append(result)
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    main()
