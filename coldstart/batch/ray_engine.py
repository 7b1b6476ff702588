"""`--engine ray`: score-uploads and catalogue embedding on Ray Data.

`RayEngine` runs the stages of `coldstart.batch.upload_pipeline` (one definition for
both engines) on every upload at once:

    pending -> transcribed -> embedded -> indexed -> scored      (or -> failed, with the reason)

Transcription and embedding run as `ray.data` datasets through `map_batches` with the
callable classes of `ray_stages` (an actor pool of `workers` actors, each loading
Whisper or MiniLM once). Each stage's output is written to Parquet under
`<home>/batch/<run>/<stage>/`, then read back by the driver and written into the store
in one transaction per batch of `commit_batch` items, together with the uploads'
new status. Index updates (faiss, one writer at a time) and the audience prediction
(one affinity model against every listener, batched) are the local engine's, in the
driver.

Resumability is the local path's: uploads hold the `upload:<id>` lease for the whole
run (renewed by a background thread), finished ones are skipped, a re-run resumes
from each upload's recorded status, and a failure is recorded on the upload with the
step and the reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import and_, bindparam, delete

from coldstart.batch.ray_stages import Embed, Transcribe, transcript_from_json
from coldstart.batch.upload_pipeline import LocalEngine, UploadRun, score_uploads
from coldstart.batch.uploads import ScoreReport
from coldstart.content.embeddings import (
    SPOKEN_KINDS,
    EmbedReport,
    model_id_for,
    transcript_segments,
)
from coldstart.content.speech import (
    model_cache_dir,
    resolve_audio_path,
    transcribed_engines,
    transcription_lease,
    write_failure,
    write_transcript,
)
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.leases import Leases
from coldstart.core.store import Store, upsert, utcnow
from coldstart.core.upload_status import UploadStatus
from transcripts import prepare_model

__all__ = [
    "RayEngine",
    "RayUnavailable",
    "embed_catalogue_ray",
    "ray_session",
    "score_uploads_ray",
]


class RayUnavailable(RuntimeError):
    """Ray is not installed: `pip install 'coldstart[ray]'`."""


def _ray():
    try:  # imported here: Ray is the optional `ray` extra
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:  # the default install has no Ray
        raise RayUnavailable("--engine ray needs Ray Data: pip install 'coldstart[ray]'") from exc
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[object]:
    """Connect to `address` ("auto", "ray://head:10001") or start a local Ray; a session
    already initialised (e.g. by a test) is used as it is and left running."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs = {"include_dashboard": False, "log_to_driver": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


def _run_stage(
    rows: pd.DataFrame,
    stage,
    settings: Settings,
    out_dir: Path,
    workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
    batch_size: int,
) -> pd.DataFrame:
    """rows -> actor pool of `stage` -> one Parquet file per output batch in `out_dir`
    -> back as one frame. The driver pulls the batches (`iter_batches`), so no task
    besides the actors needs a CPU slot: a pool that takes every CPU cannot deadlock."""
    ray = _ray()
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = max(1, min(len(rows), workers * 4))
    parts = [rows.iloc[lo::blocks] for lo in range(blocks)]
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    ds = ray.data.from_pandas([p for p in parts if len(p)])
    ds = ds.map_batches(
        stage,
        fn_constructor_args=(settings.model_dump_json(), max(1, int(cpus_per_worker))),
        compute=ray.data.ActorPoolStrategy(
            size=workers
        ),  # `workers` actors, each loads its model once
        batch_size=batch_size,
        batch_format="pandas",
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker or None,
    )
    frames = []
    for i, batch in enumerate(ds.iter_batches(batch_format="pandas", batch_size=None)):
        pq.write_table(
            pa.Table.from_pandas(batch, preserve_index=False), out_dir / f"part-{i:05d}.parquet"
        )
        frames.append(batch)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _chunks(items: list, size: int) -> Iterator[list]:
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


# --- writing stage results -------------------------------------------------------------


def _write_transcripts(
    run: UploadRun, results: pd.DataFrame, upload_of: dict[str, str], commit_batch: int
) -> None:
    """Transcripts + segments + job rows + upload status, one transaction per batch."""
    for chunk in _chunks(results.to_dict("records"), commit_batch):
        now = utcnow()
        with run.store.begin() as conn:
            for row in chunk:
                item_id, upload_id = row["item_id"], upload_of[row["item_id"]]
                if not row["transcript"]:
                    write_failure(conn, item_id, row["error"], now)
                    run.fail([upload_id], f"transcribe: {row['error']}", conn=conn)
                    continue
                write_transcript(conn, item_id, transcript_from_json(row["transcript"]), now)
                run.advance([upload_id], UploadStatus.TRANSCRIBED, conn=conn)


