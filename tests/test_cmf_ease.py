"""The collaborative cold-user baselines: cmf_als (implicit ALS, folded in from music)
and ease (closed form), over the joint music + target item space."""

from __future__ import annotations

import numpy as np
from recommender_contract import RecommenderContract, cluster_items, cluster_music, toy_world

from training.cmf import CMFALSRecommender, CMFConfig
from training.data import UserProfile
from training.ease import EASEConfig, EASERecommender
from training.joint_space import JointSpace


class TestCMFALSContract(RecommenderContract):
    served = False  # an evaluation baseline only

    def make(self, target, seed):
        return CMFALSRecommender(target, seed, CMFConfig(factors=8, iterations=10))


class TestCMFALSAudiobookContract(TestCMFALSContract):
    target = "audiobook"


class TestEASEContract(RecommenderContract):
    served = False

    def make(self, target, seed):
        return EASERecommender(target, seed)


class TestEASEAudiobookContract(TestEASEContract):
    target = "audiobook"


def test_ease_dual_equals_the_primal_closed_form():
    world = toy_world()
    primal = EASERecommender("podcast", 0, EASEConfig(solver="primal")).fit(world)
    dual = EASERecommender("podcast", 0, EASEConfig(solver="dual")).fit(world)
    np.testing.assert_allclose(dual._weights, primal._weights, rtol=1e-7, atol=1e-9)
    users = [UserProfile(f"u{c}", {t: 1.0 for t in cluster_music(c)[:3]}) for c in range(3)]
    np.testing.assert_allclose(
        dual.score_batch(users)[0], primal.score_batch(users)[0], rtol=1e-7, atol=1e-9
    )


def test_joint_space_rows_hold_music_then_target():
    world = toy_world()
    space = JointSpace.fit(world, "audiobook")
    matrix = space.training_matrix(world, "audiobook")
    assert matrix.shape[1] == space.n_music + len(space.target_ids)
    assert set(np.unique(matrix.data)) == {1.0}
    rows, usable, unknown = space.music_rows(
        [UserProfile("a", {cluster_music(0)[0]: 3.0, "nope": 1.0}), UserProfile("b", {})]
    )
    assert usable.tolist() == [True, False] and unknown == [["nope"], []]
    assert rows[0].indices.tolist() == [space.music_ids.tolist().index(cluster_music(0)[0])]


def test_cmf_folds_a_cold_listener_in_from_music():
    model = CMFALSRecommender("audiobook", 0, CMFConfig(factors=8)).fit(toy_world())
    user = UserProfile("new", {t: 5.0 for t in cluster_music(2)})
    top = [i for i in model.recommend(user, 4).item_ids if i != "book-pop"][:2]
    assert set(top) <= set(cluster_items("audiobook", 2))
