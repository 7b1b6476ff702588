"""The one-pass blend (`coldstart.recommend.fused_blend`) equals the nested reference
blend (`training.blend.ScoreBlend`: standardise every source over the catalogue, sum)
for every weighting, for capped fits (unmodelled columns at their means) and uncapped
ones, and refuses the cases the moments cannot reproduce."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from coldstart.recommend.fused_blend import KeyMoments, WideMoments, blended, coefficients
from training.blend import ScoreBlend, standardise

SERVED = [
    {"wide": 1.0, "network": 0.5},
    {"wide": 0.0, "network": 1.0},
    {"wide": 0.3, "network": 0.0},
]
WIDE = [
    {"ridge": 1.0, "popularity": 0.5},
    {"ridge": 1.0, "popularity": 0.0},
    {"ridge": 0.0, "popularity": 1.0},
]


def world(capped: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    items, dim = 400, 12
    keys_t = rng.normal(size=(dim, items)).astype(np.float32)
    bias = rng.normal(size=items).astype(np.float32)
    log_listeners = np.log1p(rng.poisson(3.0, items).astype(np.float64))
    columns = np.sort(rng.choice(items, 60, replace=False)) if capped else None
    column_means = rng.normal(size=items) if capped else None
    return keys_t, bias, log_listeners, columns, column_means, rng


def reference(served, wide, network, ridge_full, log_listeners):
    part = ScoreBlend(wide).apply(
        {"ridge": ridge_full[None, :], "popularity": log_listeners[None, :]}
    )
    return ScoreBlend(served).apply({"wide": part, "network": network[None, :]})[0]


@pytest.mark.parametrize("capped", [False, True])
def test_one_pass_blend_equals_the_nested_blend(capped):
    keys_t, bias, log_listeners, columns, column_means, rng = world(capped)
    keys = KeyMoments(keys_t, bias)
    pop_std = standardise(log_listeners[None, :])[0]
    moments = WideMoments(log_listeners, columns, column_means, pop_std)
    n = len(log_listeners)
    for served, wide in itertools.product(SERVED, WIDE):
        query = rng.normal(size=(1, keys_t.shape[0])).astype(np.float32)
        exact = (query.astype(np.float64) @ keys_t.astype(np.float64) + bias)[0]
        network = (query @ keys_t + bias)[0]  # float32, as served
        modelled = rng.normal(size=n if columns is None else len(columns)) * 3 + 1
        full = modelled if columns is None else column_means.copy()
        if columns is not None:
            full[columns] = modelled
        coef = coefficients(
            served,
            wide,
            keys.of(query),
            moments.of(modelled),
            (moments.pop_sum / n, moments.pop_square / n),
        )
        assert coef is not None, (served, wide)
        # the moments are exact (float64): on exact network scores the two agree to
        # rounding; on float32 network scores (as served), to float32 rounding
        mine = blended(coef, exact, modelled, moments)
        theirs = reference(served, wide, exact, full, log_listeners)
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-9, err_msg=f"{served} {wide}")
        mine = blended(coef, network, modelled, moments)
        theirs = reference(served, wide, network, full, log_listeners)
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-5, err_msg=f"{served} {wide}")
        assert (
            np.argsort(-mine, kind="stable")[:20] == np.argsort(-theirs, kind="stable")[:20]
        ).all()


def test_key_moments_are_the_scores_mean_and_variance():
    keys_t, bias, *_ = world(False, seed=3)
    query = np.random.default_rng(1).normal(size=keys_t.shape[0])
    scores = query @ keys_t.astype(np.float64) + bias
    mean, variance = KeyMoments(keys_t, bias).of(query)
    assert mean == pytest.approx(scores.mean(), rel=1e-12, abs=1e-12)
    assert variance == pytest.approx(scores.var(), rel=1e-10)
    mean, variance = KeyMoments(keys_t, None).of(query)
    assert variance == pytest.approx((query @ keys_t.astype(np.float64)).var(), rel=1e-10)


def test_flat_sources_and_unknown_sources_are_left_to_the_reference():
    keys_t, bias, log_listeners, _, _, _ = world(False)
    pop_std = standardise(log_listeners[None, :])[0]
    moments = WideMoments(log_listeners, None, None, pop_std)
    n = len(log_listeners)
    pop = (moments.pop_sum / n, moments.pop_square / n)
    flat_ridge = moments.of(np.full(n, 2.5))
    spread = (0.0, 1.0)
    # a constant ridge: the reference divides by 1, which only an exact pass reproduces
    assert coefficients({"wide": 1.0}, {"ridge": 1.0}, spread, flat_ridge, pop) is None
    # a constant network row
    assert coefficients({"network": 1.0}, {"ridge": 1.0}, (3.0, 0.0), flat_ridge, pop) is None
    # a blend over a source this formula does not know
    ridge = moments.of(np.arange(n, dtype=np.float64))
    assert coefficients({"wide": 1.0, "other": 1.0}, {"ridge": 1.0}, spread, ridge, pop) is None
    # but a flat source with weight 0 takes no part
    assert coefficients({"wide": 1.0, "network": 0.0}, {"ridge": 1.0}, (3.0, 0.0), ridge, pop)
