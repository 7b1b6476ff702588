"""The demo-world cold-start tables (the README's headline), every baseline and model.

    .venv/bin/python benchmarks/cold_start_demo.py --seeds 0,1,2

Builds the default demo world (`coldstart demo`'s world, seed 0), ingests it into a
fresh SQLite store, embeds and indexes the text with the bundled MiniLM (the four
audio episodes stay untranscribed here), then runs `coldstart evaluate --served` for
podcasts (cold users keep their audiobooks) and audiobooks (`--cold-history music`).
Writes `benchmarks/results/cold_start_demo.{json,md}`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from coldstart.batch.eval_report import run_evaluation, write_results  # noqa: E402
from coldstart.content.index import index_content  # noqa: E402
from coldstart.core.config import Settings  # noqa: E402
from coldstart.core.store import Store  # noqa: E402
from coldstart.data.ingest import ingest_dataset  # noqa: E402
from coldstart.demo.world import WorldConfig, build_world, write_world  # noqa: E402

RUNS = (("podcast", "non-target"), ("audiobook", "music"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--targets", default="podcast,audiobook")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    targets = args.targets.split(",")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home")
        store = Store.from_settings(settings)
        write_world(build_world(WorldConfig()), Path(tmp) / "world")
        ingest_dataset(store, Path(tmp) / "world")
        index_content(store, settings)
        for target, cold_history in RUNS:
            if target in targets:
                results[target] = run_evaluation(
                    store,
                    target,
                    0.2,
                    seeds,
                    10,
                    progress=True,
                    cold_history=cold_history,
                    served=True,
                )
    stem = "cold_start_demo" + (
        "" if targets == ["podcast", "audiobook"] else "-" + "-".join(targets)
    )
    print(write_results(results, args.out, stem))


if __name__ == "__main__":
    main()
