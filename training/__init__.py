"""Models, baselines and the cold-start evaluation harness.

`training` never reads the store: it works on `InteractionData` frames. Names are
imported lazily, so `import training.data` does not pay for torch or gensim.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "InteractionData": "training.data",
    "UserProfile": "training.data",
    "Ranking": "training.data",
    "Recommender": "training.base",
    "TasteConfig": "training.taste",
    "TasteModel": "training.taste",
    "fit_taste": "training.taste",
    "PopularityRecommender": "training.baselines",
    "SegmentPopularityRecommender": "training.baselines",
    "MusicKNNRecommender": "training.baselines",
    "AffinityConfig": "training.affinity",
    "AffinityModel": "training.affinity",
    "cold_user_split": "training.splits",
    "default_models": "training.evaluate",
    "evaluate": "training.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")
