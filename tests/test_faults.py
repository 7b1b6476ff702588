"""Fault tests: processes killed with SIGKILL, models reloaded under load, many clients.

Short versions run in the default suite; the long ones (`slow`) are the SIGKILL of a
batch mid-way and the 60-second soak. Load here is loopback only and bounded in both
requests and time; the figures in the README come from benchmarks/serve.py, not from
these tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
import serving_world
from fault_tools import hammer, kill9, onboarding_bodies, server_process
from pydantic import SecretStr
from sqlalchemy import select

from coldstart.batch.upload_pipeline import score_uploads
from coldstart.batch.uploads import get_upload, register_upload, resolve_upload_path
from coldstart.content.index import load_index
from coldstart.core import tables as t
from coldstart.core.config import ServeSettings, Settings
from coldstart.core.store import Store, utcnow
from coldstart.demo.world import ASSETS, AUDIO_CLIPS

TOKEN = "fault-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="session")
def served_home(tmp_path_factory):
    return serving_world.build(tmp_path_factory.mktemp("world"))


@pytest.fixture
def home(served_home, tmp_path) -> Path:
    """A private copy of the served world (store, indexes, uploads) for one test."""
    copy = tmp_path / "home"
    shutil.copytree(served_home, copy, ignore=shutil.ignore_patterns("audiences"))
    return copy


def _show(store: Store, language: str = "en") -> str:
    shows = store.items(["show"])
    return shows[shows["language"] == language]["item_id"].iloc[0]


# --- the server is killed right after an upload is registered --------------------------------


def test_upload_survives_a_server_kill_and_is_scored_after_restart(home):
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    audio = (ASSETS / "history.ogg").read_bytes()
    with server_process(home, TOKEN) as (proc, url):
        resp = httpx.post(
            f"{url}/v1/uploads",
            headers=AUTH,
            timeout=60,
            data={"show_id": _show(store), "title": "Killed right after"},
            files={"file": ("history.ogg", audio, "audio/ogg")},
        )
        assert resp.status_code == 201, resp.text
        kill9(proc)  # no shutdown handler runs
    upload_id = resp.json()["upload_id"]
    # Restarted (in this process: quicker to start than a second subprocess).
    restarted = Settings(home=home, api_token=SecretStr(TOKEN))
    with serving_world.served(restarted) as api:
        status = api.get(f"/v1/uploads/{upload_id}", headers=AUTH).json()
        assert status["status"] == "pending"
        report = score_uploads(store, settings, progress=False)
        assert upload_id in report.scored
        status = api.get(f"/v1/uploads/{upload_id}", headers=AUTH).json()
        assert status["status"] == "scored" and status["audience"]["listeners_scored"] > 0
    stored = Path(get_upload(store, upload_id)["audio_path"])
    assert stored.read_bytes() == audio  # the file the 201 promised is complete


# --- worker processes forked from one load ------------------------------------------------------


def _workers(proc) -> set[int]:
    return {child.pid for child in psutil.Process(proc.pid).children()}


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_forked_workers_replace_a_killed_worker_and_stop_together(home):
    """`serve --workers 2` loads once and forks: a SIGKILLed worker is forked again from
    the loaded parent while the other answers; SIGTERM to the parent stops them all."""
    body = onboarding_bodies(Store.from_settings(Settings(home=home)), n=1)[0]
    with server_process(home, TOKEN, workers=2) as (proc, url):
        _wait_for(lambda: len(_workers(proc)) == 2)
        first = _workers(proc)
        answer = httpx.post(f"{url}/v1/onboarding", json=body, timeout=30)
        assert answer.status_code == 200
        os.kill(min(first), 9)
        for _ in range(20):  # the other worker answers meanwhile
            again = httpx.post(f"{url}/v1/onboarding", json=body, timeout=30)
            assert again.status_code == 200 and again.json() == answer.json()
        _wait_for(lambda: len(_workers(proc)) == 2 and min(first) not in _workers(proc))
        after = _workers(proc)
        assert httpx.post(f"{url}/v1/onboarding", json=body, timeout=30).json() == answer.json()
        proc.terminate()  # SIGTERM to the parent alone
        proc.wait(timeout=30)
    assert not [
        pid for pid in after if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]


# --- model reload under load -----------------------------------------------------------------


def _reload_under_load(home: Path, seconds: float, clients: int = 16) -> tuple[dict, list, int]:
    settings = Settings(
        home=home, api_token=SecretStr(TOKEN), serve=ServeSettings(reload_check_seconds=0.2)
    )
    store = Store.from_settings(settings)
    bodies = onboarding_bodies(store)
    reloads = 0
    with serving_world.served(settings) as api:
        url = str(api.base_url)
        with hammer(url, bodies, clients, max_requests=20_000) as (counts, failures):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                assert api.post("/v1/admin/reload", headers=AUTH, timeout=120).status_code == 200
                # ...and a new artifact dropped in: the background check reloads by itself.
                for name in ("affinity:podcast", "affinity:audiobook"):
                    row = store.artifact(name)
                    store.register_artifact(name, row["path"], row["manifest"])
                reloads += 2
                time.sleep(0.5)
        metrics = api.get("/metrics").text
    ok = [
        line
        for line in metrics.splitlines()
        if line.startswith('coldstart_model_reloads_total{result="ok"}')
    ]
    assert ok and float(ok[0].split()[-1]) >= reloads // 2  # the reloads really happened
    return counts, failures, reloads


def test_reload_while_16_clients_hammer_onboarding(home):
    counts, failures, reloads = _reload_under_load(home, seconds=4)
    assert failures == [] and counts["ok"] == counts["sent"] > 50 and reloads >= 2


# --- many clients: zero errors, flat memory ----------------------------------------------------


def test_64_concurrent_clients_get_no_errors(home):
    settings = Settings(home=home)
    bodies = onboarding_bodies(Store.from_settings(settings))
    with (
        serving_world.served(settings) as api,
        hammer(str(api.base_url), bodies, 64, max_requests=1500) as (counts, failures),
    ):
        time.sleep(5)
    assert failures == [] and counts["ok"] == counts["sent"] > 64


@pytest.mark.slow
def test_soak_60_seconds_at_64_clients_flat_memory(home):
    settings = Settings(home=home)
    bodies = onboarding_bodies(Store.from_settings(settings), n=200)
    with server_process(home, TOKEN) as (proc, url):
        server = psutil.Process(proc.pid)
        with hammer(url, bodies, 64, max_requests=200_000) as (counts, failures):
            time.sleep(10)  # warm-up: allocator growth, lazy imports
            start_rss = server.memory_info().rss
            time.sleep(60)
            end_rss = server.memory_info().rss
    assert failures == [] and counts["ok"] == counts["sent"]
    assert end_rss < start_rss * 1.10 + 20 * 2**20, (start_rss, end_rss)


# --- a batch killed with SIGKILL mid-way, then resumed -----------------------------------------


def _register_clips(settings: Settings, store: Store, n: int) -> list[str]:
    ids = []
    for i, clip in enumerate(list(AUDIO_CLIPS)[:n]):
        target = settings.uploads_path / f"kill-{i}-{clip}.ogg"
        shutil.copy2(ASSETS / f"{clip}.ogg", target)
        up = register_upload(
            store,
            show_id=_show(store),
            title=f"clip {clip}",
            audio_path=resolve_upload_path(settings, target.name),
        )
        ids.append(up["upload_id"])
    return ids


@pytest.mark.slow
def test_score_uploads_killed_mid_batch_then_resumed_does_each_upload_once(home):
    lease = 15.0
    settings = Settings(home=home, lease_seconds=lease)
    store = Store.from_settings(settings)
    ids = _register_clips(settings, store, 4)
    env = {
        **os.environ,
        "COLDSTART_LEASE_SECONDS": str(lease),
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    cmd = [str(Path(sys.executable).with_name("coldstart")), "--home", str(home), "score-uploads"]
    for upload_id in ids:
        cmd += ["--upload", upload_id]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    victim = None
    while victim is None:
        assert proc.poll() is None, "the batch finished before it could be killed"
        assert time.monotonic() < deadline, "the batch never got going"
        statuses = {u: get_upload(store, u)["status"] for u in ids}
        held = set(store.leases()["resource"])
        busy = [u for u in ids if f"upload:{u}" in held and statuses[u] != "scored"]
        if "scored" in statuses.values() and busy:
            victim = busy[0]
            kill9(proc)
        time.sleep(0.05)
    assert get_upload(store, victim)["status"] != "scored"

    # Resumed at once: the dead worker's lease still runs, so its upload is left alone.
    first = score_uploads(store, settings, ids, progress=False)
    assert first.busy == [victim] and not first.failed
    expires = store.leases().set_index("resource").at[f"upload:{victim}", "expires_at"]
    time.sleep(max(0.0, (expires - utcnow()).total_seconds()) + 0.5)
    second = score_uploads(store, settings, ids, progress=False)
    assert second.scored == [victim] and not second.failed

    # Every upload done exactly once: scored, one transcript (transcribed once), one
    # index entry, no lease left behind.
    assert {get_upload(store, u)["status"] for u in ids} == {"scored"}
    items = [get_upload(store, u)["item_id"] for u in ids]
    with store.connect() as conn:
        jobs = dict(
            conn.execute(
                select(t.transcription_jobs.c.item_id, t.transcription_jobs.c.attempts).where(
                    t.transcription_jobs.c.item_id.in_(items)
                )
            ).all()
        )
        transcripts = conn.execute(
            select(t.transcripts.c.item_id).where(t.transcripts.c.item_id.in_(items))
        ).all()
    assert jobs == {item: 1 for item in items} and len(transcripts) == len(items)
    index = load_index(settings, "items")
    assert set(items) <= set(index.keys()) and len(index) == len(index.keys())
    assert store.leases().empty
