"""Onboarding recommendations in three layers: candidates -> ranking -> business rules.

models = load_serving_models(settings, store)       # once (the server: at start-up)
pipeline = OnboardingPipeline(models, settings)
result = pipeline.recommend(UserProfile("new", music, language="en"), k=10)
result.shows / result.episodes / result.audiobooks  # ScoredItem with .reasons
"""

from coldstart.recommend.candidates import Candidate, CandidateSource, SourceResult
from coldstart.recommend.loading import (
    ServingModels,
    load_serving_models,
    store_version,
)
from coldstart.recommend.merge import ScoredItem, rank_candidates
from coldstart.recommend.pipeline import OnboardingPipeline, OnboardingResult
from coldstart.recommend.rules import RULES, RuleContext, apply_rules

__all__ = [
    "Candidate",
    "CandidateSource",
    "SourceResult",
    "ServingModels",
    "load_serving_models",
    "store_version",
    "OnboardingPipeline",
    "OnboardingResult",
    "ScoredItem",
    "rank_candidates",
    "RULES",
    "RuleContext",
    "apply_rules",
]
