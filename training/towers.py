"""User and item towers of the two-tower retrieval model; both end in 128-d unit vectors.

The user tower sees what is known at request time: the music taste vector,
country/language/age (index 0 = unknown), the mean GNN embedding of the
spoken-word items the user has consumed (zeros plus a "has history" flag when
cold) and, optionally, a learned bag over the music items themselves (`n_music`:
the 32-d taste average throws most of an ID-only history away). The item tower
sees the item's GNN embedding, content embedding, language and genre and,
optionally, a learned id embedding (`n_ids`); its GNN input and id are dropped
for a share of training rows (`gnn_dropout`, `id_dropout`), so an item without a
trustworthy graph position or a trained id is still placed from its features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["UserTower", "ItemTower", "MusicBag", "mlp", "augment_for_search"]


class MusicBag(nn.Module):
    """Mean of learned vectors over a padded (B, L) matrix of item indices (0 = padding)."""

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.vectors = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.vectors.weight, std=0.1)
        with torch.no_grad():
            self.vectors.weight[0].zero_()

    def forward(self, items: Tensor) -> Tensor:
        counts = (items > 0).sum(-1, keepdim=True).clamp(min=1)
        return self.vectors(items).sum(-2) / counts


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float = 0.1) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
    )


class UserTower(nn.Module):
    def __init__(
        self,
        taste_dim: int,
        gnn_dim: int,
        n_countries: int,
        n_languages: int,
        out_dim: int = 128,
        hidden: int = 256,
        cat_dim: int = 8,
        n_music: int = 0,
        music_dim: int = 0,
    ) -> None:
        super().__init__()
        self.gnn_dim = gnn_dim
        self.country = nn.Embedding(n_countries + 1, cat_dim)
        self.language = nn.Embedding(n_languages + 1, cat_dim)
        self.music = MusicBag(n_music, music_dim) if n_music and music_dim else None
        in_dim = (
            taste_dim + gnn_dim + 1 + 2 * cat_dim + 2 + (music_dim if self.music is not None else 0)
        )
        self.net = mlp(in_dim, hidden, out_dim)
        # Weight of an item's log-popularity in the score. Retrieval appends the
        # popularity to each item vector and this weight to each user vector, so
        # the 128-d directions stay free of popularity (see `score_vectors`).
        self.popularity_weight = nn.Parameter(torch.zeros(1))

    def forward(
        self,
        taste: Tensor,
        country: Tensor,
        language: Tensor,
        age: Tensor,
        gnn_mean: Tensor,
        has_history: Tensor,
        music: Tensor | None = None,
    ) -> Tensor:
        """taste (B, T); country/language (B,) long, 0 = unknown; age (B,) float, NaN =
        unknown; gnn_mean (B, G) (zeros when cold); has_history (B,) bool; music (B, L)
        long item indices, 0 = padding (only with `n_music`)."""
        age_known = ~torch.isnan(age)
        age_scaled = torch.where(age_known, (age - 40.0) / 15.0, torch.zeros_like(age))
        parts = [
            taste,
            gnn_mean * has_history.unsqueeze(-1).to(taste.dtype),
            has_history.unsqueeze(-1).to(taste.dtype),
            self.country(country),
            self.language(language),
            age_scaled.unsqueeze(-1),
            age_known.unsqueeze(-1).to(taste.dtype),
        ]
        if self.gnn_dim == 0:
            parts[1] = taste.new_zeros(taste.size(0), 0)
        if self.music is not None:
            parts.append(self.music(music))
        return F.normalize(self.net(torch.cat(parts, dim=-1)), dim=-1)


class ItemTower(nn.Module):
    def __init__(
        self,
        gnn_dim: int,
        content_dim: int,
        n_languages: int,
        n_genres: int,
        out_dim: int = 128,
        hidden: int = 256,
        cat_dim: int = 8,
        gnn_dropout: float = 0.3,
        n_ids: int = 0,
        id_dim: int = 0,
        id_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.gnn_dropout = gnn_dropout
        self.id_dropout = id_dropout
        self.language = nn.Embedding(n_languages + 1, cat_dim)
        self.genre = nn.Embedding(n_genres + 1, cat_dim)
        # Index 0 is "no trained id" (items added after training, dropped rows).
        self.item_id = nn.Embedding(n_ids + 1, id_dim, padding_idx=0) if n_ids and id_dim else None
        if self.item_id is not None:
            nn.init.normal_(self.item_id.weight, std=0.1)
            with torch.no_grad():
                self.item_id.weight[0].zero_()
        in_dim = (
            gnn_dim
            + 1
            + content_dim
            + 1
            + 2 * cat_dim
            + (id_dim + 1 if self.item_id is not None else 0)
        )
        self.net = mlp(in_dim, hidden, out_dim)

    def forward(
        self,
        gnn: Tensor,
        has_gnn: Tensor,
        content: Tensor,
        has_content: Tensor,
        language: Tensor,
        genre: Tensor,
        item_index: Tensor | None = None,
    ) -> Tensor:
        """gnn (N, G); has_gnn (N,) bool (False: no graph position, e.g. never
        listened); content (N, D); has_content (N,) bool; language/genre (N,) long;
        item_index (N,) long, 0 = no trained id (only with `n_ids`)."""
        use_gnn = has_gnn
        if self.training and self.gnn_dropout > 0:
            use_gnn = use_gnn & (
                torch.rand(has_gnn.shape, device=has_gnn.device) >= self.gnn_dropout
            )
        f = use_gnn.unsqueeze(-1).to(content.dtype)
        parts = [
            gnn * f,
            f,
            content * has_content.unsqueeze(-1).to(content.dtype),
            has_content.unsqueeze(-1).to(content.dtype),
            self.language(language),
            self.genre(genre),
        ]
        if self.item_id is not None:
            if self.training and self.id_dropout > 0:
                item_index = torch.where(
                    torch.rand(item_index.shape, device=item_index.device) >= self.id_dropout,
                    item_index,
                    0,
                )
            parts += [self.item_id(item_index), (item_index > 0).unsqueeze(-1).to(content.dtype)]
        return F.normalize(self.net(torch.cat(parts, dim=-1)), dim=-1)


def augment_for_search(
    users: Tensor, items: Tensor, popularity: Tensor, weight: Tensor, temperature: float
) -> tuple[Tensor, Tensor]:
    """(queries, keys) whose inner product is the model's logit:

        users . items / temperature + weight * popularity

    so one inner-product index (faiss IndexFlatIP) serves the whole score."""
    queries = torch.cat([users / temperature, weight.expand(users.size(0), 1)], dim=-1)
    keys = torch.cat([items, popularity.unsqueeze(-1)], dim=-1)
    return queries, keys
