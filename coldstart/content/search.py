"""Content queries over the catalog: dense, lexical (BM25), hybrid (reciprocal rank fusion),
intent (dense + a soft boost from the query's predicted genre) and fused (dense + weighted
BM25 + the intent boost).

`SearchService` loads the indexes, the catalog metadata, a BM25 index and the intent
classifier once, then answers `search(query, ...)` and `similar(item_id, ...)` with
`SearchResult` rows.
Episodes carry a snippet: their transcript passage closest to the query, with its
start time in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from coldstart.content.embeddings import SPOKEN_KINDS, Encoder, item_text, load_encoder
from coldstart.content.index import load_index, passage_key
from coldstart.content.intent import load_intent
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store
from training.threads import torch_threads

__all__ = [
    "MODES",
    "SearchResult",
    "SearchService",
    "EmptyQueryError",
    "UnknownItemError",
    "NoContentVectorError",
    "reciprocal_rank_fusion",
]

MODES = ("dense", "lexical", "hybrid", "intent", "fused")
SNIPPET_CHARS = 240


class EmptyQueryError(ValueError):
    """The query has no text."""


class UnknownItemError(LookupError):
    """No item with this id in the catalog."""


class NoContentVectorError(LookupError):
    """The item exists but has no text, hence no content vector."""


@dataclass(frozen=True)
class SearchResult:
    item_id: str
    kind: str
    title: str
    score: float
    snippet: str | None = None
    start: float | None = None  # seconds into the episode where the snippet starts
    language: str | None = None
    genre: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], k: int = 60
) -> list[tuple[str, float]]:
    """Cormack et al. (2009): score(d) = sum over rankings of 1 / (k + rank(d)), rank from 1."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def _text(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return " ".join(str(value).split())


