"""The offline evaluation report: run the cold-start harness (`training.evaluate`) on
the store's data and write it as JSON, a PNG, a Markdown and a rich table.

Training and loading the served models lives in `coldstart.artifacts.training`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.table import Column, Table

from coldstart.artifacts.training import check_target, load_interaction_data
from coldstart.core.store import Store
from coldstart.recommend.served import ServedPipeline
from training.evaluate import default_models, evaluate
from training.metrics import METRICS

__all__ = [
    "run_evaluation",
    "results_table",
    "results_markdown",
    "write_results",
    "plot_results",
]


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
    check_target(data, target)
    models = None
    if served:
        models = {
            name: (lambda t, s, name=name: default_models(t, s)[name]())
            for name in default_models(target, 0)
        }
        models["served_pipeline"] = lambda t, s: ServedPipeline(t, s)
    result = evaluate(
        data,
        target,
        cold_fraction,
        seeds,
        k,
        models=models,
        progress=progress,
        cold_history=cold_history,
        cold_users=cold_users,
    )
    result["content_items"] = len(data.content)
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
        result["plot"] = str(plot_results(result, json_path.with_suffix(".png")))
    return result


def plot_results(result: dict, path: Path) -> Path:
    """Grouped bars: one group per metric, one bar per model, std as error bars."""
    # Imported here: the Agg backend is chosen only for the process that draws (not for
    # every importer of this module), and pyplot takes about 2 s to import.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = result["k"]
    metrics = [m.key(k) for m in METRICS.values()]
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
            f"| model | NDCG@{k} | ± std | ×popularity | "
            + " | ".join(f"×pop, {c} music items" for c in cohorts)
            + f" | coverage@{k} |",
            "|---|---|---|---|" + "---|" * len(cohorts) + "---|",
        ]
        for name, m in result["models"].items():
            ratio = m.get("ratio_to_popularity", {})
            cells = [
                f"{ratio.get(f'ndcg@{k}[{c}]'):.2f}" if ratio.get(f"ndcg@{k}[{c}]") else "-"
                for c in cohorts
            ]
            lines.append(
                f"| {name} | {m[f'ndcg@{k}']:.4f} | {m['std'][f'ndcg@{k}']:.4f} | {ratio.get(f'ndcg@{k}', 0):.3f} | "
                + " | ".join(cells)
                + f" | {m[f'coverage@{k}']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_results(results: dict, directory: Path, stem: str) -> str:
    """`results` (by target) as `stem`.json and `stem`.md in `directory`; returns the Markdown."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    table = results_markdown(results)
    (directory / f"{stem}.md").write_text(table)
    return table


def results_table(result: dict):
    """A rich table of an evaluation result: mean, and std on a second dim line."""
    k, split = result["k"], result["splits"][0]
    table = Table(
        Column("model", no_wrap=True),
        *(Column(m.header, justify="right", no_wrap=True, min_width=5) for m in METRICS.values()),
        Column("fb", justify="right", no_wrap=True),
        Column("fit s", justify="right", no_wrap=True),
        Column("×pop", justify="right", no_wrap=True),
        title=f"cold-start {result['target']}: metrics @{k}, mean and ±std over {len(result['seeds'])} seeds; "
        f"{split['cold_users']} of {split['eligible_users']} users held out (keeping {result.get('cold_history', 'non-target')} history)",
    )
    best = max(result["models"].values(), key=lambda m: m[f"ndcg@{k}"])
    for name, m in result["models"].items():
        # std without its leading zero keeps the table inside an 80-column terminal
        cells = [
            f"{m[f'{x}@{k}']:.3f}\n[dim]±{m['std'][f'{x}@{k}']:.3f}[/]".replace("±0.", "±.")
            for x in METRICS
        ]
        style = "bold green" if m is best else None
        ratio = (m.get("ratio_to_popularity") or {}).get(f"ndcg@{k}")
        table.add_row(
            name,
            *cells,
            f"{m['fallback_share']:.0%}",
            f"{m['fit_seconds']:.1f}",
            "-" if ratio is None else f"{ratio:.2f}",
            style=style,
        )
    return table
