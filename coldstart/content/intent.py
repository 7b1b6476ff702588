"""Query intent: which of the catalogue's own genres a query asks for, as probabilities.

A multinomial logistic regression over content vectors, trained on the catalogue's
labelled items (the store's `genre` column, whatever its values are: no genre name is
written in this code). At query time it reads the query's embedding and returns
p(genre | query); search uses it as a soft boost (`score = cosine + w * p(genre of
item | query)`), never as a filter: a query of words the catalogue does not know still
has an embedding, hence probabilities (flat ones, which boost nothing much), and the
dense ranking decides.

The model is saved under `<home>/models/intent/` (`weights.npz` + `manifest.json`:
encoder model id, genres and their counts, data hash, held-out accuracy, settings) and
registered as the artifact `intent`. It is keyed by the encoder's model id: a search
service never applies a classifier trained on another model's vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from coldstart.content.embeddings import SPOKEN_KINDS, item_vectors
from coldstart.core.config import Settings
from coldstart.core.store import Store, utcnow

__all__ = ["IntentModel", "IntentReport", "intent_dir", "train_intent", "load_intent"]


@dataclass
class IntentReport:
    action: str  # "trained" | "skipped"
    reason: str = ""
    manifest: dict | None = None

    def to_dict(self) -> dict:
        out = {"action": self.action}
        if self.reason:
            out["reason"] = self.reason
        if self.manifest:
            out.update(
                {k: self.manifest[k] for k in ("model_id", "genres", "items", "heldout_accuracy")}
            )
        return out


class IntentModel:
    """p(genre | vector) = softmax(W v + b); the labels are the catalogue's own genres."""

    def __init__(
        self, labels: list[str], coef: np.ndarray, intercept: np.ndarray, manifest: dict
    ) -> None:
        self.labels = list(labels)
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.manifest = manifest
        self.index = {label: i for i, label in enumerate(self.labels)}

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(n, genres) probabilities for (n, dim) unit vectors."""
        logits = np.atleast_2d(vectors).astype(np.float32) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def save(self, directory: Path) -> dict:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / ".weights.npz.tmp.npz"
        np.savez(
            tmp,
            coef=self.coef,
            intercept=self.intercept,
            labels=np.array(self.labels, dtype=object),
        )
        os.replace(tmp, directory / "weights.npz")
        tmp = directory / ".manifest.json.tmp"
        tmp.write_text(json.dumps(self.manifest, indent=2) + "\n")
        os.replace(tmp, directory / "manifest.json")
        return dict(self.manifest)

    @classmethod
    def load(cls, directory: Path) -> IntentModel:
        manifest = json.loads((directory / "manifest.json").read_text())
        with np.load(directory / "weights.npz", allow_pickle=True) as data:
            return cls([str(x) for x in data["labels"]], data["coef"], data["intercept"], manifest)


def intent_dir(settings: Settings) -> Path:
    return (settings.home / "models" / "intent").resolve()


def _labelled(
    store: Store, model_id: str, min_per_genre: int
) -> tuple[list[str], np.ndarray, list[str]]:
    """(item ids, vectors, genres) of items with a vector and a genre shared by >= min_per_genre items."""
    items = store.items(SPOKEN_KINDS)
    genre = {
        r.item_id: " ".join(str(r.genre).split())
        for r in items.itertuples()
        if isinstance(r.genre, str) and r.genre.strip()
    }
    vectors = item_vectors(store, model_id, SPOKEN_KINDS)
    ids = sorted(i for i in vectors if i in genre)
    counts: dict[str, int] = {}
    for i in ids:
        counts[genre[i]] = counts.get(genre[i], 0) + 1
    ids = [i for i in ids if counts[genre[i]] >= min_per_genre]
    x = np.stack([vectors[i] for i in ids]) if ids else np.zeros((0, 0), np.float32)
    return ids, x, [genre[i] for i in ids]


def train_intent(store: Store, settings: Settings, model_id: str) -> IntentReport:
    """Fit the genre classifier on the stored vectors of `model_id`; skip when labels are too few.

    Deterministic: lbfgs from zeros, a seeded 80/20 split for the held-out accuracy in
    the manifest, then a refit on every labelled item.
    """
    # Imported here: scikit-learn's linear models take about 5 s to import and only
    # training needs them; the served classifier (`IntentModel`) is numpy weights, so
    # search and the API start without it.
    from sklearn.linear_model import LogisticRegression

    cfg = settings.embed
    ids, x, y = _labelled(store, model_id, cfg.intent_min_per_genre)
    genres = sorted(set(y))
    if len(genres) < 2:
        return IntentReport(
            "skipped",
            f"needs items of at least 2 genres with >= {cfg.intent_min_per_genre} "
            f"vectors each; found {len(genres)}",
        )
    labels = np.array(y)
    rng = np.random.default_rng(settings.train.seed)
    test = rng.random(len(ids)) < 0.2
    accuracy = None
    if test.sum() and len(set(labels[~test])) == len(genres):
        held = LogisticRegression(C=cfg.intent_c, max_iter=2000).fit(x[~test], labels[~test])
        accuracy = round(float((held.predict(x[test]) == labels[test]).mean()), 4)
    clf = LogisticRegression(C=cfg.intent_c, max_iter=2000).fit(x, labels)
    digest = hashlib.sha256()
    for item_id, label in zip(ids, y):
        digest.update(f"{item_id}\t{label}\n".encode())
    digest.update(np.ascontiguousarray(x).tobytes())
    counts = {g: int((labels == g).sum()) for g in genres}
    manifest = {
        "kind": "intent-classifier",
        "model_id": model_id,
        "classifier": "multinomial logistic regression (scikit-learn, lbfgs)",
        "genres": len(genres),
        "genre_counts": counts,
        "items": len(ids),
        "data_hash": digest.hexdigest()[:16],
        "heldout_accuracy": accuracy,
        "settings": {
            "C": cfg.intent_c,
            "min_per_genre": cfg.intent_min_per_genre,
            "seed": settings.train.seed,
        },
        "built_at": utcnow().isoformat(),
    }
    model = IntentModel([str(c) for c in clf.classes_], clf.coef_, clf.intercept_, manifest)
    directory = intent_dir(settings)
    model.save(directory)
    store.register_artifact("intent", directory, manifest)
    return IntentReport("trained", manifest=manifest)


def load_intent(settings: Settings, model_id: str) -> IntentModel | None:
    """The saved classifier for `model_id`, or None (none trained, or trained on another model's vectors)."""
    directory = intent_dir(settings)
    if not (directory / "manifest.json").exists() or not (directory / "weights.npz").exists():
        return None
    model = IntentModel.load(directory)
    return model if model.model_id == model_id else None
