"""The exact top-k of a large catalogue without scoring every item in full.

A served model's blended score of item j is `total_j = blended(network_j)`, with
`network_j = q · k_j (+ bias_j)` (`towers.py`, `fused_blend.py`): one float32 product
over every key (129 x 100,000 at 1M listeners, about 52 MB read per list) and a few
float64 passes. `PrunedKeys` finds the same top-k reading a fraction of that:

* **a bound for every item** from a low-rank copy of the keys: with B the top `RANK`
  eigenvectors of the keys' Gram matrix, `q · k_j = (Bᵀq) · (Bᵀk_j) + q⊥ · k⊥_j` and
  `|q⊥ · k⊥_j| ≤ |q⊥| |k⊥_j|`. One float32 product over `RANK + 3` rows (the projected
  keys, the residual norms |k⊥_j|, a rounding slack, the bias) gives an upper (or lower)
  bound of every network score; the slack `s · (|q| |k_j| + |bias_j|)`, s = 4u (d + RANK + 8), covers the
  float32 rounding of both products. Passing the bound through `blended` (the same
  float operations as the scores, each monotone in the network score) bounds every
  item's total as the full scan computes it;
* **exact scores for the candidates**: the `k + SEEDS` items of best bound are scored
  exactly; their k-th best total is a floor that every item of the true top-k reaches,
  so only items whose bound reaches it can be in the top-k. Those are scored exactly
  and ranked as `_top_positions` ranks (ties by position).

The exact scores of a subset are bitwise those of the full product: the product is
taken over the aligned `BLOCK`-column slices of `keys_t` that hold the candidates,
which OpenBLAS computes as it computes them inside the full product (checked once at
load on a probe query: where it does not hold, the catalogue is scanned in full).
Where the bound prunes badly (more than `MAX_SHARE` of the items remain), where a value
is not finite, or for fewer items than `PRUNE_MIN_ITEMS`, the caller scans in full.
`tests/test_pruned_top.py` compares positions and scores with the full scan.
"""

from __future__ import annotations

import numpy as np

from coldstart.recommend.fused_blend import BlendCoefficients, WideMoments, blended
from training.ranking import best_positions

__all__ = ["PRUNE_MIN_ITEMS", "PrunedKeys", "pruned_keys"]

# Catalogues below this many items are scanned in full (the demo world: 48 shows).
PRUNE_MIN_ITEMS = 20_000
RANK = 16  # dimensions of the bounding product (two-tower keys at 1M: 99.9999 % in 16)
SEEDS = 16  # items scored exactly beyond k to set the floor
BLOCK = 16  # columns per aligned slice of keys_t for the exact scores
# Relative rounding slack per term of a d-term float32 dot: 4 x float32's unit
# roundoff, against the error bound d·u of the full product plus (RANK + 3)·u of the
# bounding product and the roundings of the stored bounds.
SLACK_PER_TERM = 4 * 2.0**-24
REFINE = 3  # past REFINE * k candidates from bounds, the floor is set by exact scores
MAX_SHARE = 1 / 16  # past this share of candidates the full scan is cheaper


