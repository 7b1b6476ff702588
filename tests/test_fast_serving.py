"""The fast serving path (`coldstart.recommend.fast`) answers as the reference does.

The reference is each served model's own `recommend` (taste features and networks
through torch, the wide ridge as a kernel against the training listeners) and the
pipeline built on it (`OnboardingPipeline(fast=False)`). The fast path must give the
same rankings, and scores within float rounding, for both lists, on the demo world
(affinity models for shows and audiobooks, the two-tower for audiobooks) and on a
Douban slice (ID-only real data; books as shows, then as audiobooks).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import serving_world

from coldstart.artifacts.training import load_interaction_data
from coldstart.content.search import SearchService
from coldstart.core.config import Settings
from coldstart.core.store import Store
from coldstart.data.importers import douban
from coldstart.data.ingest import ingest_dataset
from coldstart.recommend.fast import ServedScorer, WideScorer, fast_scorer, popularity_lists
from coldstart.recommend.loading import load_serving_models
from coldstart.recommend.pipeline import OnboardingPipeline
from training.affinity import AffinityConfig, AffinityModel
from training.blend import ScoreBlend
from training.data import UserProfile
from training.taste import TasteConfig
from training.two_tower import TwoTowerConfig, TwoTowerRecommender

TASTE = TasteConfig(epochs=5)
DATA = Path(__file__).parent / "data"


def _profiles(store: Store, n: int) -> list[UserProfile]:
    inter = store.interactions().merge(store.items()[["item_id", "kind"]], on="item_id")
    music = inter[inter["kind"].isin(["artist", "track"])]
    users = store.users().set_index("user_id") if len(store.users()) else None
    out = []
    for user_id, group in list(music.groupby("user_id"))[:n]:
        fields = {}
        if users is not None and user_id in users.index:
            row = users.loc[user_id]
            fields = {"country": row["country"], "language": row["language"], "age": row["age"]}
            fields["age"] = None if fields["age"] is None else float(fields["age"])
        history = dict(zip(group["item_id"].astype(str), group["weight"].astype(float)))
        out.append(UserProfile("anonymous", history, **fields))
    known = next(iter(out[0].music))
    # Edge cases: no music, only unknown music, one known item among unknown ones,
    # no demographics at all.
    out += [
        UserProfile("empty", {}),
        UserProfile("unknown", {"no-such-artist": 3.0}),
        UserProfile("one", {known: 1.0, "no-such-track": 2.0}, language="es", age=None),
        UserProfile("bare", dict(out[1].music)),
    ]
    return out


def _forced(model, network: float):
    """`model` with its blend weights replaced (the trained blend may give the network
    weight 0 on small data, which would leave its path untested)."""
    if model.blend is None:
        return model
    model.blend = ScoreBlend({"wide": 1.0, "network": network}, dict(model.blend.validation))
    return model


def assert_same_ranking(fast, reference, tag: str, tol: float = 1e-4) -> None:
    """The same items with the same scores (within `tol`), in the same order except
    where two scores tie within `tol` (ID-only items with identical inputs, a
    catalogue's unlistened tail: float sums in another order break such ties either
    way). Blend scores are standardised (unit spread); the towers run in float32, so a
    few float32 roundings, scaled by 1 / temperature, remain."""
    assert fast.fallback == reference.fallback, tag
    assert sorted(fast.unknown_items) == sorted(reference.unknown_items), tag
    assert sorted(fast.item_ids) == sorted(reference.item_ids), tag
    by_item = dict(zip(reference.item_ids, np.asarray(reference.scores, np.float64)))
    expected = np.array([by_item[i] for i in fast.item_ids])
    np.testing.assert_allclose(fast.scores, expected, rtol=tol, atol=tol, err_msg=tag)
    assert (np.diff(expected) <= tol).all(), tag  # fast order is an order of the reference
    reference_scores = np.asarray(reference.scores, np.float64)
    for n, (mine, theirs) in enumerate(zip(fast.item_ids, reference.item_ids)):
        if mine != theirs:  # only a tie may swap
            assert abs(by_item[mine] - reference_scores[n]) <= tol, f"{tag}: place {n}"


def assert_models_agree(model, users: list[UserProfile]) -> None:
    scorer = fast_scorer(model)
    assert isinstance(scorer, ServedScorer)
    everything = len(model.item_ids)
    for n, user in enumerate(users):
        exclude = list(model.item_ids[:2]) if n % 3 == 0 else []
        assert_same_ranking(
            scorer.recommend(user, everything, exclude),
            model.recommend(user, everything, exclude),
            f"{model.kind}:{model.target} user {n}",
        )


def assert_pipelines_agree(
    models,
    settings: Settings,
    users: list[UserProfile],
    now: dt.datetime | None = None,
    k: int = 10,
) -> None:
    fast = OnboardingPipeline(models, settings)
    reference = OnboardingPipeline(models, settings, fast=False)
    assert any(
        isinstance(getattr(s, "model", None), ServedScorer)
        for sources in fast.sources.values()
        for s in sources
    )
    # Twice over the listeners: the second round answers from what the fast path keeps
    # per load (content neighbours per seed set, popularity lists per segment fields).
    for n, user in enumerate(users + users):
        a, b = fast.recommend(user, k, now), reference.recommend(user, k, now)
        for name in ("shows", "episodes", "audiobooks"):
            left, right = getattr(a, name), getattr(b, name)
            assert [i.item_id for i in left] == [i.item_id for i in right], f"{name} user {n}"
            assert [i.reasons for i in left] == [i.reasons for i in right], f"{name} user {n}"
            np.testing.assert_allclose(
                [i.score for i in left], [i.score for i in right], rtol=1e-4, atol=1e-4
            )
        assert (a.fallback, a.fallback_lists, a.unknown_items) == (
            b.fallback,
            b.fallback_lists,
            b.unknown_items,
        )


# --- the demo world ------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = serving_world.build(tmp_path_factory.mktemp("world"))
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    models = load_serving_models(settings, store, search=False)
    config = TwoTowerConfig(max_epochs=3, patience=2, taste=TASTE)
    models.trained["two_tower"] = {
        "audiobook": TwoTowerRecommender("audiobook", 0, config).fit(
            load_interaction_data(store, content=False)
        )
    }
    return models, settings, _profiles(store, 40)


@pytest.mark.parametrize("network", [None, 1.0, 0.25])
def test_demo_world_fast_models_rank_as_their_own_recommend(demo, network):
    models, _, users = demo
    for by_target in models.trained.values():
        for model in by_target.values():
            saved = model.blend
            try:
                assert_models_agree(model if network is None else _forced(model, network), users)
            finally:
                model.blend = saved


def test_demo_world_fast_pipeline_answers_as_the_reference(demo):
    models, settings, users = demo
    assert_pipelines_agree(models, settings, users)
    saved = {(k, t): m.blend for k, by in models.trained.items() for t, m in by.items()}
    try:
        for by_target in models.trained.values():
            for model in by_target.values():
                _forced(model, 1.0)
        assert_pipelines_agree(models, settings, users)
    finally:
        for (kind, target), blend in saved.items():
            models.trained[kind][target].blend = blend


def test_demo_world_columns_path_with_content_and_every_rule_answers_as_the_objects(demo):
    """The vectorised candidates, merge and rules (content neighbours from the faiss
    item index, pins, boosts, freshness, explicit, genre caps) against the object path."""
    models, settings, users = demo
    models = dataclasses.replace(
        models, search=SearchService(Store.from_settings(settings), settings)
    )
    shows = sorted(i for i, m in models.catalog.metadata.items() if m["kind"] == "show")
    books = sorted(i for i, m in models.catalog.metadata.items() if m["kind"] == "audiobook")
    newest = max(m["published_at"] for m in models.catalog.metadata.values() if m["published_at"])
    genre = next(m["genre"] for m in models.catalog.metadata.values() if m["genre"])
    variants = [
        {},
        {
            "pins": [shows[3], books[5], "no-such-item", shows[1]],
            "boosts": {f"genre:{genre}": 0.2, shows[7]: 0.3, books[2]: -0.1},
            "max_per_genre": 1,
            "freshness_days": 60,
            "explicit_when_age_unknown": True,
        },
        {"match_language": False, "allow_explicit": False, "max_per_genre": 0},
        # two episodes a show, tight genre caps, a negative freshness boost
        {"max_episodes_per_show": 2, "max_per_genre": 2, "freshness_days": 60},
        {"max_episodes_per_show": 0, "freshness_boost": -0.05, "freshness_days": 60},
    ]
    for update in variants:
        rules = settings.rules.model_copy(update=update)
        custom = settings.model_copy(update={"rules": rules})
        assert_pipelines_agree(models, custom, users, now=newest + dt.timedelta(days=3))


@pytest.mark.parametrize("k", [1, 3, 25])
def test_demo_world_one_pass_rules_answer_as_the_objects_for_any_k(demo, k):
    """The one-pass merge and rules (`ranked.apply_rule_rows`) stop walking the list
    once `k` items fit: for short and long lists alike, the answers are the objects'."""
    models, settings, users = demo
    shows = sorted(i for i, m in models.catalog.metadata.items() if m["kind"] == "show")
    genre = next(m["genre"] for m in models.catalog.metadata.values() if m["genre"])
    rules = settings.rules.model_copy(
        update={
            "pins": [shows[2], shows[0]],
            "boosts": {f"genre:{genre}": 0.15},
            "max_per_genre": 1,
            "max_episodes_per_show": 2,
        }
    )
    custom = settings.model_copy(update={"rules": rules})
    assert_pipelines_agree(models, custom, users[:20], k=k)