def _embed_rows(store: Store, model_id: str, item_ids: list[str] | None) -> pd.DataFrame:
    """One row per item: its record, its transcript segments, its stored text hashes."""
    items = store.items(SPOKEN_KINDS)
    if item_ids is not None:
        items = items[items["item_id"].isin(set(item_ids))]
    segments = transcript_segments(store, items.loc[items["kind"] == "episode", "item_id"].tolist())
    cv = t.content_vectors
    stored = store.frame(cv, cv.c.model_id == model_id, ["item_id", "passage", "text_hash"])
    known: dict[str, dict[str, str]] = {}
    for r in stored.itertuples():
        known.setdefault(r.item_id, {})[str(r.passage)] = r.text_hash
    records = items.to_dict("records")
    return pd.DataFrame(
        {
            "item_id": [r["item_id"] for r in records],
            "item": [json.dumps({k: _plain(v) for k, v in r.items()}) for r in records],
            "segments": [
                json.dumps(segments[r["item_id"]][["start", "end", "text"]].values.tolist())
                if r["item_id"] in segments
                else "[]"
                for r in records
            ],
            "known": [json.dumps(known.get(r["item_id"], {})) for r in records],
        }
    )


def _plain(value):
    """A JSON-safe scalar: missing values (None, NaN, NA, NaT) become None."""
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return None
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def _write_vectors(
    store: Store,
    units: pd.DataFrame,
    item_ids: list[str],
    model_id: str,
    commit_batch: int,
    on_commit=None,
) -> tuple[int, int]:
    """Changed vectors upserted and vanished units deleted, per batch of items in one
    transaction (with `on_commit(conn, item_ids)` in it). (embedded, removed)."""
    cv = t.content_vectors
    stored = store.frame(cv, cv.c.model_id == model_id, ["item_id", "passage"])
    stored_by_item = (
        stored.groupby("item_id")["passage"].apply(set).to_dict() if len(stored) else {}
    )
    by_item = {k: g for k, g in units.groupby("item_id")} if len(units) else {}
    embedded = removed = 0
    stmt = delete(cv).where(
        and_(
            cv.c.model_id == model_id,
            cv.c.item_id == bindparam("k_item"),
            cv.c.passage == bindparam("k_passage"),
        )
    )
    for chunk in _chunks(item_ids, commit_batch):
        rows, stale = [], []
        for item_id in chunk:
            frame = by_item.get(item_id)
            wanted = set() if frame is None else set(frame["passage"].astype(int))
            stale += [
                {"k_item": item_id, "k_passage": p}
                for p in stored_by_item.get(item_id, set()) - wanted
            ]
            if frame is None:
                continue
            for r in frame[frame["vector"].map(len) > 0].itertuples():
                rows.append(
                    {
                        "item_id": item_id,
                        "model_id": model_id,
                        "passage": int(r.passage),
                        "start": None if pd.isna(r.start) else float(r.start),
                        "end": None if pd.isna(r.end) else float(r.end),
                        "text": r.text,
                        "text_hash": r.text_hash,
                        "vector": bytes(r.vector),
                    }
                )
        with store.begin() as conn:
            upsert(conn, cv, rows)
            if stale:
                conn.execute(stmt, stale)
            if on_commit is not None:
                on_commit(conn, chunk)
        embedded += len(rows)
        removed += len(stale)
    return embedded, removed


# --- the two commands ---------------------------------------------------------------------


def _run_dir(settings: Settings) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    path = settings.home / "batch" / f"{stamp}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def embed_catalogue_ray(
    store: Store,
    settings: Settings,
    item_ids: list[str] | None = None,
    *,
    address: str | None = None,
    workers: int = 1,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    commit_batch: int = 500,
):
    """Embed every spoken-word item whose text is new or changed (as `embed_items`),
    on Ray. Returns an `EmbedReport`; `coldstart index --engine ray` then syncs the
    indexes and retrains the intent classifier as the local path does."""
    started = time.perf_counter()
    model_id = model_id_for(settings)
    rows = _embed_rows(store, model_id, item_ids)
    report = EmbedReport(model_id, items=len(rows))
    if rows.empty:
        return report
    with ray_session(address, None if address else max(1, int(workers * cpus_per_worker))):
        units = _run_stage(
            rows,
            Embed,
            settings,
            _run_dir(settings) / "embed",
            workers,
            cpus_per_worker,
            gpus_per_worker,
            batch_size=64,
        )
    report.units = len(units)
    report.no_text = (
        sorted(set(rows["item_id"]) - set(units["item_id"]))
        if len(units)
        else rows["item_id"].tolist()
    )
    report.embedded, report.removed = _write_vectors(
        store, units, rows["item_id"].tolist(), model_id, commit_batch
    )
    report.unchanged = report.units - report.embedded
    report.seconds = time.perf_counter() - started
    return report


