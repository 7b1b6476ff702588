"""BM25 (bm25s) over texts, English stemming, English and Spanish stopwords: built from
documents, or saved by `save` and read back by `load` with its score arrays memory-mapped
(file pages shared by the server's workers, nothing tokenised at start)."""

from __future__ import annotations

from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_SPANISH

__all__ = ["Lexical"]


class Lexical:
    """BM25 over one document per id (search: an item's own text plus its transcript)."""

    def __init__(self, ids: list[str], documents: list[str] | None = None) -> None:
        self.ids = ids
        self._stem = Stemmer.Stemmer("english").stemWords
        self._stopwords = sorted(set(STOPWORDS_EN) | set(STOPWORDS_SPANISH))
        self._bm25s = bm25s
        self.retriever = bm25s.BM25()
        if ids and documents is not None:
            self.retriever.index(self._tokens(documents), show_progress=False)

    @classmethod
    def load(cls, directory: Path, ids: list[str]) -> Lexical:
        """The index `save` wrote to `directory`, over `ids` (in the order it was built)."""
        lexical = cls(ids)
        if ids:
            lexical.retriever = bm25s.BM25.load(str(directory), mmap=True, show_progress=False)
        return lexical

    def save(self, directory: Path) -> None:
        """bm25s' arrays, vocabulary and parameters (nothing for an empty index)."""
        if self.ids:
            self.retriever.save(str(directory), show_progress=False)

    def _tokens(self, texts: list[str]) -> list[list[str]]:
        return self._bm25s.tokenize(
            texts,
            stopwords=self._stopwords,
            stemmer=self._stem,
            return_ids=False,
            show_progress=False,
        )

    def mask(self, allowed: set[str]) -> np.ndarray:
        return np.fromiter((i in allowed for i in self.ids), dtype=bool, count=len(self.ids))

    def rank(
        self, query: str, depth: int, allowed: set[str] | np.ndarray | None
    ) -> list[tuple[str, float]]:
        """BM25 top `depth`; `allowed` is a set of ids or a mask from `mask()`."""
        tokens = self._tokens([query])[0]
        if not self.ids or not tokens:
            return []
        scores = np.asarray(self.retriever.get_scores(tokens), dtype=np.float64)
        if allowed is not None:
            scores = np.where(
                allowed if isinstance(allowed, np.ndarray) else self.mask(allowed), scores, 0.0
            )
        top = np.argsort(-scores, kind="stable")[:depth]
        return [(self.ids[i], float(scores[i])) for i in top if scores[i] > 0]
