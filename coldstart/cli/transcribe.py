"""`coldstart transcribe`: audio files to text, or pending episodes into the store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from tqdm import tqdm

from coldstart.cli.app import app, console, emit_json, fail, settings_of, store_of

__all__ = ["transcribe"]


def _file_result(path: Path, transcript) -> dict:
    return {
        "path": str(path),
        "text": transcript.text,
        "language": transcript.language,
        "duration": round(transcript.duration, 3),
        "segments": [
            {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
            for s in transcript.segments
        ],
    }


def _progress_bar(path: Path):
    """A tqdm bar in audio minutes on stderr, shown only on a terminal."""
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from transcripts import AudioError, probe_duration

    try:
        total = probe_duration(path)
    except AudioError:
        total = None
    of = "/{total:.1f}" if total else ""
    return tqdm(
        total=round(total / 60, 2) if total else None,
        unit="min",
        desc=path.name,
        leave=False,
        disable=None,
        bar_format="{l_bar}{bar}| {n:.1f}" + of + " audio min [{elapsed}<{remaining}]",
    )


def _transcribe_files(settings, files: list[Path], as_json: bool) -> int:
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.content.speech import engine_for
    from transcripts import AudioError, transcribe_file

    engine = engine_for(settings)
    failures = 0
    for path in files:
        bar = _progress_bar(path) if path.is_file() else None
        try:
            transcript = transcribe_file(
                path,
                engine,
                chunk_seconds=settings.transcribe.chunk_seconds,
                language=settings.transcribe.language,
                on_progress=(lambda seconds, bar=bar: bar.update(round(seconds / 60, 2) - bar.n))
                if bar is not None
                else None,
            )
        except AudioError as exc:
            failures += 1
            result, cause = {"path": str(path), "error": str(exc)}, exc.cause
        except Exception as exc:  # one bad file must not stop the others
            failures += 1
            cause = f"{type(exc).__name__}: {exc}"
            result = {"path": str(path), "error": cause}
        else:
            result = _file_result(path, transcript)
        finally:
            if bar is not None:
                bar.close()
        if as_json:
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
        elif "error" in result:
            console.print(f"[bold red]✗[/] {path}: {cause}", highlight=False)
        else:
            console.print(
                f"[bold green]✓[/] [bold]{path}[/] [dim]({transcript.language}, {transcript.duration:.1f} s, "
                f"{engine.name}/{engine.model.name})[/]",
                highlight=False,
            )
            for s in transcript.segments:
                console.print(
                    f"  [cyan][{s.start:7.2f} → {s.end:7.2f}][/] {s.text}", highlight=False
                )
    return failures


@app.command()
def transcribe(
    ctx: typer.Context,
    files: list[Path] = typer.Argument(
        None, help="Audio files to transcribe (printed, not stored)."
    ),
    pending: bool = typer.Option(
        False,
        "--pending",
        help="Transcribe episodes in the store that have audio and no transcript.",
    ),
    items: list[str] = typer.Option(
        None, "--item", help="Transcribe these item ids into the store (repeatable)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Redo items that already have a machine transcript."
    ),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Include items whose last attempt failed."
    ),
    workers: int = typer.Option(
        None, "--workers", min=1, help="Worker processes (default: settings.transcribe.workers)."
    ),
    engine: str = typer.Option(
        None, "--engine", help="faster-whisper or openai-whisper (default from settings)."
    ),
    model: str = typer.Option(
        None, "--model", help="tiny.en, base, or a local CTranslate2 model directory."
    ),
    beam_size: int = typer.Option(None, "--beam-size", min=1, help="Beam size for both engines."),
    vad: bool = typer.Option(
        None,
        "--vad/--no-vad",
        help="faster-whisper: drop what Silero VAD calls non-speech first "
        "(without it, batched chunks cover all audio, cut at pauses).",
    ),
    batch_size: int = typer.Option(
        None,
        "--batch-size",
        min=0,
        help="faster-whisper: decode chunks of <= 30 s N at a time (0: sequential).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Machine output: JSON lines for files, a JSON report for the store."
    ),
) -> None:
    """Transcribe audio with Whisper, offline."""
    settings = settings_of(ctx)
    chosen = {
        "engine": engine,
        "model": model,
        "beam_size": beam_size,
        "vad_filter": vad,
        "batch_size": batch_size,
    }
    overrides = {k: v for k, v in chosen.items() if v is not None}
    if overrides:
        settings = settings.model_copy(
            update={"transcribe": settings.transcribe.model_copy(update=overrides)}
        )
    if engine is not None and engine not in ("faster-whisper", "openai-whisper"):
        fail(f"unknown engine {engine!r}: choose faster-whisper or openai-whisper")
    if bool(files) + pending + bool(items) != 1:
        fail("give audio FILES, --pending, or --item ID (exactly one of them)")

    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from transcripts import ModelError

    try:
        if files:
            failures = _transcribe_files(settings, files, as_json)
            if failures:
                raise typer.Exit(1)
            return
        # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
        from coldstart.content.speech import transcribe_items

        store = store_of(ctx)
        report = transcribe_items(
            store,
            settings,
            list(items) if items else None,
            force=force,
            retry_failed=retry_failed,
            workers=workers,
            progress=False if as_json else None,
        )
    except ModelError as exc:
        fail(str(exc))
        return
    if as_json:
        emit_json(report.to_dict())
    else:
        console.print(
            f"[bold]{len(report.done)}[/] transcribed, {len(report.skipped)} skipped, "
            f"[{'red' if report.failed else 'green'}]{len(report.failed)} failed[/]; "
            f"{report.audio_seconds / 3600:.3f} audio h in {report.transcribe_seconds:.1f} s "
            f"({report.realtime_factor:.1f}x real time; {report.wall_seconds:.1f} s with model loading)"
        )
        for item_id, error in report.failed.items():
            console.print(f"  [red]✗[/] {item_id}: {error}", highlight=False)
    if report.failed:
        raise typer.Exit(1)
