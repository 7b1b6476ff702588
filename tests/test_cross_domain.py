"""Cross-domain baselines and the validation-chosen blend: contract, plus what each promises."""

from __future__ import annotations

import numpy as np
import pytest
from recommender_contract import RecommenderContract, toy_world
from scipy import sparse

from training.blend import ScoreBlend, choose_blend, standardise
from training.cross_domain import (
    CrossDomainRidge,
    MusicItemKNN,
    RidgeSolution,
    WidePart,
    choose_ridge,
    fit_wide,
)
from training.data import UserProfile
from training.history import HistoryEncoder


class TestCrossDomainRidgeContract(RecommenderContract):
    served = False  # an evaluation baseline only

    def make(self, target, seed):
        return CrossDomainRidge(target, seed)


class TestCrossDomainRidgeAudiobookContract(TestCrossDomainRidgeContract):
    target = "audiobook"


class TestMusicItemKNNContract(RecommenderContract):
    served = False  # an evaluation baseline only

    def make(self, target, seed):
        return MusicItemKNN(target, seed, neighbours=20)


class TestMusicItemKNNAudiobookContract(TestMusicItemKNNContract):
    target = "audiobook"


def test_ridge_matches_the_primal_closed_form():
    rng = np.random.default_rng(0)
    x = sparse.csr_matrix((rng.random((30, 12)) < 0.3).astype(float))
    y = sparse.csr_matrix((rng.random((30, 5)) < 0.4).astype(float))
    lam = 3.0
    xc, yc = x.toarray() - x.toarray().mean(0), y.toarray() - y.toarray().mean(0)
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(12), xc.T @ yc)
    new = sparse.csr_matrix((rng.random((4, 12)) < 0.3).astype(float))
    expected = y.toarray().mean(0) + (new.toarray() - x.toarray().mean(0)) @ w
    np.testing.assert_allclose(RidgeSolution.fit(x, y, lam).scores(new), expected, atol=1e-8)


def test_ridge_state_round_trips_and_new_columns_score_zero():
    x = sparse.csr_matrix(np.eye(4))
    y = sparse.csr_matrix(np.array([[1, 0], [0, 1], [1, 1], [0, 0]], float))
    ridge = RidgeSolution.fit(x, y, 1.0)
    again = RidgeSolution.from_state(ridge.state())
    np.testing.assert_array_equal(again.scores(x), ridge.scores(x))
    again.add_columns(3)
    assert again.scores(x).shape == (4, 5) and not again.scores(x)[:, 2:].any()


def test_lambda_is_chosen_out_of_fold():
    world = toy_world()
    ridge = CrossDomainRidge("podcast", 0).fit(world)
    assert len(ridge.validation) == 2 and min(ridge.validation) * 25 / 8 == pytest.approx(
        max(ridge.validation)
    )
    assert ridge.solution.lam == max(ridge.validation, key=lambda lam: (ridge.validation[lam], lam))


def test_knn_shrinkage_discounts_a_single_shared_item():
    # Two candidate neighbours: one shares 1 of 1 items (cosine 1), one shares 4 of 5.
    knn = MusicItemKNN("podcast", 0, neighbours=1, shrinkage=5.0)
    cos_one, shared_one = 1.0, 1
    cos_four, shared_four = 4 / np.sqrt(4 * 5), 4
    assert cos_one * shared_one / (shared_one + knn.shrinkage) < cos_four * shared_four / (
        shared_four + knn.shrinkage
    )


def test_binary_history_rows_ignore_weights_and_unknown_items():
    enc = HistoryEncoder.fit(["a", "b", "c"], binary=True)
    rows = enc.transform([{"a": 5.0, "zzz": 3.0}, {"b": 1.0, "c": 100.0}])
    np.testing.assert_array_equal(rows.toarray(), [[1, 0, 0], [0, 1, 1]])
    np.testing.assert_array_equal(enc.known_counts([{"a": 1}, {"zzz": 1}]), [1, 0])