# --- a Douban slice (ID-only real data) ----------------------------------------------


@pytest.fixture(scope="module", params=["show", "audiobook"])
def douban_world(request, tmp_path_factory):
    kind = request.param
    root = tmp_path_factory.mktemp(f"douban-{kind}")
    douban(DATA / "douban-slice", root / "dataset", target=kind)
    settings = Settings(home=root / "home")
    store = Store.from_settings(settings)
    ingest_dataset(store, root / "dataset")
    data = load_interaction_data(store, content=False)
    target = "podcast" if kind == "show" else "audiobook"
    models = load_serving_models(settings, store, search=False)
    affinity = AffinityConfig(max_epochs=4, patience=2, taste=TASTE)
    models.trained["affinity"] = {target: AffinityModel(target, 0, affinity).fit(data)}
    if target == "audiobook":
        config = TwoTowerConfig(max_epochs=3, patience=2, taste=TASTE)
        models.trained["two_tower"] = {target: TwoTowerRecommender(target, 0, config).fit(data)}
    return models, settings, _profiles(store, 60)


def test_douban_fast_path_ranks_and_answers_as_the_reference(douban_world):
    models, settings, users = douban_world
    for forced in (None, 1.0):
        saved = {(k, t): m.blend for k, by in models.trained.items() for t, m in by.items()}
        try:
            for by_target in models.trained.values():
                for model in by_target.values():
                    if forced is not None:
                        _forced(model, forced)
                    assert_models_agree(model, users)
            assert_pipelines_agree(models, settings, users)
        finally:
            for (kind, target), blend in saved.items():
                models.trained[kind][target].blend = blend


