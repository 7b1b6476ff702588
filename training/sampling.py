"""Training on a bounded sample of listeners.

A served model learns two things from the data: what every item is (popularity, the
catalogue, co-listening, item vectors), and how a listener's music maps to what they
play. The first must see every interaction and is computed with column operations;
the second is per-listener work (profiles, taste vectors, training pairs, validation
scoring) whose cost grows with the audience while its quality stops improving long
before a million listeners. So the models that learn the mapping (taste, affinity,
two-tower) train on at most `max_listeners` of the eligible listeners: all of them
when there are fewer, else a seeded uniform sample. See docs/scale.md.

The sample draws from its own random stream (`(seed, 1)`), never from the model's:
below the bound nothing is drawn, and every other draw of a fit (splits, shuffles,
negatives) is the one it was without a bound, so the model is bit-for-bit the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

__all__ = ["sample_listeners"]

Ids = TypeVar("Ids", list, np.ndarray)

# The sample's own stream: numpy's `default_rng([seed, SAMPLE_STREAM])`.
SAMPLE_STREAM = 1


def sample_listeners(listeners: Ids, max_listeners: int, seed: int) -> tuple[Ids, int]:
    """(the listeners to train on, how many were eligible).

    `listeners` is a sorted sequence of distinct ids (a list or a numpy array). Returns
    it unchanged when it holds at most `max_listeners` ids (or `max_listeners` is 0: no
    bound), else a seeded uniform sample of `max_listeners` of them, still sorted and of
    the same type. The same (ids, bound, seed) give the same sample in any process."""
    available = len(listeners)
    if max_listeners < 0:
        raise ValueError(f"max_listeners must be 0 (no bound) or positive, got {max_listeners}")
    if not max_listeners or available <= max_listeners:
        return listeners, available
    rng = np.random.default_rng([seed, SAMPLE_STREAM])
    keep = np.sort(rng.choice(available, max_listeners, replace=False))
    if isinstance(listeners, np.ndarray):
        return listeners[keep], available
    chosen: Sequence = listeners
    return [chosen[i] for i in keep], available
