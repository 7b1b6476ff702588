"""Genre precision@10 of dense, lexical (BM25) and hybrid (RRF) search on the Apple Podcasts catalogue.

Each query is a natural-language request written for one genre (never just the genre's
name); a returned show counts as relevant when its Apple genre is that genre.

    .venv/bin/python benchmarks/search_quality.py /work/shared/data/apple-podcasts/podcasts_info.json
    .venv/bin/python benchmarks/search_quality.py            # the 200-show slice in tests/data

Prints a markdown table (per genre and mean) and writes JSON with `--json PATH`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coldstart.config import Settings  # noqa: E402
from coldstart.embeddings import embed_items, load_encoder  # noqa: E402
from coldstart.importers import apple_podcasts  # noqa: E402
from coldstart.index import sync_indexes  # noqa: E402
from coldstart.ingest import ingest_dataset  # noqa: E402
from coldstart.search import MODES, SearchService  # noqa: E402
from coldstart.store import Store  # noqa: E402

QUERIES: dict[str, list[str]] = {
    "Arts": ["interviews with painters, designers and poets about their creative process",
             "books, literature and the craft of writing"],
    "Business": ["how founders raise money and grow a startup",
                 "investing, markets and personal finance advice"],
    "Comedy": ["funny banter and jokes from stand-up comedians",
               "hilarious improvised conversations that make you laugh"],
    "Education": ["learn a new language with short daily lessons",
                  "tips for students and teachers on studying better"],
    "Fiction": ["audio drama with actors performing a serialized story",
                "scary short stories read aloud"],
    "Government": ["how congress, elections and public policy work",
                   "inside the military, federal agencies and national security"],
    "Health & Fitness": ["workouts, nutrition and losing weight",
                         "mental health, anxiety and mindfulness advice"],
    "History": ["stories from ancient rome and medieval europe",
                "what really happened in world war two"],
    "Kids & Family": ["bedtime stories for children",
                      "parenting advice for moms and dads raising toddlers"],
    "Leisure": ["video games, gaming news and reviews",
                "cars, gardening, crafts and other hobbies"],
    "Music": ["conversations with musicians about songs and albums",
              "the stories behind hip hop and rock records"],
    "News": ["a daily briefing on today's headlines",
             "political news and analysis of the week's events"],
    "Religion & Spirituality": ["sermons and bible teaching from a pastor",
                                "faith, prayer and a relationship with god"],
    "Science": ["space, physics and the mysteries of the universe",
                "biology, evolution and new discoveries by researchers"],
    "Society & Culture": ["personal stories about relationships and modern life",
                          "conversations about identity, race and culture in america"],
    "Sports": ["football and basketball analysis and fantasy picks",
               "interviews with athletes about training and competition"],
    "Technology": ["gadgets, apple and the latest in silicon valley",
                   "software engineering, artificial intelligence and programming"],
    "TV & Film": ["movie reviews and reactions to the latest blockbusters",
                  "recaps of tv series episodes and streaming shows"],
    "True Crime": ["stories about serial killers and unsolved cases",
                   "murder investigations, trials and missing persons"],
}


def build(src: Path, home: Path) -> tuple[Store, Settings, dict]:
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    dataset = home / "dataset"
    apple_podcasts(src, dataset)
    ingest_dataset(store, dataset)
    encoder = load_encoder(settings)
    report = embed_items(store, settings, encoder=encoder)
    syncs = sync_indexes(store, settings, encoder.model_id, dim=encoder.dim)
    info = {"embed": report.to_dict(), "indexes": [s.to_dict() for s in syncs]}
    return store, settings, info


def evaluate(service: SearchService, k: int = 10) -> dict:
    genre_of = service.items["genre"].to_dict()
    rows: dict[str, dict[str, list[float]]] = {}
    latency: dict[str, list[float]] = {m: [] for m in MODES}
    for genre, queries in QUERIES.items():
        for query in queries:
            for mode in MODES:
                t0 = time.perf_counter()
                hits = service.search(query, k=k, kind="show", mode=mode)
                latency[mode].append(time.perf_counter() - t0)
                precision = sum(genre_of.get(h.item_id) == genre for h in hits) / k
                rows.setdefault(genre, {}).setdefault(mode, []).append(precision)
    per_genre = {g: {m: float(np.mean(v)) for m, v in by_mode.items()} for g, by_mode in rows.items()}
    mean = {m: float(np.mean([per_genre[g][m] for g in per_genre])) for m in MODES}
    p50 = {m: float(np.median(v) * 1000) for m, v in latency.items()}
    return {"k": k, "queries": sum(len(q) for q in QUERIES.values()), "per_genre": per_genre,
            "mean": mean, "latency_ms_p50": p50}


def markdown(result: dict) -> str:
    lines = ["| genre | dense | lexical | hybrid |", "|---|---:|---:|---:|"]
    for genre, by_mode in sorted(result["per_genre"].items()):
        lines.append(f"| {genre} | " + " | ".join(f"{by_mode[m]:.2f}" for m in MODES) + " |")
    lines.append("| **mean** | " + " | ".join(f"**{result['mean'][m]:.3f}**" for m in MODES) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("catalogue", nargs="?", type=Path, default=ROOT / "tests/data/apple-podcasts-sample.json")
    parser.add_argument("--home", type=Path, help="Reuse this home (embeddings are cached there).")
    parser.add_argument("--json", type=Path, help="Write the results as JSON here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp)
        store, settings, info = build(args.catalogue, home)
        service = SearchService(store, settings)
        result = evaluate(service)
        result.update(catalogue=str(args.catalogue), shows=int((service.items["kind"] == "show").sum()),
                      model_id=service.encoder.model_id, **info)
    print(markdown(result))
    print(f"\n{result['queries']} queries over {result['shows']} shows, model {result['model_id']}; "
          f"p50 latency ms: " + ", ".join(f"{m} {v:.1f}" for m, v in result["latency_ms_p50"].items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
