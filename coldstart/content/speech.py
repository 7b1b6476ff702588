"""Transcribe episodes into the store: pending work, resumable batches, recorded failures.

An episode (items.kind='episode') with an `audio_path` and no row in `transcripts`
is pending. Ingested transcripts (engine "provided") count as done and are never
replaced, not even with `force`. Every finished item commits in its own transaction
(transcript + segments + job row), so an interrupted batch resumes where it stopped.
A failure is recorded in `transcription_jobs` (status='failed', error, attempts) and
leaves any earlier transcript untouched; failed items are retried only on request.

Relative `audio_path` values resolve against COLDSTART_HOME (`settings.home`);
absolute paths are used as they are.

Several `transcribe --pending` processes may run at once: each item is transcribed
under a lease (`coldstart.core.leases.Leases` on `transcription_lease(item_id)`,
`settings.lease_seconds`), taken just before the work starts and released when its
result is written. An item leased by another live worker is reported `busy`; a killed
worker's items are taken over once their leases expire.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select
from tqdm import tqdm

from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.leases import Leases
from coldstart.core.store import Store, upsert, utcnow, worker_id
from transcripts import (
    AudioError,
    ModelError,
    Transcript,
    load_engine,
    prepare_model,
    probe_duration,
    transcribe_file,
)

__all__ = [
    "TranscriptionReport",
    "resolve_audio_path",
    "model_cache_dir",
    "pending_items",
    "transcribe_items",
    "transcribe_pending",
    "engine_for",
    "transcription_lease",
    "transcribe_one",
    "transcribed_engines",
]


@dataclass
class TranscriptionReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already transcribed
    failed: dict[str, str] = field(default_factory=dict)  # item_id -> error
    busy: list[str] = field(default_factory=list)  # leased by another live worker
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0  # everything, model loading included
    transcribe_seconds: float = 0.0  # from the first file to the last

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio transcribed per second of transcription time."""
        return self.audio_seconds / self.transcribe_seconds if self.transcribe_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "busy": self.busy,
            "audio_seconds": round(self.audio_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "transcribe_seconds": round(self.transcribe_seconds, 3),
            "realtime_factor": round(self.realtime_factor, 2),
        }


def resolve_audio_path(audio_path: str, home: Path) -> Path:
    """Absolute paths as they are; relative ones against COLDSTART_HOME."""
    path = Path(audio_path).expanduser()
    return path if path.is_absolute() else (Path(home) / path).resolve()


def model_cache_dir(settings: Settings) -> Path:
    return (settings.home / "models" / "whisper").resolve()


def engine_for(settings: Settings, threads: int | None = None):
    """The configured engine, loaded once per process.

    Batched decoding runs text-only (timestamped batched decoding lost sentences at chunk
    starts on the dev set) and sequential decoding keeps timestamps (without them a 30 s
    window is abandoned where the model stops early): see docs/transcripts.md."""
    cfg = settings.transcribe
    return load_engine(
        cfg.engine,
        cfg.model,
        str(model_cache_dir(settings)),
        cfg.beam_size,
        cfg.language,
        cfg.threads if threads is None else threads,
        vad_filter=cfg.vad_filter,
        batch_size=cfg.batch_size,
        without_timestamps=cfg.batch_size > 0 and cfg.engine == "faster-whisper",
    )


# --- what is pending ---------------------------------------------------------


def _audio_paths(store: Store, item_ids: list[str] | None) -> dict[str, str | None]:
    """item_id -> audio_path for episodes (or the given items), uploads filling gaps."""
    with store.connect() as conn:
        stmt = select(t.items.c.item_id, t.items.c.audio_path)
        stmt = (
            stmt.where(t.items.c.item_id.in_(item_ids))
            if item_ids is not None
            else stmt.where(t.items.c.kind == "episode")
        )
        paths = dict(conn.execute(stmt).all())
        uploads = select(t.uploads.c.item_id, t.uploads.c.audio_path)
        if item_ids is not None:
            uploads = uploads.where(t.uploads.c.item_id.in_(item_ids))
        for item_id, path in conn.execute(uploads).all():
            if not paths.get(item_id):
                paths[item_id] = path
    if item_ids is not None:
        # Unknown ids map to "" (no row at all), known ones without audio to None.
        return {
            item_id: paths.get(item_id, "" if item_id not in paths else None)
            for item_id in item_ids
        }
    return paths


def transcription_lease(item_id: str) -> str:
    """The lease a worker holds while it transcribes `item_id` (`coldstart.core.leases`)."""
    return f"transcribe:{item_id}"


def transcribed_engines(store: Store) -> dict[str, str]:
    """item_id -> the engine that wrote its stored transcript ("provided" when ingested)."""
    with store.connect() as conn:
        return dict(conn.execute(select(t.transcripts.c.item_id, t.transcripts.c.engine)).all())


def _failed(store: Store) -> set[str]:
    with store.connect() as conn:
        rows = conn.execute(
            select(t.transcription_jobs.c.item_id).where(t.transcription_jobs.c.status == "failed")
        ).all()
    return {r[0] for r in rows}


