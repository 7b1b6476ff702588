"""Query intent: which of the catalogue's own genres a query asks for, as probabilities.

A multinomial logistic regression over content vectors, trained on the catalogue's
labelled items (the store's `genre` column, whatever its values are: no genre name is
written in this code). At query time it reads the query's embedding and returns
p(genre | query); search uses it as a soft boost (`score = cosine + w * p(genre of
item | query)`), never as a filter: a query of words the catalogue does not know still
has an embedding, hence probabilities (flat ones, which boost nothing much), and the
dense ranking decides.

The genre tree (`embed.genre_tree`, default the packaged `genre_tree.json`: Apple Podcasts'
subgenres per genre) is embedded with it: each genre's subgenre names, written as the tree's
phrase ("podcasts about Places & Travel"), become unit vectors owned by that genre, and
`tree_similarity` gives a query's best cosine to each genre's phrases. Search mode gated
blends a softmax of it into p(genre | query): a request for travel stories or anime finds
the genre Apple files them under even where the classifier, trained on descriptions, is
unsure. A tree genre matches the catalogue genre of the same words in any case; genres
the catalogue does not have are ignored; no tree, no such part.

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

from coldstart.content.embeddings import SPOKEN_KINDS, Encoder, item_vectors
from coldstart.core.config import Settings
from coldstart.core.store import Store, utcnow

__all__ = [
    "IntentModel",
    "IntentReport",
    "PACKAGED_GENRE_TREE",
    "intent_dir",
    "load_genre_tree",
    "load_intent",
    "train_intent",
]

PACKAGED_GENRE_TREE = Path(__file__).with_name("genre_tree.json")


@dataclass
class IntentReport:
    action: str  # "trained" | "skipped"
    reason: str = ""
    manifest: dict | None = None

    def to_dict(self) -> dict:
        out: dict = {"action": self.action}
        if self.reason:
            out["reason"] = self.reason
        if self.manifest:
            out.update(
                {
                    k: self.manifest.get(k)
                    for k in ("model_id", "genres", "items", "heldout_accuracy", "genre_tree")
                }
            )
        return out


class IntentModel:
    """p(genre | vector) = softmax(W v + b); the labels are the catalogue's own genres.

    With a genre tree, also `tree_vectors` (n, dim) unit vectors of the tree's phrases and
    `tree_genre` (n,) the column of the genre each belongs to."""

    def __init__(
        self,
        labels: list[str],
        coef: np.ndarray,
        intercept: np.ndarray,
        manifest: dict,
        tree_vectors: np.ndarray | None = None,
        tree_genre: np.ndarray | None = None,
    ) -> None:
        self.labels = list(labels)
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)
        self.manifest = manifest
        self.index = {label: i for i, label in enumerate(self.labels)}
        dim = self.coef.shape[1] if self.coef.ndim == 2 else 0
        self.tree_vectors = (
            np.zeros((0, dim), np.float32)
            if tree_vectors is None
            else np.asarray(tree_vectors, dtype=np.float32)
        )
        self.tree_genre = (
            np.zeros(0, np.int64) if tree_genre is None else np.asarray(tree_genre, dtype=np.int64)
        )

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(n, genres) probabilities for (n, dim) unit vectors."""
        logits = np.atleast_2d(vectors).astype(np.float32) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def tree_similarity(self, vector: np.ndarray) -> np.ndarray | None:
        """A unit query vector's best cosine to each genre's tree phrases, (genres,) with -1
        for a genre without phrases; None without a tree."""
        if not len(self.tree_genre):
            return None
        cosine = self.tree_vectors @ np.asarray(vector, dtype=np.float32).reshape(-1)
        best = np.full(len(self.labels), -1.0)
        np.maximum.at(best, self.tree_genre, cosine.astype(np.float64))
        return best

    def save(self, directory: Path) -> dict:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / ".weights.npz.tmp.npz"
        np.savez(
            tmp,
            coef=self.coef,
            intercept=self.intercept,
            labels=np.array(self.labels, dtype=object),
            tree_vectors=self.tree_vectors,
            tree_genre=self.tree_genre,
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
            tree = (
                (data["tree_vectors"], data["tree_genre"]) if "tree_genre" in data else (None,) * 2
            )
            return cls(
                [str(x) for x in data["labels"]], data["coef"], data["intercept"], manifest, *tree
            )


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


def load_genre_tree(settings: Settings) -> tuple[str, dict[str, list[str]], Path] | None:
    """(phrase, {genre: [subgenre, ...]}, path) of `embed.genre_tree` (None: the packaged
    tree; "": none, and then None is returned). A malformed file raises ValueError naming
    the file and the field."""
    setting = settings.embed.genre_tree
    if setting == "":
        return None
    path = Path(setting) if setting is not None else PACKAGED_GENRE_TREE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no genre tree file (embed.genre_tree)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from exc
    phrase, genres = data.get("phrase", "{}"), data.get("genres")
    if not isinstance(phrase, str) or "{}" not in phrase:
        raise ValueError(f"{path}: field 'phrase' must be a string with {{}} for the name")
    if not isinstance(genres, dict) or not all(
        isinstance(subs, list) and all(isinstance(x, str) for x in subs) for subs in genres.values()
    ):
        raise ValueError(f"{path}: field 'genres' must map each genre to a list of subgenre names")
    return phrase, genres, path


def _tree_phrases(
    settings: Settings, labels: list[str]
) -> tuple[list[str], np.ndarray, dict | None]:
    """The tree's phrases for the classifier's genres (the genre's own name first), their
    genre columns, and the manifest's summary (None: no tree or no genre in common)."""
    tree = load_genre_tree(settings)
    if tree is None:
        return [], np.zeros(0, np.int64), None
    phrase, genres, path = tree
    # a tree genre matches the catalogue's genre of the same words, whatever their case
    column = {" ".join(label.split()).casefold(): i for i, label in enumerate(labels)}
    texts, owner = [], []
    for genre, subgenres in genres.items():
        col = column.get(" ".join(genre.split()).casefold())
        if col is not None:
            for name in [genre, *subgenres]:
                texts.append(phrase.format(name))
                owner.append(col)
    if not texts:
        return [], np.zeros(0, np.int64), None
    summary = {
        "file": path.name,
        "phrase": phrase,
        "phrases": len(texts),
        "genres_covered": len(set(owner)),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
    }
    return texts, np.asarray(owner, dtype=np.int64), summary


def train_intent(
    store: Store, settings: Settings, model_id: str, encoder: Encoder | None = None
) -> IntentReport:
    """Fit the genre classifier on the stored vectors of `model_id`; skip when labels are too few.

    Deterministic: lbfgs from zeros, a seeded 80/20 split for the held-out accuracy in
    the manifest, then a refit on every labelled item. With `encoder` (the one whose id is
    `model_id`), the genre tree's phrases are embedded and saved with the classifier.
    """
    # Imported here: scikit-learn's linear models take about 5 s to import and only
    # training needs them; the served classifier (`IntentModel`) is numpy weights, so
    # search and the API start without it.
    from sklearn.linear_model import LogisticRegression

    if encoder is not None and encoder.model_id != model_id:
        raise ValueError(f"encoder {encoder.model_id} is not the vectors' model {model_id}")
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
        "genre_tree": None,
        "settings": {
            "C": cfg.intent_c,
            "min_per_genre": cfg.intent_min_per_genre,
            "seed": settings.train.seed,
        },
        "built_at": utcnow().isoformat(),
    }
    labels_out = [str(c) for c in clf.classes_]
    tree_vectors, tree_genre = None, None
    if encoder is not None:
        texts, tree_genre, manifest["genre_tree"] = _tree_phrases(settings, labels_out)
        tree_vectors = np.stack([encoder.encode_query(text) for text in texts]) if texts else None
    model = IntentModel(labels_out, clf.coef_, clf.intercept_, manifest, tree_vectors, tree_genre)
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
