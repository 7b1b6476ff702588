"""The catalogue pass of score-uploads, linear in listeners for a large catalogue.

`predict_audience` needs, per listener, the log-sum-exp of their scores over the
affinity model's catalogue (the softmax normaliser) and their `depth` best catalogue
scores (to rank a new episode). The exact pass (`uploads._catalog_summary`) scores
every listener against every catalogue item: listeners x catalogue, which grows as N^2
when a service's catalogue grows with its audience.

Above `SAMPLED_CATALOG_MIN` items this pass is estimated instead, at a cost per listener
that grows with the square root of the catalogue:

* **head**: each listener's `depth` best items from a faiss IVF index over `[v, b]`
  queried with `[u, 1]` (inner-product search reduced to L2 search; sqrt(catalogue)
  lists, `PROBES` = 8 of them probed), with their exact scores;
* **tail**: the rest of the normaliser from a fixed seeded uniform sample of
  `TAIL_SAMPLE` catalogue items, scaled to the catalogue's size (items of the sample
  that score at least the listener's head are already counted there and left out).

So `logsumexp = log(sum over the head of e^s + (C - depth) x mean over the tail sample
of e^s)`. Checked against the exact pass on a small world (tests/test_audience_pass.py):
probabilities within a few percent, the same listeners in the top, ranks close.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

__all__ = ["SAMPLED_CATALOG_MIN", "TAIL_SAMPLE", "sampled_catalog_summary"]

# Catalogues up to this size take the exact pass.
SAMPLED_CATALOG_MIN = 65_536
# IVF lists probed per listener (of sqrt(catalogue) lists): 8 finds about as many of the
# best 100 as 16 on the benchmark world (benchmarks/audience_pass.py) at 0.6x the time.
PROBES = 8
# Catalogue items in the tail sample of the normaliser.
TAIL_SAMPLE = 16_384
# Listeners whose tail sample is normalised at once: 2 MiB of float32 scores, so the
# normaliser's passes (shift, exp, floor, sums) stay in the cache instead of streaming
# a batch's 128 MiB through memory once per pass.
NORMALISER_ROWS = 32


def _index(items: np.ndarray, nlist: int, seed: int):
    """An IVF index whose L2 nearest neighbours of `[q, 0]` are the items of highest
    inner product with `q`: every item gets one more coordinate that brings all of
    them to the same norm (the usual reduction of inner-product search to L2 search)."""
    norms = np.linalg.norm(items, axis=1)
    lift = np.sqrt(np.maximum(norms.max() ** 2 - norms**2, 0.0))
    lifted = np.ascontiguousarray(np.hstack([items, lift[:, None]]).astype(np.float32))
    dim = lifted.shape[1]
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist, faiss.METRIC_L2)
    index.cp.seed = seed
    index.train(lifted)
    index.add(lifted)
    return index


def _log_normaliser(
    head: np.ndarray, sample: np.ndarray, catalog_size: int, depth: int
) -> np.ndarray:
    """log(sum over the head of e^s + (C - depth) x mean of e^s over the tail sample's
    scores below the head), per listener, in float64. `sample` (listeners x tail
    sample, float32) is overwritten: exponentiated in place, in float32, after the
    shift that keeps every term in (0, 1]."""
    shift = sample.max(axis=1).astype(np.float64)
    if depth:
        shift = np.maximum(shift, head[:, 0])
    shift = np.maximum(shift, 0.0)
    head_sum = np.exp(head.astype(np.float64) - shift[:, None]).sum(axis=1)
    sample -= shift.astype(np.float32)[:, None]
    np.exp(sample, out=sample)
    if depth:  # items of the sample at or above the listener's head are counted there
        floor = np.exp(head[:, -1].astype(np.float64) - shift).astype(np.float32)
        below = sample < floor[:, None]
        np.multiply(sample, below, out=sample)
        count = np.count_nonzero(below, axis=1)
    else:
        count = np.full(len(sample), sample.shape[1])
    tail_mean = sample.sum(axis=1, dtype=np.float64) / np.maximum(count, 1)
    return shift + np.log(head_sum + (catalog_size - depth) * tail_mean)


def sampled_catalog_summary(
    u: np.ndarray,
    vecs: np.ndarray,
    bias: np.ndarray,
    catalog_size: int,
    depth: int,
    batch: int = 2048,
    tail_sample: int = TAIL_SAMPLE,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(estimated log-sum-exp over the catalogue [listeners] in float64, each
    listener's `depth` best catalogue scores sorted ascending [listeners x depth],
    float32): the same outputs as the exact pass, `batch` listeners at a time."""
    depth = min(depth, catalog_size)
    items = np.ascontiguousarray(
        np.hstack([vecs[:catalog_size], bias[:catalog_size, None]]).astype(np.float32)
    )
    nlist = max(1, int(math.sqrt(catalog_size)))
    index = _index(items, nlist, seed)
    index.nprobe = min(nlist, PROBES)
    rng = np.random.default_rng(seed)
    tail = items[np.sort(rng.choice(catalog_size, min(tail_sample, catalog_size), replace=False))]
    lse = np.empty(len(u), np.float64)
    best = np.zeros((len(u), depth), np.float32)
    for lo in range(0, len(u), batch):
        q = np.ones((len(u[lo : lo + batch]), items.shape[1]), np.float32)
        q[:, :-1] = u[lo : lo + batch]
        head = np.zeros((len(q), 0))
        if depth:  # exact scores of the items found (the L2 distances only rank them)
            _, found = index.search(np.hstack([q, np.zeros((len(q), 1), np.float32)]), depth)
            head = np.einsum("ij,ikj->ik", q, items[np.maximum(found, 0)])
            head = np.where(found >= 0, head, -np.inf)
            head = -np.sort(-head, axis=1)
        else:
            found = None
        if found is not None and (found < 0).any():  # fewer than `depth` in the probed lists
            missing = (found < 0).any(axis=1)
            exact = q[missing] @ items.T
            top = np.partition(exact, catalog_size - depth, axis=1)[:, catalog_size - depth :]
            head[missing] = np.sort(top, axis=1)[:, ::-1]
        head = head.astype(np.float32)
        sample = q @ tail.T
        for at in range(0, len(q), NORMALISER_ROWS):  # every step is per row: the same numbers
            end = min(at + NORMALISER_ROWS, len(q))
            lse[lo + at : lo + end] = _log_normaliser(
                head[at:end], sample[at:end], catalog_size, depth
            )
        best[lo : lo + batch] = np.sort(head, axis=1)
    return lse, best