def test_blend_prefers_the_simpler_source_within_noise():
    rng = np.random.default_rng(0)
    n_users, n_items = 200, 30
    truth = [{int(rng.integers(0, 3))} for _ in range(n_users)]  # three popular items
    popularity = np.tile(np.r_[np.array([3.0, 2.0, 1.0]), np.zeros(n_items - 3)], (n_users, 1))
    noise = rng.normal(size=(n_users, n_items))  # a "taste" source that knows nothing
    blend = choose_blend({"popularity": popularity, "noise": noise}, truth)
    assert blend.weights == {"popularity": 1.0, "noise": 0.0}
    # A source that knows the answer earns its weight.
    oracle = np.zeros((n_users, n_items))
    for r, t in enumerate(truth):
        oracle[r, list(t)] = 1.0
    blend = choose_blend({"popularity": popularity, "oracle": oracle}, truth)
    assert blend.weights["oracle"] > 0 and blend.validation["blend"] == pytest.approx(1.0)


def test_blend_keeps_the_fallback_or_the_best_point_never_a_third():
    """The first source alone unless the best point beats it by more than one SE:
    a weaker second source is never served alone just for being simple."""
    rng = np.random.default_rng(1)
    n_users, n_items = 300, 40
    truth = [{int(rng.integers(0, n_items))} for _ in range(n_users)]
    signal = np.zeros((n_users, n_items))
    for r, t in enumerate(truth):
        signal[r, list(t)] = 1.0
    for trial in range(20):
        sources = {
            "wide": signal + rng.normal(scale=0.6 + 0.1 * trial, size=signal.shape),
            "network": signal + rng.normal(scale=0.7 + 0.1 * trial, size=signal.shape),
        }
        blend = choose_blend(sources, truth)
        alone = blend.weights == {"wide": 1.0, "network": 0.0}
        assert alone or blend.validation["blend"] == pytest.approx(blend.validation["best_on_grid"])
        assert (
            blend.weights != {"wide": 0.0, "network": 1.0}
            or blend.validation["network_only"] >= blend.validation["best_on_grid"]
        )


def test_blend_apply_standardises_each_source_per_user():
    scores = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]])
    np.testing.assert_allclose(standardise(scores)[0], standardise(scores)[1])
    blend = ScoreBlend({"a": 1.0, "b": 0.0})
    np.testing.assert_allclose(blend.apply({"a": scores, "b": -scores}), standardise(scores))


def test_standardise_is_the_two_pass_formula_bit_for_bit():
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((9, 1001)) * 40.0 + 3.0
    scores[2] = 7.5  # a constant row
    flat = np.broadcast_to(scores[4], (3, 1001))  # rows that are views of one row
    for rows in (scores, flat, scores[:, ::3], scores[0]):
        rows2d = np.atleast_2d(rows)
        std = rows2d.std(axis=1, keepdims=True)
        expected = (rows2d - rows2d.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)
        assert np.array_equal(standardise(rows), expected)


def test_wide_part_leans_on_popularity_when_music_says_nothing():
    rng = np.random.default_rng(1)
    n_users, n_music, n_items = 120, 40, 10
    histories = [
        {f"m{j}": 1.0 for j in rng.choice(n_music, 5, replace=False)} for _ in range(n_users)
    ]
    # Targets follow popularity only (item 0 most liked), independent of music.
    probs = np.linspace(0.9, 0.05, n_items)
    y = sparse.csr_matrix((rng.random((n_users, n_items)) < probs).astype(float))
    listeners = np.asarray(y.sum(axis=0)).ravel()
    wide = fit_wide(histories, y, listeners, [f"m{j}" for j in range(n_music)], seed=0)
    # The ridge's intercept is popularity and its music weights are shrunk to noise,
    # so new listeners get the popular items first whatever they played.
    new = [{f"m{j}": 1.0 for j in rng.choice(n_music, 5, replace=False)} for _ in range(20)]
    tops = np.argsort(-wide.scores(new), axis=1)[:, :4]
    assert (tops[:, 0] == 0).all()
    assert np.mean([set(t) == {0, 1, 2, 3} for t in tops]) >= 0.9


def test_choose_ridge_reports_every_lambda():
    rng = np.random.default_rng(2)
    x = sparse.csr_matrix((rng.random((40, 15)) < 0.3).astype(float))
    y = sparse.csr_matrix((rng.random((40, 6)) < 0.3).astype(float))
    lam, found = choose_ridge(x, y, seed=0, lambdas=(1.0, 10.0))
    assert set(found) == {1.0, 10.0} and lam in found


