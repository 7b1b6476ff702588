"""Scoring creator uploads: the stages, defined once, and the engine that runs them.

`score_uploads` takes every unfinished upload (or the ones named) through

    pending -> transcribed -> embedded -> indexed -> scored      (or -> failed, with the error)

one stage at a time (`STAGES`: transcribe, embed, index, audience). Every stage is
idempotent (a transcript, a vector or an index entry that exists is kept), and the
status is written after each one, so a crashed run resumes where it stopped. One
upload failing is recorded (the stage and the reason) and the batch goes on.

An engine decides how the uploads are grouped and how the heavy stages run:

* `LocalEngine` (the default): one upload at a time through every stage, in this
  process, under a lease (`upload:<id>`) renewed after each stage: several workers
  (processes, machines on one PostgreSQL) share a batch upload by upload;
* `coldstart.batch.ray_engine.RayEngine`: every upload at once, transcription and
  embedding on Ray Data actors, leases renewed by a background thread. It subclasses
  `LocalEngine` and overrides only those two stages, the way faster-whisper's
  `BatchedInferencePipeline` reuses `WhisperModel`: indexing, the audience and the
  bookkeeping are this module's.

An upload leased by another worker is reported `busy` and left alone; one whose
worker died is taken over once its lease expires. Index files are updated under the
`index:sync` lease, one worker at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from tqdm.auto import tqdm

from coldstart.batch.upload_audience import blend_audiences, load_upload_audience
from coldstart.batch.uploads import (
    ScoreReport,
    UploadNotFound,
    get_upload,
    list_uploads,
    listener_profiles,
    picks_per_listener,
    save_audience,
    served_affinity_model,
    write_audience,
)
from coldstart.content.embeddings import embed_items, item_vectors, load_encoder, model_id_for
from coldstart.content.index import sync_indexes
from coldstart.content.speech import transcribe_items
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.leases import Leases
from coldstart.core.store import Store, utcnow, worker_id
from coldstart.core.upload_status import UNFINISHED, UploadStatus

__all__ = [
    "STAGES",
    "LocalEngine",
    "UploadRun",
    "score_uploads",
    "select_uploads",
    "wanted_statuses",
    "write_status",
]

S = UploadStatus
# (stage, the statuses it starts from); each stage moves an upload one status on.
STAGES: tuple[tuple[str, tuple[UploadStatus, ...]], ...] = (
    ("transcribe", (S.PENDING, S.FAILED)),
    ("embed", (S.TRANSCRIBED,)),
    ("index", (S.EMBEDDED,)),
    ("audience", (S.INDEXED,)),
)


def wanted_statuses(retry_failed: bool) -> tuple[UploadStatus, ...]:
    """Upload statuses a scoring run works on (failed ones only when retrying)."""
    return UNFINISHED + ((S.FAILED,) if retry_failed else ())


def select_uploads(
    store: Store, upload_ids: Iterable[str] | None, wanted: tuple[str, ...]
) -> tuple[list[dict], list[str]]:
    """(uploads to work on, ids skipped as finished): every upload, or exactly
    `upload_ids` (an unknown id is an error naming it)."""
    uploads = list_uploads(store)
    if upload_ids is not None:
        chosen = set(upload_ids)
        missing = chosen - {u["upload_id"] for u in uploads}
        if missing:
            raise UploadNotFound(f"no upload(s) {', '.join(sorted(missing))}")
        uploads = [u for u in uploads if u["upload_id"] in chosen]
    todo = [u for u in uploads if u["status"] in wanted]
    return todo, [u["upload_id"] for u in uploads if u["status"] not in wanted]


def write_status(
    conn,
    upload_ids: Iterable[str],
    status: UploadStatus,
    error: str | None = None,
    audience: Any = None,
) -> None:
    """Record `status` (and the error or audience) on uploads, in `conn`'s transaction."""
    ids = list(upload_ids)
    if not ids:
        return
    values: dict[str, Any] = {"status": status.value, "error": error, "updated_at": utcnow()}
    if audience is not None:
        values["audience"] = audience
    conn.execute(update(t.uploads).where(t.uploads.c.upload_id.in_(ids)).values(**values))


def lease_of(upload_id: str) -> str:
    return f"upload:{upload_id}"


