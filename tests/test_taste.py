"""Taste vectors: learned from co-occurrence, deterministic, persisted with a manifest."""

from __future__ import annotations

import numpy as np
import pytest
from recommender_contract import cluster_music, toy_world

from training.taste import (
    TasteConfig,
    TasteModel,
    epochs_for,
    fit_taste,
    music_fingerprint,
    remember_taste,
)

CFG = TasteConfig(dim=16, epochs=5)


@pytest.fixture(scope="module")
def taste() -> TasteModel:
    return TasteModel.fit(toy_world(), CFG)


def test_items_of_one_taste_cluster_are_closer_than_across_clusters(taste):
    within, across = [], []
    for c in range(3):
        for other in range(3):
            sims = [
                taste.vectors.similarity(a, b)
                for a in cluster_music(c)[:4]
                for b in cluster_music(other)[4:]
            ]
            (within if c == other else across).extend(sims)
    assert np.mean(within) > np.mean(across) + 0.2


def test_user_vector_is_a_unit_weighted_mean_and_skips_unknown_items(taste):
    vec, unknown = taste.user_vector({"track-0-0": 10.0, "track-0-1": 1.0, "nope": 4.0})
    assert vec.shape == (16,) and vec.dtype == np.float32
    assert np.isclose(np.linalg.norm(vec), 1.0, atol=1e-5)
    assert unknown == ["nope"]
    # More plays pull the mean towards that item.
    a = taste._unit[taste._index["track-0-0"]]
    b = taste._unit[taste._index["track-0-1"]]
    heavy_a, _ = taste.user_vector({"track-0-0": 100.0, "track-0-1": 1.0})
    heavy_b, _ = taste.user_vector({"track-0-0": 1.0, "track-0-1": 100.0})
    assert heavy_a @ a > heavy_b @ a and heavy_b @ b > heavy_a @ b


def test_nothing_known_gives_none(taste):
    assert taste.user_vector({}) == (None, [])
    vec, unknown = taste.user_vector({"x": 1.0, "y": 2.0})
    assert vec is None and unknown == ["x", "y"]
    matrix, known = taste.user_matrix([{"track-1-0": 1.0}, {"x": 1.0}])
    assert matrix.shape == (2, 16) and known.tolist() == [True, False]
    assert not matrix[1].any()


def test_fit_is_deterministic_for_a_seed():
    a = TasteModel.fit(toy_world(), CFG)
    b = TasteModel.fit(toy_world(), CFG)
    np.testing.assert_array_equal(a.vectors.vectors, b.vectors.vectors)
    c = TasteModel.fit(toy_world(), TasteConfig(dim=16, epochs=5, seed=1))
    assert not np.array_equal(a.vectors.vectors, c.vectors.vectors)


def test_save_and_load_round_trip_with_manifest(taste, tmp_path):
    taste.save(tmp_path / "taste")
    loaded = TasteModel.load(tmp_path / "taste")
    assert loaded.config == taste.config
    assert loaded.manifest["dims"] == 16
    assert loaded.manifest["data_hash"] == music_fingerprint(toy_world())
    assert loaded.manifest["settings"]["seed"] == 0
    user = {"track-2-0": 3.0, "track-2-5": 1.0}
    np.testing.assert_allclose(loaded.user_vector(user)[0], taste.user_vector(user)[0], rtol=1e-6)


def test_load_without_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="taste manifest"):
        TasteModel.load(tmp_path)


def test_fit_taste_reuses_a_model_for_the_same_music():
    assert fit_taste(toy_world(), CFG) is fit_taste(toy_world(), CFG)
    assert fit_taste(toy_world(), CFG) is not fit_taste(toy_world(seed=1), CFG)


def test_no_music_is_a_clear_error():
    data = toy_world()
    empty = type(data)(items=data.items, interactions=data.interactions.iloc[:0])
    with pytest.raises(ValueError, match="no music"):
        TasteModel.fit(empty, CFG)


