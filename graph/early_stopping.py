"""Early stopping that names its metric: keeps the best weights seen and says when
`patience` epochs have passed without a better validation value.

Shared by every training loop in the project: the GNN item encoder (`graph.fit`,
validation loss, lower is better) and the served models (`training.served`,
validation NDCG, higher is better). `graph` imports nothing of `training`, so the
helper lives here, below both.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Tracks one validation `metric` over epochs.

    `update(epoch, value, state)` records an epoch's value; when it beats the best so
    far (by more than `min_delta`) a deep copy of `state()` is kept as `best_state`.
    It returns True once `patience` epochs have passed since the best one (counting
    from epoch -1, before training), the signal to stop.
    """

    def __init__(
        self,
        metric: str,
        patience: int,
        higher_is_better: bool = True,
        min_delta: float = 0.0,
        initial: float | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.metric = metric
        self.patience = patience
        self.higher_is_better = higher_is_better
        self.min_delta = min_delta
        if initial is None:
            initial = float("-inf") if higher_is_better else float("inf")
        self.best: float = initial
        self.best_epoch: int = -1
        # The weights to restore: the starting ones until an epoch beats `initial`.
        self.best_state = None if state is None else copy.deepcopy(state)

    def improves(self, value: float) -> bool:
        if self.higher_is_better:
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, epoch: int, value: float, state: Callable[[], Mapping[str, Any]]) -> bool:
        """Record `value` for `epoch`; True when training should stop."""
        if self.improves(value):
            self.best, self.best_epoch = value, epoch
            self.best_state = copy.deepcopy(state())
            return False
        return epoch - self.best_epoch >= self.patience
