"""The GNN two-tower audiobook recommender on a small seeded demo world."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from recommender_contract import RecommenderContract

from coldstart.demo.world import WorldConfig, build_world
from graph import colisten_pairs
from training.baselines import PopularityRecommender
from training.data import InteractionData, UserProfile
from training.evaluate import evaluate
from training.gnn_only import GNNOnlyRecommender
from training.item_graph import spoken_events, training_graph
from training.splits import cold_user_split
from training.two_tower import TwoTowerConfig, TwoTowerRecommender

DIM = 64


def bag_of_words(text: str) -> np.ndarray:
    """A hashed, unit-length bag of words: a real (if crude) content vector that
    carries the world's per-genre topic words, without loading a sentence model."""
    vec = np.zeros(DIM, np.float32)
    for word in str(text).lower().split():
        vec[zlib.crc32(word.encode()) % DIM] += 1.0
    norm = np.linalg.norm(vec)
    return vec / norm if norm else vec


def world_data(users: int = 600, text: bool = True, seed: int = 0) -> InteractionData:
    world = build_world(WorldConfig(users=users, shows=24, audiobooks=80, seed=seed))
    inter = world.interactions.copy()
    inter["timestamp"] = pd.to_datetime(inter["timestamp"]).astype("int64") // 10**9
    content = {}
    if text:
        spoken = world.items[world.items["kind"].isin(["show", "audiobook"])]
        content = {
            r.item_id: bag_of_words(f"{r.title} {r.description}") for r in spoken.itertuples()
        }
    return InteractionData(
        items=world.items,
        interactions=inter,
        users=world.users,
        playlists=world.playlists,
        content=content,
    )


@pytest.fixture(scope="module")
def data() -> InteractionData:
    return world_data()


@pytest.fixture(scope="module")
def split(data):
    return cold_user_split(data, "audiobook", 0.2, seed=0)


@pytest.fixture(scope="module")
def fitted(split) -> TwoTowerRecommender:
    return TwoTowerRecommender("audiobook", seed=0, config=TwoTowerConfig(use_gnn=True)).fit(
        split.train
    )


def test_beats_popularity_on_the_demo_world(data):
    models = {"popularity": PopularityRecommender, "two_tower": TwoTowerRecommender}
    result = evaluate(data, "audiobook", seeds=(0,), models=models)["models"]
    pop, tt = result["popularity"]["ndcg@10"], result["two_tower"]["ndcg@10"]
    # Measured 0.345 vs 0.231 on this world and split; "clearly" = at least 20% better.
    assert tt > 1.2 * pop, (tt, pop)
    assert result["two_tower"]["fallback_share"] == 0.0


def test_graph_has_no_edge_from_a_held_out_user(data, split):
    cfg = TwoTowerConfig()
    graph = training_graph(split.train, spoken_events(split.train), cfg)
    got = {}
    for et in graph.edge_types:
        ei, w = graph.data[et].edge_index, graph.data[et].edge_weight
        for s, d, c in zip(ei[0].tolist(), ei[1].tolist(), w.tolist()):
            a, b = graph.item_ids[et[0]][s], graph.item_ids[et[2]][d]
            if a < b:
                got[(a, b)] = c
    cold = {u.user_id for u in split.users}
    events = spoken_events(data)
    allowed = events[~(events["user_id"].isin(cold) & (events["kind"] == "audiobook"))]
    expected = {(a, b): float(c) for a, b, c in colisten_pairs(allowed).itertuples(index=False)}
    assert got == expected
    # The check can fail: the hidden plays would have added edges.
    everything = {(a, b) for a, b, _ in colisten_pairs(events).itertuples(index=False)}
    assert everything - set(expected)


