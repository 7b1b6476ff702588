"""Glue between the store and `training`: load the data, run the cold-start
evaluation (JSON + PNG), and train/save/load the serving models.

Serving API (used by the recommendation server):

* `train_and_save(store, settings, target)` fits the taste model and the affinity
  MLP on everything in the store, saves them under `settings.artifacts_path`, and
  registers artifacts "taste" and "affinity" (podcast) / "affinity-audiobook".
* `load_models(settings, store=None)` returns `{target: AffinityModel}` for every
  target that has a registered affinity artifact.
"""

from __future__ import annotations

import time
from dataclasses import replace
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store
from training.affinity import AffinityConfig, AffinityModel
from training.data import TARGET_KINDS, InteractionData
from training.evaluate import evaluate
from training.taste import TasteConfig

__all__ = [
    "load_interaction_data",
    "content_model_id",
    "run_evaluation",
    "results_table",
    "results_markdown",
    "write_results",
    "demo_stage",
    "plot_results",
    "affinity_config",
    "train_and_save",
    "load_models",
    "artifact_name",
]

PLOT_METRICS = ("ndcg", "recall", "hit_rate", "mrr", "coverage")
TABLE_METRICS = {"ndcg": "ndcg", "recall": "recall", "hit_rate": "hit", "mrr": "mrr", "coverage": "cover"}


def content_model_id(store: Store) -> str | None:
    """The embedding model with the most stored vectors (None when nothing is embedded)."""
    cv = t.content_vectors
    with store.connect() as conn:
        row = conn.execute(
            select(cv.c.model_id, func.count()).group_by(cv.c.model_id).order_by(func.count().desc()).limit(1)
        ).first()
    return row[0] if row else None


def load_interaction_data(store: Store, content: bool = True) -> InteractionData:
    """The store's contract tables, plus item content vectors of spoken-word items when
    the embedding stage has run (an empty dict otherwise: models then use ids only)."""
    data = InteractionData(
        items=store.items(), interactions=store.interactions(), users=store.users(), playlists=store.playlists()
    )
    model_id = content_model_id(store) if content else None
    if model_id:
        from coldstart.content.embeddings import item_vectors

        data.content = item_vectors(store, model_id, kinds=("show", "audiobook"))
    return data


def _check_target(data: InteractionData, target: str) -> None:
    if target not in TARGET_KINDS:
        raise ValueError(f"unknown target {target!r}; expected one of {sorted(TARGET_KINDS)}")
    if data.catalog(target).empty:
        raise ValueError(f"the store has no {'/'.join(TARGET_KINDS[target])} items to rank for target {target!r}")


def run_evaluation(
    store: Store,
    target: str = "podcast",
    cold_fraction: float = 0.2,
    seeds: Sequence[int] = (0, 1, 2),
    k: int = 10,
    json_path: Path | None = None,
    progress: bool = False,
    cold_history: str = "non-target",
    cold_users: Sequence[str] | None = None,
    served: bool = False,
) -> dict:
    """Evaluate every default model (and, with `served`, the whole onboarding pipeline as
    listeners get it); write JSON (and a PNG beside it) when asked."""
    data = load_interaction_data(store)
    _check_target(data, target)
    models = None
    if served:
        from coldstart.recommend.served import ServedPipeline
        from training.evaluate import default_models

        models = {name: (lambda t, s, name=name: default_models(t, s)[name]()) for name in default_models(target, 0)}
        models["served_pipeline"] = lambda t, s: ServedPipeline(t, s)
    result = evaluate(data, target, cold_fraction, seeds, k, models=models, progress=progress,
                      cold_history=cold_history, cold_users=cold_users)
    result["content_items"] = len(data.content)
    if json_path is not None:
        import json

        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        result["plot"] = str(plot_results(result, json_path.with_suffix(".png")))
    return result