def test_epochs_grow_for_small_corpora_and_shrink_for_large_ones():
    cfg = TasteConfig(epochs=10, min_words=200_000, max_epochs=200, max_corpus_words=120_000_000)
    assert TasteConfig().max_corpus_words == 8_000_000  # the default budget
    assert epochs_for(5_000, cfg) == 40  # 200k words at least
    assert epochs_for(100, cfg) == 200  # ... up to max_epochs
    assert epochs_for(5_000_000, cfg) == 10  # the configured epochs in between
    assert epochs_for(12_000_000, cfg) == 10  # 120M words: still all ten
    assert epochs_for(15_000_000, cfg) == 8  # 120M // 15M
    assert epochs_for(52_000_000, cfg) == 2
    assert epochs_for(500_000_000, cfg) == 1  # never below one epoch
    no_cap = TasteConfig(epochs=10, max_corpus_words=0)
    assert epochs_for(500_000_000, no_cap) == 10


def test_a_corpus_word_budget_trains_fewer_epochs():
    data = toy_world()
    full = TasteModel.fit(data, CFG)
    words = full.manifest["words"]
    capped = TasteModel.fit(
        data, TasteConfig(dim=16, epochs=5, min_words=0, max_corpus_words=2 * words)
    )
    assert full.manifest["epochs"] == epochs_for(words, CFG) > 2
    assert capped.manifest["epochs"] == 2
    assert capped.manifest["trained_words"] < full.manifest["trained_words"]


def test_a_large_audience_trains_on_a_seeded_sample_of_listeners():
    data = toy_world()
    full = TasteModel.fit(data, CFG)
    listeners = full.manifest["music_listeners"]
    assert full.manifest["sampled_listeners"] == listeners  # no sample below the bound
    cfg = TasteConfig(dim=16, epochs=5, max_listeners=listeners // 2)
    sampled = TasteModel.fit(data, cfg)
    again = TasteModel.fit(data, cfg)
    assert sampled.manifest["sampled_listeners"] == listeners // 2
    assert sampled.manifest["words"] < full.manifest["words"]
    np.testing.assert_array_equal(sampled.vectors.vectors, again.vectors.vectors)  # reproducible


def test_a_saved_model_is_reused_for_its_own_data_only(taste, tmp_path):
    loaded = TasteModel.load(taste.save(tmp_path / "taste"))
    remember_taste(toy_world(), loaded)
    assert fit_taste(toy_world(), CFG) is loaded
    with pytest.raises(ValueError, match="not on this data"):
        remember_taste(toy_world(seed=1), loaded)


def test_many_users_at_once_equal_one_at_a_time_bit_for_bit():
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(7)
    words = [f"m{i}" for i in range(600)]
    vectors = KeyedVectors(vector_size=16)
    vectors.add_vectors([*words, "5"], rng.standard_normal((601, 16)).astype(np.float32))
    model = TasteModel(vectors, CFG)
    histories = [{}, {"nope": 2.0}, {5: 1.0}]  # nothing; nothing known; an id that is no string
    for n in [1, 2, 7, 8, 9, 16, 17, 31, 128, 129, 300, *rng.integers(1, 60, 200).tolist()]:
        items = rng.choice(words, size=n, replace=False).tolist()
        plays = rng.choice([0.0, -1.0, 1.0, 3.0, 250.0, np.nan], size=n).tolist()
        history = dict(zip(items, plays))
        history[f"unknown-{n}"] = 1.0
        histories.append(history)
    matrix, known, unknown = model.user_vectors(histories)
    for r, history in enumerate(histories):
        vec, missing = model.user_vector(history)
        assert unknown[r] == missing and known[r] == (vec is not None)
        expected = np.zeros(16, np.float32) if vec is None else vec
        assert np.array_equal(matrix[r], expected, equal_nan=True), r
