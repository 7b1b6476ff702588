"""Demo stage: audiobooks for listeners with no audiobook history (2T-HGNN).

Evaluates the two-tower against popularity and the music kNN baseline on the cold-start
split, trains it on everything, registers it as an artifact (the server loads it),
and shows a cold listener's picks and where a brand-new, text-only audiobook lands.
"""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from coldstart.artifacts.registry import SERVED_KINDS
from coldstart.artifacts.training import load_interaction_data, train_model
from training.baselines import PopularityRecommender
from training.cross_domain import MusicItemKNN
from training.evaluate import evaluate
from training.splits import cold_user_split
from training.two_tower import TwoTowerRecommender

__all__ = ["stage_audiobooks"]


def stage_audiobooks(ctx) -> None:
    encoder = getattr(ctx.results.get("search"), "encoder", None)
    data = load_interaction_data(ctx.store)

    models = {
        "popularity": PopularityRecommender,
        "music_knn": MusicItemKNN,
        "two_tower": TwoTowerRecommender,
    }
    result = evaluate(data, "audiobook", seeds=(0,), models=models)
    table = Table(
        "model",
        "ndcg@10",
        "recall@10",
        "fit s",
        title=f"cold listeners, audiobooks ({len(data.content)} items with text)",
    )
    for name, r in result["models"].items():
        table.add_row(
            name, f"{r['ndcg@10']:.3f}", f"{r['recall@10']:.3f}", f"{r['fit_seconds']:.1f}"
        )
    ctx.console.print(table)

    model, _ = train_model(
        ctx.store, ctx.settings, "two_tower", "audiobook", data=data, seed=ctx.config.seed
    )
    m = model.metrics
    ctx.console.print(
        f"two-tower trained: graph {m.get('graph_nodes', 0)} nodes / {m.get('graph_edges', 0)} edges, "
        f"{m['train_pairs']} listener-audiobook pairs, val ndcg@10 {m['val_ndcg@10']:.3f}; registered {SERVED_KINDS['two_tower'].artifact('audiobook')!r}"
    )

    titles = data.items.set_index("item_id")["title"].astype(str)
    genres = data.items.set_index("item_id")["genre"].astype(str)
    cold = cold_user_split(data, "audiobook", 0.2, seed=0).users
    user = next((u for u in cold if u.spoken), cold[0])
    ranking = model.recommend(user, k=5)
    picks = Table(
        "#",
        "audiobook",
        "genre",
        "score",
        title=f"{user.user_id}: no audiobook history, {len(user.music)} music items, {len(user.spoken)} podcast plays",
    )
    for rank, (item, score) in enumerate(zip(ranking.item_ids, ranking.scores), start=1):
        picks.add_row(str(rank), titles.get(item, item), genres.get(item, ""), f"{score:.3f}")
    ctx.console.print(picks)

    if encoder is not None:
        book = {
            "item_id": "book-new-demo",
            "kind": "audiobook",
            "language": "en",
            "genre": "history",
            "title": "The Fall of Empires",
            "description": "Ancient empires, their wars, kings and the archives historians read.",
        }
        vec = encoder.encode([f"{book['title']}. {book['description']}"])[0]
        model.add_items(pd.DataFrame([book]), {book["item_id"]: vec})
        near = model.similar_items(book["item_id"], 5)
        ctx.console.print(
            f"new audiobook {book['title']!r} (no listeners, text only) lands next to: "
            + "; ".join(f"{titles.get(i, i)} ({genres.get(i, '')})" for i in near)
        )
