"""`--engine ray`: score-uploads and catalogue embedding on Ray Data.

The stages are those of the local path (`coldstart.batch.uploads.score_uploads`):

    pending -> transcribed -> embedded -> indexed -> scored      (or -> failed, with the reason)

Transcription and embedding run as `ray.data` datasets through `map_batches` with the
callable classes of `ray_stages` (an actor pool of `workers` actors, each loading
Whisper or MiniLM once). Each stage's output is written to Parquet under
`<home>/batch/<run>/<stage>/`, then read back by the driver and written into the store
in one transaction per batch of `commit_batch` items, together with the uploads'
new status. Index updates (faiss, one writer at a time) and the audience prediction
(one affinity model against every listener, batched) run in the driver.

Resumability is the local path's: uploads hold the `upload:<id>` lease for the whole
run, finished ones are skipped, a re-run resumes from each upload's recorded status,
and a failure is recorded on the upload with the step and the reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import and_, bindparam, delete, update

from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store, upsert, utcnow, worker_id

__all__ = ["ray_session", "score_uploads_ray", "embed_catalogue_ray", "RayUnavailable"]


class RayUnavailable(RuntimeError):
    """Ray is not installed: `pip install 'coldstart[ray]'`."""


def _ray():
    try:
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
    import pyarrow as pa
    import pyarrow.parquet as pq

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


class _Renewer:
    """Keeps a set of leases alive while the (possibly long) Ray stages run."""

    def __init__(self, store: Store, resources: list[str], owner: str, seconds: float) -> None:
        self.store, self.resources, self.owner, self.seconds = store, resources, owner, seconds
        self.lost: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            for resource in list(self.resources):
                if resource not in self.lost and not self.store.renew(
                    resource, self.owner, self.seconds
                ):
                    self.lost.add(resource)

    def __enter__(self) -> "_Renewer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for resource in self.resources:
            self.store.release(resource, self.owner)


# --- writing stage results -------------------------------------------------------------


def _status_rows(conn, upload_ids: Iterable[str], status: str, error: str | None = None) -> None:
    ids = list(upload_ids)
    if ids:
        conn.execute(
            update(t.uploads)
            .where(t.uploads.c.upload_id.in_(ids))
            .values(status=status, error=error, updated_at=utcnow())
        )


def _write_transcripts(
    store: Store, results: pd.DataFrame, upload_of: dict[str, str], commit_batch: int, report
) -> None:
    """Transcripts + segments + job rows + upload status, one transaction per batch."""
    from coldstart.batch.ray_stages import transcript_from_json
    from coldstart.content.speech import write_failure, write_transcript

    for chunk in _chunks(results.to_dict("records"), commit_batch):
        now = utcnow()
        with store.begin() as conn:
            for row in chunk:
                item_id, upload_id = row["item_id"], upload_of[row["item_id"]]
                if not row["transcript"]:
                    write_failure(conn, item_id, row["error"], now)
                    _status_rows(conn, [upload_id], "failed", f"transcribe: {row['error']}")
                    report.failed[upload_id] = f"transcribe: {row['error']}"
                    continue
                write_transcript(conn, item_id, transcript_from_json(row["transcript"]), now)
                _status_rows(conn, [upload_id], "transcribed")


def _embed_rows(store: Store, model_id: str, item_ids: list[str] | None) -> pd.DataFrame:
    """One row per item: its record, its transcript segments, its stored text hashes."""
    from coldstart.content.embeddings import SPOKEN_KINDS, _segments

    items = store.items(SPOKEN_KINDS)
    if item_ids is not None:
        items = items[items["item_id"].isin(set(item_ids))]
    segments = _segments(store, items.loc[items["kind"] == "episode", "item_id"].tolist())
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
    from coldstart.batch.ray_stages import Embed
    from coldstart.content.embeddings import EmbedReport, model_id_for

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
):
    """`score_uploads` with transcription and embedding on Ray Data; same `ScoreReport`."""
    from coldstart.batch.ray_stages import Transcribe
    from coldstart.batch.uploads import (
        ScoreReport,
        _affinity_model,
        _listener_profiles,
        _set_status,
        list_uploads,
        picks_per_listener,
        select_uploads,
        wanted_statuses,
        write_audience,
    )
    from coldstart.content.embeddings import item_vectors, model_id_for
    from coldstart.content.index import sync_indexes
    from coldstart.content.speech import _transcribed, model_cache_dir, resolve_audio_path
    from transcripts import prepare_model

    report = ScoreReport()
    wanted = wanted_statuses(retry_failed)
    todo, report.skipped = select_uploads(store, upload_ids, wanted)
    if not todo:
        return report

    owner, lease = worker_id(), settings.lease_seconds
    mine = []
    for u in todo:
        if store.claim(f"upload:{u['upload_id']}", owner, lease):
            mine.append(u)
        else:
            report.busy.append(u["upload_id"])
    run_dir = _run_dir(settings)
    model_id = model_id_for(settings)
    with _Renewer(store, [f"upload:{u['upload_id']}" for u in mine], owner, lease) as renewer:
        current = {
            u["upload_id"]: u
            for u in list_uploads(store)
            if u["upload_id"] in {m["upload_id"] for m in mine}
        }
        live = {k: u for k, u in current.items() if u["status"] in wanted}
        report.skipped += [k for k in current if k not in live]

        def at(*statuses: str) -> dict[str, dict]:
            return {
                k: u for k, u in live.items() if u["status"] in statuses and k not in report.failed
            }

        def moved(ids: Iterable[str], status: str) -> None:
            for k in ids:
                live[k]["status"] = status

        needs_cluster = bool(at("pending", "failed", "transcribed"))
        with (
            ray_session(address, None if address else max(1, int(workers * cpus_per_worker)))
            if needs_cluster
            else contextlib.nullcontext()
        ):
            # 1. transcribe (an existing transcript is kept, as transcribe_items does)
            step = at("pending", "failed")
            done = _transcribed(store)
            kept = [k for k, u in step.items() if u["item_id"] in done]
            with store.begin() as conn:
                _status_rows(conn, kept, "transcribed")
            moved(kept, "transcribed")
            step = {k: u for k, u in step.items() if k not in kept}
            # The episode's transcription lease too, as `transcribe --pending` takes it.
            held = [
                k
                for k, u in step.items()
                if store.claim(f"transcribe:{u['item_id']}", owner, lease)
            ]
            report.busy += [k for k in step if k not in held]
            step = {k: step[k] for k in held}
            if step:
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
                        settings.transcribe.engine,
                        settings.transcribe.model,
                        model_cache_dir(settings),
                    )
                    results = _run_stage(
                        rows,
                        Transcribe,
                        settings,
                        run_dir / "transcribe",
                        workers,
                        cpus_per_worker,
                        gpus_per_worker,
                        batch_size=1,
                    )
                except (
                    Exception
                ) as exc:  # e.g. the model cannot be loaded: every upload of the step fails
                    results = rows.assign(
                        transcript="", error=f"{type(exc).__name__}: {exc}", seconds=0.0
                    )
                try:
                    _write_transcripts(store, results, upload_of, commit_batch, report)
                finally:
                    for u in step.values():
                        store.release(f"transcribe:{u['item_id']}", owner)
                moved(
                    [
                        upload_of[i]
                        for i, tr in zip(results["item_id"], results["transcript"])
                        if tr
                    ],
                    "transcribed",
                )
            for k in report.busy:  # another worker is transcribing it: leave it to that worker
                live.pop(k, None)
            # 2. embed
            step = at("transcribed")
            if step:
                upload_of = {u["item_id"]: k for k, u in step.items()}
                try:
                    units = _run_stage(
                        _embed_rows(store, model_id, list(upload_of)),
                        _embed_stage(),
                        settings,
                        run_dir / "embed",
                        workers,
                        cpus_per_worker,
                        gpus_per_worker,
                        64,
                    )

                    def advance(conn, item_ids):
                        _status_rows(conn, [upload_of[i] for i in item_ids], "embedded")

                    _write_vectors(store, units, list(upload_of), model_id, commit_batch, advance)
                    moved(step, "embedded")
                except Exception as exc:
                    _fail(store, report, step, "embed", exc)
        # 3. index (faiss files: one writer at a time, in the driver)
        step = at("embedded")
        if step:
            try:
                with store.hold("index:sync", owner, lease):
                    sync_indexes(store, settings, model_id, [u["item_id"] for u in step.values()])
                with store.begin() as conn:
                    _status_rows(conn, step, "indexed")
                moved(step, "indexed")
            except Exception as exc:
                _fail(store, report, step, "index", exc)
        # 4. audience (one model against every listener, in batches)
        step = at("indexed")
        if step:
            try:
                model, profiles, picks = (
                    _affinity_model(store),
                    _listener_profiles(store),
                    picks_per_listener(store),
                )
                vectors = item_vectors(store, model_id, ["episode"])
            except Exception as exc:
                _fail(store, report, step, "audience", exc)
                step = {}
            for upload_id, u in step.items():
                if f"upload:{upload_id}" in renewer.lost:
                    report.busy.append(upload_id)
                    continue
                try:
                    summary = write_audience(
                        settings,
                        model,
                        profiles,
                        picks,
                        upload_id,
                        u["item_id"],
                        u["show_id"],
                        vectors.get(u["item_id"]),
                    )
                    summary["engine"] = "ray"
                    _set_status(store, upload_id, "scored", audience=summary)
                    report.scored.append(upload_id)
                except Exception as exc:  # one bad upload must not stop the batch
                    _fail(store, report, {upload_id: u}, "audience", exc)
    return report


def _embed_stage():
    from coldstart.batch.ray_stages import Embed

    return Embed


def _fail(store: Store, report, step: dict, name: str, exc: BaseException) -> None:
    message = f"{name}: {type(exc).__name__}: {exc}"
    with store.begin() as conn:
        _status_rows(conn, step, "failed", message)
    for upload_id in step:
        report.failed[upload_id] = message
