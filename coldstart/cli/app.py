"""The typer application, its global options, and output helpers shared by commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console

from coldstart.core.config import Settings, get_settings
from coldstart.core.store import Store

__all__ = ["app", "console", "err_console", "settings_of", "store_of", "emit_json", "fail"]

app = typer.Typer(
    name="coldstart",
    help="Cold-start recommendations for podcasts and audiobooks from music taste.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _global_options(
    ctx: typer.Context,
    home: Path = typer.Option(
        None, "--home", envvar="COLDSTART_HOME", help="Data directory (store, models, indexes)."
    ),
) -> None:
    ctx.obj = _settings(home)


def _settings(home: Path | None = None) -> Settings:
    """Settings, or a clear error naming the bad variable (e.g. an empty API token)."""
    try:
        return get_settings(home)
    except ValidationError as exc:
        problems = "; ".join(
            f"COLDSTART_{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        fail(f"invalid settings: {problems}")


def settings_of(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = _settings()
    return root.obj


def store_of(ctx: typer.Context):
    return Store.from_settings(settings_of(ctx))


def emit_json(data: Any, path: Path | None = None) -> None:
    """Machine output: to stdout, or to a file when `path` is given."""
    text = json.dumps(data, indent=2, default=str)
    if path is None:
        sys.stdout.write(text + "\n")
    else:
        Path(path).write_text(text + "\n")


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)