class RayEngine(LocalEngine):
    """`LocalEngine` with transcription and embedding on Ray Data, every upload at once
    (leases renewed by a background thread while the stages run); indexing, the audience
    and the bookkeeping are the local engine's."""

    name = "ray"
    background_leases = True

    def __init__(
        self,
        address: str | None = None,
        workers: int = 1,
        cpus_per_worker: float = 1,
        gpus_per_worker: float = 0,
        commit_batch: int = 50,
    ) -> None:
        self.address, self.workers, self.commit_batch = address, workers, commit_batch
        self.cpus_per_worker, self.gpus_per_worker = cpus_per_worker, gpus_per_worker
        self.run_dir: Path | None = None  # <home>/batch/<run>/, made by the first stage

    def groups(self, uploads: list[dict], progress: bool | None) -> Iterator[list[dict]]:
        yield uploads

    def session(self, run: UploadRun):
        num_cpus = None if self.address else max(1, int(self.workers * self.cpus_per_worker))
        return ray_session(self.address, num_cpus)

    def _stage(
        self, run: UploadRun, rows: pd.DataFrame, stage, name: str, batch_size: int
    ) -> pd.DataFrame:
        if self.run_dir is None:
            self.run_dir = _run_dir(run.settings)
        return _run_stage(
            rows,
            stage,
            run.settings,
            self.run_dir / name,
            self.workers,
            self.cpus_per_worker,
            self.gpus_per_worker,
            batch_size,
        )

    def transcribe(self, run: UploadRun, uploads: dict[str, dict]) -> None:
        """An existing transcript is kept (as `transcribe_items` does); the others are
        transcribed under the episode's transcription lease, as `transcribe --pending`
        takes it."""
        store, settings, owner = run.store, run.settings, run.owner
        done = transcribed_engines(store)
        kept = [k for k, u in uploads.items() if u["item_id"] in done]
        run.advance(kept, UploadStatus.TRANSCRIBED)
        step = {k: u for k, u in uploads.items() if k not in kept}
        with Leases(store, owner, settings.lease_seconds) as transcribing:
            refused = set(
                transcribing.claim(transcription_lease(u["item_id"]) for u in step.values())
            )
            run.drop(k for k, u in step.items() if transcription_lease(u["item_id"]) in refused)
            step = {k: u for k, u in step.items() if k in run.live}
            if not step:
                return
            upload_of = {u["item_id"]: k for k, u in step.items()}
            rows = pd.DataFrame(
                {
                    "item_id": list(upload_of),
                    "path": [
                        str(resolve_audio_path(u["audio_path"], settings.home))
                        for u in step.values()
                    ],
                }
            )
            try:
                # Resolve and convert the model once here: actors never race to write the cache.
                prepare_model(
                    settings.transcribe.engine, settings.transcribe.model, model_cache_dir(settings)
                )
                results = self._stage(run, rows, Transcribe, "transcribe", batch_size=1)
            except Exception as exc:  # e.g. the model cannot be loaded: every upload fails
                results = rows.assign(
                    transcript="", error=f"{type(exc).__name__}: {exc}", seconds=0.0
                )
            _write_transcripts(run, results, upload_of, self.commit_batch)

    def embed(self, run: UploadRun, uploads: dict[str, dict]) -> None:
        upload_of = {u["item_id"]: k for k, u in uploads.items()}
        rows = _embed_rows(run.store, run.model_id, list(upload_of))
        units = self._stage(run, rows, Embed, "embed", 64)

        def advance(conn, item_ids):
            run.advance([upload_of[i] for i in item_ids], UploadStatus.EMBEDDED, conn=conn)

        _write_vectors(run.store, units, list(upload_of), run.model_id, self.commit_batch, advance)


def score_uploads_ray(
    store: Store,
    settings: Settings,
    upload_ids: Iterable[str] | None = None,
    retry_failed: bool = False,
    *,
    address: str | None = None,
    workers: int = 1,
    cpus_per_worker: float = 1,
    gpus_per_worker: float = 0,
    commit_batch: int = 50,
) -> ScoreReport:
    """`score_uploads` with transcription and embedding on Ray Data; same `ScoreReport`."""
    engine = RayEngine(address, workers, cpus_per_worker, gpus_per_worker, commit_batch)
    return score_uploads(store, settings, upload_ids, retry_failed, engine=engine)
