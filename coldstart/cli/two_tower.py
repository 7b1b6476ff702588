"""`coldstart train-two-tower`: fit the two-tower (GNN optional) for audiobooks on the whole
store, save it with its manifest and register it (the server picks it up)."""

from __future__ import annotations

import typer

from coldstart.cli.app import app, console, emit_json, fail, settings_of, store_of


@app.command("train-two-tower")
def train_two_tower_cmd(
    ctx: typer.Context,
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Fit the co-listening GNN + two-tower audiobook model on the whole store; save and register it."""
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.artifacts.registry import SERVED_KINDS
    from coldstart.artifacts.training import train_model

    settings, store = settings_of(ctx), store_of(ctx)
    artifact = SERVED_KINDS["two_tower"].artifact("audiobook")
    try:
        model, manifest = train_model(
            store, settings, "two_tower", "audiobook", seed=seed, progress=not as_json
        )
    except ValueError as exc:
        fail(str(exc))
    directory = manifest["path"]
    if as_json:
        emit_json(manifest)
        return
    m = model.metrics
    console.print(
        f"two-tower saved to {directory}: {m['catalog']} audiobooks ({m['content_items']} with text), "
        f"graph {m.get('graph_nodes', 0)} nodes / {m.get('graph_edges', 0)} edges, "
        f"val ndcg@10 {m['val_ndcg@10']:.3f} (epoch {m['best_epoch'] + 1}/{m['epochs']}); registered {artifact!r}"
    )
