"""The estimated catalogue pass of score-uploads (linear in listeners) against the exact
one: the same normaliser within a few percent, the same best catalogue scores."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from test_scale import dense_reference, world  # noqa: F401  (the fixture)

import coldstart.batch.uploads as uploads
from coldstart.batch.audience_pass import sampled_catalog_summary
from coldstart.batch.uploads import predict_audience
from coldstart.content.embeddings import item_vectors, model_id_for


def exact_summary(u, vecs, bias, depth):
    scores = (u @ vecs.T + bias).astype(np.float64)
    top = scores.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(scores - top).sum(axis=1))
    best = np.sort(np.partition(scores, -depth, axis=1)[:, -depth:], axis=1)
    return lse, best


def synthetic(listeners=2000, items=16_000, dim=32, seed=0):
    """Clustered listeners and items, item biases like popularity: a catalogue in which
    a few hundred items dominate each listener's normaliser."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    vecs = centres[rng.integers(0, 40, items)] + rng.normal(scale=0.7, size=(items, dim))
    u = centres[rng.integers(0, 40, listeners)] + rng.normal(scale=0.7, size=(listeners, dim))
    u *= 0.35
    bias = rng.normal(scale=1.0, size=items)
    return u.astype(np.float32), vecs.astype(np.float32), bias.astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_pass_matches_the_exact_pass(seed):
    u, vecs, bias = synthetic(seed=seed)
    lse, best = sampled_catalog_summary(
        u, vecs, bias, len(vecs), 100, batch=1000, tail_sample=4096, seed=seed
    )
    ref_lse, ref_best = exact_summary(u, vecs, bias, 100)
    # probability of any item: exp(s - lse); the estimate's relative error is |lse - ref|
    rel = np.abs(np.expm1(lse - ref_lse))
    assert np.median(rel) < 0.02 and np.quantile(rel, 0.99) < 0.08
    # the head: the probed lists find nearly all of every listener's 100 best items
    gap = np.abs(ref_best[::10, :, None] - best[::10, None, :]).min(axis=2)
    assert (gap < 1e-4).mean() > 0.95
    # each listener's best catalogue score: found for nearly every listener
    assert (np.abs(best[:, -1] - ref_best[:, -1]) < 1e-4).mean() > 0.99


def test_normaliser_a_few_rows_at_a_time_is_the_whole_batch_at_once(monkeypatch):
    import coldstart.batch.audience_pass as audience_pass

    u, vecs, bias = synthetic(listeners=300, seed=2)
    rows = sampled_catalog_summary(u, vecs, bias, len(vecs), 100, batch=128, tail_sample=4096)
    monkeypatch.setattr(audience_pass, "NORMALISER_ROWS", 128)  # the whole batch
    whole = sampled_catalog_summary(u, vecs, bias, len(vecs), 100, batch=128, tail_sample=4096)
    for a, b in zip(rows, whole):
        np.testing.assert_array_equal(a, b)


def test_audience_with_the_sampled_pass_is_close_to_the_dense_computation(world, monkeypatch):  # noqa: F811
    """On the served demo world, forced through the sampled pass: the same listeners,
    probabilities within a few percent, the same top listeners mostly, ranks close."""
    settings, store, model, profiles = world
    monkeypatch.setattr(uploads, "SAMPLED_CATALOG_MIN", 0)
    vectors = item_vectors(store, model_id_for(settings), ["episode"])
    for row in store.items(["episode"]).head(2).itertuples():
        new_id = f"new-sampled-{row.item_id}"
        vector = vectors[row.item_id]
        ref, ref_top = dense_reference(copy.deepcopy(model), profiles, new_id, row.show_id, vector)
        summary, frame = predict_audience(
            copy.deepcopy(model), profiles, new_id, row.show_id, vector, 10, 20, 1.0
        )
        assert frame["user_id"].tolist() == ref["user_id"].tolist()
        rel = np.abs(frame["probability"] / ref["probability"] - 1)
        assert np.median(rel) < 0.02 and rel.max() < 0.1
        top = [u["user_id"] for u in summary["top_users"]]
        assert len(set(top) & set(ref_top)) >= 18
        shallow = ref["rank"] <= 50
        ranks = frame["rank"][shallow].to_numpy(dtype=float, na_value=np.nan)
        assert np.nanmax(np.abs(ranks - ref["rank"][shallow])) <= 2
