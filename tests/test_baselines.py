"""Baselines: the recommender contract, plus what each baseline specifically promises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from recommender_contract import RecommenderContract, cluster_items, toy_world

from training.baselines import (
    MusicKNNRecommender,
    PopularityRecommender,
    SegmentPopularityRecommender,
)
from training.data import InteractionData, UserProfile
from training.ranking import best_positions
from training.taste import TasteConfig

SMALL_TASTE = TasteConfig(dim=16, epochs=5)


class TestPopularityContract(RecommenderContract):
    personalised = False

    def make(self, target, seed):
        return PopularityRecommender(target, seed)


class TestPopularityAudiobookContract(TestPopularityContract):
    target = "audiobook"


class TestSegmentPopularityContract(RecommenderContract):
    personalised = False

    def make(self, target, seed):
        return SegmentPopularityRecommender(target, seed)


class TestMusicKNNContract(RecommenderContract):
    def make(self, target, seed):
        return MusicKNNRecommender(
            target, seed, neighbours=20, taste=TasteConfig(dim=16, epochs=5, seed=seed)
        )


class TestMusicKNNAudiobookContract(TestMusicKNNContract):
    target = "audiobook"


def test_popularity_counts_listeners_and_episode_plays_count_for_their_show():
    model = PopularityRecommender("podcast").fit(toy_world())
    ranking = model.recommend(UserProfile("x", {}), 100)
    assert ranking.item_ids[0] == "show-pop"  # half of all users, via its episode
    assert ranking.item_ids[-1] == "show-silent"  # nobody listens
    assert ranking.scores[0] > ranking.scores[1] > ranking.scores[-1]


def _segment_world() -> InteractionData:
    """Spanish listeners like show-es, English listeners show-en; show-en is bigger."""
    items = pd.DataFrame(
        [
            {"item_id": "t1", "kind": "track"},
            {"item_id": "show-en", "kind": "show"},
            {"item_id": "show-es", "kind": "show"},
        ]
    ).assign(show_id=None)
    rows, users = [], []
    for n in range(30):
        lang, country = ("es", "MX") if n < 10 else ("en", "US")
        users.append({"user_id": f"u{n}", "country": country, "language": lang, "age": None})
        rows += [(f"u{n}", "t1", 1.0), (f"u{n}", f"show-{lang}", 1.0)]
    return InteractionData(
        items=items,
        interactions=pd.DataFrame(rows, columns=["user_id", "item_id", "weight"]),
        users=pd.DataFrame(users),
    )


def test_segment_popularity_uses_country_then_language_then_global():
    model = SegmentPopularityRecommender("podcast", min_users=5).fit(_segment_world())
    assert model.recommend(UserProfile("a", {}, country="MX", language="es"), 1).item_ids == [
        "show-es"
    ]
    # Unknown country, known language: the language segment answers.
    assert model.recommend(UserProfile("b", {}, country="AR", language="es"), 1).item_ids == [
        "show-es"
    ]
    spanish_only = model.recommend(UserProfile("c", {}, language="es"), 1)
    assert spanish_only.item_ids == ["show-es"] and not spanish_only.fallback
    unknown = model.recommend(UserProfile("d", {}), 2)
    assert unknown.item_ids == ["show-en", "show-es"] and unknown.fallback


def test_segment_popularity_ignores_segments_below_min_users():
    model = SegmentPopularityRecommender("podcast", min_users=11).fit(_segment_world())
    ranking = model.recommend(UserProfile("a", {}, country="MX", language="es"), 1)
    assert ranking.item_ids == ["show-en"] and ranking.fallback


def test_knn_votes_come_from_taste_neighbours():
    model = MusicKNNRecommender("podcast", neighbours=10, taste=SMALL_TASTE).fit(toy_world())
    for c in range(3):
        user = UserProfile("new", {f"track-{c}-{i}": 5.0 for i in range(5)})
        ranking = model.recommend(user, 3)
        assert set(ranking.item_ids) & set(cluster_items("podcast", c)), ranking.item_ids
        assert ranking.scores[0] > ranking.scores[-1]


@pytest.mark.parametrize("seed", range(6))
def test_best_positions_are_the_stable_sorts_head(seed):
    """The partition-then-sort top k (`training.ranking.best_positions`, every list the
    fallbacks answer over a catalogue) equals the head of the full stable sort, with
    ties at the cut, negative zeros, NaN and k beyond the length."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    cost = rng.integers(-5, 5, n).astype(float)  # many ties
    cost[rng.random(n) < 0.05] = -0.0
    if seed % 2:
        cost[rng.random(n) < 0.2] = np.nan
    for k in (0, 1, 3, 10, n - 1, n, n + 5):
        expected = np.argsort(cost, kind="stable")[: max(k, 0)]
        np.testing.assert_array_equal(best_positions(cost, k), expected)