class PrunedKeys:
    """A bounding product over a model's keys (d x items) and the exact scores of a
    subset; `top` answers the blended top-k, or None where the full scan must."""

    def __init__(self, keys_t: np.ndarray, bias: np.ndarray | None) -> None:
        self.keys_t = keys_t
        self.bias = bias
        d, n = keys_t.shape
        keys = np.asarray(keys_t, np.float64)
        _, vectors = np.linalg.eigh(keys @ keys.T)
        self.basis = np.ascontiguousarray(vectors[:, ::-1][:, : min(RANK, d)])
        bound = np.empty((self.basis.shape[1] + 3, n), np.float32)
        for start in range(0, n, 8192):  # float64 temporaries a slice at a time
            part = keys[:, start : start + 8192]
            projected = self.basis.T @ part
            residual = np.sqrt(((part - self.basis @ projected) ** 2).sum(axis=0))
            size = np.sqrt((part * part).sum(axis=0))
            if bias is not None:
                size += np.abs(bias[start : start + 8192])
            bound[:-3, start : start + 8192] = projected
            # rounded up: a bound stored in float32 must not shrink
            bound[-3, start : start + 8192] = residual * (1 + 1e-6)
            bound[-2, start : start + 8192] = size * (1 + 1e-6)
        bound[-1] = 0.0 if bias is None else bias
        self.bound_keys = bound
        self.slack = SLACK_PER_TERM * (d + self.basis.shape[1] + 8)
        # keys_t's whole aligned blocks as (d, blocks, BLOCK): a view, no copy
        self.blocked = keys_t[:, : n // BLOCK * BLOCK].reshape(d, n // BLOCK, BLOCK)
        self.usable = bool(np.isfinite(bound).all()) and self._blocks_match()

    def _blocks_match(self) -> bool:
        """Whether the products over aligned column slices equal the full product's."""
        d, n = self.keys_t.shape
        probe = np.asarray(np.random.default_rng(0).standard_normal((d,)), np.float32)
        full = (probe[None, :] @ self.keys_t)[0]
        blocks = np.arange(-(-n // BLOCK))
        for part in np.array_split(blocks, max(len(blocks) // 1024, 1)):
            found = self._network_of_blocks(probe, part).ravel()
            if not np.array_equal(
                found[: min(len(part) * BLOCK, n - part[0] * BLOCK)],
                full[part[0] * BLOCK : (part[-1] + 1) * BLOCK],
            ):
                return False
        return True

    def _network_of_blocks(self, query: np.ndarray, blocks: np.ndarray) -> np.ndarray:
        """`query @ keys_t` over aligned column slices (sorted block numbers; one row
        per block, the last one zero-padded where the catalogue ends inside it)."""
        d, n = self.keys_t.shape
        whole = n // BLOCK
        inner = blocks[blocks < whole]
        out = np.zeros((len(blocks), BLOCK), np.float32)
        if len(inner):
            out[: len(inner)] = np.matmul(query, self.blocked[:, inner].transpose(1, 0, 2))
        if len(inner) < len(blocks):  # the catalogue's last, partial block
            tail = query @ self.keys_t[:, whole * BLOCK :]
            out[-1, : len(tail)] = tail
        return out

    def network(self, query: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The network scores of `positions`, bitwise those of the full product."""
        blocks, at = np.unique(positions // BLOCK, return_inverse=True)
        scores = self._network_of_blocks(query, blocks)[at, positions % BLOCK]
        return scores if self.bias is None else scores + self.bias[positions]

    def _bound_row(self, query: np.ndarray, upper: bool) -> np.ndarray:
        q = np.asarray(query, np.float64)
        projected = self.basis.T @ q
        rest = float(np.sqrt(max(float(q @ q - projected @ projected), 0.0)))
        scale = self.slack * max(float(np.sqrt(q @ q)), 1.0)
        sign = 1.0 if upper else -1.0
        row = np.concatenate([projected, [sign * rest * (1 + 1e-6), sign * scale, 1.0]])
        return row.astype(np.float32)

    def bound(
        self, query: np.ndarray, upper: bool, positions: np.ndarray | None = None
    ) -> np.ndarray:
        """An upper (or lower) bound of every item's network score, or of `positions`'
        (float32)."""
        keys = self.bound_keys if positions is None else self.bound_keys[:, positions]
        return self._bound_row(query, upper) @ keys

    def top(
        self,
        query: np.ndarray,
        coef: BlendCoefficients,
        ridge: np.ndarray | None,
        moments: WideMoments,
        excluded: np.ndarray,
        k: int,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(positions, float64 totals) of the best `k` items not in `excluded`, as the
        full scan ranks them, or None where the full scan must answer."""
        n = self.keys_t.shape[1]
        q = np.asarray(query).ravel()
        if (
            q.dtype != np.float32
            or coef.network == 0.0
            or k <= 0
            or k + SEEDS >= n
            or not np.isfinite(q).all()
        ):
            return None
        rising = coef.network > 0  # a better network score, a better total
        bound = self.bound(q, rising)  # of the network scores: it bounds their totals
        if np.isnan(bound).any():  # an item left out by the comparisons could rank
            return None
        if len(excluded):
            bound[excluded] = -np.inf if rising else np.inf
        only_network = coef.ridge == 0.0 and coef.popularity == 0.0
        ordered = (bound if rising else -bound) if only_network else None
        if ordered is None:
            ordered = blended(coef, bound, ridge, moments)  # the totals' bounds
        seeds = np.argpartition(ordered, n - k - SEEDS)[n - k - SEEDS :]
        seeds = seeds[np.isfinite(ordered[seeds])]
        if len(seeds) < k:
            return None
        # k items whose totals reach `floor`: so does every item of the top-k. First
        # from the seeds' lower bounds (no exact score); where that leaves many
        # candidates (a loose bound), from the seeds' exact scores.
        floors = blended(coef, self.bound(q, not rising, seeds), ridge, moments, seeds)
        candidates = self._candidates(floors, k, bound, ordered, coef, rising, only_network)
        if candidates is not None and len(candidates) > REFINE * k:
            exact = blended(coef, self.network(q, seeds), ridge, moments, seeds)
            candidates = self._candidates(exact, k, bound, ordered, coef, rising, only_network)
        if candidates is None or len(candidates) > MAX_SHARE * n or len(candidates) < k:
            return None
        total = blended(coef, self.network(q, candidates), ridge, moments, candidates)
        order = best_positions(-total, k)
        return candidates[order], total[order]

    def _candidates(self, floors, k, bound, ordered, coef, rising, only_network):
        """Items whose bound reaches the k-th best of `floors` (None: not finite)."""
        floor = np.partition(floors, len(floors) - k)[len(floors) - k]
        if not np.isfinite(floor):
            return None
        if only_network:
            return self._reaching(bound, coef, floor, rising)
        return np.flatnonzero(ordered >= floor)

    @staticmethod
    def _reaching(bound: np.ndarray, coef: BlendCoefficients, floor: float, rising: bool):
        """Items whose total `network · x + constant` (x: the bound) can reach `floor`,
        found on the float32 bounds: the threshold is widened past float64 rounding
        and rounded outward to float32, so the set holds every such item (a few more
        do no harm: they are scored exactly)."""
        edge = (floor - coef.constant) / coef.network
        margin = 1e-9 * (abs(edge) + 1.0 + abs(coef.constant / coef.network))
        if rising:
            low = edge - margin
            edge_32 = np.float32(low)
            if edge_32 > low:
                edge_32 = np.nextafter(edge_32, np.float32(-np.inf))
            return np.flatnonzero(bound >= edge_32)
        high = edge + margin
        edge_32 = np.float32(high)
        if edge_32 < high:
            edge_32 = np.nextafter(edge_32, np.float32(np.inf))
        return np.flatnonzero(bound <= edge_32)


def pruned_keys(keys_t: np.ndarray, bias: np.ndarray | None) -> PrunedKeys | None:
    """`PrunedKeys` for a catalogue large enough to gain from it, else None."""
    if keys_t.shape[1] < PRUNE_MIN_ITEMS or keys_t.dtype != np.float32:
        return None
    pruned = PrunedKeys(keys_t, bias)
    return pruned if pruned.usable else None
