"""`coldstart serve`, `coldstart score-uploads`, `coldstart recommend`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.table import Table

from coldstart.cli.app import app, console, emit_json, fail, settings_of, store_of


@app.command()
def serve(
    ctx: typer.Context,
    host: str = typer.Option(None, "--host", help="Bind address (default: serve.host, 127.0.0.1)."),
    port: int = typer.Option(None, "--port", help="Port (default: serve.port, 8000)."),
    workers: int = typer.Option(
        None, "--workers", help="Worker processes (default: serve.workers; 0 = one per core)."
    ),
    log_level: str = typer.Option("warning", "--log-level"),
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="Allow a non-loopback --host without COLDSTART_API_TOKEN (auth off).",
    ),
) -> None:
    """Run the HTTP API (OpenAPI page at /docs). Models load once at start-up."""
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    import uvicorn

    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.api import create_app
    from coldstart.api.auth import InsecureBind, check_bind

    settings = settings_of(ctx)
    host = host or settings.serve.host
    port = port or settings.serve.port
    workers = workers or settings.serve.workers or default_workers()
    try:
        check_bind(host, settings, insecure)
    except InsecureBind as exc:
        fail(str(exc))
    if insecure and settings.api_token is None:
        console.print(
            "[bold yellow]warning:[/] --insecure: no API token, uploads and admin reload are open"
        )
    console.print(
        f"serving {settings.home} on http://{host}:{port} with {workers} worker(s) (docs at /docs)"
    )
    options = {"host": host, "port": port, "log_level": log_level, "access_log": False}
    if workers == 1:
        uvicorn.run(create_app(settings, store_of(ctx)), **options)
    elif hasattr(os, "fork"):
        # One load in this process, then `workers` forked workers share it.
        from coldstart.api.workers import serve_preforked

        try:
            serve_preforked(settings, store_of(ctx), workers, **options)
        except RuntimeError as exc:  # the workers cannot start
            fail(str(exc))
    else:  # no fork (Windows): worker processes build their own app from the environment
        os.environ["COLDSTART_HOME"] = str(settings.home.resolve())
        uvicorn.run("coldstart.api.app:app_from_env", factory=True, workers=workers, **options)


def default_workers() -> int:
    """One worker per CPU core this process may use (its affinity mask, e.g. a container's
    cpuset), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@app.command("score-uploads")
def score_uploads_command(
    ctx: typer.Context,
    upload: list[str] = typer.Option(None, "--upload", help="Only these upload ids (repeatable)."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Also retry uploads that failed before."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    engine: str = typer.Option(
        "local", "--engine", help="local (this process) or ray (Ray Data, docs/scale.md)."
    ),
    address: str = typer.Option(
        None, "--address", help="--engine ray: a Ray cluster (auto, ray://head:10001)."
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="--engine ray: actors per stage."),
) -> None:
    """Transcribe, embed, index and predict the audience of every pending upload."""
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.batch.upload_pipeline import score_uploads
    from coldstart.batch.uploads import UploadNotFound, get_upload

    store = store_of(ctx)
    try:
        if engine == "ray":
            # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
            from coldstart.batch.ray_engine import RayUnavailable, score_uploads_ray

            try:
                report = score_uploads_ray(
                    store,
                    settings_of(ctx),
                    upload or None,
                    retry_failed=retry_failed,
                    address=address,
                    workers=workers,
                )
            except RayUnavailable as exc:
                fail(str(exc))
        elif engine == "local":
            report = score_uploads(
                store, settings_of(ctx), upload or None, retry_failed=retry_failed
            )
        else:
            fail(f"unknown engine {engine!r}: choose local or ray")
    except UploadNotFound as exc:
        fail(str(exc))
    if as_json:
        emit_json(report.to_dict())
        return
    table = Table(
        "upload", "status", "expected listeners", "top segments / error", title="score-uploads"
    )
    for upload_id in report.scored:
        aud = get_upload(store, upload_id)["audience"]
        segs = ", ".join(
            f"{s['country']}/{s['language']}: {s['expected_listeners']:.0f}"
            for s in aud["segments"][:3]
        )
        table.add_row(upload_id, "scored", f"{aud['expected_listeners']:.0f}", segs)
    for upload_id, error in report.failed.items():
        table.add_row(upload_id, "[red]failed[/]", "", error)
    console.print(table)
    console.print(
        f"{len(report.scored)} scored, {len(report.failed)} failed, {len(report.skipped)} already done, "
        f"{len(report.busy)} busy (leased by another worker)"
    )
    if report.failed:
        raise typer.Exit(1)


@app.command()
def recommend(
    ctx: typer.Context,
    music: Path = typer.Argument(
        ..., help="JSON file: a list of {item_id, weight}, or an onboarding request body."
    ),
    k: int = typer.Option(10, "--k"),
    language: str = typer.Option(None, "--language"),
    country: str = typer.Option(None, "--country"),
    age: float = typer.Option(None, "--age"),
    as_json: bool = typer.Option(
        False, "--json", help="Print the answer as JSON (same shape as the API)."
    ),
) -> None:
    """Onboarding recommendations for one listener, from the command line."""
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.api.schemas import OnboardingRequest
    from coldstart.recommend.loading import load_serving_models
    from coldstart.recommend.pipeline import OnboardingPipeline
    from training.data import UserProfile

    try:
        raw = json.loads(music.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        fail(f"{music}: {exc}")
    body = raw if isinstance(raw, dict) else {"music": raw}
    overrides = {"k": k, "language": language, "country": country, "age": age}
    body.update({key: v for key, v in overrides.items() if v is not None})
    try:
        request = OnboardingRequest.model_validate(body)
    except ValidationError as exc:
        fail(f"{music}: {exc}")
    settings = settings_of(ctx)
    store = store_of(ctx)
    pipeline = OnboardingPipeline(load_serving_models(settings, store, search=False), settings)
    weights: dict[str, float] = {}
    for entry in request.music:
        weights[entry.item_id] = weights.get(entry.item_id, 0.0) + entry.weight
    user = UserProfile(
        "cli", weights, country=request.country, language=request.language, age=request.age
    )
    result = pipeline.recommend(user, request.k)
    payload = result_dict(result)
    if as_json:
        emit_json(payload)
        return
    print_result(payload)


def result_dict(result) -> dict:
    def row(item):
        return {
            "item_id": item.item_id,
            "title": item.title,
            "score": round(float(item.score), 4),
            "reasons": item.reasons,
        }

    return {
        "shows": [row(i) for i in result.shows],
        "episodes": [row(i) for i in result.episodes],
        "audiobooks": [row(i) for i in result.audiobooks],
        "fallback": result.fallback,
        "unknown_items": result.unknown_items,
    }


def print_result(payload: dict, out=None) -> None:
    out = out or console
    for name in ("shows", "episodes", "audiobooks"):
        table = Table("#", "item", "title", "score", "reasons", title=name)
        for n, item in enumerate(payload[name], start=1):
            table.add_row(
                str(n),
                item["item_id"],
                item["title"] or "",
                f"{item['score']:.3f}",
                ", ".join(item["reasons"]),
            )
        out.print(table)
    note = "fell back to popularity" if payload["fallback"] else "personalised"
    out.print(f"{note}; unknown music items ignored: {payload['unknown_items'] or 'none'}")
