"""Ingest and a fresh process's store read, old code against new, side by side.

    nice -n 10 .venv/bin/python benchmarks/scale_io.py --dataset /var/tmp/s24/100000/dataset \
        --old /tmp/old-checkout --repeats 3

`--dataset` is a world written by `benchmarks/scale.py --stages generate` (its
`size.json` gives the interaction count). Each run is a fresh Python process (the
checkout first on `PYTHONPATH`) that ingests the dataset into a new SQLite store, then a
second fresh process that reads the store as the training stages do
(`coldstart.artifacts.training.load_interaction_data`, without content vectors), each
opening the store as a command does (with the columnar copy of the interactions where
the code has one). Old and new alternate, so the machine's
load falls on both alike. Peak RSS is the child's `ru_maxrss` (the whole process:
interpreter and imports included); bytes per interaction = peak RSS / interactions.
Results: one JSON line per run in `--results`, medians printed as a Markdown table.

With `--postgres` the stores are databases on a PostgreSQL server started for the run
from Debian's binaries, as the tests start theirs (`tests/postgres_server.py`; fsync
off); ingest then takes PostgreSQL's bulk path (COPY into staging tables).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The store as a command opens it (`Store.from_settings`: with the columnar copy of the
# interactions in <home>/columns where the code has one), whichever code runs.
OPEN = """
import inspect, sys
from coldstart.core.store import Store
columns = {"columns_dir": sys.argv[2] + "/columns"}
store = Store(sys.argv[1], **(columns if "columns_dir" in inspect.signature(Store).parameters else {}))
"""
INGEST = (
    OPEN
    + """
from coldstart.data.ingest import ingest_dataset
ingest_dataset(store, sys.argv[3])
"""
)
READ = (
    OPEN
    + """
try:
    from coldstart.artifacts.training import load_interaction_data
except ImportError:  # a checkout from before the rename (issue 27)
    from coldstart.recommend.models import interaction_data as load_interaction_data
    data = load_interaction_data(store)
else:
    data = load_interaction_data(store, content=False)
count = getattr(data, "interaction_count", None)  # (the new code: no string frame made)
print(count() if count else len(data.interactions), len(data.items), len(data.users))
"""
)
# What every training stage derives before it fits: the codes and the music and target views.
VIEWS = (
    READ
    + """
data.codes(), data.music_interactions()
for target in ("podcast", "audiobook"):
    data.target_interactions(target)
"""
)


def run_child(code: str, src: Path, *args: str) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, peak RSS bytes, stdout) of `code` in a fresh
    interpreter with `src` first. CPU time is what a loaded, shared machine distorts
    least (wall time counts the waits for a core)."""
    env = dict(os.environ, PYTHONPATH=str(src))
    started = time.perf_counter()
    proc = subprocess.Popen(  # cwd: `python -c` puts the working directory first on the path
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE, text=True, cwd=src
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{src}: child failed with status {status}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, out.strip()


@contextmanager
def postgres():
    """A throw-away PostgreSQL server: yields a function that makes a fresh database URL."""
    sys.path.insert(0, str(ROOT / "tests"))
    import postgres_server

    gen = postgres_server.postgres_server.__wrapped__()
    host, port = next(gen)

    def new_database() -> str:
        import psycopg

        name = f"s_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host=host, port=port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@{host}:{port}/{name}"

    try:
        yield new_database
    finally:
        next(gen, None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--old", type=Path, help="a checkout of the code before the change")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--codes", default="new,old", help="which of the two to run")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/scale_io.jsonl")
    parser.add_argument("--tmp", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--postgres", action="store_true", help="stores on a PostgreSQL server")
    parser.add_argument(
        "--home",
        type=Path,
        help="read this ingested home (its SQLite store) instead of ingesting: the stages "
        "are then the read and the read with the training views",
    )
    args = parser.parse_args()
    with postgres() if args.postgres else nullcontext() as new_database:
        measure(args, new_database)


def measure(args, new_database) -> None:
    size = json.loads((args.dataset / "size.json").read_text())
    n = size["interactions"]
    codes = {"new": ROOT} | ({"old": args.old} if args.old else {})
    codes = {k: v for k, v in codes.items() if k in args.codes.split(",")}
    rows = []
    for repeat in range(args.repeats):
        for label, src in codes.items():
            if args.home:
                home = args.home
                url = f"sqlite:///{home}/coldstart.db"
                stages = [("read", READ, []), ("read+views", VIEWS, [])]
            else:
                home = Path(tempfile.mkdtemp(dir=args.tmp, prefix=f"scale_io-{label}-"))
                url = new_database() if new_database else f"sqlite:///{home}/store.db"
                stages = [("ingest", INGEST, [str(args.dataset)]), ("read", READ, [])]
            try:
                for stage, code, extra in stages:
                    seconds, cpu, peak, out = run_child(code, src, url, str(home), *extra)
                    row = {
                        "code": label,
                        "database": url.split(":")[0],
                        "stage": stage,
                        "repeat": repeat,
                        "listeners": size["listeners"],
                        "interactions": n,
                        "seconds": round(seconds, 2),
                        "cpu_seconds": round(cpu, 2),
                        "peak_rss_mb": round(peak / 2**20, 1),
                        "bytes_per_interaction": round(peak / n, 1),
                        "load_average": os.getloadavg()[0],
                        "output": out,
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    with args.results.open("a") as f:
                        f.write(json.dumps(row) + "\n")
            finally:
                if not args.home:
                    shutil.rmtree(home, ignore_errors=True)
    print(f"\n{n:,} interactions; medians over {args.repeats} runs\n")
    print("| stage | code | wall s | CPU s | peak RSS (MB) | bytes/interaction | CPU vs old |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for stage in dict.fromkeys(r["stage"] for r in rows):
        med = {}
        for label in codes:
            mine = [r for r in rows if r["stage"] == stage and r["code"] == label]
            med[label] = (
                statistics.median(r["seconds"] for r in mine),
                statistics.median(r["cpu_seconds"] for r in mine),
                statistics.median(r["peak_rss_mb"] for r in mine),
                statistics.median(r["bytes_per_interaction"] for r in mine),
            )
        for label, (sec, cpu, mb, bpi) in med.items():
            ratio = f"{cpu / med['old'][1]:.2f}" if "old" in med else "-"
            print(f"| {stage} | {label} | {sec:.1f} | {cpu:.1f} | {mb:.0f} | {bpi:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
