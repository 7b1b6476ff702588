"""`coldstart evaluate-uploads`: the cold-item protocol (how well new uploads find
their audience), docs/uploads-evaluation.md."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from coldstart.cli.app import app, console, emit_json, fail, settings_of, store_of
from coldstart.cli.evaluate import parse_seeds


@app.command("evaluate-uploads")
def evaluate_uploads(
    ctx: typer.Context,
    kind: str = typer.Option("audiobook", "--kind", help="audiobook | episode"),
    hidden_fraction: float = typer.Option(
        0.2, "--hidden-fraction", help="Share of items with text whose plays are hidden per seed."
    ),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Comma-separated split seeds."),
    content: str = typer.Option(
        "minilm",
        "--content",
        help="minilm (the served embeddings) | lsa (TF-IDF + SVD: a fast lexical stand-in).",
    ),
    json_path: Path = typer.Option(
        None, "--json", help="Write the results here (a Markdown table goes beside it)."
    ),
) -> None:
    """Hide every play of some items with text, train on the rest, score every known
    listener for each hidden item, compare with its real listeners."""
    # lazy: keeps `coldstart --help` fast (benchmarks/cli_startup.py)
    from coldstart.batch.upload_eval import MODEL_LABELS, run_upload_evaluation

    settings, store = settings_of(ctx), store_of(ctx)
    try:
        result = run_upload_evaluation(
            store, settings, kind, parse_seeds(seeds), hidden_fraction, json_path, True, content
        )
    except ValueError as exc:
        fail(str(exc))
    ndcg = next(k for k in result["models"]["served"] if k.startswith("ndcg@"))
    table = Table(
        "model", "AUC", "recall@100", "recall@1%", f"{ndcg} per listener", title="new uploads"
    )
    for name, entry in result["models"].items():
        table.add_row(
            MODEL_LABELS.get(name, name).strip("*"),
            *(
                "-"
                if entry[m]["mean"] is None
                else f"{entry[m]['mean']:.3f} ± {entry[m]['se']:.3f}"
                for m in ("auc", "recall@100", "recall@1%", ndcg)
            ),
        )
    console.print(table)
    for metric, entry in result["served_minus_best_baseline"].items():
        console.print(
            f"served - {entry['best_baseline']} on {metric}: {entry['mean']:+.4f} ± {entry['se']:.4f}"
        )
    if json_path is not None:
        console.print(f"wrote {json_path} and {Path(json_path).with_suffix('.md')}")


@app.command("train-upload-audience")
def train_upload_audience(
    ctx: typer.Context,
    kind: list[str] = typer.Option(
        ["audiobook"], "--kind", help="audiobook and/or episode (repeatable)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the validation uploads."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifests as JSON."),
) -> None:
    """Fit the audience blend `score-uploads` serves for new uploads of each kind (the
    `served` row of evaluate-uploads), on the whole store; save and register it."""
    from coldstart.batch.upload_audience import fit_upload_audience

    settings, store = settings_of(ctx), store_of(ctx)
    manifests = {}
    for name in kind:
        try:
            manifests[name] = fit_upload_audience(store, settings, name, seed, progress=not as_json)
        except ValueError as exc:
            fail(str(exc))
    if as_json:
        emit_json(manifests)
        return
    for name, manifest in manifests.items():
        if manifest["blend"]:
            weights = ", ".join(f"{k} {v:g}" for k, v in manifest["weights"].items() if v)
            console.print(
                f"{name}: blend of {weights} on {manifest['validation_items']} validation "
                f"uploads, {manifest['listeners']} listeners"
            )
        else:
            console.print(f"{name}: no blend fitted; {manifest['fallback']}")