def _clip(text: str, limit: int = SNIPPET_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


class _Lexical:
    """BM25 (bm25s) over each item's own text plus its transcript, English stemming."""

    def __init__(self, ids: list[str], documents: list[str]) -> None:
        import bm25s
        import Stemmer
        from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_SPANISH

        self.ids = ids
        self._stem = Stemmer.Stemmer("english").stemWords
        self._stopwords = sorted(set(STOPWORDS_EN) | set(STOPWORDS_SPANISH))
        self._bm25s = bm25s
        self.retriever = bm25s.BM25()
        if ids:
            self.retriever.index(self._tokens(documents), show_progress=False)

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


@dataclass(frozen=True)
class _Filter:
    dense: np.ndarray | None  # int64 ids of the items index allowed; None: all
    lexical: np.ndarray | None  # boolean mask over the BM25 documents; None: all


class SearchService:
    """Loaded once (indexes, metadata, BM25); then `search` and `similar` per request."""

    def __init__(self, store: Store, settings: Settings, encoder: Encoder | None = None) -> None:
        self.settings = settings
        self.encoder = encoder or load_encoder(settings)
        # Both raise ModelMismatchError when built by another encoder than this one.
        self.items_index = load_index(settings, "items", self.encoder.model_id)
        self.passages_index = load_index(settings, "passages", self.encoder.model_id)
        self.items = store.items(SPOKEN_KINDS).set_index("item_id")
        cv = t.content_vectors
        passages = store.frame(
            cv,
            (cv.c.model_id == self.encoder.model_id) & (cv.c.passage >= 0),
            ["item_id", "passage", "start", "text"],
        )
        self._passages = {
            passage_key(r.item_id, r.passage): (
                float(r.start) if r.start is not None else None,
                r.text,
            )
            for r in passages.itertuples()
        }
        self._passages_of: dict[str, list[str]] = {}
        for r in passages.itertuples():
            self._passages_of.setdefault(r.item_id, []).append(passage_key(r.item_id, r.passage))
        transcript = passages.sort_values("passage").groupby("item_id")["text"].agg(" ".join)
        ids, docs = [], []
        for item_id, row in self.items.iterrows():
            doc = " ".join(
                x
                for x in (item_text({**row, "item_id": item_id}) or "", transcript.get(item_id, ""))
                if x
            )
            if doc:
                ids.append(item_id)
                docs.append(doc)
        self.lexical = _Lexical(ids, docs)
        # The genre classifier trained on this encoder's vectors (None: none, so no boost).
        self.intent = load_intent(settings, self.encoder.model_id)
        self._genre_col: dict[str, int] = {}
        if self.intent is not None:
            for item_id, genre in self.items["genre"].items():
                if isinstance(genre, str) and " ".join(genre.split()) in self.intent.index:
                    self._genre_col[item_id] = self.intent.index[" ".join(genre.split())]
        self._filters: dict[tuple, _Filter] = {}
        self._rows = self.items.to_dict("index")

    # --- queries ---------------------------------------------------------------

    def search(
        self,
        query: str,
        k: int = 10,
        kind: str | None = None,
        language: str | None = None,
        genre: str | None = None,
        mode: str | None = None,
    ) -> list[SearchResult]:
        """Items best matching a natural-language query, best first."""
        query = _text(query)
        if not query:
            raise EmptyQueryError("the query is empty: give some words to search for")
        mode = mode or self.settings.embed.search_mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        filt = self._filter(kind, language, genre)
        depth = max(5 * k, 50)
        # One query is a small job: one thread each for torch and faiss (see training/threads.py).
        with torch_threads(1):
            return self._search(query, k, filt, depth, mode)

    def _search(
        self, query: str, k: int, filt: _Filter, depth: int, mode: str
    ) -> list[SearchResult]:
        qvec = self.encoder.encode_query(query) if mode != "lexical" else None
        if mode == "dense":
            ranked = self._dense(qvec, depth, filt)
        elif mode == "lexical":
            ranked = self.lexical.rank(query, depth, filt.lexical)
        elif mode == "hybrid":
            dense = [key for key, _ in self._dense(qvec, depth, filt)]
            lexical = [key for key, _ in self.lexical.rank(query, depth, filt.lexical)]
            ranked = reciprocal_rank_fusion([dense, lexical], k=self.settings.embed.rrf_k)
        else:
            ranked = self._boosted(
                query,
                qvec,
                max(depth, self.settings.embed.intent_depth),
                filt,
                lexical=mode == "fused",
            )
        ranked = ranked[:k]
        if qvec is None and any(item_id in self._passages_of for item_id, _ in ranked):
            qvec = self.encoder.encode_query(query)  # lexical mode: only to pick episode snippets
        return [self._result(item_id, score, qvec) for item_id, score in ranked]

    def similar(self, item_id: str, k: int = 10, kind: str | None = None) -> list[SearchResult]:
        """Items whose content is closest to `item_id`'s; same kind unless `kind` ("any" = all)."""
        if item_id not in self.items.index:
            raise UnknownItemError(
                f"unknown item id {item_id!r}: not a show, episode or audiobook in the catalog"
            )
        if item_id not in self.items_index:
            raise NoContentVectorError(f"item {item_id!r} has no text, so it has no content vector")
        wanted = self.items.loc[item_id, "kind"] if kind is None else kind
        allowed = self._allowed(None if wanted == "any" else wanted, None, None)
        allowed = set(self.items.index) if allowed is None else allowed
        allowed.discard(item_id)
        hits = self.items_index.search(self.items_index.vector(item_id), k, allowed)[0]
        return [self._result(key, score, None) for key, score in hits]

    # --- helpers -----------------------------------------------------------------

    def intent_of(self, query: str) -> dict[str, float]:
        """p(genre | query) from the intent classifier, best first ({} when there is none)."""
        query = _text(query)
        if self.intent is None or not query:
            return {}
        p = self.intent.probabilities(self.encoder.encode_query(query))[0]
        return {self.intent.labels[i]: round(float(p[i]), 4) for i in np.argsort(-p)}

    def _boosted(
        self, query: str, qvec: np.ndarray, depth: int, filt: _Filter, lexical: bool
    ) -> list[tuple[str, float]]:
        """cosine (+ lexical_weight * BM25 / best BM25) + intent_weight * p(item's genre | query).

        Candidates: the dense top `depth` (and, when fused, the BM25 top `depth`). Items of
        a genre the classifier does not know, or with no genre, get no boost; nothing is
        dropped, so a query the classifier cannot place still gets its dense ranking.
        """
        cfg = self.settings.embed
        scores = dict(self._dense(qvec, depth, filt))
        if lexical and cfg.lexical_weight:
            hits = self.lexical.rank(query, depth, filt.lexical)
            top = hits[0][1] if hits else 1.0
            for key, _ in hits:
                if key not in scores and key in self.items_index:
                    scores[key] = float(self.items_index.vector(key) @ qvec)
            for key, bm25 in hits:
                if key in scores:
                    scores[key] += cfg.lexical_weight * bm25 / top
        if self.intent is not None and cfg.intent_weight:
            p = self.intent.probabilities(qvec)[0]
            for key in scores:
                col = self._genre_col.get(key)
                if col is not None:
                    scores[key] += cfg.intent_weight * float(p[col])
        return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))

    def _allowed(
        self, kind: str | None, language: str | None, genre: str | None
    ) -> set[str] | None:
        if kind is None and language is None and genre is None:
            return None
        if kind is not None and kind not in SPOKEN_KINDS:
            raise ValueError(f"kind must be one of {', '.join(SPOKEN_KINDS)}, not {kind!r}")
        mask = pd.Series(True, index=self.items.index)
        if kind is not None:
            mask &= self.items["kind"] == kind
        if language is not None:
            mask &= self.items["language"].fillna("").str.lower() == language.lower()
        if genre is not None:
            mask &= self.items["genre"].fillna("").str.lower() == genre.lower()
        return set(self.items.index[mask])

    def _filter(self, kind: str | None, language: str | None, genre: str | None) -> _Filter:
        """The candidates a filter allows, as the dense index's ids and BM25's mask (cached)."""
        key = (kind, language and language.lower(), genre and genre.lower())
        if key not in self._filters:
            allowed = self._allowed(kind, language, genre)
            if allowed is None:
                self._filters[key] = _Filter(None, None)
            else:
                ids = self.items_index.ids_of(allowed)
                # a filter that keeps the whole index (kind=show on a shows-only catalogue) is no filter
                self._filters[key] = _Filter(
                    None if len(ids) == len(self.items_index) else ids, self.lexical.mask(allowed)
                )
        return self._filters[key]

    def _dense(self, qvec: np.ndarray, depth: int, filt: _Filter) -> list[tuple[str, float]]:
        return self.items_index.search(qvec, depth, filt.dense)[0]

    def _result(self, item_id: str, score: float, qvec: np.ndarray | None) -> SearchResult:
        row = self._rows[item_id]
        snippet, start = None, None
        if qvec is not None and row["kind"] == "episode" and item_id in self._passages_of:
            best = self.passages_index.search(qvec, 1, self._passages_of[item_id])[0]
            if best:
                start, snippet = self._passages[best[0][0]]
        if snippet is None:
            snippet = _text(row["description"]) or None
        return SearchResult(
            item_id=item_id,
            kind=row["kind"],
            title=_text(row["title"]),
            score=round(float(score), 6),
            snippet=_clip(snippet) if snippet else None,
            start=start,
            language=row["language"] if isinstance(row["language"], str) else None,
            genre=row["genre"] if isinstance(row["genre"], str) else None,
        )