def plot_results(result: dict, path: Path) -> Path:
    """Grouped bars: one group per metric, one bar per model, std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = result["k"]
    metrics = [f"{m}@{k}" for m in PLOT_METRICS]
    names = list(result["models"])
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(1.6 * len(metrics) + 2, 4.5))
    x = np.arange(len(metrics))
    for i, name in enumerate(names):
        model = result["models"][name]
        ax.bar(
            x + i * width - 0.4 + width / 2,
            [model[m] for m in metrics],
            width,
            yerr=[model["std"][m] for m in metrics],
            label=name,
            capsize=2,
        )
    ax.set_xticks(x, metrics)
    ax.set_ylim(0, 1)
    ax.set_title(
        f"cold-start {result['target']}: {len(result['seeds'])} seeds, "
        f"{result['cold_fraction']:.0%} of users held out"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def results_markdown(results: dict) -> str:
    """Markdown tables of evaluation results by target: NDCG, ratio to popularity, cohorts."""
    lines = []
    for target, result in results.items():
        k = result["k"]
        cohorts = ["1-5", "6-20", ">20"]
        sizes = result["splits"][0]["cohorts"]
        lines += [
            f"**{target}** (cold users keep {result['cold_history']} history; seeds {result['seeds']}; "
            f"{result['splits'][0]['cold_users']} cold users of {result['splits'][0]['eligible_users']}; "
            f"cohort sizes, seed {result['seeds'][0]}: {sizes})",
            "",
            f"| model | NDCG@{k} | ± std | ×popularity | " + " | ".join(f"×pop, {c} music items" for c in cohorts) + f" | coverage@{k} |",
            "|---|---|---|---|" + "---|" * len(cohorts) + "---|",
        ]
        for name, m in result["models"].items():
            ratio = m.get("ratio_to_popularity", {})
            cells = [f"{ratio.get(f'ndcg@{k}[{c}]'):.2f}" if ratio.get(f"ndcg@{k}[{c}]") else "-" for c in cohorts]
            lines.append(
                f"| {name} | {m[f'ndcg@{k}']:.4f} | {m['std'][f'ndcg@{k}']:.4f} | {ratio.get(f'ndcg@{k}', 0):.3f} | "
                + " | ".join(cells) + f" | {m[f'coverage@{k}']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_results(results: dict, directory: Path, stem: str) -> str:
    """`results` (by target) as `stem`.json and `stem`.md in `directory`; returns the Markdown."""
    import json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    table = results_markdown(results)
    (directory / f"{stem}.md").write_text(table)
    return table


def results_table(result: dict):
    """A rich table of an evaluation result: mean, and std on a second dim line."""
    from rich.table import Column, Table

    k, split = result["k"], result["splits"][0]
    table = Table(
        Column("model", no_wrap=True),
        *(Column(header, justify="right", no_wrap=True, min_width=5) for header in TABLE_METRICS.values()),
        Column("fb", justify="right", no_wrap=True),
        Column("fit s", justify="right", no_wrap=True),
        Column("×pop", justify="right", no_wrap=True),
        title=f"cold-start {result['target']}: metrics @{k}, mean and ±std over {len(result['seeds'])} seeds; "
        f"{split['cold_users']} of {split['eligible_users']} users held out (keeping {result.get('cold_history', 'non-target')} history)",
    )
    best = max(result["models"].values(), key=lambda m: m[f"ndcg@{k}"])
    for name, m in result["models"].items():
        # std without its leading zero keeps the table inside an 80-column terminal
        cells = [f"{m[f'{x}@{k}']:.3f}\n[dim]±{m['std'][f'{x}@{k}']:.3f}[/]".replace("±0.", "±.") for x in TABLE_METRICS]
        style = "bold green" if m is best else None
        ratio = (m.get("ratio_to_popularity") or {}).get(f"ndcg@{k}")
        table.add_row(name, *cells, f"{m['fallback_share']:.0%}", f"{m['fit_seconds']:.1f}",
                      "-" if ratio is None else f"{ratio:.2f}", style=style)
    return table


def demo_stage(ctx) -> None:
    """Demo: the cold-start evaluation of podcasts, then the serving model."""
    result = run_evaluation(ctx.store, "podcast", 0.2, (0,), 10, ctx.settings.home / "eval" / "podcast.json")
    ctx.console.print(results_table(result))
    ctx.console.print(f"content vectors used for {result['content_items']} items; wrote {result['plot']}")
    manifest = train_and_save(ctx.store, ctx.settings, "podcast")
    m = manifest["metrics"]
    ctx.console.print(
        f"serving model: {manifest['path']} (validation ndcg@10 {m['val_ndcg@10']:.3f}, "
        f"{m['train_users'] + m['val_users']} users, {m['catalog']} shows, {m['content_items']} with content)"
    )
    ctx.results["evaluation"] = result


# --- serving artifacts --------------------------------------------------------------


def artifact_name(target: str) -> str:
    return "affinity" if target == "podcast" else f"affinity-{target}"


def affinity_config(settings: Settings, target: str) -> AffinityConfig:
    """The evaluated defaults, with the knobs exposed in `settings.train` applied."""
    seed = settings.train.seed
    return replace(
        AffinityConfig(),
        target=target,
        seed=seed,
        taste=replace(TasteConfig(), dim=settings.train.taste_dim, seed=seed),
        max_epochs=settings.train.epochs,
    )


def train_and_save(store: Store, settings: Settings, target: str = "podcast", data: InteractionData | None = None) -> dict:
    """Fit taste vectors + the affinity MLP on the whole store and register them.

    Returns the affinity manifest (with the artifact path)."""
    data = data if data is not None else load_interaction_data(store)
    _check_target(data, target)
    started = time.perf_counter()
    model = AffinityModel(target, settings.train.seed, affinity_config(settings, target)).fit(data)
    directory = settings.artifacts_path / artifact_name(target)
    manifest = model.save(
        directory, {"trained_seconds": round(time.perf_counter() - started, 2), "content_items": len(data.content)}
    )
    store.register_artifact("taste", directory / "taste", model.taste.manifest)
    store.register_artifact(artifact_name(target), directory, manifest)
    return {**manifest, "path": str(directory)}


def load_models(settings: Settings, store: Store | None = None) -> dict[str, AffinityModel]:
    """Fitted affinity models by target, from the registered artifacts."""
    store = store or Store.from_settings(settings)
    models = {}
    for target in TARGET_KINDS:
        row = store.artifact(artifact_name(target))
        if row is not None:
            models[target] = AffinityModel.load(row["path"])
    return models
