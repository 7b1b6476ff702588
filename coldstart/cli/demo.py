"""`coldstart demo`: build the seeded demo world and run every pipeline stage on it."""

from __future__ import annotations

import typer

from coldstart.cli.app import app, settings_of
from coldstart.demo.world import WorldConfig


@app.command()
def demo(
    ctx: typer.Context,
    users: int = typer.Option(1500, "--users", help="Listeners in the synthetic world."),
    shows: int = typer.Option(48, "--shows", help="Podcast shows."),
    episodes_per_show: int = typer.Option(6, "--episodes-per-show"),
    audiobooks: int = typer.Option(160, "--audiobooks"),
    artists: int = typer.Option(160, "--artists"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Build a deterministic demo world into --home and run every stage on it."""
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.demo.run import run_demo

    config = WorldConfig(
        users=users,
        shows=shows,
        episodes_per_show=episodes_per_show,
        audiobooks=audiobooks,
        artists=artists,
        seed=seed,
    )
    run_demo(settings_of(ctx), config)