@dataclass
class UploadRun:
    """One scoring run: the uploads in hand (`live`, by id, with their current status),
    the leases on them, the report, and what the stages load once (encoder, model)."""

    store: Store
    settings: Settings
    engine: LocalEngine
    report: ScoreReport
    owner: str = field(default_factory=worker_id)
    leases: Leases | None = None
    live: dict[str, dict] = field(default_factory=dict)
    _encoder: Any = None
    _audience: tuple | None = None
    _blends: dict = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return model_id_for(self.settings)

    def encoder(self):
        self._encoder = self._encoder or load_encoder(self.settings)
        return self._encoder

    def blend(self, kind: str):
        """The registered audience blend for uploads of `kind`, or None (loaded once a run)."""
        if kind not in self._blends:
            self._blends[kind] = load_upload_audience(self.store, kind)
        return self._blends[kind]

    def item_kinds(self, item_ids: list[str]) -> dict[str, str]:
        frame = self.store.frame(t.items, t.items.c.item_id.in_(item_ids), ["item_id", "kind"])
        return dict(zip(frame["item_id"], frame["kind"]))

    def audience_inputs(self) -> tuple:
        """(affinity model, listener profiles, picks per listener), loaded once a run."""
        if self._audience is None:
            self._audience = (
                served_affinity_model(self.store),
                listener_profiles(self.store),
                picks_per_listener(self.store),
            )
        return self._audience

    def at(self, statuses: Iterable[str]) -> dict[str, dict]:
        """Uploads in hand at one of `statuses`."""
        wanted = set(statuses)
        return {k: u for k, u in self.live.items() if u["status"] in wanted}

    def drop(self, upload_ids: Iterable[str], busy: bool = True) -> None:
        """Leave uploads alone from now on (another worker has them: `busy`)."""
        for k in upload_ids:
            if self.live.pop(k, None) is not None and busy:
                self.report.busy.append(k)

    def confirmed(self, upload_ids: Iterable[str]) -> list[str]:
        """Those of `upload_ids` whose lease is still ours; the others are dropped as busy."""
        ids = list(upload_ids)
        lost = [k for k in ids if not self.leases.confirm(lease_of(k))]
        self.drop(lost)
        return [k for k in ids if k not in lost]

    def advance(
        self, upload_ids: Iterable[str], status: UploadStatus, conn=None, **values
    ) -> list[str]:
        """Record `status` on the uploads still leased (in `conn`'s transaction when
        given); returns their ids."""
        ids = self.confirmed(upload_ids)
        if conn is None:
            with self.store.begin() as own:
                write_status(own, ids, status, **values)
        else:
            write_status(conn, ids, status, **values)
        for k in ids:
            self.live[k]["status"] = status.value
        return ids

    def fail(self, upload_ids: Iterable[str], message: str, conn=None) -> None:
        """Record a failure (`stage: reason`) on uploads; they leave the run."""
        ids = [k for k in upload_ids if k in self.live]
        if conn is None:
            with self.store.begin() as own:
                write_status(own, ids, S.FAILED, error=message)
        else:
            write_status(conn, ids, S.FAILED, error=message)
        for k in ids:
            self.report.failed[k] = message
            del self.live[k]


