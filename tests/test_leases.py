"""Work leases: concurrent batch workers never take the same item, and a dead worker's
items are taken over once its lease expires. On SQLite and on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

from speech import JFK
from sqlalchemy import func, select

from coldstart.content import speech as tr
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store, upsert, utcnow, worker_id


def test_claim_renew_release_and_expiry(db_url):
    store = Store(db_url)
    assert store.claim("job:1", "a", 30)
    assert not store.claim("job:1", "b", 30)  # held and alive
    assert store.claim("job:1", "a", 30)  # the owner may claim again (extends it)
    assert store.renew("job:1", "a", 30) and not store.renew("job:1", "b", 30)
    store.release("job:1", "b")  # not b's: nothing happens
    assert not store.claim("job:1", "b", 30)
    assert store.claim("job:2", "a", 0.2)
    time.sleep(0.4)
    assert store.claim("job:2", "b", 30)  # expired: taken over
    assert not store.renew("job:2", "a", 30)  # a learns it lost the item
    store.release("job:1", "a")
    assert store.claim("job:1", "b", 30)
    assert set(store.leases()["owner"]) == {"b"}


def test_racing_workers_never_share_an_item(db_url):
    """8 threads (each its own connection) claim the same 40 items at once: every item
    ends with exactly one owner, and every claim that returned True is that owner."""
    store = Store(db_url)
    won: dict[str, list[str]] = {}
    start = threading.Barrier(8)

    def worker(name: str) -> None:
        start.wait()
        won[name] = [f"item:{i}" for i in range(40) if store.claim(f"item:{i}", name, 60)]

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [item for items in won.values() for item in items]
    assert sorted(claimed) == sorted(f"item:{i}" for i in range(40))  # each exactly once
    owners = dict(zip(store.leases()["resource"], store.leases()["owner"]))
    assert all(owners[item] == name for name, items in won.items() for item in items)


def test_hold_waits_for_the_lease(db_url):
    store = Store(db_url)
    assert store.claim("index:sync", "other", 0.5)
    started = time.monotonic()
    with store.hold("index:sync", "me", 30, poll=0.05):
        assert time.monotonic() - started >= 0.3  # waited for the other lease to expire
    assert store.claim("index:sync", "next", 30)  # released on exit


def _episodes(store: Store, tmp_path: Path, names: list[str]) -> None:
    rows = []
    for name in names:
        path = tmp_path / f"{name}.flac"
        path.write_bytes(JFK.read_bytes())
        rows.append(
            {
                "item_id": name,
                "kind": "episode",
                "title": name,
                "audio_path": str(path),
                "explicit": False,
            }
        )
    with store.begin() as conn:
        upsert(conn, t.items, rows)


def test_transcribe_pending_skips_leased_items_and_takes_over_expired_ones(
    db_url, tmp_path_factory, tmp_path
):
    home = tmp_path_factory.getbasetemp() / "coldstart-home"  # shared model cache
    settings = Settings(home=home, database_url=db_url, lease_seconds=30)
    store = Store(settings.db_url)
    _episodes(store, tmp_path, ["ep1", "ep2"])
    # A worker that was killed while holding ep1: its lease is still running...
    assert store.claim("transcribe:ep1", "killed-worker", 600)
    first = tr.transcribe_pending(store, settings, progress=False)
    assert first.done == ["ep2"] and first.busy == ["ep1"]
    # ...until it expires (moved into the past rather than waited for).
    with store.begin() as conn:
        conn.execute(t.leases.update().values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    second = tr.transcribe_pending(store, settings, progress=False)
    assert second.done == ["ep1"] and second.busy == []
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.transcripts)).scalar_one() == 2
        attempts = dict(
            conn.execute(
                select(t.transcription_jobs.c.item_id, t.transcription_jobs.c.attempts)
            ).all()
        )
    assert attempts == {"ep1": 1, "ep2": 1}  # each transcribed exactly once
    assert store.leases().empty  # every lease released


def test_worker_ids_are_unique_per_process_and_call():
    assert worker_id() != worker_id()
