"""Passage search on the demo world's real-speech episodes: does the passage that answers a
specific question come first, with its timestamps?

The demo world (`coldstart demo`'s first four stages: world, ingest, Whisper transcription
of the four recorded clips in coldstart/demo_assets, embedding and indexes) has 288
episode transcripts: 284 generated from the world's topic vocabulary, which talk about
the same topics as the clips, and the four real recordings, transcribed by Whisper.
Each query below was written by hand for one recording, from what is said in it; a hit
is that recording's passage. Reported per passage lexical weight (0 = dense cosine
alone): hit@1, MRR@10, and for the old route (`search(kind="episode")`, the best
episode and its closest passage) hit@1 by episode.

    .venv/bin/python benchmarks/passage_search.py --home /tmp/passages --json benchmarks/results/passage_search.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from coldstart.content.search import SearchService  # noqa: E402
from coldstart.core.config import Settings  # noqa: E402
from coldstart.core.store import Store  # noqa: E402

# clip (coldstart/demo_assets/<clip>.ogg) -> questions it answers
QUERIES = {
    "truecrime": [
        "which suspect did the evidence point to",
        "how long the murder trial would take",
        "a detective arriving at the crime scene",
    ],
    "science": [
        "a guest who studies telescopes and how galaxies evolve",
        "the physics of stars and black holes",
    ],
    "history": [
        "what archaeology says about daily life in ancient Rome",
        "emperors, the Roman army and the fall of the empire",
    ],
    "technology": [
        "robots getting smarter every year",
        "how fast programming is changing",
    ],
}
WEIGHTS = (0.0, 0.1, 0.3, 1.0)


def build(home: Path) -> tuple[Store, Settings]:
    from rich.console import Console

    from coldstart.content.index import index_content
    from coldstart.demo.run import STAGES, DemoContext
    from coldstart.demo.world import WorldConfig

    settings = Settings(home=home)
    store = Store.from_settings(settings)
    if store.items(("episode",)).empty:
        ctx = DemoContext(
            settings=settings, store=store, console=Console(quiet=True), config=WorldConfig()
        )
        for _, stage in STAGES[:3]:  # world, ingest, Whisper transcription of the clips
            stage(ctx)
    index_content(store, settings, progress=False)  # incremental: a rerun embeds nothing
    return store, settings


def clip_episodes(store: Store) -> dict[str, str]:
    """clip name -> the episode that carries its recording."""
    items = store.items(("episode",))
    return {
        Path(str(p)).stem: i
        for i, p in zip(items["item_id"], items["audio_path"])
        if isinstance(p, str) and p
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, help="Keep the demo home here; reruns reuse it.")
    parser.add_argument("--json", type=Path, help="Write the results as JSON here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store, settings = build(args.home or Path(tmp))
        episode_of = clip_episodes(store)
        service = SearchService(store, settings)
        passages = len(service._passage_rows)
        result = {"passages": passages, "real_speech_episodes": episode_of, "modes": {}}
        rows = []
        for weight in WEIGHTS:
            settings.embed.passage_lexical_weight = weight
            ranks, details = [], []
            for clip, queries in QUERIES.items():
                for q in queries:
                    hits = service.search_passages(q, k=10)
                    ids = [h.item_id for h in hits]
                    rank = ids.index(episode_of[clip]) + 1 if episode_of[clip] in ids else 0
                    ranks.append(rank)
                    top = hits[0]
                    details.append(
                        {
                            "query": q,
                            "rank": rank,
                            "top": top.item_id,
                            "start": top.start,
                            "end": top.end,
                        }
                    )
            rr = [1 / r if r else 0.0 for r in ranks]
            result["modes"][f"passages, lexical weight {weight}"] = {
                "hit@1": float(np.mean([r == 1 for r in ranks])),
                "mrr@10": float(np.mean(rr)),
                "queries": details,
            }
            rows.append(
                (
                    f"passages, lexical weight {weight}",
                    np.mean([r == 1 for r in ranks]),
                    np.mean(rr),
                )
            )
        settings.embed.passage_lexical_weight = Settings().embed.passage_lexical_weight
        ranks = []
        for clip, queries in QUERIES.items():
            for q in queries:
                ids = [h.item_id for h in service.search(q, k=10, kind="episode")]
                ranks.append(ids.index(episode_of[clip]) + 1 if episode_of[clip] in ids else 0)
        rr = [1 / r if r else 0.0 for r in ranks]
        hit1 = float(np.mean([r == 1 for r in ranks]))
        result["modes"]["episodes (search kind=episode, default mode)"] = {
            "hit@1": hit1,
            "mrr@10": float(np.mean(rr)),
        }
        rows.append(("episodes (search kind=episode, default mode)", hit1, np.mean(rr)))
    n = sum(len(q) for q in QUERIES.values())
    print(f"{n} queries, {passages} transcript passages, {len(episode_of)} real-speech episodes\n")
    print("| route | hit@1 | MRR@10 |\n|---|---:|---:|")
    for name, hit1, mrr in rows:
        print(f"| {name} | {hit1:.3f} | {mrr:.3f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
