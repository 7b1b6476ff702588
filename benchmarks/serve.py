"""Load test of `POST /v1/onboarding` with wrk: p50/p95/p99 latency and throughput.

    .venv/bin/coldstart --home /tmp/bench demo          # a populated, trained store
    .venv/bin/python benchmarks/serve.py --home /tmp/bench
    .venv/bin/python benchmarks/serve.py --home /tmp/bench --scenario writer   # p95 while score-uploads writes
    .venv/bin/python benchmarks/serve.py --home /tmp/bench --scenario reload   # reloads under 16 clients
    .venv/bin/python benchmarks/serve.py --home /tmp/bench --scenario soak     # 60 s at 64 clients, RSS

Scenarios (each on a private copy of the home when it writes to the store):
  levels  one wrk run per --concurrency level (the default);
  writer  concurrency 16 without, then with, a `coldstart score-uploads` process
          scoring --uploads new uploads into the same SQLite store;
  reload  concurrency 16 for --seconds while POST /v1/admin/reload runs every 2 s and
          a new artifact version is registered every 3 s (the server reloads by itself);
  soak    concurrency 64 for --seconds (60), server RSS sampled every 5 s.

Starts `coldstart serve` as a subprocess on a free loopback port, waits for
/healthz, then runs wrk (Debian package `wrk`: `apt-get install wrk`) once per
concurrency level. The request bodies are the real music histories of `--bodies`
listeners from the store, cycled by a Lua script, so every request asks for a
different listener. wrk and the server share the machine's cores; the report says
how many there are. Results are printed and written as JSON (`--out`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coldstart.core.config import get_settings  # noqa: E402
from coldstart.core.store import Store  # noqa: E402

LUA = r"""
local bodies = {
%s
}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  i = (i %% #bodies) + 1
  return wrk.format(nil, "/v1/onboarding", nil, bodies[i])
end

done = function(summary, latency, requests)
  io.write(string.format(
    "JSON{\"requests\": %%d, \"duration_us\": %%d, \"p50_us\": %%d, \"p95_us\": %%d, \"p99_us\": %%d, " ..
    "\"max_us\": %%d, \"errors\": %%d, \"non_2xx\": %%d, \"connect\": %%d, \"read\": %%d, " ..
    "\"write\": %%d, \"timeout\": %%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request_bodies(home: Path, n: int, k: int) -> list[str]:
    store = Store.from_settings(get_settings(home))  # with the interactions' columnar copy
    music = store.plays_of(["artist", "track"], ["user_id", "item_id", "weight"])
    first = np.sort(music["user_id"].unique())[:n]  # the first n listeners by id
    music = music[music["user_id"].isin(first)]
    users = store.users().set_index("user_id")
    bodies = []
    for user_id, group in music.groupby("user_id"):
        user = users.loc[user_id]
        bodies.append(
            json.dumps(
                {
                    "music": [
                        {"item_id": r.item_id, "weight": float(r.weight)}
                        for r in group.itertuples()
                    ],
                    "country": user["country"],
                    "language": user["language"],
                    "age": float(user["age"]),
                    "k": k,
                }
            )
        )
    if not bodies:
        raise SystemExit(
            f"{home}: no listeners with music history; run `coldstart --home {home} demo` first"
        )
    return bodies


TOKEN = "bench-token-not-a-secret"
REPO = Path(__file__).resolve().parents[1]


def _env(repo: Path = REPO) -> dict:
    return {
        **os.environ,
        "COLDSTART_API_TOKEN": TOKEN,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")])),
    }


def start_server(home: Path, port: int, workers: int | None, repo: Path = REPO):
    """`coldstart serve` from the checkout `repo`; `workers` None: the server's default."""
    exe = Path(sys.executable).with_name("coldstart")
    cmd = [str(exe), "--home", str(home), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=_env(repo),
    )
    started = time.monotonic()
    deadline = started + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
            # The first answer: a worker has loaded its models (the API's start time).
            health["first_answer_seconds"] = round(time.monotonic() - started, 1)
            # With several workers each loads its models on its own: wait until the
            # others are done too (the server's processes idle) before measuring.
            health["settled_seconds"] = round(wait_idle(proc, deadline) - started, 1)
            return proc, health
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not become healthy in 600 s")


def wait_idle(proc: subprocess.Popen, deadline: float, busy_percent: float = 15.0) -> float:
    """Wait until the server's processes together use under `busy_percent` of a core
    over a second; returns when (time.monotonic())."""
    import psutil

    server = psutil.Process(proc.pid)
    while time.monotonic() < deadline:
        tree = [server, *server.children(recursive=True)]
        for p in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.cpu_percent(None)
        time.sleep(1.0)
        busy = 0.0
        for p in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                busy += p.cpu_percent(None)
        if busy < busy_percent:
            return time.monotonic()
    return time.monotonic()


WRK_TIMEOUT = {"seconds": 10}  # --timeout: a slower answer counts as an error (wrk "timeout")


def start_wrk(port: int, script: Path, concurrency: int, seconds: int) -> subprocess.Popen:
    threads = max(1, min(concurrency, 2))
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{seconds}s",
        "--timeout",
        f"{WRK_TIMEOUT['seconds']}s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_wrk(port: int, script: Path, concurrency: int, seconds: int) -> dict:
    return wrk_result(start_wrk(port, script, concurrency, seconds), concurrency)


def wrk_result(proc: subprocess.Popen, concurrency: int) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed: {err[-2000:]}")
    line = next(line for line in out.splitlines() if line.startswith("JSON"))
    raw = json.loads(line[4:])
    return {
        "concurrency": concurrency,
        "requests": raw["requests"],
        "throughput_rps": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": raw["errors"],
        "errors_by_kind": {k: raw[k] for k in ("connect", "read", "write", "timeout")},
        "non_2xx": raw["non_2xx"],
    }


def line(r: dict) -> str:
    return (
        f"c={r['concurrency']:>3}: {r['throughput_rps']:>7.1f} req/s  p50 {r['p50_ms']:.1f} ms  "
        f"p95 {r['p95_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  requests {r['requests']}  "
        f"errors {r['errors']} non-2xx {r['non_2xx']}"
    )


def private_copy(home: Path, tmp: Path) -> Path:
    """The scenarios that write get their own copy of the store, models and indexes."""
    copy = tmp / "home"
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("audiences", "received"))
    return copy


def register_clips(home: Path, n: int) -> list[str]:
    from coldstart.batch.uploads import register_upload, resolve_upload_path
    from coldstart.demo.world import ASSETS, AUDIO_CLIPS

    settings = get_settings(home)
    store = Store(settings.db_url)
    shows = store.items(["show"])
    show = shows[shows["language"] == "en"]["item_id"].iloc[0]
    settings.uploads_path.mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(n):
        clip = list(AUDIO_CLIPS)[i % len(AUDIO_CLIPS)]
        target = settings.uploads_path / f"bench-{i}-{clip}.ogg"
        shutil.copy2(ASSETS / f"{clip}.ogg", target)
        ids.append(
            register_upload(
                store,
                show_id=show,
                title=f"bench {clip} {i}",
                audio_path=resolve_upload_path(settings, target.name),
            )["upload_id"]
        )
    return ids


def scenario_writer(home: Path, port: int, script: Path, args) -> dict:
    """p95 at concurrency 16 alone, then while `score-uploads` writes to the same store."""
    ids = register_clips(home, args.uploads)
    alone = run_wrk(port, script, 16, args.seconds)
    print("without writer:", line(alone))
    exe = Path(sys.executable).with_name("coldstart")
    writer = subprocess.Popen(
        [str(exe), "--home", str(home), "score-uploads", "--json"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    time.sleep(3)  # let it import and start writing
    busy = run_wrk(port, script, 16, args.seconds)
    still_running = writer.poll() is None
    print(
        "with writer:   ",
        line(busy),
        "(writer still running)" if still_running else "(writer finished)",
    )
    out, _ = writer.communicate()
    report = json.loads(out) if out.strip().startswith("{") else {}
    return {
        "without_writer": alone,
        "with_writer": busy,
        "uploads": len(ids),
        "scored": len(report.get("scored", [])),
        "writer_outlived_the_run": still_running,
    }


def scenario_reload(home: Path, port: int, script: Path, args) -> dict:
    """Concurrency 16 while models are reloaded on request and by a new artifact."""
    store = Store(get_settings(home).db_url)
    done = {"admin": 0, "artifact": 0, "failed": 0}
    stop = threading.Event()

    def reloader() -> None:
        tick = 0
        while not stop.wait(1.0):
            tick += 1
            try:
                if tick % 2 == 0:
                    r = httpx.post(
                        f"http://127.0.0.1:{port}/v1/admin/reload",
                        headers={"Authorization": f"Bearer {TOKEN}"},
                        timeout=120,
                    )
                    done["admin" if r.status_code == 200 else "failed"] += 1
                if tick % 3 == 0:
                    for name in store.frame(
                        __import__("coldstart.core.tables", fromlist=["artifacts"]).artifacts
                    )["name"]:
                        row = store.artifact(name)
                        store.register_artifact(name, row["path"], row["manifest"])
                    done["artifact"] += 1
            except httpx.HTTPError:
                done["failed"] += 1

    thread = threading.Thread(target=reloader, daemon=True)
    thread.start()
    result = run_wrk(port, script, 16, args.seconds)
    stop.set()
    thread.join()
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    reloads = sum(
        float(x.split()[-1])
        for x in metrics.splitlines()
        if x.startswith('coldstart_model_reloads_total{result="ok"}')
    )
    print(
        line(result),
        f"admin reloads {done['admin']}, new artifacts {done['artifact']}, reloads done {reloads:.0f}",
    )
    return {
        "load": result,
        "admin_reloads": done["admin"],
        "artifact_versions": done["artifact"],
        "reload_calls_failed": done["failed"],
        "reloads_ok": reloads,
    }


def scenario_soak(proc, port: int, script: Path, args) -> dict:
    """Concurrency 64 for --seconds; the server's RSS every 5 s."""
    import psutil

    server = psutil.Process(proc.pid)

    def rss_mb() -> float:  # the server and its worker processes (--workers N)
        procs = [server, *server.children(recursive=True)]
        return round(sum(p.memory_info().rss for p in procs) / 2**20, 1)

    started = time.monotonic()
    wrk = start_wrk(port, script, 64, args.seconds)
    samples = []
    while wrk.poll() is None:
        samples.append({"t": round(time.monotonic() - started, 1), "rss_mb": rss_mb()})
        time.sleep(5)
    result = wrk_result(wrk, 64)
    print(
        line(result),
        f"RSS {samples[0]['rss_mb']} MB at start, {samples[-1]['rss_mb']} MB at the end",
    )
    return {
        "load": result,
        "rss_start_mb": samples[0]["rss_mb"],
        "rss_end_mb": samples[-1]["rss_mb"],
        "rss_max_mb": max(s["rss_mb"] for s in samples),
        "rss_samples": samples,
    }


def compare_levels(args, script: Path) -> dict:
    """The levels scenario for the `--baseline` checkout and this one, alternating
    `--rounds` times (each run: a fresh server, a warm-up, every level); per side and
    level, the medians over rounds, and the ratios current / baseline."""
    import statistics

    runs: dict[str, list[list[dict]]] = {"baseline": [], "current": []}
    health = {}
    for _ in range(args.rounds):
        for side, repo in (("baseline", args.baseline.resolve()), ("current", REPO)):
            port = free_port()
            proc, health = start_server(args.home, port, args.workers, repo)
            try:
                run_wrk(port, script, 8, 5)  # warm-up
                levels = []
                for c in [int(x) for x in args.concurrency.split(",")]:
                    levels.append(run_wrk(port, script, c, args.seconds))
                    levels[-1]["load_average"] = [round(x, 2) for x in os.getloadavg()]
                    print(f"{side:8s} {line(levels[-1])}  load {levels[-1]['load_average'][0]}")
                runs[side].append(levels)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    keys = ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "errors", "non_2xx")
    medians = {
        side: [
            {
                "concurrency": rounds[0][i]["concurrency"],
                **{k: statistics.median(r[i][k] for r in rounds) for k in keys},
            }
            for i in range(len(rounds[0]))
        ]
        for side, rounds in runs.items()
    }
    ratios = [
        {
            "concurrency": old["concurrency"],
            "throughput": round(new["throughput_rps"] / old["throughput_rps"], 2),
            "p95": round(new["p95_ms"] / old["p95_ms"], 3),
        }
        for old, new in zip(medians["baseline"], medians["current"])
    ]
    for side in ("baseline", "current"):
        for r in medians[side]:
            print(f"median {side:8s} {line({**r, 'requests': '-', 'max_ms': 0})}")
    for r in ratios:
        print(f"c={r['concurrency']}: throughput x{r['throughput']}, p95 x{r['p95']}")
    return {
        "baseline": str(args.baseline.resolve()),
        "current": str(REPO),
        "medians": medians,
        "ratios": ratios,
        "runs": runs,
        "health": health,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--home", type=Path, required=True, help="A populated store (e.g. after `coldstart demo`)."
    )
    parser.add_argument(
        "--scenario", choices=["levels", "writer", "reload", "soak"], default="levels"
    )
    parser.add_argument(
        "--uploads", type=int, default=8, help="writer: uploads for score-uploads to score."
    )
    parser.add_argument(
        "--timeout", type=int, default=10, help="wrk --timeout in seconds (slower = an error)."
    )
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--seconds", type=int, default=None, help="Per run (default 15; soak 60).")
    parser.add_argument(
        "--bodies", type=int, default=200, help="Distinct listeners to cycle through."
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="`coldstart serve --workers` (default: the server's own default).",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="levels: also serve from this checkout (e.g. a worktree of the previous "
        "commit), alternating with this one --rounds times; medians side by side.",
    )
    parser.add_argument("--rounds", type=int, default=2, help="With --baseline.")
    parser.add_argument(
        "--out", type=Path, default=None, help="Default benchmarks/results/serve[-SCENARIO].json."
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (Debian/Ubuntu)")
    args.seconds = args.seconds or (60 if args.scenario == "soak" else 15)
    WRK_TIMEOUT["seconds"] = args.timeout
    suffix = "" if args.scenario == "levels" else f"-{args.scenario}"
    args.out = args.out or Path(f"benchmarks/results/serve{suffix}.json")

    bodies = request_bodies(args.home, args.bodies, args.k)
    port = free_port()
    results: list | dict = []
    if args.baseline is not None:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "onboarding.lua"
            script.write_text(LUA % ",\n".join(f"[==[{b}]==]" for b in bodies))
            report = compare_levels(args, script)
        report.update(
            cpus=os.cpu_count(),
            seconds_per_level=args.seconds,
            workers=args.workers or "server default",
            distinct_bodies=len(bodies),
            k=args.k,
            load_average_at_end=[round(x, 2) for x in os.getloadavg()],
        )
        out = args.out if args.out != Path("benchmarks/results/serve.json") else None
        out = out or Path("benchmarks/results/serve-compare.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written {out}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "onboarding.lua"
        script.write_text(LUA % ",\n".join(f"[==[{b}]==]" for b in bodies))
        home = (
            private_copy(args.home, Path(tmp))
            if args.scenario in ("writer", "reload")
            else args.home
        )
        proc, health = start_server(home, port, args.workers)
        print(
            f"first answer {health['first_answer_seconds']} s after start, "
            f"every worker loaded after {health['settled_seconds']} s"
        )
        try:
            # Warm-up: the first requests pay for lazy imports and allocator growth.
            run_wrk(port, script, 4 * (args.workers or os.cpu_count() or 1), 5)
            if args.scenario == "writer":
                results = scenario_writer(home, port, script, args)
            elif args.scenario == "reload":
                results = scenario_reload(home, port, script, args)
            elif args.scenario == "soak":
                results = scenario_soak(proc, port, script, args)
            else:
                for c in [int(x) for x in args.concurrency.split(",")]:
                    results.append(run_wrk(port, script, c, args.seconds))
                    print(line(results[-1]))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    report = {
        "scenario": args.scenario,
        "endpoint": "POST /v1/onboarding",
        "cpus": os.cpu_count(),
        "seconds_per_level": args.seconds,
        "wrk_timeout_s": args.timeout,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "distinct_bodies": len(bodies),
        "k": args.k,
        "workers": args.workers,
        "models": sorted(health.get("components", {})),
        "catalog": health.get("catalog"),
        "first_answer_seconds": health.get("first_answer_seconds"),
        "settled_seconds": health.get("settled_seconds"),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
