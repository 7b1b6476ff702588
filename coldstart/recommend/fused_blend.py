"""A served model's blend for one listener in one pass over the catalogue.

The reference blend (`training.blend.ScoreBlend`, nested in a served model) standardises
every source over the whole catalogue and sums them:

    wide  = w_r · std(ridge) + w_p · std(popularity)          (the wide part's blend)
    total = W_w · std(wide)  + W_n · std(network)             (the served model's blend)

with std(v) = (v - mean v) / (sd v, or 1 when it is 0). Written out, `total` is one
linear combination per item,

    total_j = a · network_j + b · ridge_j + c · std(popularity)_j + d,

whose coefficients need only the means and second moments of the sources, and those
come without a pass over the catalogue:

* network scores are `q · k_j + bias_j` for a query q: their mean and mean square are
  `q · k̄ + b̄` and `qᵀ G q + 2 q · (K b)/N + mean(b²)`, from the item keys' mean k̄ and
  Gram matrix G = K Kᵀ / N, computed once at load (`KeyMoments`);
* the ridge scores are the listener's scores on the modelled columns and, in a capped
  fit, every other column's mean (a constant): their sums are the modelled columns'
  plus sums over the others computed once (`WideMoments`);
* standardised popularity is the same for every listener.

So a request computes the network product, the ridge, O(d² + modelled columns) of
moments, and then `total` in a few vector operations, instead of standardising and
adding whole-catalogue vectors about twenty-five times. At 1M listeners (100k items per
list) that is most of a request.

The results equal the reference within float rounding (sums in another order; the
moments in float64 from exact products): `tests/test_fast_serving.py` checks rankings
and scores. A source whose spread is zero, or nearly (where the moment formula would
divide rounding noise), is left to the reference path (`coefficients` returns None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["KeyMoments", "WideMoments", "BlendCoefficients", "coefficients", "blended"]

# A variance this small relative to the squared mean is rounding noise to the moment
# formula (E[v²] - E[v]²); the reference then divides by 1 or by a tiny spread that
# only an exact pass reproduces.
FLAT = 1e-9


class KeyMoments:
    """Mean and mean square of `q @ keys_t + bias` over the items, for any query q."""

    def __init__(self, keys_t: np.ndarray, bias: np.ndarray | None) -> None:
        keys = np.asarray(keys_t, np.float64)  # (d, items)
        n = max(keys.shape[1], 1)
        self.items = keys.shape[1]
        self.mean = keys.sum(axis=1) / n
        self.gram = (keys @ keys.T) / n
        if bias is None:
            self.bias_mean, self.cross, self.bias_square = 0.0, np.zeros(len(keys)), 0.0
        else:
            b = np.asarray(bias, np.float64)
            self.bias_mean = float(b.sum() / n)
            self.cross = (keys @ b) / n
            self.bias_square = float(b @ b / n)

    def of(self, query: np.ndarray) -> tuple[float, float]:
        """(mean, variance) of the scores of `query` (a 1-d vector)."""
        q = np.asarray(query, np.float64).ravel()
        mean = float(q @ self.mean) + self.bias_mean
        square = float(q @ self.gram @ q) + 2.0 * float(q @ self.cross) + self.bias_square
        return mean, square - mean * mean


class WideMoments:
    """What the wide part's moments need besides the listener's ridge scores: the
    standardised popularity and, in a capped fit, sums over the unmodelled columns."""

    def __init__(
        self,
        log_listeners: np.ndarray,
        columns: np.ndarray | None,
        column_means: np.ndarray | None,
        pop_std: np.ndarray,
    ) -> None:
        self.items = len(log_listeners)
        self.pop_std = pop_std
        self.pop_sum = float(pop_std.sum())
        self.pop_square = float(pop_std @ pop_std)
        self.columns = columns
        if columns is None:
            return
        assert column_means is not None  # set whenever columns is
        others = np.ones(self.items, bool)
        others[columns] = False
        means = np.asarray(column_means, np.float64)
        self.column_means = means
        self.means_at_columns = means[columns]
        self.column_of = np.full(self.items, -1, np.int64)  # item -> modelled column
        self.column_of[columns] = np.arange(len(columns))
        self.pop_at_columns = pop_std[columns]
        self.others_sum = float(means[others].sum())
        self.others_square = float(means[others] @ means[others])
        self.others_pop = float(means[others] @ pop_std[others])

    def of(self, ridge: np.ndarray) -> tuple[float, float, float]:
        """(mean, variance, mean of ridge · std(popularity)) of the full ridge row, from
        the scores of the modelled columns (every column in an uncapped fit)."""
        if self.columns is None:
            total, square, cross = ridge.sum(), ridge @ ridge, ridge @ self.pop_std
        else:
            total = self.others_sum + ridge.sum()
            square = self.others_square + ridge @ ridge
            cross = self.others_pop + ridge @ self.pop_at_columns
        mean = float(total) / self.items
        return mean, float(square) / self.items - mean * mean, float(cross) / self.items


@dataclass(frozen=True, slots=True)
class BlendCoefficients:
    """total_j = network · network_j + ridge · ridge_j + popularity · std(pop)_j + constant."""

    network: float
    ridge: float
    popularity: float
    constant: float


def _spread(mean: float, variance: float) -> float | None:
    """The standard deviation the reference divides by, or None when the moments cannot
    tell it from rounding noise."""
    if variance <= FLAT * max(mean * mean, 1.0):
        return None
    return math.sqrt(variance)


def coefficients(
    served: dict[str, float],
    wide: dict[str, float],
    network: tuple[float, float],
    ridge: tuple[float, float, float],
    pop: tuple[float, float],
) -> BlendCoefficients | None:
    """The coefficients of `total` for one listener.

    `served`, `wide`: the two blends' weights; `network`: (mean, variance) of the network
    scores; `ridge`: `WideMoments.of`; `pop`: (sum, sum of squares) of std(popularity)
    divided by the item count. None when a blend names another source or a spread is
    too small to standardise by moments."""
    if set(served) - {"wide", "network"} or set(wide) - {"ridge", "popularity"}:
        return None
    w_wide, w_net = served.get("wide", 0.0), served.get("network", 0.0)
    w_r, w_p = wide.get("ridge", 0.0), wide.get("popularity", 0.0)
    a = b = c = d = 0.0
    if w_net != 0.0:
        sd = _spread(*network)
        if sd is None:
            return None
        a, d = w_net / sd, -w_net * network[0] / sd
    if w_wide != 0.0:
        if w_r == 0.0 and w_p == 0.0:
            return None  # the reference raises: let it
        r_mean, r_var, r_pop = ridge
        pop_mean, pop_square = pop
        # wide = w_r (ridge - r_mean) / r_sd + w_p std(pop): its mean and mean square
        r_sd = 1.0
        if w_r != 0.0:
            sd = _spread(r_mean, r_var)
            if sd is None:
                return None
            r_sd = sd
        mean = w_p * pop_mean
        square = (
            (w_r / r_sd) ** 2 * r_var
            + w_p * w_p * pop_square
            + 2.0 * w_r * w_p / r_sd * (r_pop - r_mean * pop_mean)
        )
        sd = _spread(mean, square - mean * mean)
        if sd is None:
            return None
        b = w_wide * w_r / (sd * r_sd)
        c = w_wide * w_p / sd
        d += -w_wide * (w_r * r_mean / r_sd + mean) / sd
    return BlendCoefficients(a, b, c, d)


def blended(
    coef: BlendCoefficients,
    network: np.ndarray,
    ridge: np.ndarray | None,
    moments: WideMoments,
    positions: np.ndarray | None = None,
) -> np.ndarray:
    """`total` over every item: a few passes (network, popularity, the unmodelled
    columns' means, the modelled columns, the constant). `ridge` may be None where its
    coefficient is 0 (a served blend that gives the wide part no weight). With
    `positions`, `network` holds those items' scores and `total` is theirs: the same
    float operations item by item, so the same values as the full pass's."""
    at = slice(None) if positions is None else positions
    total = np.multiply(network, coef.network, dtype=np.float64)
    if coef.popularity != 0.0:
        total += coef.popularity * moments.pop_std[at]
    if coef.ridge != 0.0:
        assert ridge is not None  # a non-zero coefficient comes from a weighted ridge
        if moments.columns is None:
            total += coef.ridge * ridge[at]
        else:
            total += coef.ridge * moments.column_means[at]
            if positions is None:
                total[moments.columns] += coef.ridge * (ridge - moments.means_at_columns)
            else:
                column = moments.column_of[positions]
                modelled = np.flatnonzero(column >= 0)
                column = column[modelled]
                total[modelled] += coef.ridge * (ridge[column] - moments.means_at_columns[column])
    total += coef.constant
    return total
