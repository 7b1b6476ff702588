"""The pruned top-k (`coldstart.recommend.pruned_top`) is the full scan's top-k.

A synthetic 100k-item catalogue (keys of low effective rank plus noise, as trained
towers give) with and without item biases: for network-only blends of either sign
and for blends with popularity and a capped ridge, with tied items (identical keys)
at the top, with exclusions, and with k past what the pruned path answers, the
positions must equal `_top_positions` over the full product and the blend, and the
scores must be the same float values. BLAS runs on one thread, as in the server's
workers (`pin_process_threads(1)`): the full product's rounding depends on how its
columns are split between threads, and `pruned_keys` checks at load that its slices
reproduce it.
"""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from coldstart.recommend import pruned_top
from coldstart.recommend.fast import _excluded, _top_positions
from coldstart.recommend.fused_blend import BlendCoefficients, WideMoments, blended

ITEMS, DIM = 100_003, 33  # not a multiple of the block: the last block is partial


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    with threadpool_limits(1, user_api="blas"):
        yield


@pytest.fixture(scope="module", params=[0.01, 0.3], ids=["tight", "loose"])
def catalogue(request):
    """Keys near rank 12 (`tight`: the bounds leave about k candidates) or with more
    spread off it (`loose`: the floor is then set by the seeds' exact scores)."""
    rng = np.random.default_rng(7)
    basis = rng.standard_normal((DIM, 12))
    keys_t = basis @ rng.standard_normal((12, ITEMS)) + 0.01 * rng.standard_normal((DIM, ITEMS))
    keys_t = np.ascontiguousarray(keys_t.astype(np.float32))
    bias = (0.1 * rng.standard_normal(ITEMS)).astype(np.float32)
    queries = rng.standard_normal((6, 1, DIM)).astype(np.float32)
    # ties: the best item of the first query copied to places before and after it
    best = int(np.argmax((queries[0] @ keys_t)[0]))
    for place in (5, best // 2, min(best + 7, ITEMS - 1), ITEMS - 1):
        keys_t[:, place] = keys_t[:, best]
        bias[place] = bias[best]
    pop = np.log1p(rng.poisson(3.0, ITEMS).astype(np.float64))
    pop_std = (pop - pop.mean()) / pop.std()
    columns = np.sort(rng.choice(ITEMS, 4096, replace=False))
    column_means = rng.standard_normal(ITEMS)
    moments = WideMoments(pop, columns, column_means, pop_std)
    ridge = rng.standard_normal(len(columns))
    return keys_t, bias, queries, moments, ridge


BLENDS = [
    BlendCoefficients(0.8, 0.0, 0.0, -0.3),  # the network alone (the 1M models)
    BlendCoefficients(-0.5, 0.0, 0.0, 0.2),  # a falling network score
    BlendCoefficients(0.6, 0.05, 0.1, -0.1),  # with popularity and the capped ridge
    BlendCoefficients(-0.7, 0.02, -0.05, 0.4),
]


def _full(keys_t, bias, query, coef, ridge, moments, ids, k, exclude):
    network = (query @ keys_t)[0]
    network = network if bias is None else network + bias
    scores = blended(coef, network, ridge if coef.ridge else None, moments)
    return _top_positions(ids, scores, k, exclude, False, [])


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("coef", BLENDS)
def test_pruned_top_k_is_the_full_scan_top_k(catalogue, coef, with_bias):
    keys_t, bias, queries, moments, ridge = catalogue
    bias = bias if with_bias else None
    keys = pruned_top.pruned_keys(keys_t, bias)
    assert keys is not None
    ids = np.array([f"i{n}" for n in range(ITEMS)], dtype=object)
    answered = 0
    for n, query in enumerate(queries):
        reference = _full(keys_t, bias, query, coef, ridge, moments, ids, 50, ())
        top = list(ids[reference.positions[:3]])
        for k, exclude in ((1, ()), (10, ()), (50, ()), (30, top), (400, top[:1])):
            expected = _full(keys_t, bias, query, coef, ridge, moments, ids, k, exclude)
            found = keys.top(
                query, coef, ridge if coef.ridge else None, moments, _excluded(ids, exclude), k
            )
            if found is None:
                continue
            answered += 1
            positions, totals = found
            np.testing.assert_array_equal(positions, expected.positions, err_msg=f"q{n} k{k}")
            np.testing.assert_array_equal(totals.astype(np.float32), expected.scores)
    assert answered >= 20  # the pruned path answered nearly every case


def test_ties_keep_the_full_scans_order(catalogue):
    keys_t, bias, queries, moments, ridge = catalogue
    keys = pruned_top.pruned_keys(keys_t, bias)
    coef = BLENDS[0]
    found = keys.top(queries[0], coef, None, moments, np.zeros(0, np.int64), 5)
    assert found is not None
    positions, totals = found
    assert len(set(totals.tolist())) < 5  # the copies tie
    ids = np.arange(ITEMS).astype(object)
    expected = _full(keys_t, bias, queries[0], coef, None, moments, ids, 5, ())
    np.testing.assert_array_equal(positions, expected.positions)


def test_k_past_the_pruned_path_is_left_to_the_full_scan(catalogue):
    keys_t, bias, queries, moments, _ = catalogue
    keys = pruned_top.pruned_keys(keys_t, bias)
    coef = BLENDS[0]
    none = np.zeros(0, np.int64)
    assert keys.top(queries[1], coef, None, moments, none, ITEMS) is None
    assert keys.top(queries[1], coef, None, moments, none, ITEMS // 8) is None  # too many
    assert keys.top(queries[1], coef, None, moments, none, 0) is None
    # fewer items left than k: every item but 20 excluded
    assert keys.top(queries[1], coef, None, moments, np.arange(ITEMS - 20), 30) is None
    assert (
        keys.top(queries[1], BlendCoefficients(0.0, 1.0, 0.0, 0.0), None, moments, none, 5) is None
    )


def test_small_catalogues_keep_the_full_scan():
    keys_t = np.ones((8, 48), np.float32)
    assert pruned_top.pruned_keys(keys_t, None) is None
