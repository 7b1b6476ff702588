"""Taste vectors of many listeners at once, the same numbers as one at a time.

`TasteModel.user_vector` is the rule: the log-weighted mean of the unit item vectors
of the items a listener played (unknown items skipped), scaled to unit length, as
float32. Scoring a million listeners through it costs a Python loop over every play.
`taste_vectors` does the lookups in one pass over the flattened histories and the
arithmetic over arrays, grouped by how many known items a listener has, so that each
sum is the one numpy makes for a single listener, in the same order: the item vectors
summed row after row, the weights pairwise along a row (numpy sums a contiguous row
the same way whatever the number of rows), the norm by the same dot product. The
result is equal bit for bit (`tests/test_taste.py` compares them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain, repeat

import numpy as np

__all__ = ["taste_vectors"]

# Item vectors gathered at once per group of listeners (float64: 256 bytes per item).
GATHER_ROWS = 2**18


def taste_vectors(
    index: Mapping[str, int], unit: np.ndarray, histories: Sequence[Mapping[str, float]]
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """(taste vectors [listeners x dim] float32, zero where nothing is known; known
    mask; each listener's unknown item ids) of `histories`, for item `index` -> row of
    the unit item vectors `unit`."""
    n_users, dim = len(histories), unit.shape[1]
    out = np.zeros((n_users, dim), np.float32)
    known = np.zeros(n_users, bool)
    unknown: list[list[str]] = [[] for _ in range(n_users)]
    lengths = np.fromiter(map(len, histories), np.int64, count=n_users)
    total = int(lengths.sum())
    if not total:
        return out, known, unknown
    items = list(chain.from_iterable(histories))
    rows = np.fromiter(map(index.get, items, repeat(-1)), np.int64, count=total)
    plays = np.fromiter(chain.from_iterable(h.values() for h in histories), np.float64, total)
    owner = np.repeat(np.arange(n_users), lengths)
    for miss in np.flatnonzero(rows < 0).tolist():  # as `user_vector`: again as a string
        rows[miss] = index.get(str(items[miss]), -1)
        if rows[miss] < 0:
            unknown[owner[miss]].append(str(items[miss]))
    hit = rows >= 0
    rows, owner = rows[hit], owner[hit]
    weights = np.log1p(np.maximum(plays[hit], 0.0)) + 1e-3
    counts = np.bincount(owner, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for n in np.unique(counts[counts > 0]):
        users = np.flatnonzero(counts == n)
        step = max(1, GATHER_ROWS // int(n))
        for lo in range(0, len(users), step):
            group = users[lo : lo + step]
            spots = starts[group][:, None] + np.arange(n)[None, :]  # [group x n] positions
            w = weights[spots]
            vec = (unit[rows[spots]] * w[:, :, None]).sum(axis=1) / w.sum(axis=1)[:, None]
            norm = np.sqrt(np.array([v.dot(v) for v in vec]))
            vec = np.where(norm[:, None] > 0, vec / np.where(norm > 0, norm, 1.0)[:, None], vec)
            out[group] = vec.astype(np.float32)
            known[group] = True
    return out, known, unknown
