"""The two-tower model's network: a user tower and an item tower (`training.towers`)
trained together, as one module so that one optimiser, one state dict and one
early-stopping copy hold both. `training.two_tower.TwoTowerRecommender` trains and
serves it.
"""

from __future__ import annotations

from torch import nn

from training.towers import ItemTower, UserTower

__all__ = ["TwoTowerNet"]


class TwoTowerNet(nn.Module):
    """`user`: music taste, demographics, spoken-word history -> 128-d unit vector;
    `item`: graph and text embeddings, language, genre -> 128-d unit vector."""

    def __init__(self, user: UserTower, item: ItemTower) -> None:
        super().__init__()
        self.user = user
        self.item = item
