"""Where the ingest and training stages' memory goes, on a `scale_world` of N listeners.

    .venv/bin/pip install memray                       # not a project dependency
    .venv/bin/python benchmarks/memory_profile.py 30000
    .venv/bin/python benchmarks/memory_profile.py 100000 --taste-epochs 1 --stages affinity
    .venv/bin/python benchmarks/memory_profile.py 100000 --stages ingest
    .venv/bin/python -m memray summary /tmp/coldstart-memory/30000-affinity.bin

The world is generated and ingested into SQLite, the taste model is fitted outside the
capture (`fit_taste` caches it, as in benchmarks/scale.py), and then the affinity model
and the two-tower are each fitted (2 epochs, as scale.py does) under a `memray.Tracker`:
one capture file per stage. `memray stats` prints the peak; `memray summary` lists the
call sites holding memory at the peak. docs/scale.md ("The limit, stated") quotes it.

`--taste-epochs 1` trains the taste model (outside the capture) for one epoch instead
of the default ten: the captured stages see taste vectors of the same size, so their
memory is the same, and at 100k the profile takes minutes instead of half an hour.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("listeners", type=int)
    parser.add_argument("--out", type=Path, default=Path("/tmp/coldstart-memory"))
    parser.add_argument(
        "--taste-epochs", type=int, help="train taste (not captured) for this many epochs"
    )
    parser.add_argument(
        "--stages",
        default="affinity,two_tower",
        help="comma-separated: ingest, affinity, two_tower",
    )
    args = parser.parse_args()

    import memray
    from scale import TRAINED_KINDS, content_vectors, write_dataset

    from coldstart.artifacts.training import load_interaction_data
    from coldstart.core.config import Settings
    from coldstart.core.store import Store
    from coldstart.data.ingest import ingest_dataset
    from training.affinity import AffinityConfig, AffinityModel
    from training.taste import TasteConfig, fit_taste
    from training.two_tower import TwoTowerConfig, TwoTowerRecommender

    work = args.out / f"world-{args.listeners}"
    store = Store.from_settings(Settings(home=work / "home"))
    if not (work / "dataset").exists():
        write_dataset(work / "dataset", args.listeners)
        ingest_dataset(store, work / "dataset")
    stages = args.stages.split(",")
    if "ingest" in stages:  # the dataset again, into an empty store of its own
        shutil.rmtree(work / "ingest-home", ignore_errors=True)
        fresh = Store.from_settings(Settings(home=work / "ingest-home"))
        capture = args.out / f"{args.listeners}-ingest.bin"
        capture.unlink(missing_ok=True)
        with memray.Tracker(str(capture)):
            ingest_dataset(fresh, work / "dataset")
        print(f"ingest: {capture}", flush=True)
        stages.remove("ingest")
    if not stages:
        return
    data = load_interaction_data(store, content=False)
    data.content = content_vectors(data.items, TRAINED_KINDS)
    taste = (
        TasteConfig(epochs=args.taste_epochs, min_words=0) if args.taste_epochs else TasteConfig()
    )
    fit_taste(data, taste)
    fits = {
        "affinity": lambda: AffinityModel(
            "podcast", 0, AffinityConfig(max_epochs=2, patience=3, taste=taste)
        ).fit(data),
        "two_tower": lambda: TwoTowerRecommender(
            "audiobook", 0, TwoTowerConfig(max_epochs=2, patience=3, taste=taste)
        ).fit(data),
    }
    for stage in stages:
        fit = fits[stage]
        capture = args.out / f"{args.listeners}-{stage}.bin"
        capture.unlink(missing_ok=True)
        with memray.Tracker(str(capture)):
            model = fit()
        del model
        print(f"{stage}: {capture}", flush=True)


if __name__ == "__main__":
    main()