def test_wide_scorer_kernel_fallback_equals_the_primal_weights(douban_world, monkeypatch):
    """Past `PRIMAL_MAX_CELLS` the wide part scores through the column-major kernel."""
    import coldstart.recommend.fast as fast

    models, _, users = douban_world
    model = next(iter(models.trained["affinity"].values()))
    primal = WideScorer(model.wide)
    monkeypatch.setattr(fast, "PRIMAL_MAX_CELLS", 0)
    kernel = WideScorer(model.wide)
    assert primal.primal and not kernel.primal
    for user in users:
        reference = model.wide.scores([user.music])[0]
        np.testing.assert_allclose(primal.scores(user.music), reference, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(kernel.scores(user.music), reference, rtol=1e-9, atol=1e-9)


def test_a_model_kind_without_a_fast_scorer_is_served_by_its_own_recommend(demo):
    models, _, _ = demo
    model = models.trained["affinity"]["podcast"]
    other = dataclasses.make_dataclass("Other", [("kind", str), ("net", object)])("other", object())
    assert fast_scorer(other) is None
    assert fast_scorer(model) is not None


def test_popularity_lists_answer_as_the_model_for_every_segment(demo):
    """Lists kept per (segment, k) give the model's own rankings, unknown items per
    listener, and a listener who excludes items is ranked by the model itself."""
    models, _, users = demo
    for target, model in models.popularity.items():
        lists = popularity_lists(model)
        assert lists is not None, target
        for round_ in range(2):  # the second round answers from the kept lists
            for n, user in enumerate(users):
                k = 5 if n % 2 else 10
                exclude = list(model._ids[:3]) if n % 5 == 0 else []
                mine, theirs = lists.recommend(user, k, exclude), model.recommend(user, k, exclude)
                tag = f"{target} round {round_} user {n}"
                assert mine.item_ids == theirs.item_ids, tag
                np.testing.assert_array_equal(mine.scores, theirs.scores, err_msg=tag)
                assert (mine.fallback, mine.unknown_items) == (
                    theirs.fallback,
                    theirs.unknown_items,
                ), tag
        assert lists.lists, target  # some lists were kept
