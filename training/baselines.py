"""Baselines every evaluation includes: global popularity, popularity within the
listener's country/language segment, and music-user-kNN (neighbours by taste vector
vote for the shows they listen to)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from training.base import Recommender, new_item_ids, read_state, write_state
from training.data import InteractionData, Ranking, UserProfile, id_set
from training.ranking import music_catalog, popularity, top_k
from training.taste import TasteConfig, TasteModel, fit_taste

__all__ = ["PopularityRecommender", "SegmentPopularityRecommender", "MusicKNNRecommender"]


class PopularityRecommender(Recommender):
    """Most-listened items of the target catalog, the same for everyone."""

    name = "popularity"

    def fit(self, data: InteractionData) -> PopularityRecommender:
        pop = popularity(data, self.target)
        self._ids = pop.index.to_numpy(dtype=object)
        self._scores = pop.to_numpy()
        self._music = music_catalog(data)
        return self

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        unknown = [i for i in user.music if i not in self._music]
        return top_k(self._ids, self._scores, k, exclude, unknown_items=unknown)

    def add_items(
        self, items: pd.DataFrame, content: Mapping[str, np.ndarray] | None = None
    ) -> list[str]:
        new = new_item_ids(items, self._ids)
        self._ids = np.concatenate([self._ids, np.asarray(new, dtype=object)])
        self._scores = np.concatenate([self._scores, np.zeros(len(new))])
        return new

    def save(self, directory: Path | str, extra_manifest: dict | None = None) -> dict:
        manifest = _manifest(self, {}, extra_manifest)
        arrays = {"ids": self._ids.astype(str), "scores": self._scores}
        return write_state(directory, manifest, arrays, {"music": sorted(self._music)})

    @classmethod
    def load(cls, directory: Path | str) -> PopularityRecommender:
        manifest, arrays, values = read_state(directory, cls.name)
        model = cls(manifest["target"], manifest["seed"])
        model._ids, model._scores = arrays["ids"].astype(object), arrays["scores"]
        model._music = set(values["music"])
        return model


class SegmentPopularityRecommender(Recommender):
    """Popularity among training listeners who share the user's country and language.

    Tries (country, language), then country, then language; a segment counts only with
    at least `min_users` listeners. With no usable segment it answers with global
    popularity and `fallback=True`. Global popularity breaks ties inside a segment.
    """

    name = "segment_popularity"
    SEGMENTS = (("country", "language"), ("country",), ("language",))

    def __init__(self, target: str = "podcast", seed: int = 0, min_users: int = 5) -> None:
        super().__init__(target, seed)
        self.min_users = min_users

    def fit(self, data: InteractionData) -> SegmentPopularityRecommender:
        pop = popularity(data, self.target)
        self._ids = pop.index.to_numpy(dtype=object)
        self._global = pop.to_numpy()
        self._tiebreak = self._global / (self._global.max() + 1.0) if len(pop) else self._global
        self._music = music_catalog(data)
        position = pd.Series(np.arange(len(self._ids)), index=self._ids)
        inter = data.target_interactions(self.target)
        users = data.users.drop_duplicates("user_id").set_index("user_id")
        self._tables: dict[tuple, np.ndarray] = {}
        for columns in self.SEGMENTS:
            if not set(columns) <= set(users.columns):
                continue
            seg = inter.join(users[list(columns)], on="user_id").dropna(subset=list(columns))
            for key, group in seg.groupby(list(columns)):
                key = key if isinstance(key, tuple) else (key,)
                if group["user_id"].nunique() < self.min_users:
                    continue
                counts = group.groupby("item_id")["user_id"].nunique()
                scores = np.zeros(len(self._ids))
                scores[position.reindex(counts.index).to_numpy(dtype=int)] = counts.to_numpy()
                self._tables[(columns, tuple(str(v) for v in key))] = scores
        return self

    def segment_of(self, user: UserProfile) -> tuple | None:
        """The key of the segment table that ranks `user` (None: global popularity)."""
        for columns in self.SEGMENTS:
            values = tuple(getattr(user, c) for c in columns)
            if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in values):
                continue
            key = (columns, tuple(str(v) for v in values))
            if key in self._tables:
                return key
        return None

    def _segment_scores(self, user: UserProfile) -> np.ndarray | None:
        key = self.segment_of(user)
        return None if key is None else self._tables[key]

    def unknown_items(self, user: UserProfile) -> list[str]:
        """The listener's music items the training data does not know."""
        return [i for i in user.music if i not in self._music]

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        unknown = self.unknown_items(user)
        seg = self._segment_scores(user)
        if seg is None:
            return top_k(self._ids, self._global, k, exclude, fallback=True, unknown_items=unknown)
        return top_k(self._ids, seg + self._tiebreak, k, exclude, unknown_items=unknown)

    def add_items(
        self, items: pd.DataFrame, content: Mapping[str, np.ndarray] | None = None
    ) -> list[str]:
        new = new_item_ids(items, self._ids)
        zeros = np.zeros(len(new))
        self._ids = np.concatenate([self._ids, np.asarray(new, dtype=object)])
        self._global = np.concatenate([self._global, zeros])
        self._tiebreak = np.concatenate([self._tiebreak, zeros])
        self._tables = {
            key: np.concatenate([scores, zeros]) for key, scores in self._tables.items()
        }
        return new

    def save(self, directory: Path | str, extra_manifest: dict | None = None) -> dict:
        manifest = _manifest(self, {"min_users": self.min_users}, extra_manifest)
        keys = list(self._tables)
        arrays = {
            "ids": self._ids.astype(str),
            "global": self._global,
            "tiebreak": self._tiebreak,
            **{f"table{n}": self._tables[key] for n, key in enumerate(keys)},
        }
        values = {
            "music": sorted(self._music),
            "tables": [[list(cols), list(key)] for cols, key in keys],
        }
        return write_state(directory, manifest, arrays, values)

    @classmethod
    def load(cls, directory: Path | str) -> SegmentPopularityRecommender:
        manifest, arrays, values = read_state(directory, cls.name)
        model = cls(manifest["target"], manifest["seed"], manifest["settings"]["min_users"])
        model._ids = arrays["ids"].astype(object)
        model._global, model._tiebreak = arrays["global"], arrays["tiebreak"]
        model._music = set(values["music"])
        model._tables = {
            (tuple(cols), tuple(key)): arrays[f"table{n}"]
            for n, (cols, key) in enumerate(values["tables"])
        }
        return model


