"""Data commands: config, stats, ingest, import."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer
from rich.table import Table

from coldstart.cli.app import app, console, emit_json, fail, settings_of, store_of
from coldstart.data.contract import ContractError
from coldstart.data.importers import (
    SourceFormatError,
    apple_podcasts,
    douban,
    goodbooks,
    lastfm_hetrec,
)
from coldstart.data.ingest import ingest_dataset

import_app = typer.Typer(
    help="Convert public datasets into contract datasets.", no_args_is_help=True
)
app.add_typer(import_app, name="import")


@app.command()
def config(
    ctx: typer.Context, json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Print the effective settings (environment COLDSTART_*, then --home)."""
    data = settings_of(ctx).public_dict()
    if json:
        emit_json(data)
        return
    table = Table("setting", "value", title="coldstart settings")
    for key, value in _flatten(data):
        table.add_row(key, str(value))
    console.print(table)


def _flatten(data: dict, prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@app.command()
def stats(
    ctx: typer.Context, json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """Catalog counts by kind and language, and interaction counts."""
    data = store_of(ctx).stats()
    if json:
        emit_json(data)
        return
    table = Table("kind", "items", "by language", "interactions", "users", title="catalog")
    by_lang = data["items"]["by_language"]
    for kind, n in sorted(data["items"]["by_kind"].items()):
        langs = ", ".join(f"{k}:{v}" for k, v in sorted(by_lang.get(kind, {}).items()))
        table.add_row(
            kind,
            str(n),
            langs,
            str(data["interactions"]["by_kind"].get(kind, 0)),
            str(data["interactions"]["users_by_kind"].get(kind, 0)),
        )
    console.print(table)
    console.print(
        f"interactions: {data['interactions']['total']}  users with profile: {data['users']}  "
        f"playlist entries: {data['playlists']['entries']}  transcripts: {data['transcripts']}"
    )


@app.command()
def ingest(
    ctx: typer.Context,
    dataset_dir: Path = typer.Argument(..., help="Directory of contract files (items.csv, ...)."),
    skip_bad_rows: bool = typer.Option(
        False, "--skip-bad-rows", help="Load good rows; write rejects to a file."
    ),
    rejects: Path = typer.Option(
        None, "--rejects", help="Where --skip-bad-rows writes rejected rows."
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Validate a contract dataset and load it into the store (all or nothing)."""
    try:
        report = ingest_dataset(
            store_of(ctx), dataset_dir, skip_bad_rows=skip_bad_rows, rejects_path=rejects
        )
    except ContractError as exc:
        if json:
            emit_json({"error": "contract", "problems": [str(e) for e in exc.errors]})
        fail(f"{exc}\nNothing was loaded; the store is unchanged.", code=2)
        return
    if json:
        emit_json(report.as_dict())
        return
    table = Table("table", "inserted", "updated", "unchanged", title=f"ingested {dataset_dir}")
    for name, counts in report.tables.items():
        table.add_row(name, *(str(counts.get(k, "")) for k in ("inserted", "updated", "unchanged")))
    console.print(table)
    if report.rejected:
        console.print(
            f"[yellow]{report.rejected} rejected row(s) written to {report.rejects_path}[/]"
        )


def _import_report(out: Path, run, src: Path, json: bool) -> None:
    try:
        counts = run(src, out)
    except SourceFormatError as exc:
        fail(str(exc), code=2)
        return
    if json:
        emit_json({"out": str(out), "rows": counts})
    else:
        console.print(f"wrote {out}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))


@import_app.command("lastfm-hetrec")
def import_lastfm(
    src: Path = typer.Argument(..., help="hetrec2011-lastfm-2k directory."),
    out: Path = typer.Argument(..., help="Output dataset directory."),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Last.fm HetRec 2011: artists (top tag as genre) and user-artist play counts."""
    _import_report(out, lastfm_hetrec, src, json)


@import_app.command("apple-podcasts")
def import_apple(
    src: Path = typer.Argument(..., help="podcasts_info.json"),
    out: Path = typer.Argument(..., help="Output dataset directory."),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Apple Podcasts catalogue: shows with genre and description."""
    _import_report(out, apple_podcasts, src, json)


@import_app.command("goodbooks")
def import_goodbooks(
    src: Path = typer.Argument(..., help="goodbooks-10k directory (books.csv, ratings.csv)."),
    out: Path = typer.Argument(..., help="Output dataset directory."),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """goodbooks-10k: books as audiobooks, ratings as interaction weights."""
    _import_report(out, goodbooks, src, json)


@import_app.command("douban")
def import_douban(
    src: Path = typer.Argument(..., help="Directory with music_ratings.dat and book_ratings.dat."),
    out: Path = typer.Argument(..., help="Output dataset directory."),
    target: str = typer.Option(
        "audiobook", "--target", help="What books stand in for: show | audiobook."
    ),
    json: bool = typer.Option(False, "--json"),
) -> None:
    """Douban cross-domain ratings: music as tracks, books as shows or audiobooks (ID-only)."""
    _import_report(out, partial(douban, target=target), src, json)
