"""The three-layer pipeline on the small served world (real models, no HTTP)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import serving_world

from coldstart.core.config import RulesSettings, Settings
from coldstart.core.store import Store
from coldstart.recommend.candidates import AffinitySource
from coldstart.recommend.loading import load_serving_models, store_version
from coldstart.recommend.pipeline import OnboardingPipeline
from training.data import UserProfile


@pytest.fixture(scope="session")
def served_home(tmp_path_factory):
    return serving_world.build(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def models(served_home):
    settings = Settings(home=served_home)
    return load_serving_models(settings, Store.from_settings(settings), search=False)


def profile(home, user_id: str | None = None, **overrides) -> UserProfile:
    store = Store(Settings(home=home).db_url)
    inter = store.interactions().merge(store.items()[["item_id", "kind"]], on="item_id")
    music = inter[inter["kind"].isin(["artist", "track"])]
    user_id = user_id or sorted(music["user_id"])[0]
    rows = music[music["user_id"] == user_id]
    user = store.users().set_index("user_id").loc[user_id]
    fields = {"country": user["country"], "language": user["language"], "age": float(user["age"])}
    fields.update(overrides)
    return UserProfile(user_id, dict(zip(rows["item_id"], rows["weight"])), **fields)


def test_faiss_affinity_candidates_equal_the_models_own_ranking(models, served_home):
    model = models.affinity["podcast"]
    source = AffinitySource(model)
    user = profile(served_home)
    got = source.generate(user, 10)
    # faiss retrieves by the network's own scores (the blend of a served model ranks the
    # whole catalog itself, see the pipeline's sources).
    scores, _, _ = model.score_batch([user])
    want = np.argsort(-scores[0], kind="stable")[:10]
    assert [c.item_id for c in got.candidates] == [model.item_ids[i] for i in want]
    np.testing.assert_allclose(
        [c.score for c in got.candidates], scores[0][want], rtol=1e-4, atol=1e-4
    )
    assert source.generate(UserProfile("nobody", {"ghost": 1.0}), 10).fallback


def test_pins_come_first_even_for_a_cold_listener(models, served_home):
    settings = Settings(
        home=served_home, rules=RulesSettings(pins=["show015", "book0003"], match_language=False)
    )
    pipeline = OnboardingPipeline(models, settings)
    for user in (profile(served_home), UserProfile("cold", {})):
        result = pipeline.recommend(user, 5)
        assert result.shows[0].item_id == "show015" and "rule:pin" in result.shows[0].reasons
        assert "source:editorial" in result.shows[0].reasons
        assert result.audiobooks[0].item_id == "book0003"


def test_minors_never_get_explicit_items(models, served_home):
    explicit = {i for i, m in models.catalog.metadata.items() if m["explicit"]}
    assert explicit, "the demo world has explicit comedy shows"
    settings = Settings(
        home=served_home, rules=RulesSettings(match_language=False, max_per_genre=10)
    )
    pipeline = OnboardingPipeline(models, settings)
    adult = pipeline.recommend(UserProfile("cold", {}, age=30), 16)
    minor = pipeline.recommend(UserProfile("cold", {}, age=15), 16)
    assert explicit & {i.item_id for i in adult.shows}
    assert not explicit & {i.item_id for i in minor.shows + minor.episodes}
    # Anonymous onboarding (no age) is treated as possibly a minor by default.
    unknown = pipeline.recommend(UserProfile("cold", {}), 16)
    assert not explicit & {i.item_id for i in unknown.shows + unknown.episodes + unknown.audiobooks}
    opted_in = OnboardingPipeline(
        models,
        Settings(
            home=served_home,
            rules=RulesSettings(
                match_language=False, max_per_genre=10, explicit_when_age_unknown=True
            ),
        ),
    )
    assert explicit & {i.item_id for i in opted_in.recommend(UserProfile("cold", {}), 16).shows}


def test_episodes_are_the_newest_of_recommended_shows(models, served_home):
    pipeline = OnboardingPipeline(models, Settings(home=served_home))
    result = pipeline.recommend(profile(served_home), 5)
    shows = [s.item_id for s in result.shows]
    assert [e.show_id for e in result.episodes] == shows
    for episode in result.episodes:
        assert episode.item_id == models.catalog.episodes[episode.show_id][0]
        assert (
            "rule:latest_episode" in episode.reasons
            and f"show:{episode.show_id}" in episode.reasons
        )


def test_store_version_changes_with_a_new_artifact(served_home):
    store = Store(Settings(home=served_home).db_url)
    before = store_version(store)
    store.register_artifact("test:marker", served_home, {"kind": "marker"})
    assert store_version(store) != before


def test_served_fallbacks_read_only_spoken_plays_and_rank_as_on_every_table(served_home):
    """The server fits its popularity fallbacks on the spoken-word plays alone (a large
    store is mostly music plays): same rankings, per segment and globally, as when they
    are fitted on the whole store."""
    from coldstart.artifacts.training import load_interaction_data
    from coldstart.recommend.loading import load_popularity_data
    from training.baselines import SegmentPopularityRecommender

    store = Store(Settings(home=served_home).db_url)
    whole, served = load_interaction_data(store, content=False), load_popularity_data(store)
    kinds = whole.interactions.merge(whole.items[["item_id", "kind"]], on="item_id")["kind"]
    spoken = whole.interactions[kinds.isin(["show", "episode", "audiobook"]).to_numpy()]
    assert list(served.interactions.columns) == ["user_id", "item_id", "weight"]
    key = ["user_id", "item_id", "weight"]
    pd.testing.assert_frame_equal(
        served.interactions.sort_values(key).reset_index(drop=True),
        spoken[key].sort_values(key).reset_index(drop=True),
    )
    assert 0 < len(served.interactions) < len(whole.interactions)  # music plays not read
    users = [
        profile(served_home),
        profile(served_home, country=None, language=None),  # global popularity
        *(profile(served_home, u) for u in sorted(whole.users["user_id"])[:20]),
    ]
    for target in ("podcast", "audiobook"):
        on_whole = SegmentPopularityRecommender(target).fit(whole)
        on_served = SegmentPopularityRecommender(target).fit(served)
        assert on_served._tables.keys() == on_whole._tables.keys()
        for user in users:
            got, want = on_served.recommend(user, k=20), on_whole.recommend(user, k=20)
            assert (got.item_ids, got.fallback) == (want.item_ids, want.fallback)
            np.testing.assert_array_equal(got.scores, want.scores)
