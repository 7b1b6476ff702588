"""Training on a bounded sample of listeners (`training.sampling`): the sample is
reproducible, nothing is drawn below the bound (the model is the one without a bound),
and the served models' manifests record the listeners available and sampled."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from recommender_contract import toy_world

from training.affinity import AffinityConfig, AffinityModel
from training.sampling import sample_listeners
from training.taste import TasteConfig
from training.two_tower import TwoTowerConfig, TwoTowerRecommender

TASTE = TasteConfig(dim=16, epochs=5)
AFFINITY = AffinityConfig(hidden=32, dim=16, batch_size=32, max_epochs=4, patience=8, taste=TASTE)
TWO_TOWER = TwoTowerConfig(hidden=32, out_dim=16, max_epochs=3, taste=TASTE)


def test_a_sample_is_reproducible_sorted_and_bounded():
    ids = [f"u{i:04d}" for i in range(1000)]
    chosen, available = sample_listeners(ids, 100, seed=3)
    assert available == 1000 and len(chosen) == 100 and len(set(chosen)) == 100
    assert chosen == sorted(chosen) and set(chosen) <= set(ids)
    assert sample_listeners(ids, 100, seed=3)[0] == chosen  # the same in any call
    assert sample_listeners(ids, 100, seed=4)[0] != chosen  # the seed matters
    # An array gives the same sample as a list of the same ids.
    as_array, _ = sample_listeners(np.asarray(ids), 100, seed=3)
    assert isinstance(as_array, np.ndarray) and as_array.tolist() == chosen


def test_no_sample_below_the_bound():
    ids = ["a", "b", "c"]
    for bound in (0, 3, 50_000):
        chosen, available = sample_listeners(ids, bound, seed=0)
        assert chosen is ids and available == 3
    with pytest.raises(ValueError, match="max_listeners"):
        sample_listeners(ids, -1, seed=0)


def _same_network(a, b) -> None:
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.fixture(scope="module")
def data():
    return toy_world()


@pytest.fixture(scope="module")
def affinity_full(data) -> AffinityModel:
    return AffinityModel("podcast", 0, replace(AFFINITY, max_listeners=0)).fit(data)


def test_affinity_at_the_bound_is_the_unbounded_model(data, affinity_full):
    eligible = affinity_full.metrics["target_listeners"]
    assert affinity_full.metrics["sampled_listeners"] == eligible > 100
    at_bound = AffinityModel("podcast", 0, replace(AFFINITY, max_listeners=eligible)).fit(data)
    _same_network(at_bound, affinity_full)
    assert at_bound.metrics == affinity_full.metrics
    assert at_bound.blend.weights == affinity_full.blend.weights


def test_affinity_trains_on_a_reproducible_sample(data, affinity_full, tmp_path):
    eligible = affinity_full.metrics["target_listeners"]
    cfg = replace(AFFINITY, max_listeners=eligible // 2)
    sampled = AffinityModel("podcast", 0, cfg).fit(data)
    m = sampled.metrics
    assert m["target_listeners"] == eligible and m["sampled_listeners"] == eligible // 2
    assert m["train_users"] + m["val_users"] == eligible // 2  # every listener has taste
    # The item side still reads every listener: the catalogue and popularity are the same.
    assert sampled.item_ids == affinity_full.item_ids
    np.testing.assert_array_equal(sampled.pop_scores, affinity_full.pop_scores)
    again = AffinityModel("podcast", 0, cfg).fit(data)
    _same_network(again, sampled)
    manifest = sampled.save(tmp_path / "affinity")
    on_disk = json.loads((tmp_path / "affinity" / "manifest.json").read_text())
    for key in ("target_listeners", "sampled_listeners"):
        assert manifest["metrics"][key] == on_disk["metrics"][key] == m[key]
    assert on_disk["config"]["max_listeners"] == eligible // 2


@pytest.fixture(scope="module")
def two_tower_full(data) -> TwoTowerRecommender:
    return TwoTowerRecommender("audiobook", 0, replace(TWO_TOWER, max_listeners=0)).fit(data)


def test_two_tower_at_the_bound_is_the_unbounded_model(data, two_tower_full):
    eligible = two_tower_full.metrics["target_listeners"]
    assert two_tower_full.metrics["sampled_listeners"] == eligible > 100
    cfg = replace(TWO_TOWER, max_listeners=eligible)
    at_bound = TwoTowerRecommender("audiobook", 0, cfg).fit(data)
    _same_network(at_bound, two_tower_full)
    assert at_bound.metrics == two_tower_full.metrics
    assert at_bound._label_pairs == two_tower_full._label_pairs
    np.testing.assert_array_equal(at_bound.item_vectors, two_tower_full.item_vectors)


def test_two_tower_trains_on_a_reproducible_sample(data, two_tower_full, tmp_path):
    eligible = two_tower_full.metrics["target_listeners"]
    assert eligible == len(_eligible(data, "audiobook"))
    cfg = replace(TWO_TOWER, max_listeners=eligible // 3)
    sampled = TwoTowerRecommender("audiobook", 0, cfg).fit(data)
    m = sampled.metrics
    assert m["target_listeners"] == eligible and m["sampled_listeners"] == eligible // 3
    # Labels and validation listeners come from the sample only; the graph keeps the
    # others' plays, and the catalogue and popularity see every listener.
    chosen = set(sample_listeners(_eligible(data, "audiobook"), eligible // 3, 0)[0])
    assert set(sampled.val_users) <= chosen
    assert {u for u, _ in sampled._label_pairs} <= chosen
    assert m["train_users"] + m["val_users"] == eligible // 3
    assert {u for u, _ in sampled._graph_pairs} - chosen
    assert sampled.item_ids == two_tower_full.item_ids
    again = TwoTowerRecommender("audiobook", 0, cfg).fit(data)
    _same_network(again, sampled)
    assert again.val_users == sampled.val_users and again._label_pairs == sampled._label_pairs
    sampled.save(tmp_path / "two_tower")
    on_disk = json.loads((tmp_path / "two_tower" / "manifest.json").read_text())
    assert on_disk["metrics"]["sampled_listeners"] == eligible // 3
    assert on_disk["metrics"]["target_listeners"] == eligible


def _eligible(data, target: str) -> list[str]:
    """Listeners with both music and target history, sorted."""
    return sorted(
        set(data.target_interactions(target)["user_id"]) & set(data.music_interactions()["user_id"])
    )