class MusicKNNRecommender(Recommender):
    """User-kNN across domains: the `neighbours` training users whose music taste is
    closest (cosine of taste vectors) vote for the target items they listened to,
    each vote weighted by similarity. Global popularity breaks ties."""

    name = "music_knn"

    def __init__(
        self,
        target: str = "podcast",
        seed: int = 0,
        neighbours: int = 50,
        taste: TasteConfig | None = None,
    ) -> None:
        super().__init__(target, seed)
        self.neighbours = neighbours
        self.taste_config = taste or TasteConfig(seed=seed)

    def fit(self, data: InteractionData) -> MusicKNNRecommender:
        self.taste: TasteModel = fit_taste(data, self.taste_config)
        pop = popularity(data, self.target)
        self._ids = pop.index.to_numpy(dtype=object)
        self._pop = pop.to_numpy()
        self._tiebreak = 1e-6 * self._pop / (self._pop.max() + 1.0) if len(pop) else self._pop
        position = pd.Series(np.arange(len(self._ids)), index=self._ids)

        inter = data.target_interactions(self.target)
        music = data.music_interactions()
        histories = {u: dict(zip(g["item_id"], g["weight"])) for u, g in music.groupby("user_id")}
        users = sorted(id_set(inter["user_id"]) & set(histories))
        vectors, known = self.taste.user_matrix([histories[u] for u in users])
        users = [u for u, ok in zip(users, known) if ok]
        self._user_vectors = vectors[known]
        row = pd.Series(np.arange(len(users)), index=users)
        inter = inter[inter["user_id"].isin(row.index)]
        # Each neighbour's vote is spread over what they listen to (log plays), so a
        # heavy listener of many shows does not outvote everyone else.
        votes = np.log1p(inter["weight"].clip(lower=0).to_numpy()) + 1e-3
        votes = (
            votes
            / pd.Series(votes).groupby(inter["user_id"].to_numpy()).transform("sum").to_numpy()
        )
        self._matrix = sparse.csr_matrix(
            (
                votes,
                (
                    row.reindex(inter["user_id"]).to_numpy(),
                    position.reindex(inter["item_id"]).to_numpy(),
                ),
            ),
            shape=(len(users), len(self._ids)),
        )
        return self

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        vec, unknown = self.taste.user_vector(user.music)
        if vec is None or len(self._user_vectors) == 0:
            return top_k(self._ids, self._pop, k, exclude, fallback=True, unknown_items=unknown)
        sims = self._user_vectors @ vec
        n = min(self.neighbours, len(sims))
        nearest = np.argpartition(-sims, n - 1)[:n]
        weights = np.clip(sims[nearest], 0.0, None)
        scores = np.asarray(self._matrix[nearest].T @ weights).ravel() + self._tiebreak
        return top_k(self._ids, scores, k, exclude, unknown_items=unknown)

    def add_items(
        self, items: pd.DataFrame, content: Mapping[str, np.ndarray] | None = None
    ) -> list[str]:
        new = new_item_ids(items, self._ids)
        zeros = np.zeros(len(new))
        self._ids = np.concatenate([self._ids, np.asarray(new, dtype=object)])
        self._pop = np.concatenate([self._pop, zeros])
        self._tiebreak = np.concatenate([self._tiebreak, zeros])
        self._matrix = sparse.hstack(
            [self._matrix, sparse.csr_matrix((self._matrix.shape[0], len(new)))]
        ).tocsr()
        return new

    def save(self, directory: Path | str, extra_manifest: dict | None = None) -> dict:
        directory = Path(directory)
        self.taste.save(directory / "taste")
        settings = {"neighbours": self.neighbours, "taste": asdict(self.taste_config)}
        m = self._matrix
        arrays = {
            "ids": self._ids.astype(str),
            "pop": self._pop,
            "tiebreak": self._tiebreak,
            "user_vectors": self._user_vectors,
            "data": m.data,
            "indices": m.indices,
            "indptr": m.indptr,
        }
        return write_state(
            directory, _manifest(self, settings, extra_manifest), arrays, {"shape": list(m.shape)}
        )

    @classmethod
    def load(cls, directory: Path | str) -> MusicKNNRecommender:
        manifest, arrays, values = read_state(directory, cls.name)
        settings = manifest["settings"]
        model = cls(
            manifest["target"],
            manifest["seed"],
            settings["neighbours"],
            TasteConfig(**settings["taste"]),
        )
        model.taste = TasteModel.load(Path(directory) / "taste")
        model._ids = arrays["ids"].astype(object)
        model._pop, model._tiebreak, model._user_vectors = (
            arrays["pop"],
            arrays["tiebreak"],
            arrays["user_vectors"],
        )
        model._matrix = sparse.csr_matrix(
            (arrays["data"], arrays["indices"], arrays["indptr"]), shape=tuple(values["shape"])
        )
        return model


def _manifest(model: Recommender, settings: dict, extra: dict | None) -> dict:
    return {
        "kind": model.name,
        "name": model.name,
        "target": model.target,
        "seed": model.seed,
        "settings": settings,
        **(extra or {}),
    }
