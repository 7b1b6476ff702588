"""The whole-table passes of an affinity and a two-tower fit, timed alone.

With the listener sample (`max_listeners`, docs/scale.md section 3) the per-listener
work of a fit is bounded; what still reads every interaction are the item-side passes
below (column operations, linear in the interactions). Timing them on a world kept by
`benchmarks/scale.py --workdir` separates the part of a stage that grows with the
audience from the part the sample bounds, which is what extrapolating a stage to a
larger world needs:

    nice -n 10 .venv/bin/python benchmarks/training_passes.py /var/tmp/s24b/100000

Each pass is run `--repeats` times; the median CPU seconds are printed with how many
times one affinity fit and one two-tower fit make it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

# pass -> (calls per affinity fit, calls per two-tower fit)
CALLS = {
    "music_interactions": (2, 1),
    "target_interactions (podcast)": (1, 0),
    "popularity (podcast)": (1, 0),
    "popularity (audiobook)": (0, 2),
    "music_fingerprint (taste cache key)": (1, 1),
    "spoken_events": (0, 1),
    "without_target_plays": (0, 1),
    "data_hash": (0, 1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("world", type=Path, help="a size's directory kept by scale.py --workdir")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from scale import World  # noqa: E402  (benchmarks/scale.py)

    from training.item_graph import spoken_events
    from training.ranking import popularity
    from training.taste import music_fingerprint
    from training.two_tower_data import data_hash, without_target_plays

    world = World(int(args.world.name), args.world, epochs=2, blend=True)
    data = world.data
    some_users = set(data.interactions["user_id"].drop_duplicates().iloc[::20])
    passes = {
        "music_interactions": lambda: data.music_interactions(),
        "target_interactions (podcast)": lambda: data.target_interactions("podcast"),
        "popularity (podcast)": lambda: popularity(data, "podcast"),
        "popularity (audiobook)": lambda: popularity(data, "audiobook"),
        "music_fingerprint (taste cache key)": lambda: music_fingerprint(data),
        "spoken_events": lambda: spoken_events(data),
        "without_target_plays": lambda: without_target_plays(data, some_users, "audiobook"),
        "data_hash": lambda: data_hash(data),
    }
    rows = []
    for name, work in passes.items():
        cpu = []
        for _ in range(args.repeats):
            started = time.process_time()
            work()
            cpu.append(time.process_time() - started)
        affinity, two_tower = CALLS[name]
        rows.append(
            {
                "pass": name,
                "cpu_s": round(float(np.median(cpu)), 2),
                "affinity_calls": affinity,
                "two_tower_calls": two_tower,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    total = {
        stage: round(sum(r["cpu_s"] * r[f"{stage}_calls"] for r in rows), 1)
        for stage in ("affinity", "two_tower")
    }
    print(
        json.dumps({"interactions": len(data.interactions), "item_side_cpu_s_per_fit": total}),
        flush=True,
    )


if __name__ == "__main__":
    main()