def pending_items(store: Store, force: bool = False, retry_failed: bool = False) -> list[str]:
    """Episodes with audio and no transcript (all machine-made ones with `force`)."""
    transcribed = transcribed_engines(store)
    failed = _failed(store)
    out = []
    for item_id, audio_path in sorted(_audio_paths(store, None).items()):
        if not audio_path:
            continue
        engine = transcribed.get(item_id)
        if engine == "provided" or (engine is not None and not force):
            continue
        if item_id in failed and not retry_failed:
            continue
        out.append(item_id)
    return out


# --- writing results ---------------------------------------------------------


def _attempts(conn, item_id: str) -> int:
    row = conn.execute(
        select(t.transcription_jobs.c.attempts).where(t.transcription_jobs.c.item_id == item_id)
    ).first()
    return (row[0] or 0) if row else 0


def write_transcript(conn, item_id: str, transcript: Transcript, now) -> None:
    """Transcript, segments and a `done` job row for `item_id`, on an open transaction."""
    conn.execute(delete(t.segments).where(t.segments.c.item_id == item_id))
    upsert(
        conn,
        t.transcripts,
        [
            {
                "item_id": item_id,
                "engine": transcript.engine,
                "model": transcript.model,
                "language": transcript.language,
                "duration": transcript.duration,
                "text": transcript.text,
                "created_at": now,
            }
        ],
    )
    upsert(
        conn,
        t.segments,
        [
            {
                "item_id": item_id,
                "idx": i,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "avg_logprob": s.avg_logprob,
            }
            for i, s in enumerate(transcript.segments)
        ],
    )
    _write_job(conn, item_id, "done", None, now)


def write_failure(conn, item_id: str, error: str, now) -> None:
    """A `failed` job row with its reason for `item_id`, on an open transaction."""
    _write_job(conn, item_id, "failed", error, now)


def _write_job(conn, item_id: str, status: str, error: str | None, now) -> None:
    upsert(
        conn,
        t.transcription_jobs,
        [
            {
                "item_id": item_id,
                "status": status,
                "error": error,
                "attempts": _attempts(conn, item_id) + 1,
                "updated_at": now,
            }
        ],
    )


def _record_done(store: Store, item_id: str, transcript: Transcript) -> None:
    with store.begin() as conn:  # transcript, segments and job row commit together
        write_transcript(conn, item_id, transcript, utcnow())


def _record_failed(store: Store, item_id: str, error: str) -> None:
    with store.begin() as conn:
        write_failure(conn, item_id, error, utcnow())


# --- running -----------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, AudioError) else f"{type(exc).__name__}: {exc}"


def transcribe_one(
    engine, path: Path, chunk_seconds: float, language: str | None, on_progress=None
):
    """(transcript or None, error or None); model errors propagate: they fail every item."""
    if not path.exists():
        return None, str(AudioError(path, "file not found"))
    try:
        return transcribe_file(
            path, engine, chunk_seconds=chunk_seconds, language=language, on_progress=on_progress
        ), None
    except ModelError:
        raise
    except Exception as exc:  # one bad file must not stop the batch
        return None, _describe(exc)


_WORKER_ENGINE = None


def _worker_init(settings_json: str, threads: int) -> None:
    global _WORKER_ENGINE
    _WORKER_ENGINE = engine_for(Settings.model_validate_json(settings_json), threads=threads)


def _worker_run(item_id: str, path: str, chunk_seconds: float, language: str | None):
    transcript, error = transcribe_one(_WORKER_ENGINE, Path(path), chunk_seconds, language)
    return item_id, transcript, error


def _duration_or_zero(path: Path) -> float:
    try:
        return probe_duration(path) or 0.0
    except AudioError:
        return 0.0


