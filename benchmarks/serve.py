"""Load test of `POST /v1/onboarding` with wrk: p50/p95/p99 latency and throughput.

    .venv/bin/coldstart --home /tmp/bench demo          # a populated, trained store
    .venv/bin/python benchmarks/serve.py --home /tmp/bench

Starts `coldstart serve` as a subprocess on a free loopback port, waits for
/healthz, then runs wrk (Debian package `wrk`: `apt-get install wrk`) once per
concurrency level. The request bodies are the real music histories of `--bodies`
listeners from the store, cycled by a Lua script, so every request asks for a
different listener. wrk and the server share the machine's cores; the report says
how many there are. Results are printed and written as JSON (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from coldstart.config import get_settings  # noqa: E402
from coldstart.store import Store  # noqa: E402

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
    "\"max_us\": %%d, \"errors\": %%d, \"non_2xx\": %%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request_bodies(home: Path, n: int, k: int) -> list[str]:
    store = Store(get_settings(home).db_url)
    inter = store.interactions().merge(store.items()[["item_id", "kind"]], on="item_id")
    music = inter[inter["kind"].isin(["artist", "track"])]
    users = store.users().set_index("user_id")
    bodies = []
    for user_id, group in list(music.groupby("user_id"))[:n]:
        user = users.loc[user_id]
        bodies.append(json.dumps({
            "music": [{"item_id": r.item_id, "weight": float(r.weight)} for r in group.itertuples()],
            "country": user["country"], "language": user["language"], "age": float(user["age"]), "k": k,
        }))
    if not bodies:
        raise SystemExit(f"{home}: no listeners with music history; run `coldstart --home {home} demo` first")
    return bodies


def start_server(home: Path, port: int, workers: int):
    exe = Path(sys.executable).with_name("coldstart")
    cmd = [str(exe), "--home", str(home), "serve", "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 180
    ready = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
            ready += 1
            # With several workers, each loads its models on its own: give them time.
            if ready >= 1 + 10 * (workers - 1):
                return proc, health
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not become healthy in 180 s")


def run_wrk(port: int, script: Path, concurrency: int, seconds: int) -> dict:
    threads = max(1, min(concurrency, 2))
    cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
           f"http://127.0.0.1:{port}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
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
        "non_2xx": raw["non_2xx"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="A populated store (e.g. after `coldstart demo`).")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--bodies", type=int, default=200, help="Distinct listeners to cycle through.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="`coldstart serve --workers`.")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve.json"))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (Debian/Ubuntu)")

    bodies = request_bodies(args.home, args.bodies, args.k)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "onboarding.lua"
        script.write_text(LUA % ",\n".join(f"[==[{b}]==]" for b in bodies))
        proc, health = start_server(args.home, port, args.workers)
        try:
            # Warm-up: the first requests pay for lazy imports and allocator growth.
            run_wrk(port, script, 4 * args.workers, 5)
            results = []
            for c in [int(x) for x in args.concurrency.split(",")]:
                results.append(run_wrk(port, script, c, args.seconds))
                r = results[-1]
                print(f"c={c:>3}: {r['throughput_rps']:>7.1f} req/s  p50 {r['p50_ms']:.1f} ms  "
                      f"p95 {r['p95_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms  errors {r['errors']} non-2xx {r['non_2xx']}")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    report = {
        "endpoint": "POST /v1/onboarding",
        "cpus": os.cpu_count(),
        "seconds_per_level": args.seconds,
        "distinct_bodies": len(bodies),
        "k": args.k,
        "workers": args.workers,
        "models": sorted(health.get("components", {})),
        "catalog": health.get("catalog"),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
