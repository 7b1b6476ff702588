"""One interface for every recommender, as in `implicit`: fit on data, rank for a user."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from training.data import InteractionData, Ranking, UserProfile

__all__ = ["Recommender"]


class Recommender(ABC):
    """Ranks one target catalog ("podcast" -> shows, "audiobook" -> audiobooks)
    for users described by a `UserProfile`.

    `fit` sees only training data: the evaluation harness hides the test users'
    target-domain history before calling it. `recommend` never returns items in
    `exclude` and returns at most `k` items, best first.
    """

    name: str = "recommender"

    def __init__(self, target: str = "podcast", seed: int = 0) -> None:
        self.target = target
        self.seed = seed

    @abstractmethod
    def fit(self, data: InteractionData) -> "Recommender": ...

    @abstractmethod
    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking: ...

    def recommend_batch(self, users: Sequence[UserProfile], k: int = 10) -> list[Ranking]:
        return [self.recommend(u, k) for u in users]