def test_profiles_with_unknown_music_fall_back_to_popularity():
    world = toy_world()
    ridge = CrossDomainRidge("podcast", 0).fit(world)
    ranking = ridge.recommend(UserProfile("new", {"never-heard": 3.0}), 5)
    assert ranking.fallback and ranking.unknown_items == ["never-heard"]


def _clustered(n_users: int = 120, n_music: int = 40, n_items: int = 30, seed: int = 0):
    """Listeners in 3 taste clusters: music from their cluster, target items from theirs."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 3, n_users)
    histories = [
        {f"m{j}": 1.0 for j in rng.choice(np.arange(c, n_music, 3), 5, replace=False)}
        for c in cluster
    ]
    rows, cols = [], []
    for r, c in enumerate(cluster):
        for j in rng.choice(np.arange(c, n_items, 3), 3, replace=False):
            rows.append(r)
            cols.append(j)
    y = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    listeners = np.asarray(y.sum(axis=0)).ravel()
    return histories, y, listeners, [f"m{j}" for j in range(n_music)]


def test_wide_part_caps_rows_and_items_past_the_limits():
    histories, y, listeners, music = _clustered()
    wide = fit_wide(histories, y, listeners, music, seed=0, max_rows=50, max_items=12)
    assert wide.blend.validation["ridge_rows"] == 50 and wide.blend.validation["ridge_items"] == 12
    assert len(wide.sample_rows) == 50 and len(wide.columns) == 12
    # The ridge models the 12 most-listened items; the others score their mean.
    assert set(wide.columns) == set(np.argsort(-listeners, kind="stable")[:12])
    ridge = wide._ridge_scores(wide.encoder.transform(histories[:5]))
    others = np.setdiff1d(np.arange(y.shape[1]), wide.columns)
    np.testing.assert_allclose(ridge[:, others], np.tile(wide.column_means[others], (5, 1)))
    scores = wide.scores(histories[:5])
    assert scores.shape == (5, y.shape[1]) and np.isfinite(scores).all()
    # Taste is used: a cluster-0 listener ranks a cluster-0 item first.
    top = int(np.argmax(wide.scores([{"m0": 1.0, "m3": 1.0, "m6": 1.0}])[0]))
    assert top % 3 == 0
    # Held-out scores for sampled and unsampled rows; a sampled row gets its fold's ridge.
    inside, outside = (
        int(wide.sample_rows[0]),
        int(np.setdiff1d(np.arange(120), wide.sample_rows)[0]),
    )
    held = wide.held_out([inside, outside], [histories[inside], histories[outside]])
    assert held.shape == (2, y.shape[1]) and np.isfinite(held).all()
    final = wide._ridge_scores(wide.encoder.transform([histories[inside]]))[0, wide.columns]
    assert not np.allclose(final, wide.oof_ridge[0])
    # Saved and loaded: the same scores, and new items extend the columns.
    again = WidePart.from_state(wide.state())
    np.testing.assert_allclose(again.scores(histories[:5]), scores)
    again.add_columns(2)
    assert again.scores(histories[:1]).shape == (1, y.shape[1] + 2)


def test_uncapped_wide_part_held_out_scores_are_the_out_of_fold_rows():
    histories, y, listeners, music = _clustered()
    wide = fit_wide(histories, y, listeners, music, seed=0)
    assert wide.columns is None and "ridge_rows" not in wide.blend.validation
    np.testing.assert_array_equal(
        wide.held_out([3, 7], [histories[3], histories[7]]), wide.oof_scores[[3, 7]]
    )


def test_validation_sample_caps_and_keeps_order():
    from training.blend import validation_sample

    rows = np.arange(100, 200)
    np.testing.assert_array_equal(validation_sample(rows, 0, cap=500), rows)
    kept = validation_sample(rows, 0, cap=10)
    assert len(kept) == 10 and (np.diff(kept) > 0).all() and set(kept) <= set(rows)
    np.testing.assert_array_equal(kept, validation_sample(rows, 0, cap=10))


def test_user_histories_add_repeats_sort_and_share_item_ids():
    import pandas as pd

    from training.history import user_histories

    pairs = pd.DataFrame(
        {
            "user_id": ["u2", "u1", "u2", "u1", "u2"],
            "item_id": ["b", "c", "a", "a", "b"],
            "weight": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    histories = user_histories(pairs)
    assert list(histories) == ["u1", "u2"]
    assert list(histories["u1"].items()) == [("a", 4.0), ("c", 2.0)]
    assert list(histories["u2"].items()) == [("a", 3.0), ("b", 6.0)]  # b played twice
    first_a, second_a = (next(iter(h)) for h in histories.values())
    assert first_a is second_a  # one string object per item id
    assert user_histories(pairs.iloc[:0]) == {}


def test_events_by_user_are_each_users_rows_in_row_order():
    import pandas as pd

    from training.history import EventsByUser

    rng = np.random.default_rng(4)
    events = pd.DataFrame(
        {
            "user_id": rng.choice(["u3", "u1", "u10", "u2", None], size=200),
            "item_id": rng.choice(["s1", "s2", "b1", "b2", "b3"], size=200),
            "kind": rng.choice(["show", "audiobook"], size=200),
        }
    )
    by_user = EventsByUser.of(events, "audiobook")
    grouped = dict(iter(events.groupby("user_id", sort=True)))
    assert list(by_user) == list(grouped) == ["u1", "u10", "u2", "u3"]  # no row without a user
    for user, frame in grouped.items():
        items, is_book = by_user.rows(user)
        assert items.tolist() == frame["item_id"].tolist()  # the user's rows, in row order
        assert is_book.tolist() == (frame["kind"] == "audiobook").tolist()
    assert "u4" not in by_user and "u1" in by_user
    assert len({id(i) for i in by_user.items if i == "s1"}) == 1  # one string per item id
    empty = EventsByUser.of(events.iloc[:0], "audiobook")
    assert list(empty) == [] and len(empty.items) == 0


def test_blend_chosen_a_block_of_users_at_a_time_is_the_blend_of_all_at_once(monkeypatch):
    import training.blend as blend_module

    rng = np.random.default_rng(2)
    n_users, n_items = 250, 60
    truth = [set(rng.choice(n_items, size=3, replace=False).tolist()) for _ in range(n_users)]
    signal = np.zeros((n_users, n_items))
    for r, t in enumerate(truth):
        signal[r, list(t)] = 1.0
    sources = {
        "wide": signal + rng.normal(scale=1.5, size=signal.shape),
        "network": (signal + rng.normal(scale=1.2, size=signal.shape)).astype(np.float32),
        "popularity": np.tile(rng.normal(size=n_items), (n_users, 1)),
    }
    whole = choose_blend(sources, truth, one_se=False)
    monkeypatch.setattr(blend_module, "BLEND_SCORES", 7 * n_items)  # blocks of 7 users
    blocks = choose_blend(sources, truth, one_se=False)
    assert blocks == whole  # same weights and the same validation figures, exactly
    assert 0 < whole.validation["blend"] < 1


def test_capped_held_out_scores_a_block_of_rows_at_a_time(monkeypatch):
    import training.cross_domain as cross_domain

    histories, y, listeners, music = _clustered()
    wide = fit_wide(histories, y, listeners, music, seed=0, max_rows=50, max_items=12)
    rows = list(range(0, 120, 3))  # sampled and unsampled rows
    whole = wide.held_out(rows, [histories[r] for r in rows])
    monkeypatch.setattr(cross_domain, "BLEND_SCORES", 4 * y.shape[1])  # 4 rows a block
    blocks = wide.held_out(rows, [histories[r] for r in rows])
    np.testing.assert_array_equal(blocks, whole)
    assert whole.shape == (len(rows), y.shape[1]) and np.isfinite(whole).all()
    # Rows listed again (a listener in both cold cases) get their first scores, copied.
    twice = wide.held_out(rows + rows[::-1], [histories[r] for r in rows + rows[::-1]])
    np.testing.assert_array_equal(twice, np.vstack([whole, whole[::-1]]))