class LocalEngine:
    """Runs every stage in this process, one upload at a time (see the module doc)."""

    name = "local"
    background_leases = False  # each stage renews its upload's lease as it finishes

    def groups(self, uploads: list[dict], progress: bool | None) -> Iterator[list[dict]]:
        yield from (
            [u]
            for u in tqdm(
                uploads,
                desc="scoring uploads",
                unit="upload",
                disable=None if progress is None else not progress,
            )
        )

    def session(self, run: UploadRun):
        """What the transcribe and embed stages run inside (a cluster connection)."""
        return contextlib.nullcontext()

    def transcribe(self, run: UploadRun, uploads: dict[str, dict]) -> None:
        for upload_id, upload in uploads.items():
            item_id = upload["item_id"]
            result = transcribe_items(run.store, run.settings, [item_id], progress=False)
            if item_id in result.busy:  # `transcribe --pending` has it right now
                run.drop([upload_id])
            elif item_id in result.failed:
                raise RuntimeError(result.failed[item_id])
            else:
                run.advance([upload_id], S.TRANSCRIBED)

    def embed(self, run: UploadRun, uploads: dict[str, dict]) -> None:
        encoder = run.encoder()
        for upload_id, upload in uploads.items():
            embed_items(
                run.store, run.settings, [upload["item_id"]], encoder=encoder, progress=False
            )
            run.advance([upload_id], S.EMBEDDED)

    def index(self, run: UploadRun, uploads: dict[str, dict]) -> None:
        """Faiss files: one writer at a time, in this process."""
        lease = run.settings.lease_seconds
        with run.store.hold("index:sync", run.owner, lease):
            sync_indexes(
                run.store, run.settings, run.model_id, [u["item_id"] for u in uploads.values()]
            )
        run.advance(uploads, S.INDEXED)

    def audience(self, run: UploadRun, uploads: dict[str, dict]) -> None:
        """Uploads of a kind with a fitted blend (`coldstart train-upload-audience`):
        the blend, all at once (`upload_audience.blend_audiences`); the others: one
        affinity model against every listener (`write_audience`), upload by upload."""
        kinds = run.item_kinds([u["item_id"] for u in uploads.values()])
        by_blend: dict[str, dict[str, dict]] = {}
        rest = {}
        for upload_id, u in uploads.items():
            kind = kinds.get(u["item_id"], "episode")
            if run.blend(kind) is not None:
                by_blend.setdefault(kind, {})[upload_id] = u
            else:
                rest[upload_id] = u
        for kind, group in by_blend.items():
            try:
                scored = blend_audiences(
                    run.store,
                    run.settings,
                    run.blend(kind),
                    kind,
                    [u["item_id"] for u in group.values()],
                )
            except Exception as exc:  # these uploads fail; the others go on
                run.fail(group, f"audience: {type(exc).__name__}: {exc}")
                continue
            for upload_id, u in group.items():
                summary, frame = scored[u["item_id"]]
                self._finish(
                    run,
                    upload_id,
                    lambda s=summary, f=frame, k=upload_id: save_audience(run.settings, k, s, f),
                )
        if not rest:
            return
        model, profiles, picks = run.audience_inputs()
        vectors = item_vectors(
            run.store, run.model_id, ["episode"], [u["item_id"] for u in rest.values()]
        )
        for upload_id, u in rest.items():
            self._finish(
                run,
                upload_id,
                lambda u=u, k=upload_id: write_audience(
                    run.settings,
                    model,
                    profiles,
                    picks,
                    k,
                    u["item_id"],
                    u["show_id"],
                    vectors.get(u["item_id"]),
                ),
            )

    def _finish(self, run: UploadRun, upload_id: str, summarise) -> None:
        """Record an upload scored with the summary `summarise()` returns (its table
        written), or failed with the reason."""
        if not run.confirmed([upload_id]):
            return
        try:
            summary = summarise()
            if self.name != "local":
                summary["engine"] = self.name
            if run.advance([upload_id], S.SCORED, audience=summary):
                run.report.scored.append(upload_id)
                del run.live[upload_id]
        except Exception as exc:  # one bad upload must not stop the batch
            run.fail([upload_id], f"audience: {type(exc).__name__}: {exc}")

    def run_stage(self, run: UploadRun, stage: str, statuses: tuple[str, ...]) -> None:
        uploads = run.at(statuses)
        if not uploads:
            return
        try:
            getattr(self, stage)(run, uploads)
        except Exception as exc:  # the stage failed for every upload it held
            run.fail(uploads, f"{stage}: {type(exc).__name__}: {exc}")


def score_uploads(
    store: Store,
    settings: Settings,
    upload_ids: Iterable[str] | None = None,
    retry_failed: bool = False,
    progress: bool | None = None,
    engine: LocalEngine | None = None,
) -> ScoreReport:
    """Take unfinished uploads (or `upload_ids`) through every stage with `engine`
    (`LocalEngine` by default); see the module doc."""
    engine = engine or LocalEngine()
    report = ScoreReport()
    wanted = wanted_statuses(retry_failed)
    todo, report.skipped = select_uploads(store, upload_ids, wanted)
    if not todo:
        return report
    run = UploadRun(store, settings, engine, report)
    for group in engine.groups(todo, progress):
        with Leases(store, run.owner, settings.lease_seconds, engine.background_leases) as leases:
            run.leases = leases
            refused = set(leases.claim(lease_of(u["upload_id"]) for u in group))
            for u in group:
                upload_id = u["upload_id"]
                if lease_of(upload_id) in refused:
                    report.busy.append(upload_id)
                    continue
                current = get_upload(store, upload_id)  # it may have moved on since the listing
                if current["status"] in wanted:
                    run.live[upload_id] = current
                else:
                    report.skipped.append(upload_id)
            (transcribe, embed), rest = STAGES[:2], STAGES[2:]
            if run.at([*transcribe[1], *embed[1]]):
                with engine.session(run):
                    for stage, statuses in (transcribe, embed):
                        engine.run_stage(run, stage, statuses)
            for stage, statuses in rest:
                engine.run_stage(run, stage, statuses)
            run.live.clear()
    return report
