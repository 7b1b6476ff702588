"""The affinity model's network: a user tower (MLP over the music taste vector and
demographics) and item vectors (a content projection plus id embeddings); a score is
their dot product plus an item bias. `training.affinity.AffinityModel` trains and
serves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from training.affinity import AffinityConfig

__all__ = ["AffinityNet", "UserFeatures"]


class AffinityNet(nn.Module):
    """User tower (MLP) and item vectors (content projection + id embedding)."""

    def __init__(
        self,
        taste_dim: int,
        n_ids: int,
        content_dim: int,
        n_countries: int,
        n_languages: int,
        cfg: AffinityConfig,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        extra = 0
        if cfg.demographics:
            # index 0 = unknown; age arrives standardised, with a "known" flag
            self.country = nn.Embedding(n_countries + 1, 8)
            self.language = nn.Embedding(n_languages + 1, 8)
            extra = 8 + 8 + 2
        layers: list[nn.Module] = []
        width = taste_dim + extra
        for _ in range(cfg.layers):
            layers += [nn.Linear(width, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = cfg.hidden
        self.user = nn.Sequential(*layers, nn.Linear(width, cfg.dim))
        self.skip = (
            nn.Linear(taste_dim + extra, cfg.dim, bias=False) if cfg.skip and cfg.layers else None
        )
        self.item_id = nn.Embedding(max(n_ids, 1), cfg.dim)
        nn.init.normal_(self.item_id.weight, std=0.01)
        self.item_bias = nn.Embedding(max(n_ids, 1), 1)
        nn.init.zeros_(self.item_bias.weight)
        self.content = nn.Linear(content_dim, cfg.dim, bias=False) if content_dim else None

    def user_vectors(
        self, taste: torch.Tensor, demo: dict[str, torch.Tensor] | None
    ) -> torch.Tensor:
        parts = [taste]
        if self.cfg.demographics:
            parts += [self.country(demo["country"]), self.language(demo["language"]), demo["age"]]
        x = torch.cat(parts, dim=-1)
        return self.user(x) if self.skip is None else self.user(x) + self.skip(x)

    def item_vectors(
        self, content: torch.Tensor | None, ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(vectors, biases) for items; `ids` is -1 for items without history."""
        has_id = (ids >= 0).float()
        if self.training and self.content is not None and self.cfg.id_dropout > 0:
            has_id = has_id * (torch.rand_like(has_id) >= self.cfg.id_dropout).float()
        safe = ids.clamp(min=0)
        vectors = self.item_id(safe) * has_id[:, None]
        if self.content is not None:
            vectors = vectors + self.content(content)
        return vectors, self.item_bias(safe).squeeze(-1) * has_id

    def forward(
        self, users: torch.Tensor, vectors: torch.Tensor, biases: torch.Tensor
    ) -> torch.Tensor:
        return users @ vectors.T + biases


@dataclass
class UserFeatures:
    """Everything the network reads about a set of users, as tensors."""

    taste: torch.Tensor
    country: torch.Tensor
    language: torch.Tensor
    age: torch.Tensor

    def rows(self, idx) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.taste[idx], {
            "country": self.country[idx],
            "language": self.language[idx],
            "age": self.age[idx],
        }