def test_recommend_contract_basics(fitted, split):
    user = split.users[0]
    ranking = fitted.recommend(user, k=5)
    assert len(ranking.item_ids) == 5 and len(set(ranking.item_ids)) == 5
    assert np.all(np.diff(ranking.scores) <= 1e-6)
    excluded = fitted.recommend(user, k=5, exclude=ranking.item_ids[:2])
    assert not set(ranking.item_ids[:2]) & set(excluded.item_ids)
    nobody = fitted.recommend(UserProfile("ghost", {"no-such-artist": 3.0}), k=5)
    assert nobody.fallback and nobody.unknown_items == ["no-such-artist"]
    batch = fitted.recommend_batch(split.users[:3], k=5)
    assert [r.item_ids for r in batch] == [
        fitted.recommend(u, k=5).item_ids for u in split.users[:3]
    ]


def test_user_vector_uses_spoken_history(fitted, split):
    user = next(u for u in split.users if u.spoken)
    cold = UserProfile(user.user_id, user.music, {}, user.country, user.language, user.age)
    with_history, _, _ = fitted.user_vectors([user])
    without, _, _ = fitted.user_vectors([cold])
    assert with_history.shape == (1, 128)
    assert np.allclose(np.linalg.norm(with_history, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(with_history, without)


def test_saved_model_reloads_to_identical_scores(fitted, split, tmp_path):
    manifest = fitted.save(tmp_path / "tt")
    loaded = TwoTowerRecommender.load(tmp_path / "tt")
    a, b = (
        fitted.recommend_batch(split.users[:10], k=10),
        loaded.recommend_batch(split.users[:10], k=10),
    )
    assert [r.item_ids for r in a] == [r.item_ids for r in b]
    assert all(np.array_equal(x.scores, y.scores) for x, y in zip(a, b))
    on_disk = json.loads((tmp_path / "tt" / "manifest.json").read_text())
    assert on_disk["config"]["out_dim"] == 128 and on_disk["data_hash"] == manifest["data_hash"]
    assert loaded.config == fitted.config


def test_new_audiobook_with_text_only_lands_near_its_genre(data, tmp_path):
    model = TwoTowerRecommender("audiobook", seed=0).fit(data)
    books = data.items[data.items["kind"] == "audiobook"]
    hits = []
    for genre, group in books.groupby("genre"):
        source = group.iloc[0]
        new_id = f"new-{source['item_id']}"
        frame = pd.DataFrame(
            [
                {
                    "item_id": new_id,
                    "kind": "audiobook",
                    "language": source["language"],
                    "genre": genre,
                }
            ]
        )
        vec = bag_of_words(f"{source['title']} {source['description']}")
        assert model.add_items(frame, {new_id: vec}) == [new_id]
        genre_of = books.set_index("item_id")["genre"]
        near = [i for i in model.similar_items(new_id, 5) if i in genre_of.index]
        hits.append(np.mean([genre_of[i] == genre for i in near]))
    # Eight genres: chance is 1/8. The new items were placed by text and metadata alone.
    assert np.mean(hits) > 0.5, hits
    # ...and they are retrievable, and survive a save/load.
    model.save(tmp_path / "m")
    again = TwoTowerRecommender.load(tmp_path / "m")
    assert again.item_ids == model.item_ids
    assert again.similar_items(new_id, 5) == model.similar_items(new_id, 5)


def test_id_only_catalog_and_ablations_run():
    data = world_data(users=300, text=False)
    split = cold_user_split(data, "audiobook", 0.2, seed=1)
    for model in (
        TwoTowerRecommender("audiobook", 1).fit(split.train),
        TwoTowerRecommender("audiobook", 1, TwoTowerConfig(use_gnn=True)).fit(split.train),
        GNNOnlyRecommender("audiobook", 1).fit(split.train),
    ):
        ranking = model.recommend(split.users[0], k=10)
        assert len(ranking.item_ids) == 10 and not ranking.fallback


def test_music_bag_and_item_id_ablation_round_trips(tmp_path):
    """The ablation with a bag over music items and learned item ids: trained ids only
    for labelled items, a new item gets none, and a reload scores the same."""
    data = world_data(users=300, text=False)
    split = cold_user_split(data, "audiobook", 0.2, seed=1, cold_history="music")
    cfg = TwoTowerConfig(music_dim=8, id_dim=8, max_epochs=3)
    model = TwoTowerRecommender("audiobook", 1, cfg).fit(split.train)
    assert model.music_vocab and set(model.id_index) == {i for _, i in model._label_pairs} & set(
        model.item_ids
    )
    assert model.user_tower.music is not None and model.item_tower.item_id is not None
    model.add_items(
        pd.DataFrame({"item_id": ["brand-new"], "language": ["en"], "genre": ["history"]})
    )
    assert int(model._items_in["item_index"][-1]) == 0
    model.save(tmp_path / "m")
    again = TwoTowerRecommender.load(tmp_path / "m")
    users = split.users[:20]
    np.testing.assert_allclose(
        again.network_scores(users)[0], model.network_scores(users)[0], rtol=1e-5, atol=1e-5
    )
    assert [r.item_ids for r in again.recommend_batch(users, 10)] == [
        r.item_ids for r in model.recommend_batch(users, 10)
    ]


class TestTwoTowerContract(RecommenderContract):
    personalised = True
    target = "audiobook"

    def make(self, target, seed):
        return TwoTowerRecommender(target, seed)


class TestTwoTowerWithGNNContract(RecommenderContract):
    personalised = True
    target = "audiobook"

    def make(self, target, seed):
        return TwoTowerRecommender(target, seed, TwoTowerConfig(use_gnn=True))


class TestGNNOnlyContract(RecommenderContract):
    personalised = True
    served = False  # an ablation
    target = "audiobook"

    def make(self, target, seed):
        return GNNOnlyRecommender(target, seed)


def test_a_validation_pair_never_reaches_a_feature(split):
    """Popularity and graph degree count training pairs only: adding a target play for a
    validation user (an answer early stopping is judged on) changes no feature."""
    cfg = TwoTowerConfig(max_epochs=1, blend=False, use_gnn=True)
    first = TwoTowerRecommender("audiobook", 0, cfg).fit(split.train)
    user = first.val_users[0]
    played = set(
        split.train.interactions.loc[split.train.interactions["user_id"] == user, "item_id"]
    )
    book = next(i for i in split.train.catalog("audiobook")["item_id"] if i not in played)
    extra = pd.DataFrame([{"user_id": user, "item_id": book, "weight": 5.0, "timestamp": 0}])
    inter = pd.concat([split.train.interactions, extra], ignore_index=True)
    second = TwoTowerRecommender("audiobook", 0, cfg).fit(replace(split.train, interactions=inter))
    assert second.val_users == first.val_users
    assert _features(first) == _features(second)
    # The same play by a training user does change them: the test can fail.
    trainer = next(
        u for u in sorted(set(split.train.interactions["user_id"])) if u not in first.val_users
    )
    extra["user_id"] = trainer
    third = TwoTowerRecommender("audiobook", 0, cfg).fit(
        replace(
            split.train,
            interactions=pd.concat([split.train.interactions, extra], ignore_index=True),
        )
    )
    assert _features(first) != _features(third)


def _features(model: TwoTowerRecommender) -> dict[str, tuple[float, float]]:
    """Per item: (log-popularity feature, co-listening degree)."""
    pop = model._items_in["popularity"].tolist()
    return {
        i: (pop[r], float(model.graph.degree[model.graph.position[i]]))
        for r, i in enumerate(model.item_ids)
    }


def test_no_training_label_is_an_edge_of_the_graph(split):
    model = TwoTowerRecommender(
        "audiobook", 0, TwoTowerConfig(max_epochs=1, blend=False, use_gnn=True)
    ).fit(split.train)
    assert model._label_pairs and model._graph_pairs
    assert not model._label_pairs & model._graph_pairs
    # Validation users' target plays are in neither.
    val = set(model.val_users)
    kinds = split.train.kind_of()
    assert not {(u, i) for u, i in model._graph_pairs if u in val and kinds.get(i) == "audiobook"}
    assert not {u for u, _ in model._label_pairs} & val
