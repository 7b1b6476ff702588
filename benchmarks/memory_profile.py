"""Where the training stages' memory goes, on a `scale_world` of N listeners.

    .venv/bin/pip install memray                       # not a project dependency
    .venv/bin/python benchmarks/memory_profile.py 30000
    .venv/bin/python -m memray summary /tmp/coldstart-memory/30000-affinity.bin

The world is generated and ingested into SQLite, the taste model is fitted outside the
capture (`fit_taste` caches it, as in benchmarks/scale.py), and then the affinity model
and the two-tower are each fitted (2 epochs, as scale.py does) under a `memray.Tracker`:
one capture file per stage. `memray stats` prints the peak; `memray summary` lists the
call sites holding memory at the peak. docs/scale.md ("The limit, stated") quotes it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("listeners", type=int)
    parser.add_argument("--out", type=Path, default=Path("/tmp/coldstart-memory"))
    args = parser.parse_args()

    import memray
    from scale import content_vectors, write_dataset

    from coldstart.core.config import Settings
    from coldstart.core.store import Store
    from coldstart.data.ingest import ingest_dataset
    from coldstart.recommend.models import interaction_data
    from training.affinity import AffinityConfig, AffinityModel
    from training.taste import fit_taste
    from training.two_tower import TwoTowerConfig, TwoTowerRecommender

    work = args.out / f"world-{args.listeners}"
    store = Store.from_settings(Settings(home=work / "home"))
    if not (work / "dataset").exists():
        write_dataset(work / "dataset", args.listeners)
        ingest_dataset(store, work / "dataset")
    data = interaction_data(store)
    data.content = content_vectors(data.items)
    fit_taste(data)
    stages = {
        "affinity": lambda: AffinityModel(
            "podcast", 0, AffinityConfig(max_epochs=2, patience=3)
        ).fit(data),
        "two_tower": lambda: TwoTowerRecommender(
            "audiobook", 0, TwoTowerConfig(max_epochs=2, patience=3)
        ).fit(data),
    }
    for stage, fit in stages.items():
        capture = args.out / f"{args.listeners}-{stage}.bin"
        capture.unlink(missing_ok=True)
        with memray.Tracker(str(capture)):
            model = fit()
        del model
        print(f"{stage}: {capture}", flush=True)


if __name__ == "__main__":
    main()
