"""Pending episodes into the store: resumable, failures recorded, provided transcripts kept."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from speech import JFK, sounds_like_jfk
from sqlalchemy import select

from coldstart.content import speech as tr
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store, upsert, utcnow
from coldstart.demo.stages import transcribe_stage


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    # One home for the session: models load (and convert) once; each test has its own database.
    return tmp_path_factory.getbasetemp() / "coldstart-home"


@pytest.fixture
def settings(home, tmp_path) -> Settings:
    return Settings(home=home, database_url=f"sqlite:///{tmp_path / 'store.db'}")


@pytest.fixture
def store(settings) -> Store:
    return Store(settings.db_url)


class CountingEngine:
    """The real engine, counting calls; optionally interrupted at the n-th call."""

    def __init__(self, engine, interrupt_at: int | None = None) -> None:
        self.engine, self.interrupt_at, self.calls = engine, interrupt_at, 0
        self.name, self.model = engine.name, engine.model

    def transcribe(self, audio, language=None):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self.engine.transcribe(audio, language)


def add_episodes(
    store: Store, tmp_path: Path, names: list[str], audio: dict[str, str | None] | None = None
) -> None:
    rows = []
    for name in names:
        path = tmp_path / f"{name}.flac"
        shutil.copy(JFK, path)
        rows.append(
            {
                "item_id": name,
                "kind": "episode",
                "title": name,
                "audio_path": str(path),
                "explicit": False,
            }
        )
    for name, path in (audio or {}).items():
        rows.append(
            {
                "item_id": name,
                "kind": "episode",
                "title": name,
                "audio_path": path,
                "explicit": False,
            }
        )
    with store.begin() as conn:
        upsert(conn, t.items, rows)


def rows(store: Store, table) -> dict:
    with store.connect() as conn:
        return {r["item_id"]: dict(r) for r in conn.execute(select(table)).mappings()}


def test_pending_is_episodes_with_audio_and_no_transcript(store, tmp_path):
    add_episodes(store, tmp_path, ["ep1", "ep2"], {"ep-no-audio": None})
    with store.begin() as conn:
        upsert(
            conn,
            t.items,
            [{"item_id": "show1", "kind": "show", "audio_path": str(JFK), "explicit": False}],
        )
        upsert(
            conn,
            t.transcripts,
            [
                {
                    "item_id": "ep2",
                    "engine": "provided",
                    "model": "provided",
                    "text": "ingested words",
                    "created_at": utcnow(),
                }
            ],
        )
    assert tr.pending_items(store) == ["ep1"]
    assert tr.pending_items(store, force=True) == ["ep1"]  # provided transcripts are never redone


def test_batch_stores_transcripts_and_records_failures_without_stopping(store, settings, tmp_path):
    empty, corrupt = tmp_path / "empty.mp3", tmp_path / "corrupt.ogg"
    empty.write_bytes(b"")
    corrupt.write_bytes(b"OggS" + bytes(range(256)) * 8)
    add_episodes(store, tmp_path, ["a", "z"], {"m-empty": str(empty), "m-corrupt": str(corrupt)})

    report = tr.transcribe_pending(store, settings, progress=False)

    assert sorted(report.done) == ["a", "z"]
    assert set(report.failed) == {"m-empty", "m-corrupt"}
    assert "empty.mp3" in report.failed["m-empty"] and "empty" in report.failed["m-empty"]
    assert "corrupt.ogg" in report.failed["m-corrupt"]
    transcripts = rows(store, t.transcripts)
    assert set(transcripts) == {"a", "z"}
    assert transcripts["a"]["engine"] == "faster-whisper" and transcripts["a"]["model"] == "tiny.en"
    assert sounds_like_jfk(transcripts["a"]["text"]), transcripts["a"]["text"]
    assert transcripts["a"]["duration"] == pytest.approx(11.0)
    with store.connect() as conn:
        segs = conn.execute(
            select(t.segments).where(t.segments.c.item_id == "a").order_by(t.segments.c.idx)
        ).all()
    # The default decodes batched, text only: one segment per chunk (one here).
    assert len(segs) >= 1 and 0.0 <= segs[0].start <= segs[-1].end <= 11.0
    assert " ".join(s.text for s in segs) == transcripts["a"]["text"]
    jobs = rows(store, t.transcription_jobs)
    assert {k: j["status"] for k, j in jobs.items()} == {
        "a": "done",
        "z": "done",
        "m-empty": "failed",
        "m-corrupt": "failed",
    }
    assert jobs["m-empty"]["attempts"] == 1 and "empty" in jobs["m-empty"]["error"]
    assert report.audio_seconds == pytest.approx(22.0)


def test_interrupted_batch_resumes_without_redoing_finished_items(
    store, settings, tmp_path, monkeypatch
):
    add_episodes(store, tmp_path, ["e1", "e2", "e3"])
    real = tr.engine_for(settings)
    interrupted = CountingEngine(real, interrupt_at=2)
    monkeypatch.setattr(tr, "engine_for", lambda s, threads=None: interrupted)
    with pytest.raises(KeyboardInterrupt):
        tr.transcribe_pending(store, settings, progress=False)
    finished = rows(store, t.transcripts)
    assert list(finished) == ["e1"]  # committed before the interruption
    assert tr.pending_items(store) == ["e2", "e3"]

    resumed = CountingEngine(real)
    monkeypatch.setattr(tr, "engine_for", lambda s, threads=None: resumed)
    report = tr.transcribe_pending(store, settings, progress=False)
    assert sorted(report.done) == ["e2", "e3"] and resumed.calls == 2
    after = rows(store, t.transcripts)
    assert after["e1"]["created_at"] == finished["e1"]["created_at"]
    assert tr.pending_items(store) == []

    again = tr.transcribe_pending(store, settings, progress=False)
    assert again.done == [] and resumed.calls == 2


def test_failures_are_retried_only_on_request(store, settings, tmp_path):
    broken = tmp_path / "late.flac"
    broken.write_bytes(b"not yet uploaded")
    add_episodes(store, tmp_path, [], {"late": str(broken)})
    assert list(tr.transcribe_pending(store, settings, progress=False).failed) == ["late"]
    assert tr.pending_items(store) == []
    assert tr.transcribe_pending(store, settings, progress=False).failed == {}

    shutil.copy(JFK, broken)  # the file arrives
    report = tr.transcribe_pending(store, settings, retry_failed=True, progress=False)
    assert report.done == ["late"]
    job = rows(store, t.transcription_jobs)["late"]
    assert job["status"] == "done" and job["attempts"] == 2 and job["error"] is None


def test_force_redoes_machine_transcripts_and_keeps_old_ones_on_failure(store, settings, tmp_path):
    add_episodes(store, tmp_path, ["f1"])
    tr.transcribe_pending(store, settings, progress=False)
    first = rows(store, t.transcripts)["f1"]
    assert tr.transcribe_items(store, settings, ["f1"], progress=False).skipped == ["f1"]

    assert tr.transcribe_items(store, settings, ["f1"], force=True, progress=False).done == ["f1"]
    assert rows(store, t.transcripts)["f1"]["created_at"] > first["created_at"]

    (tmp_path / "f1.flac").write_bytes(b"")  # the audio goes bad: the stored transcript survives
    report = tr.transcribe_items(store, settings, ["f1"], force=True, progress=False)
    assert "f1" in report.failed
    assert rows(store, t.transcripts)["f1"]["text"] == first["text"]


def test_relative_audio_paths_resolve_against_home(store, settings):
    audio_dir = settings.home / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(JFK, audio_dir / "rel.flac")
    with store.begin() as conn:
        upsert(
            conn,
            t.items,
            [
                {
                    "item_id": "rel",
                    "kind": "episode",
                    "audio_path": "audio/rel.flac",
                    "explicit": False,
                }
            ],
        )
    assert (
        tr.resolve_audio_path("audio/rel.flac", settings.home)
        == (settings.home / "audio" / "rel.flac").resolve()
    )
    assert tr.resolve_audio_path("/abs/x.mp3", settings.home) == Path("/abs/x.mp3")
    assert tr.transcribe_pending(store, settings, progress=False).done == ["rel"]


def test_explicit_items_without_audio_fail_clearly(store, settings):
    with store.begin() as conn:
        upsert(
            conn,
            t.items,
            [{"item_id": "silent", "kind": "episode", "audio_path": None, "explicit": False}],
        )
    report = tr.transcribe_items(store, settings, ["silent", "nope"], progress=False)
    assert report.failed == {
        "silent": "no audio_path for this item",
        "nope": "unknown item (not in items or uploads)",
    }
    assert rows(store, t.transcription_jobs)["silent"]["status"] == "failed"
    assert "nope" not in rows(store, t.transcription_jobs)


def test_demo_stage_reports_what_it_heard(store, settings, tmp_path):
    add_episodes(store, tmp_path, ["demo1"])
    out = io.StringIO()
    report = transcribe_stage(store, settings, Console(file=out, width=200))
    assert report.done == ["demo1"]
    printed = out.getvalue()
    stored = rows(store, t.transcripts)["demo1"]["text"]
    # It prints what it stored (the words themselves depend on the CPU's decode).
    assert sounds_like_jfk(stored), stored
    assert "1 transcribed, 0 failed" in printed and stored[:30] in printed


def test_worker_processes_write_the_same_results(store, settings, tmp_path):
    add_episodes(store, tmp_path, ["w1", "w2", "w3"], {"w-bad": str(tmp_path / "missing.wav")})
    report = tr.transcribe_pending(store, settings, workers=2, progress=False)
    assert sorted(report.done) == ["w1", "w2", "w3"] and list(report.failed) == ["w-bad"]
    texts = {k: v["text"] for k, v in rows(store, t.transcripts).items()}
    # Same engine and settings in every worker process on one machine: the same text.
    assert len(set(texts.values())) == 1 and sounds_like_jfk(texts["w1"]), texts


def test_uploads_are_transcribed_by_item_id(store, settings, tmp_path):
    shutil.copy(JFK, tmp_path / "upload.flac")
    now = utcnow()
    with store.begin() as conn:
        upsert(
            conn,
            t.uploads,
            [
                {
                    "upload_id": "u1",
                    "item_id": "up-ep",
                    "audio_path": str(tmp_path / "upload.flac"),
                    "status": "received",
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
    report = tr.transcribe_items(store, settings, ["up-ep"], progress=False)
    assert report.done == ["up-ep"]
    assert sounds_like_jfk(rows(store, t.transcripts)["up-ep"]["text"])
