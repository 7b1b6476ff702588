"""The contract every `training.base.Recommender` passes, as a mixin (as in `implicit`).

Use it from a test module::

    from recommender_contract import RecommenderContract

    class TestMyModel(RecommenderContract):
        personalised = True          # uses music taste (False: popularity-like)
        target = "podcast"           # or "audiobook"

        def make(self, target, seed):
            return MyModel(target, seed, small_config)

Besides ranking, the mixin checks the rest of `training.base.Recommender`: a save/load
round trip (through the serving registry's `{kind: class}`), `similar_items` and
`add_items`. Ablations that are never served set `served = False`: they must then
refuse save/add_items with a clear `NotImplementedError`.

The toy world has a known right answer: three taste clusters, each with its own
tracks, shows (with episodes) and audiobooks, plus one show and one audiobook that
everybody likes. A listener of cluster-c music should get cluster-c items first; a
popularity model should put the crowd favourite first.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from training.base import Recommender
from training.baselines import PopularityRecommender
from training.data import InteractionData, UserProfile
from training.splits import cold_user_split

__all__ = ["RecommenderContract", "toy_world", "cluster_items", "cluster_music"]

CLUSTERS = 3
TRACKS_PER_CLUSTER = 8
SHOWS_PER_CLUSTER = 3
BOOKS_PER_CLUSTER = 3
POPULAR = {"podcast": "show-pop", "audiobook": "book-pop"}


def cluster_music(c: int) -> list[str]:
    return [f"track-{c}-{i}" for i in range(TRACKS_PER_CLUSTER)]


def cluster_items(target: str, c: int) -> list[str]:
    if target == "podcast":
        return [f"show-{c}-{i}" for i in range(SHOWS_PER_CLUSTER)]
    return [f"book-{c}-{i}" for i in range(BOOKS_PER_CLUSTER)]


@lru_cache(maxsize=4)
def toy_world(seed: int = 0, users_per_cluster: int = 40) -> InteractionData:
    """A small world with a known answer (see the module docstring). Deterministic."""
    rng = np.random.default_rng(seed)
    items = []
    for c in range(CLUSTERS):
        items += [{"item_id": t, "kind": "track", "genre": f"music{c}"} for t in cluster_music(c)]
        for s in cluster_items("podcast", c) + ["show-pop"] * (c == 0):
            items.append({"item_id": s, "kind": "show", "genre": f"spoken{c}", "language": "en"})
            items += [{"item_id": f"{s}-ep{e}", "kind": "episode", "show_id": s} for e in range(2)]
        for b in cluster_items("audiobook", c) + ["book-pop"] * (c == 0):
            items.append(
                {"item_id": b, "kind": "audiobook", "genre": f"spoken{c}", "language": "en"}
            )
    # An item nobody listens to: must be rankable, never crash anything.
    items.append({"item_id": "show-silent", "kind": "show", "language": "es"})
    items.append({"item_id": "book-silent", "kind": "audiobook", "language": "es"})
    items = pd.DataFrame(items)

    rows, users, playlists = [], [], []
    for c in range(CLUSTERS):
        for n in range(users_per_cluster):
            uid = f"u{c}-{n:03d}"
            users.append(
                {
                    "user_id": uid,
                    "country": ["US", "GB"][n % 2],
                    "language": "en",
                    "age": float(20 + n % 40),
                }
            )
            tracks = rng.choice(cluster_music(c), size=5, replace=False)
            rows += [(uid, t, float(rng.integers(1, 30))) for t in tracks]
            if n % 4 == 0:
                playlists += [(f"pl-{uid}", t, p) for p, t in enumerate(tracks)]
            for s in rng.choice(cluster_items("podcast", c), size=2, replace=False):
                rows.append((uid, f"{s}-ep{rng.integers(2)}", float(rng.integers(1, 10))))
            for b in rng.choice(cluster_items("audiobook", c), size=2, replace=False):
                rows.append((uid, b, float(rng.integers(1, 10))))
            if rng.random() < 0.5:
                rows.append((uid, "show-pop-ep0", 3.0))
            if rng.random() < 0.5:
                rows.append((uid, "book-pop", 3.0))
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id", "weight"]).assign(timestamp=0)
    return InteractionData(
        items=items,
        interactions=interactions,
        users=pd.DataFrame(users),
        playlists=pd.DataFrame(playlists, columns=["playlist_id", "item_id", "position"]),
    )


def _cold_user(c: int, music: dict | None = None, **demo) -> UserProfile:
    music = music if music is not None else {t: 10.0 for t in cluster_music(c)[:4]}
    return UserProfile(user_id=f"new-{c}", music=music, **demo)


class RecommenderContract:
    """Mixin of contract tests; subclasses implement `make(target, seed)`."""

    personalised = True
    target = "podcast"
    k = 5
    served = True  # saved, loaded by the server and extended with new items
    adds_without_content = True  # False: only items with a content vector can be added

    def make(self, target: str, seed: int) -> Recommender:  # pragma: no cover - overridden
        raise AssertionError("subclasses of RecommenderContract implement make(target, seed)")

    # Fitting once per class keeps the suite fast; tests never mutate the model.
    _fitted: dict = {}

    def fitted(self, seed: int = 0) -> Recommender:
        key = (type(self).__name__, self.target, seed)
        if key not in RecommenderContract._fitted:
            model = self.make(self.target, seed)
            assert model.fit(toy_world()) is model, "fit must return the recommender itself"
            RecommenderContract._fitted[key] = model
        return RecommenderContract._fitted[key]

    def catalog(self) -> set[str]:
        return set(toy_world().catalog(self.target)["item_id"])

    # --- shapes ----------------------------------------------------------------

    def test_recommend_shapes(self):
        ranking = self.fitted().recommend(_cold_user(0), self.k)
        assert len(ranking.item_ids) == self.k
        assert len(ranking.scores) == self.k
        assert len(set(ranking.item_ids)) == self.k, "no duplicates"
        assert set(ranking.item_ids) <= self.catalog(), "only items of the target catalog"
        assert np.all(np.diff(np.asarray(ranking.scores, dtype=float)) <= 1e-6), "best first"

    def test_k_larger_than_catalog_returns_whole_catalog(self):
        ranking = self.fitted().recommend(_cold_user(1), 10_000)
        assert sorted(ranking.item_ids) == sorted(self.catalog())

    def test_recommend_batch_matches_recommend(self):
        model = self.fitted()
        users = [_cold_user(c) for c in range(CLUSTERS)]
        batch = model.recommend_batch(users, self.k)
        for user, ranking in zip(users, batch):
            single = model.recommend(user, self.k)
            assert ranking.item_ids == single.item_ids
            np.testing.assert_allclose(ranking.scores, single.scores, rtol=1e-4, atol=1e-5)

    # --- the known answer --------------------------------------------------------

    def test_known_answer(self):
        model = self.fitted()
        if not self.personalised:
            assert model.recommend(_cold_user(0), 1).item_ids == [POPULAR[self.target]]
            return
        for c in range(CLUSTERS):
            ranking = model.recommend(_cold_user(c), len(self.catalog()))
            own = [i for i in ranking.item_ids if i != POPULAR[self.target]][:2]
            assert set(own) <= set(cluster_items(self.target, c)), (c, ranking.item_ids[:5])

    # --- behaviour -------------------------------------------------------------------

    def test_exclude_is_respected(self):
        model = self.fitted()
        top = model.recommend(_cold_user(2), self.k).item_ids
        again = model.recommend(_cold_user(2), self.k, exclude=top[:2])
        assert not set(top[:2]) & set(again.item_ids)
        assert len(again.item_ids) == self.k
        assert again.item_ids[: self.k - 2] == top[2:], "excluding items does not reorder the rest"

    def test_deterministic_with_a_seed(self):
        first = self.fitted(seed=0)
        second = self.make(self.target, 0).fit(toy_world())
        users = [_cold_user(c) for c in range(CLUSTERS)]
        for a, b in zip(
            first.recommend_batch(users, self.k), second.recommend_batch(users, self.k)
        ):
            assert a.item_ids == b.item_ids
            np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)

    def test_empty_music_falls_back_to_popularity(self):
        model = self.fitted()
        ranking = model.recommend(UserProfile(user_id="nobody", music={}), self.k)
        popular = (
            PopularityRecommender(self.target)
            .fit(toy_world())
            .recommend(UserProfile("nobody", {}), self.k)
        )
        assert ranking.item_ids == popular.item_ids
        if self.personalised:
            assert ranking.fallback is True
        assert ranking.unknown_items == []

    def test_unknown_music_items_are_listed(self):
        model = self.fitted()
        music = {
            cluster_music(0)[0]: 5.0,
            cluster_music(0)[1]: 3.0,
            "never-heard-1": 9.0,
            "never-heard-2": 1.0,
        }
        ranking = model.recommend(_cold_user(0, music, country="US", language="en"), self.k)
        assert sorted(ranking.unknown_items) == ["never-heard-1", "never-heard-2"]
        assert ranking.fallback is False
        only_unknown = model.recommend(_cold_user(0, {"never-heard-3": 2.0}), self.k)
        assert only_unknown.unknown_items == ["never-heard-3"]
        if self.personalised:
            assert only_unknown.fallback is True

    def test_no_leakage_of_hidden_history(self):
        """Rankings for the harness's cold users must not depend on their hidden
        target history: two worlds that differ only there give identical answers."""
        data = toy_world()
        split = cold_user_split(data, self.target, 0.25, seed=0)
        cold = {u.user_id for u in split.users}
        kinds = data.kind_of()
        hidden = data.interactions["user_id"].isin(cold) & data.interactions["item_id"].map(
            kinds
        ).isin(["show", "episode"] if self.target == "podcast" else ["audiobook"])
        altered = data.interactions.copy()
        # Every cold user "listened" to the last catalog items instead.
        altered.loc[hidden, "item_id"] = [
            f"{cluster_items(self.target, i % CLUSTERS)[0]}-ep0"
            if self.target == "podcast"
            else cluster_items(self.target, i % CLUSTERS)[0]
            for i in range(int(hidden.sum()))
        ]
        other = cold_user_split(replace(data, interactions=altered), self.target, 0.25, seed=0)
        assert [u.user_id for u in other.users] == [u.user_id for u in split.users]
        a = self.make(self.target, 0).fit(split.train).recommend_batch(split.users, self.k)
        b = self.make(self.target, 0).fit(other.train).recommend_batch(other.users, self.k)
        for ra, rb in zip(a, b):
            assert ra.item_ids == rb.item_ids
            np.testing.assert_allclose(ra.scores, rb.scores, rtol=1e-5, atol=1e-6)

    # --- the rest of the interface: persistence, similar items, new items ------------

    def _round_trip(self, tmp_path) -> Recommender:
        from coldstart.artifacts.registry import MODEL_KINDS, load_model

        model = self.fitted()
        manifest = model.save(tmp_path / "model", {"note": "contract"})
        assert manifest["target"] == self.target and manifest["note"] == "contract"
        assert MODEL_KINDS[manifest["kind"]] is type(model), "the registry knows the saved kind"
        return load_model(manifest["kind"], tmp_path / "model")

    def test_save_load_round_trip(self, tmp_path):
        model = self.fitted()
        if not self.served:
            with pytest.raises(NotImplementedError, match=type(model).__name__):
                model.save(tmp_path / "model")
            return
        loaded = self._round_trip(tmp_path)
        assert type(loaded) is type(model)
        assert loaded.known_items() == model.known_items()
        users = [_cold_user(c) for c in range(CLUSTERS)] + [UserProfile("nobody", {})]
        for a, b in zip(
            model.recommend_batch(users, self.k), loaded.recommend_batch(users, self.k)
        ):
            assert a.item_ids == b.item_ids and a.fallback == b.fallback
            np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)

    def test_similar_items(self):
        model = self.fitted()
        item = cluster_items(self.target, 0)[0]
        near = model.similar_items(item, 4)
        assert len(near) == 4 and len(set(near)) == 4
        assert item not in near, "an item is not its own neighbour"
        assert set(near) <= self.catalog()
        assert model.similar_items(item, 4) == near, "deterministic"
        with pytest.raises(KeyError):
            model.similar_items("never-heard-of-it", 4)

    def test_add_items(self, tmp_path):
        new = pd.DataFrame(
            [
                {
                    "item_id": f"{self.target}-new-{n}",
                    "kind": "show" if self.target == "podcast" else "audiobook",
                    "language": "en",
                    "genre": "spoken0",
                }
                for n in range(2)
            ]
        )
        if not self.served:
            with pytest.raises(NotImplementedError, match=type(self.fitted()).__name__):
                self.fitted().add_items(new)
            return
        model = self._round_trip(tmp_path)  # a copy: the fitted model is shared between tests
        before = model.known_items()
        added = model.add_items(pd.concat([new, new.iloc[:1]]))  # a duplicate row, no content
        expected = list(new["item_id"]) if self.adds_without_content else []
        assert added == expected
        assert model.known_items() == before + expected, (
            "new items go after the catalog, old order kept"
        )
        assert model.add_items(new) == [], "known items are not added twice"
        ranking = model.recommend(_cold_user(0), 10_000)
        assert sorted(ranking.item_ids) == sorted(self.catalog() | set(expected))
        if expected:
            assert expected[0] not in model.similar_items(expected[0], 3)
            assert expected[0] in model.similar_items(expected[1], len(before) + 1)
