"""Helpers for the fault tests: a `coldstart serve` process that can be SIGKILLed, and
a bounded loopback load generator (threads, one httpx client each)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from coldstart.api.server import free_port

__all__ = ["server_process", "kill9", "hammer", "onboarding_bodies"]


@contextmanager
def server_process(
    home: Path,
    token: str,
    extra_env: dict | None = None,
    timeout: float = 240.0,
    workers: int | None = None,
):
    """`coldstart --home HOME serve [--workers N]` on a free loopback port: yields
    (process, base URL)."""
    port = free_port()
    exe = Path(sys.executable).with_name("coldstart")
    env = {**os.environ, "COLDSTART_API_TOKEN": token, **(extra_env or {})}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")])
    )
    command = [str(exe), "--home", str(home), "serve", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        command + ([] if workers is None else ["--workers", str(workers)]),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-3000:]}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy in time")
            time.sleep(0.2)
        yield proc, url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill9(proc)
        proc.stderr.close()


def kill9(proc: subprocess.Popen) -> None:
    """SIGKILL the process group: no clean-up handler runs."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def onboarding_bodies(store, n: int = 50, k: int = 5) -> list[dict]:
    inter = store.interactions().merge(store.items()[["item_id", "kind"]], on="item_id")
    music = inter[inter["kind"].isin(["artist", "track"])]
    return [
        {
            "music": [
                {"item_id": r.item_id, "weight": float(r.weight)} for r in group.itertuples()
            ],
            "k": k,
        }
        for _, group in list(music.groupby("user_id"))[:n]
    ]


@contextmanager
def hammer(url: str, bodies: list[dict], clients: int, max_requests: int = 1_000_000):
    """`clients` threads POST onboarding bodies while the block runs (at most
    `max_requests` in all). Yields `counts` {"ok", "sent"} and `failures`, a list of
    (status or error, text); both are final once the block has exited."""
    counts = {"ok": 0, "sent": 0}
    failures: list[tuple] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            i = n
            while not stop.is_set():
                with lock:
                    if counts["sent"] >= max_requests:
                        return
                    counts["sent"] += 1
                try:
                    resp = http.post("/v1/onboarding", json=bodies[i % len(bodies)])
                    good = resp.status_code == 200 and bool(resp.json()["shows"])
                    failure = None if good else (resp.status_code, resp.text[:200])
                except httpx.HTTPError as exc:
                    failure = (type(exc).__name__, str(exc)[:200])
                with lock:
                    if failure is None:
                        counts["ok"] += 1
                    else:
                        failures.append(failure)
                i += clients

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield counts, failures
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
