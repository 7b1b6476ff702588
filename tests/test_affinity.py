"""The taste -> affinity MLP: contract, content path for cold items, persistence."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from recommender_contract import (
    CLUSTERS,
    RecommenderContract,
    cluster_items,
    cluster_music,
    toy_world,
)

from training.affinity import AffinityConfig, AffinityModel
from training.data import UserProfile
from training.served import METADATA_FILE
from training.taste import TasteConfig

TINY = AffinityConfig(
    hidden=32, dim=16, batch_size=32, max_epochs=25, patience=8, taste=TasteConfig(dim=16, epochs=5)
)


class TestAffinityContract(RecommenderContract):
    adds_without_content = False  # scores a new item from its content vector only

    def make(self, target, seed):
        return AffinityModel(target, seed, TINY)


class TestAffinityAudiobookContract(TestAffinityContract):
    target = "audiobook"


def test_sampled_negatives_learn_the_known_answer():
    """Fewer negatives than items: the sampled-softmax path trains too."""
    model = AffinityModel("podcast", 0, replace(TINY, negatives=4)).fit(toy_world())
    for c in range(CLUSTERS):
        top = [i for i in model.recommend(_user(c), 12).item_ids if i != "show-pop"][:2]
        assert set(top) <= set(cluster_items("podcast", c)), (c, top)


def _with_content(dim: int = 8):
    """Toy world plus content vectors: a show's vector points at its cluster's axis."""
    rng = np.random.default_rng(0)
    data = toy_world()
    content = {}
    for c in range(CLUSTERS):
        for s in cluster_items("podcast", c):
            v = np.eye(dim)[c] + 0.1 * rng.normal(size=dim)
            content[s] = (v / np.linalg.norm(v)).astype(np.float32)
    return replace(data, content=content)


def _user(c: int) -> UserProfile:
    return UserProfile(f"new-{c}", {t: 5.0 for t in cluster_music(c)[:4]})


@pytest.fixture(scope="module")
def content_model() -> AffinityModel:
    return AffinityModel("podcast", 0, replace(TINY, max_epochs=40, patience=40)).fit(
        _with_content()
    )


def test_new_show_without_listeners_is_scored_by_its_content(content_model):
    model = content_model
    vectors = {f"show-new-{c}": np.eye(8, dtype=np.float32)[c] for c in range(CLUSTERS)}
    added = model.add_items(pd.DataFrame({"item_id": list(vectors)}), vectors)
    assert added == [f"show-new-{c}" for c in range(CLUSTERS)]
    for c in range(CLUSTERS):
        ranking = model.recommend(_user(c), 100)
        new_ranks = {s: ranking.item_ids.index(s) for s in added}
        # The new show of the listener's own cluster beats the other clusters' new shows.
        assert min(new_ranks, key=new_ranks.get) == f"show-new-{c}", new_ranks


def test_content_of_wrong_size_is_rejected(content_model):
    with pytest.raises(ValueError, match="dims"):
        content_model.add_items(
            pd.DataFrame({"item_id": ["show-bad"]}), {"show-bad": np.ones(3, np.float32)}
        )


def test_id_only_model_cannot_add_items():
    model = AffinityModel("podcast", 0, TINY).fit(toy_world())
    assert model.metrics["content_items"] == 0
    with pytest.raises(ValueError, match="without content"):
        model.add_items(pd.DataFrame({"item_id": ["x"]}), {"x": np.ones(8, np.float32)})


def test_validation_users_come_from_training_users_and_early_stopping_keeps_the_best(content_model):
    m = content_model.metrics
    eligible = 3 * 40  # every toy user has music and podcast history
    assert m["train_users"] + m["val_users"] == eligible
    assert m["val_users"] == round(0.15 * eligible)
    best = max(h["val_ndcg"] for h in m["history"])
    assert m["val_ndcg@10"] == best
    assert m["history"][m["best_epoch"]]["val_ndcg"] == best
    losses = [h["loss"] for h in m["history"]]
    assert losses[-1] < losses[0], "training lowers the loss"


def test_early_stopping_stops_after_patience():
    model = AffinityModel("podcast", 0, replace(TINY, max_epochs=200, patience=2)).fit(toy_world())
    m = model.metrics
    assert m["epochs"] < 200
    assert m["epochs"] - 1 - m["best_epoch"] == 2


def test_save_load_round_trip_keeps_scores_and_config(content_model, tmp_path):
    manifest = content_model.save(tmp_path / "aff", {"note": "test"})
    assert (
        manifest["kind"] == "affinity"
        and manifest["target"] == "podcast"
        and manifest["note"] == "test"
    )
    metadata = json.loads((tmp_path / "aff" / METADATA_FILE).read_text())
    assert AffinityConfig.from_dict(metadata["config"]) == content_model.config
    loaded = AffinityModel.load(tmp_path / "aff")
    users = [_user(c) for c in range(CLUSTERS)] + [UserProfile("cold", {})]
    for a, b in zip(content_model.recommend_batch(users, 10), loaded.recommend_batch(users, 10)):
        assert a.item_ids == b.item_ids and a.fallback == b.fallback
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    assert loaded.metrics["best_epoch"] == content_model.metrics["best_epoch"]


def test_load_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="affinity checkpoint"):
        AffinityModel.load(tmp_path)


def test_demographics_are_optional():
    data = replace(
        toy_world(), users=pd.DataFrame(columns=["user_id", "country", "language", "age"])
    )
    model = AffinityModel("podcast", 0, TINY).fit(data)
    assert model.countries == {} and model.languages == {}
    ranking = model.recommend(
        UserProfile("x", {"track-1-0": 2.0}, country="ZZ", language="xx", age=33.0), 3
    )
    assert len(ranking.item_ids) == 3 and not ranking.fallback


def test_too_few_users_is_a_clear_error():
    data = toy_world()
    podcasts = data.interactions["item_id"].str.contains("-ep")
    with pytest.raises(ValueError, match="users with both music and podcast history"):
        AffinityModel("podcast", 0, TINY).fit(
            replace(data, interactions=data.interactions[~podcasts])
        )


def test_unknown_target_is_rejected():
    with pytest.raises(ValueError, match="unknown target"):
        AffinityModel("radio", 0, TINY)


def test_public_vectors_reproduce_the_scores(content_model):
    users = [_user(c) for c in range(CLUSTERS)]
    u, known, unknown = content_model.user_vectors(users)
    ids, vectors, bias = content_model.item_vectors()
    assert (
        u.shape == (CLUSTERS, TINY.dim)
        and vectors.shape == (len(ids), TINY.dim)
        and bias.shape == (len(ids),)
    )
    assert known.all() and unknown == [[], [], []]
    scores, _, _ = content_model.score_batch(users)
    np.testing.assert_allclose(u @ vectors.T + bias, scores, rtol=1e-5)
    assert ids == content_model.item_ids


def test_early_stopping_uses_the_metric_named_in_config():
    from training.metrics import METRICS, summarise

    model = AffinityModel("podcast", 0, replace(TINY, max_epochs=3, early_stopping="recall")).fit(
        toy_world()
    )
    assert "val_recall@10" in model.metrics and "val_ndcg@10" not in model.metrics
    assert all("val_recall" in row for row in model.metrics["history"])
    with pytest.raises(ValueError, match="per-user metric"):
        AffinityModel("podcast", 0, replace(TINY, early_stopping="coverage")).fit(toy_world())
    # One registry: summarise reports exactly its metrics, in its order.
    assert list(summarise([["a", "b"]], [{"b"}], 2, 4)) == [m.key(2) for m in METRICS.values()]


def test_early_stopping_scores_validation_users_a_block_at_a_time(monkeypatch):
    """Blocks of validation users (memory bounded at any audience) give the validation
    curve of scoring them all at once."""
    import training.affinity as affinity

    cfg = replace(TINY, max_epochs=4, patience=5)
    whole = AffinityModel("podcast", 0, cfg).fit(toy_world()).metrics["history"]
    monkeypatch.setattr(affinity, "VAL_SCORES", 1)  # one validation user per block
    blocks = AffinityModel("podcast", 0, cfg).fit(toy_world()).metrics["history"]
    assert [h["val_ndcg"] for h in blocks] == pytest.approx(
        [h["val_ndcg"] for h in whole], abs=1e-9
    )
    assert len({h["val_ndcg"] for h in whole}) > 1  # the curve moves: a real comparison
