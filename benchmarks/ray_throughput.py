"""Throughput of the batch stages: local (one process) against Ray Data with 1 and 2 workers.

    nice -n 10 .venv/bin/python benchmarks/ray_throughput.py --repeats 3

On one demo home (the default demo world, ingested):

- transcription: `--clips` episodes whose audio is one of the shipped speech clips,
  transcribed with the default engine (faster-whisper tiny.en, int8) and written to the
  store. local = `transcribe_items(..., workers=1)` (what `transcribe --pending` and the
  local score-uploads run); ray-N = the `Transcribe` stage on an actor pool of N
  (`coldstart.batch.ray_engine`), results to Parquet and the store. Reported as audio
  hours per wall hour.
- embedding: every text unit of the catalogue (own texts and transcript passages)
  re-embedded with MiniLM. local = `embed_items` (what `coldstart index` runs); ray-N =
  `embed_catalogue_ray` with N actors. Reported as texts per second.

Each measurement includes what the command pays per run (actors start and load their
model; the local path loads its model once per process, which is cached here after the
first repeat, so local is slightly favoured). Ray itself is started once
(`ray.init(num_cpus=2)`) and not timed. Ray workers get `2 / N` CPU threads each.
Medians over `--repeats`, runs interleaved. Results: benchmarks/results/ray_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import delete

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coldstart.core import tables as t  # noqa: E402
from coldstart.core.config import Settings  # noqa: E402
from coldstart.core.store import Store  # noqa: E402
from coldstart.data.ingest import ingest_dataset  # noqa: E402
from coldstart.demo.world import ASSETS, WorldConfig, build_world, write_world  # noqa: E402


def make_home(root: Path, clips: int) -> tuple[Settings, Store, list[str], float]:
    settings = Settings(home=root / "home")
    store = Store.from_settings(settings)
    world = build_world(WorldConfig())
    write_world(world, root / "dataset")
    ingest_dataset(store, root / "dataset")
    audio = settings.home / "bench-audio"
    audio.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in ASSETS.glob("*.ogg"))
    shows = store.items(["show"])
    show = shows[shows["language"] == "en"]["item_id"].iloc[0]
    from transcripts import probe_duration

    ids, seconds = [], 0.0
    with store.begin() as conn:
        for i in range(clips):
            src = ASSETS / names[i % len(names)]
            dst = audio / f"clip{i:03d}.ogg"
            shutil.copy2(src, dst)
            seconds += probe_duration(dst)
            item_id = f"bench-ep{i:03d}"
            conn.execute(
                t.items.insert().values(
                    item_id=item_id,
                    kind="episode",
                    title=f"Clip {i}",
                    show_id=show,
                    language="en",
                    genre="science",
                    audio_path=str(dst),
                )
            )
            ids.append(item_id)
    return settings, store, ids, seconds


def clear_transcripts(store: Store, ids: list[str]) -> None:
    with store.begin() as conn:
        for table in (t.segments, t.transcripts, t.transcription_jobs):
            conn.execute(delete(table).where(table.c.item_id.in_(ids)))


def clear_vectors(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(delete(t.content_vectors))


def transcribe_local(settings, store, ids) -> float:
    from coldstart.content.speech import transcribe_items

    clear_transcripts(store, ids)
    started = time.perf_counter()
    report = transcribe_items(store, settings, ids, workers=1, progress=False)
    assert len(report.done) == len(ids), report.failed
    return time.perf_counter() - started


def transcribe_ray(settings, store, ids, workers: int) -> float:
    import pandas as pd

    from coldstart.batch.ray_engine import RayEngine, _run_dir, _run_stage, _write_transcripts
    from coldstart.batch.ray_stages import Transcribe
    from coldstart.batch.upload_pipeline import UploadRun
    from coldstart.batch.uploads import ScoreReport
    from coldstart.core.leases import Leases

    clear_transcripts(store, ids)
    items = store.items(["episode"]).set_index("item_id").loc[ids]
    started = time.perf_counter()
    rows = pd.DataFrame({"item_id": ids, "path": items["audio_path"].tolist()})
    results = _run_stage(
        rows, Transcribe, settings, _run_dir(settings) / "transcribe", workers, 2 / workers, 0, 1
    )
    # The episodes stand for uploads here: their transcripts are written as the engine
    # writes an upload's (there are no upload rows to update).
    run = UploadRun(store, settings, RayEngine(), ScoreReport())
    run.leases = Leases(store, run.owner, settings.lease_seconds, background=True)
    run.live = {i: {"item_id": i, "status": "pending"} for i in ids}
    _write_transcripts(run, results, {i: i for i in ids}, 50)
    assert not run.report.failed, run.report.failed
    return time.perf_counter() - started


def embed_local(settings, store) -> tuple[float, int]:
    from coldstart.content.embeddings import embed_items

    clear_vectors(store)
    started = time.perf_counter()
    report = embed_items(store, settings, progress=False)
    return time.perf_counter() - started, report.embedded


def embed_ray(settings, store, workers: int) -> tuple[float, int]:
    from coldstart.batch.ray_engine import embed_catalogue_ray

    clear_vectors(store)
    started = time.perf_counter()
    report = embed_catalogue_ray(store, settings, workers=workers, cpus_per_worker=2 / workers)
    return time.perf_counter() - started, report.embedded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--only", default="transcribe,embed")
    parser.add_argument(
        "--report", type=Path, default=ROOT / "benchmarks/results/ray_throughput.json"
    )
    args = parser.parse_args()
    import ray

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    only = set(args.only.split(","))
    results: dict = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs)",
        "repeats": args.repeats,
        "ray": ray.__version__,
    }
    with tempfile.TemporaryDirectory() as tmp:
        settings, store, ids, seconds = make_home(Path(tmp), args.clips)
        results["audio_seconds"] = round(seconds, 1)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        runs: dict[str, list[float]] = {}
        units = 0
        for _ in range(args.repeats):
            if "transcribe" in only:
                runs.setdefault("transcribe local", []).append(
                    transcribe_local(settings, store, ids)
                )
                for n in (1, 2):
                    runs.setdefault(f"transcribe ray-{n}", []).append(
                        transcribe_ray(settings, store, ids, n)
                    )
            if "embed" in only:
                wall, units = embed_local(settings, store)
                runs.setdefault("embed local", []).append(wall)
                for n in (1, 2):
                    wall, units_ray = embed_ray(settings, store, n)
                    assert units_ray == units, (units_ray, units)
                    runs.setdefault(f"embed ray-{n}", []).append(wall)
            print(json.dumps({k: [round(x, 2) for x in v] for k, v in runs.items()}), flush=True)
        ray.shutdown()
    table = []
    for name, walls in runs.items():
        median = statistics.median(walls)
        row = {
            "stage": name,
            "median_seconds": round(median, 2),
            "runs": [round(x, 2) for x in walls],
        }
        if name.startswith("transcribe"):
            row["audio_hours_per_hour"] = round(seconds / median, 1)
        else:
            row["texts"] = units
            row["texts_per_second"] = round(units / median, 1)
        table.append(row)
    results["rows"] = table
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(results, indent=2) + "\n")
    print("| stage | median s | throughput |\n|---|---:|---:|")
    for row in table:
        unit = (
            f"{row['audio_hours_per_hour']} audio h/h"
            if "audio_hours_per_hour" in row
            else f"{row['texts_per_second']} texts/s"
        )
        print(f"| {row['stage']} | {row['median_seconds']} | {unit} |")


if __name__ == "__main__":
    main()
