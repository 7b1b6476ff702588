"""Demo stages that show a service at work: transcription and the podcast evaluation.

(The audiobook stage is in `coldstart.demo.audiobooks`, the serving stage in
`coldstart.demo.serving`.) Nothing outside `coldstart.demo` imports these.
"""

from __future__ import annotations

from rich.table import Table
from sqlalchemy import select

from coldstart.artifacts.training import train_model
from coldstart.batch.eval_report import results_table, run_evaluation
from coldstart.content.speech import TranscriptionReport, pending_items, transcribe_items
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store

__all__ = ["transcribe_stage", "podcast_stage"]


def transcribe_stage(store: Store, settings: Settings, console) -> TranscriptionReport:
    """Demo stage "transcribe pending episodes": run the batch and show what it heard."""
    pending = pending_items(store, retry_failed=True)
    cfg = settings.transcribe
    console.print(
        f"{len(pending)} episode(s) with audio and no transcript; engine {cfg.engine}, model {cfg.model}"
    )
    report = transcribe_items(store, settings, pending, progress=False)
    table = Table("episode", "lang", "audio s", "transcript", title="transcribed episodes")
    if report.done:
        with store.connect() as conn:
            rows = conn.execute(
                select(
                    t.transcripts.c.item_id,
                    t.transcripts.c.language,
                    t.transcripts.c.duration,
                    t.transcripts.c.text,
                ).where(t.transcripts.c.item_id.in_(report.done))
            ).all()
        for item_id, language, duration, text in rows:
            table.add_row(
                item_id,
                language or "?",
                f"{duration:.1f}",
                (text[:90] + "…") if len(text) > 90 else text,
            )
        console.print(table)
    for item_id, error in report.failed.items():
        console.print(f"[red]failed[/] {item_id}: {error}")
    console.print(
        f"{len(report.done)} transcribed, {len(report.failed)} failed; "
        f"{report.audio_seconds:.0f} s of audio in {report.transcribe_seconds:.1f} s "
        f"({report.realtime_factor:.1f}x real time; model loading {report.wall_seconds - report.transcribe_seconds:.1f} s)"
    )
    return report


def podcast_stage(ctx) -> None:
    """Demo: the cold-start evaluation of podcasts, then the serving model."""
    result = run_evaluation(
        ctx.store, "podcast", 0.2, (0,), 10, ctx.settings.home / "eval" / "podcast.json"
    )
    ctx.console.print(results_table(result))
    ctx.console.print(
        f"content vectors used for {result['content_items']} items; wrote {result['plot']}"
    )
    _, manifest = train_model(ctx.store, ctx.settings, "affinity", "podcast")
    m = manifest["metrics"]
    ctx.console.print(
        f"serving model: {manifest['path']} (validation ndcg@10 {m['val_ndcg@10']:.3f}, "
        f"{m['train_users'] + m['val_users']} users, {m['catalog']} shows, {m['content_items']} with content)"
    )
    ctx.results["evaluation"] = result