def transcribe_items(
    store: Store,
    settings: Settings,
    item_ids: list[str] | None = None,
    force: bool = False,
    retry_failed: bool = False,
    workers: int | None = None,
    progress: bool | None = None,
) -> TranscriptionReport:
    """Transcribe `item_ids` (or every pending episode) into the store.

    Items that already have a transcript are skipped unless `force` (ingested
    "provided" transcripts always are). Explicitly listed items are attempted even if
    they failed before; in the pending set, failures come back with `retry_failed`.
    `workers` > 1 runs that many processes; the parent writes every result.
    `progress`: None shows a tqdm bar only on a terminal.
    """
    started = time.perf_counter()
    report = TranscriptionReport()
    if item_ids is None:
        todo = pending_items(store, force=force, retry_failed=retry_failed)
        paths = _audio_paths(store, todo)
    else:
        paths = _audio_paths(store, list(dict.fromkeys(item_ids)))
        transcribed = transcribed_engines(store)
        todo = []
        for item_id in paths:
            engine = transcribed.get(item_id)
            if engine == "provided" or (engine is not None and not force):
                report.skipped.append(item_id)
            else:
                todo.append(item_id)
    for item_id in [i for i in todo if not paths.get(i)]:
        known = paths.get(item_id) is None
        report.failed[item_id] = (
            "no audio_path for this item" if known else "unknown item (not in items or uploads)"
        )
        if known:
            _record_failed(store, item_id, report.failed[item_id])
    todo = [i for i in todo if paths.get(i)]
    if not todo:
        report.wall_seconds = time.perf_counter() - started
        return report

    resolved = {i: resolve_audio_path(paths[i], settings.home) for i in todo}
    cfg = settings.transcribe
    workers = max(1, min(workers or cfg.workers, len(todo)))
    total_hours = sum(_duration_or_zero(p) for p in resolved.values()) / 3600
    bar = (
        tqdm(
            total=round(total_hours, 4),
            unit="h",
            desc="transcribing",
            disable=False if progress else None,
            bar_format="{l_bar}{bar}| {n:.3f}/{total:.3f} audio h [{elapsed}<{remaining}{postfix}]",
        )
        if progress is not False
        else None
    )

    clock = {"start": time.perf_counter()}  # reset once the models are loaded
    leases = Leases(store, worker_id(), settings.lease_seconds)

    def claim(item_id: str) -> bool:
        """Take the item's lease; False (reported busy or skipped) when another worker
        holds it or finished it since the list was made."""
        if leases.claim([transcription_lease(item_id)]):
            report.busy.append(item_id)
            return False
        if not force and item_id in transcribed_engines(store):
            leases.release(transcription_lease(item_id))
            report.skipped.append(item_id)
            return False
        return True

    def renew(item_ids) -> None:
        for item_id in item_ids:
            leases.confirm(transcription_lease(item_id))

    def finish(item_id: str, transcript: Transcript | None, error: str | None) -> None:
        try:
            _finish(item_id, transcript, error)
        finally:
            leases.release(transcription_lease(item_id))

    def _finish(item_id: str, transcript: Transcript | None, error: str | None) -> None:
        if transcript is not None:
            _record_done(store, item_id, transcript)
            report.done.append(item_id)
            report.audio_seconds += transcript.duration
        else:
            _record_failed(store, item_id, error or "unknown error")
            report.failed[item_id] = error or "unknown error"
        report.transcribe_seconds = time.perf_counter() - clock["start"]
        if bar is not None:
            bar.n = round(report.audio_seconds / 3600, 4)
            bar.set_postfix(rtf=f"{report.realtime_factor:.1f}x", failed=len(report.failed))

    def within(seconds: float) -> None:
        """Progress inside one long file (one worker): the bar moves after every piece."""
        if bar is not None:
            bar.n = round((report.audio_seconds + seconds) / 3600, 4)
            bar.refresh()

    try:
        with leases:  # releases every lease still held on the way out
            if workers == 1:
                engine = engine_for(settings)
                clock["start"] = time.perf_counter()
                for item_id in todo:
                    if not claim(item_id):
                        continue
                    transcript, error = transcribe_one(
                        engine,
                        resolved[item_id],
                        cfg.chunk_seconds,
                        cfg.language,
                        on_progress=within,
                    )
                    finish(item_id, transcript, error)
            else:
                _run_pool(settings, todo, resolved, workers, finish, claim, renew)
    finally:
        if bar is not None:
            bar.close()
    report.wall_seconds = time.perf_counter() - started
    return report


def _run_pool(
    settings: Settings,
    todo: list[str],
    resolved: dict[str, Path],
    workers: int,
    finish,
    claim,
    renew,
) -> None:
    cfg = settings.transcribe
    # Resolve, join and convert here, once: a bad model fails clearly in the parent,
    # and workers never race to write the same cached files.
    prepare_model(cfg.engine, cfg.model, model_cache_dir(settings))
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // workers)
    # spawn: forking a process that already runs OpenMP/torch threads can deadlock.
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(settings.model_dump_json(), threads),
    ) as pool:
        queue = list(todo)
        running = {}
        while queue or running:
            while (
                queue and len(running) < workers * 2
            ):  # keep workers fed, not the whole batch queued
                item_id = queue.pop(0)
                if claim(item_id):  # the parent holds every lease
                    future = pool.submit(
                        _worker_run,
                        item_id,
                        str(resolved[item_id]),
                        cfg.chunk_seconds,
                        cfg.language,
                    )
                    running[future] = item_id
            if not running:
                continue
            finished, _ = wait(
                running, timeout=settings.lease_seconds / 3, return_when=FIRST_COMPLETED
            )
            renew([running[f] for f in running if f not in finished])
            for future in finished:
                running.pop(future)
                finish(*future.result())  # results are written here, by the parent


def transcribe_pending(
    store: Store,
    settings: Settings,
    force: bool = False,
    retry_failed: bool = False,
    workers: int | None = None,
    progress: bool | None = None,
) -> TranscriptionReport:
    """Every pending episode (see `pending_items`)."""
    return transcribe_items(
        store,
        settings,
        None,
        force=force,
        retry_failed=retry_failed,
        workers=workers,
        progress=progress,
    )
