"""`coldstart evaluate` (cold-start protocol over every model) and `coldstart train`
(fit taste vectors + the affinity MLP on the whole store, for serving)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from coldstart.cli.app import app, console, emit_json, fail, settings_of, store_of


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        fail(f"--seeds must be comma-separated integers, got {text!r}")
    if not seeds:
        fail("--seeds needs at least one seed")
    return seeds


def _read_user_ids(path: Path) -> list[str]:
    """One user id per line; blank lines and `#` comments are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        fail(f"{path}: cannot read the cold users ({exc.strerror or exc})")
    ids = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not ids:
        fail(f"{path}: no user ids (one per line)")
    return ids


@app.command()
def evaluate(
    ctx: typer.Context,
    target: str = typer.Option("podcast", "--target", help="podcast | audiobook"),
    cold_fraction: float = typer.Option(
        0.2, "--cold-fraction", help="Share of eligible users held out per seed."
    ),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Comma-separated split seeds."),
    k: int = typer.Option(10, "--k", help="Cut-off for the ranking metrics."),
    json_path: Path = typer.Option(
        None, "--json", help="Write the results here (a PNG chart goes beside it)."
    ),
    cold_history: str = typer.Option(
        "non-target",
        "--cold-history",
        help="What cold users keep besides music: non-target (other spoken kinds) | music (no spoken-word history at all).",
    ),
    cold_users: Path = typer.Option(
        None,
        "--cold-users",
        help="File of user ids (one per line) to hold out instead of a random share.",
    ),
    served: bool = typer.Option(
        False,
        "--served",
        help="Also evaluate the whole onboarding pipeline (models, source weights, rules) as served.",
    ),
) -> None:
    """Hide the target history of some users, train on the rest, rank for them from music alone."""
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.batch.eval_report import results_table, run_evaluation

    store = store_of(ctx)
    listed = _read_user_ids(cold_users) if cold_users is not None else None
    try:
        result = run_evaluation(
            store,
            target,
            cold_fraction,
            parse_seeds(seeds),
            k,
            json_path,
            progress=True,
            cold_history=cold_history,
            cold_users=listed,
            served=served,
        )
    except ValueError as exc:
        fail(str(exc))
    table = results_table(result)
    console.print(table)
    if json_path is not None:
        console.print(f"wrote {json_path} and {result['plot']}")


@app.command()
def train(
    ctx: typer.Context,
    target: list[str] = typer.Option(
        ["podcast"], "--target", help="podcast and/or audiobook (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the manifests as JSON."),
) -> None:
    """Fit taste vectors and the affinity MLP on the whole store; save and register them."""
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.artifacts.training import load_interaction_data, train_model

    settings, store = settings_of(ctx), store_of(ctx)
    data = load_interaction_data(store)
    manifests = {}
    for name in target:
        try:
            _, manifests[name] = train_model(store, settings, "affinity", name, data=data)
        except ValueError as exc:
            fail(str(exc))
    if as_json:
        emit_json(manifests)
        return
    table = Table(
        "target",
        "users",
        "items",
        "content",
        "val ndcg@10",
        "best/epochs",
        "seconds",
        title="trained",
    )
    for name, m in manifests.items():
        met = m["metrics"]
        table.add_row(
            name,
            str(met["train_users"] + met["val_users"]),
            str(met["catalog"]),
            str(met["content_items"]),
            f"{met['val_ndcg@10']:.3f}",
            f"{met['best_epoch'] + 1}/{met['epochs']}",
            str(m["trained_seconds"]),
        )
    console.print(table)
    for name, m in manifests.items():
        console.print(f"{name}: {m['path']}", soft_wrap=True)
