"""Query-type gate for search mode "gated": is a query broad (a kind of show) or specific (the one
show someone half-remembers)?

A logistic regression over three numbers the fused candidates already give, no second model
pass: the query's word count, the intent classifier's confidence (its top probability) and
the best raw BM25 score over the catalogue. Its probability `g` that the query is specific
interpolates two weight sets, fitted on the tuning halves of both query sets
(benchmarks/search_quality.py --tune): a broad query gets a strong genre boost, a specific
one keeps its lexical and semantic match.

    score = cosine + lexical_weight(g) * BM25 / best BM25 + intent_weight(g) * p(item's genre | query)
    w(g) = (1 - g) * w_broad + g * w_specific

p(genre | query) is the intent classifier's, blended with pseudo-relevance feedback (the
gate's `genre_feedback`): (1 - weight) * classifier + weight * the genre shares of the query's
top `depth` candidates by cosine + `lexical_weight` * BM25 / best BM25 (dense and BM25
neighbours), chosen on the tuning halves (benchmarks/query_genre_routes.py). A gate file
without `genre_feedback` uses the classifier alone.

The fitted gate ships as `coldstart/content/query_gate.json` (coefficients, both weight sets
and a manifest saying how and on what it was fitted); `embed.query_gate` points elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "GATE_FEATURES",
    "NO_FEEDBACK",
    "PACKAGED_GATE",
    "QueryGate",
    "gate_features",
    "load_gate",
]

GATE_FEATURES = ("words", "confidence", "best_bm25")
PACKAGED_GATE = Path(__file__).with_name("query_gate.json")
NO_FEEDBACK = {
    "weight": 0.0,
    "depth": 20,
    "lexical_weight": 0.5,
    "tree_weight": 0.0,
    "tree_temperature": 0.05,
}


def gate_features(query: str, confidence: float, best_bm25: float) -> np.ndarray:
    """The gate's inputs, in GATE_FEATURES order."""
    return np.array([len(query.split()), confidence, best_bm25], dtype=np.float64)


@dataclass(frozen=True)
class QueryGate:
    mean: np.ndarray  # standardisation of the features (fitted on the tuning queries)
    scale: np.ndarray
    coef: np.ndarray  # logistic regression on the standardised features; 1 = specific
    intercept: float
    broad: dict[str, float]  # {"lexical_weight", "intent_weight"} for a broad query
    specific: dict[str, float]  # ... and for a specific one
    manifest: dict = field(default_factory=dict)
    # p(genre | query) = (1 - weight) * classifier + weight * genre shares of the top `depth`
    feedback: dict[str, float] = field(default_factory=lambda: dict(NO_FEEDBACK))

    def p_specific(self, features: np.ndarray) -> float:
        z = float(((features - self.mean) / self.scale) @ self.coef + self.intercept)
        return float(1.0 / (1.0 + np.exp(-np.clip(z, -50, 50))))

    def weights(self, p_specific: float) -> tuple[float, float]:
        """(lexical_weight, intent_weight) for a query with this probability of being specific."""
        g = p_specific
        lw = (1 - g) * self.broad["lexical_weight"] + g * self.specific["lexical_weight"]
        iw = (1 - g) * self.broad["intent_weight"] + g * self.specific["intent_weight"]
        return lw, iw

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        is_specific: np.ndarray,
        broad: dict[str, float],
        specific: dict[str, float],
        c: float = 1.0,
        manifest: dict | None = None,
        feedback: dict[str, float] | None = None,
    ) -> QueryGate:
        # Imported here: scikit-learn takes 5-7 s to import on this machine, and only
        # fitting a gate (benchmarks/search_quality.py --tune) needs it, not serving one.
        from sklearn.linear_model import LogisticRegression

        features = np.asarray(features, dtype=np.float64)
        mean, scale = features.mean(axis=0), features.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        model = LogisticRegression(C=c).fit((features - mean) / scale, np.asarray(is_specific))
        return cls(
            mean, scale, model.coef_[0].copy(), float(model.intercept_[0]), broad, specific,
            manifest or {}, {**NO_FEEDBACK, **(feedback or {})},
        )  # fmt: skip

    def to_dict(self) -> dict:
        return {
            "manifest": self.manifest,
            "features": list(GATE_FEATURES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
            "broad": self.broad,
            "specific": self.specific,
            "genre_feedback": self.feedback,
        }

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def load_gate(path: Path | None = None) -> QueryGate:
    """The gate at `path` (default: the one fitted for the project, shipped with the package)."""
    path = Path(path) if path is not None else PACKAGED_GATE
    try:
        data = json.loads(path.read_text())
        if tuple(data["features"]) != GATE_FEATURES:
            raise ValueError(f"features {data['features']} are not {list(GATE_FEATURES)}")
        return QueryGate(
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=float(data["intercept"]),
            broad={k: float(data["broad"][k]) for k in ("lexical_weight", "intent_weight")},
            specific={k: float(data["specific"][k]) for k in ("lexical_weight", "intent_weight")},
            manifest=data.get("manifest", {}),
            feedback=_feedback(data.get("genre_feedback", NO_FEEDBACK)),
        )
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no query gate file (embed.query_gate)") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a query gate file ({exc})") from exc


def _feedback(data: dict) -> dict[str, float]:
    feedback = {
        "weight": float(data["weight"]),
        "depth": int(data["depth"]),
        "lexical_weight": float(data["lexical_weight"]),
        # a gate file from before the genre tree has none of it
        "tree_weight": float(data.get("tree_weight", 0.0)),
        "tree_temperature": float(data.get("tree_temperature", NO_FEEDBACK["tree_temperature"])),
    }
    if not 0.0 <= feedback["weight"] <= 1.0 or feedback["depth"] < 1:
        raise ValueError(f"genre_feedback {data}: weight must be in [0, 1] and depth at least 1")
    if not 0.0 <= feedback["tree_weight"] <= 1.0 - feedback["weight"]:
        raise ValueError(f"genre_feedback {data}: tree_weight must be in [0, 1 - weight]")
    if feedback["tree_temperature"] <= 0:
        raise ValueError(f"genre_feedback {data}: tree_temperature must be positive")
    return feedback
