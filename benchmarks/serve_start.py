"""Time to the first answer and memory of `coldstart serve`, one checkout after another.

    .venv/bin/python benchmarks/serve_start.py --home H --baseline /tmp/base --out R.json

Each checkout's server (its default workers) is started alone on a free port and timed
to its first `/healthz` answer (`benchmarks/serve.py`'s `start_server`); once its
processes idle, the proportional set size (PSS) of the server and its workers is summed
(`/proc/<pid>/smaps_rollup`: pages shared copy-on-write are counted once), then it is
stopped. Order: baseline, current, `--rounds` times.
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
            "settled_seconds": health["settled_seconds"],
            "processes": len(procs),
            "rss_mb": [round(p.memory_info().rss / 2**20) for p in procs],
            "pss_total_mb": round(sum(pss_mb(p.pid) for p in procs)),
            "errors": health.get("errors", {}),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--baseline", type=Path, required=True, help="The old checkout.")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs = []
    for _ in range(args.rounds):
        for code, repo in (("old", args.baseline), ("new", REPO)):
            result = {"code": code, "repo": str(repo), **one_start(args.home, repo, args.workers)}
            print(json.dumps(result), flush=True)
            runs.append(result)
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2) + "\n")


if __name__ == "__main__":
    main()
