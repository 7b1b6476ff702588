"""Evaluate what is served: the whole onboarding pipeline as one `Recommender`.

`ServedPipeline` fits the serving models of one target on the training split (the
affinity model; for audiobooks also the two-tower), wraps them in the real
`OnboardingPipeline` (candidate sources, source weights, business rules) and answers
with the pipeline's list for that target. `coldstart evaluate --served` adds it to
the table, so the figure a README quotes is the one listeners get.

Rules that need what the harness does not have stay as configured: an ID-only
dataset has no languages or explicit flags, so those rules change nothing there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from coldstart.core.config import Settings
from coldstart.recommend.catalog import SPOKEN_KINDS, Catalog
from coldstart.recommend.loading import ServingModels
from coldstart.recommend.pipeline import OnboardingPipeline
from training.affinity import AffinityModel
from training.base import Recommender
from training.baselines import SegmentPopularityRecommender
from training.data import MUSIC_KINDS, InteractionData, Ranking, UserProfile
from training.two_tower import TwoTowerRecommender

__all__ = ["ServedPipeline"]


class ServedPipeline(Recommender):
    name = "served_pipeline"

    def __init__(
        self, target: str = "podcast", seed: int = 0, settings: Settings | None = None
    ) -> None:
        super().__init__(target, seed)
        self.settings = settings or Settings()

    def fit(self, data: InteractionData) -> ServedPipeline:
        plays = data.interactions.merge(data.items[["item_id", "kind"]], on="item_id")
        listeners = plays[plays["kind"].isin(SPOKEN_KINDS)].groupby("item_id")["user_id"].nunique()
        catalog = Catalog.from_frames(data.items, {str(i): int(n) for i, n in listeners.items()})
        music = frozenset(
            data.items.loc[data.items["kind"].isin(MUSIC_KINDS), "item_id"].astype(str)
        )
        models = ServingModels(
            catalog,
            {self.target: SegmentPopularityRecommender(self.target, self.seed).fit(data)},
            music_ids=music,
        )
        # The models the server would load for this target, by manifest kind, with the
        # evaluated default configs.
        models.trained["affinity"] = {self.target: AffinityModel(self.target, self.seed).fit(data)}
        if self.target == "audiobook":
            models.trained["two_tower"] = {
                self.target: TwoTowerRecommender(self.target, self.seed).fit(data)
            }
        self.pipeline = OnboardingPipeline(models, self.settings)
        return self

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        result = self.pipeline.recommend(user, k + len(exclude))
        items = result.shows if self.target == "podcast" else result.audiobooks
        kept = [item for item in items if item.item_id not in set(exclude)][:k]
        return Ranking(
            item_ids=[item.item_id for item in kept],
            scores=np.array([item.score for item in kept], np.float32),
            fallback=result.fallback
            and (("shows" if self.target == "podcast" else "audiobooks") in result.fallback_lists),
            unknown_items=list(result.unknown_items),
        )
