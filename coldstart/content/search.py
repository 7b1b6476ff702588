"""Content queries over the catalog: dense, lexical (BM25), hybrid (reciprocal rank fusion),
intent (dense + a soft boost from the query's predicted genre), fused (dense + weighted
BM25 + the intent boost) and gated (fused, with weights set per query by the query-type
gate of coldstart/content/query_gate.py: broad queries get the genre boost, specific ones
keep their lexical and semantic match; its p(genre | query) blends the classifier with the
genre shares of the query's top fused candidates, the gate's `genre_feedback`).

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

from coldstart.content.embeddings import SPOKEN_KINDS, DeferredEncoder, Encoder
from coldstart.content.index import load_index
from coldstart.content.intent import load_intent
from coldstart.content.lexical import Lexical
from coldstart.content.query_gate import QueryGate, gate_features, load_gate
from coldstart.content.search_file import genre_columns, load_search_catalogue
from coldstart.core.config import Settings
from coldstart.core.store import Store
from training.threads import torch_threads

__all__ = [
    "MODES",
    "Candidates",
    "SearchResult",
    "SearchService",
    "EmptyQueryError",
    "UnknownItemError",
    "NoContentVectorError",
    "reciprocal_rank_fusion",
]

MODES = ("dense", "lexical", "hybrid", "intent", "fused", "gated")
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
    end: float | None = None  # ... and where it ends (transcript passages only)
    passage: int | None = None  # the transcript passage's number (passage search only)
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


def _seconds(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _clip(text: str, limit: int = SNIPPET_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


@dataclass(frozen=True)
class _Filter:
    dense: np.ndarray | None  # int64 ids of the items index allowed; None: all
    lexical: np.ndarray | None  # boolean mask over the BM25 documents; None: all


@dataclass(frozen=True)
class Candidates:
    """One query's candidates (modes intent and fused) and the parts of their score."""

    keys: list[str]
    cosine: np.ndarray
    lexical: np.ndarray  # BM25 / the query's best BM25; 0 where no word is shared
    genre_p: np.ndarray  # p(the item's genre | query); 0 without a genre the classifier knows
    confidence: float  # the classifier's top probability for this query (0: no classifier)
    in_dense: np.ndarray  # True: among the dense top candidates (else only from BM25)
    gate_features: np.ndarray  # the query's inputs to the query-type gate (GATE_FEATURES)
    class_p: np.ndarray  # the classifier's p(genre | query) over its genres (zeros(1): none)
    genre_col: np.ndarray  # each candidate's genre column in class_p (-1: none it knows)
    # the query's best cosine to each genre's genre-tree phrases (None: no tree)
    tree_similarity: np.ndarray | None = None

    def score(self, lexical_weight: float, intent_weight: float, power: float) -> np.ndarray:
        boost = intent_weight * self.confidence**power if intent_weight else 0.0
        return self.cosine + lexical_weight * self.lexical + boost * self.genre_p

    def gated_weights(self, gate: QueryGate) -> tuple[float, float]:
        """(lexical_weight, intent_weight) of mode gated for this query."""
        return gate.weights(gate.p_specific(self.gate_features))

    def feedback_genre_p(
        self,
        weight: float,
        depth: int,
        lexical_weight: float,
        tree_weight: float = 0.0,
        tree_temperature: float = 0.05,
    ) -> np.ndarray:
        """p(each candidate's genre | query), the classifier's blended with two parts:
        `weight` * the genre shares of the top `depth` candidates by cosine +
        lexical_weight * BM25 / best BM25 (pseudo-relevance feedback; ties: candidate
        order) and `tree_weight` * softmax(the query's best cosine to each genre's
        genre-tree phrases / tree_temperature); the classifier keeps the rest. A part
        that is missing (no neighbour with a known genre, no tree) leaves its weight
        to the classifier."""
        if self.confidence == 0.0 or not len(self.keys):
            return self.genre_p
        p = self.class_p
        if weight:
            top = np.argsort(-(self.cosine + lexical_weight * self.lexical), kind="stable")[:depth]
            cols = self.genre_col[top]
            cols = cols[cols >= 0]
            if len(cols):
                shares = np.bincount(cols, minlength=len(p)) / len(cols)
                p = p + weight * (shares - self.class_p)
        if tree_weight and self.tree_similarity is not None:
            z = (self.tree_similarity - self.tree_similarity.max()) / tree_temperature
            p = p + tree_weight * (np.exp(z) / np.exp(z).sum() - self.class_p)
        if p is self.class_p:
            return self.genre_p
        return np.where(self.genre_col >= 0, p[np.maximum(self.genre_col, 0)], 0.0)

    def gated_score(self, gate: QueryGate) -> np.ndarray:
        """Mode gated: cosine + lw(g) * BM25 / best + iw(g) * p(genre) with the gate's feedback."""
        lw, iw = self.gated_weights(gate)
        return (
            self.cosine
            + lw * self.lexical
            + iw
            * self.feedback_genre_p(
                gate.feedback["weight"],
                int(gate.feedback["depth"]),
                gate.feedback["lexical_weight"],
                gate.feedback["tree_weight"],
                gate.feedback["tree_temperature"],
            )
        )


class SearchService:
    """Loaded once (indexes, metadata, BM25); then `search` and `similar` per request."""

    def __init__(
        self, store: Store, settings: Settings, encoder: Encoder | DeferredEncoder | None = None
    ) -> None:
        self.settings = settings
        # The encoder's weights load on the first query (or by `load()`, which the server runs in the background): the indexes only
        # need its model id, and onboarding never encodes text.
        self.encoder = encoder or DeferredEncoder(settings)
        # Both raise ModelMismatchError when built by another encoder than this one; read
        # only here (`coldstart index` changes them), so an IVF index is memory-mapped.
        self.items_index = load_index(settings, "items", self.encoder.model_id, mmap=True)
        self.passages_index = load_index(settings, "passages", self.encoder.model_id, mmap=True)
        # The items, passages and BM25 index: saved by `coldstart index`, built when stale.
        catalogue, self.catalogue_source = load_search_catalogue(
            store, settings, self.encoder.model_id, self.items_index, self.passages_index
        )
        self.items = catalogue.items
        passages = catalogue.passages
        self._passage_rows = passages.set_index("key")
        self._passages_of: dict[str, list[str]] = (
            passages.groupby("item_id")["key"].agg(list).to_dict() if len(passages) else {}
        )
        self._passage_lexical: Lexical | None = None  # built on the first passage query
        self.lexical = catalogue.lexical
        # The genre classifier trained on this encoder's vectors (None: none, so no boost).
        self.intent = load_intent(settings, self.encoder.model_id)
        self._genre_col: dict[str, int] = (
            genre_columns(self.items["genre"], self.intent.index) if self.intent is not None else {}
        )
        self._filters: dict[tuple, _Filter] = {}
        # mode gated: the query-type gate and its two weight sets (embed.query_gate, else packaged)
        self.gate = load_gate(settings.embed.query_gate)

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
        qvec: np.ndarray | None = None
        if mode == "lexical":
            ranked = self.lexical.rank(query, depth, filt.lexical)
        else:
            qvec = self.encoder.encode_query(query)
            ranked = self._ranked(query, qvec, depth, filt, mode)
        ranked = ranked[:k]
        if qvec is None and any(item_id in self._passages_of for item_id, _ in ranked):
            qvec = self.encoder.encode_query(query)  # lexical mode: only to pick episode snippets
        return [self._result(item_id, score, qvec) for item_id, score in ranked]

    def _ranked(
        self, query: str, qvec: np.ndarray, depth: int, filt: _Filter, mode: str
    ) -> list[tuple[str, float]]:
        """The modes that embed the query: dense, hybrid, gated, boosted and fused."""
        if mode == "dense":
            return self._dense(qvec, depth, filt)
        if mode == "hybrid":
            dense = [key for key, _ in self._dense(qvec, depth, filt)]
            lexical = [key for key, _ in self.lexical.rank(query, depth, filt.lexical)]
            return reciprocal_rank_fusion([dense, lexical], k=self.settings.embed.rrf_k)
        if mode == "gated":
            c = self._candidates(
                query, qvec, max(depth, self.settings.embed.intent_depth), filt, True
            )
            scores = c.gated_score(self.gate)
            return sorted(zip(c.keys, scores.tolist()), key=lambda kv: (-kv[1], kv[0]))
        cfg = self.settings.embed
        fused = mode == "fused"
        return self._boosted(
            query,
            qvec,
            max(depth, cfg.intent_depth),
            filt,
            lexical_weight=cfg.lexical_weight if fused else 0.0,
            intent_weight=cfg.fused_intent_weight if fused else cfg.intent_weight,
            confidence_power=cfg.intent_confidence_power if fused else 0.0,
        )

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

    def search_passages(
        self,
        query: str,
        k: int = 10,
        language: str | None = None,
        genre: str | None = None,
    ) -> list[SearchResult]:
        """Transcript passages that best answer `query`, best first: one result per passage,
        its episode's id and title, the passage's text as the snippet and its start and end
        (seconds into the episode). Score: cosine between the query and the passage plus
        `embed.passage_lexical_weight` * BM25 / best BM25 over the passages' own words, over
        the union of the dense and BM25 top candidates."""
        query = _text(query)
        if not query:
            raise EmptyQueryError("the query is empty: give some words to search for")
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        allowed_items = self._allowed(None, language, genre)
        keys = None
        if allowed_items is not None:
            keys = [key for i in allowed_items for key in self._passages_of.get(i, ())]
            if not keys:
                return []
        depth = max(5 * k, 50)
        with torch_threads(1):
            qvec = self.encoder.encode_query(query)
            scores = dict(self.passages_index.search(qvec, depth, keys)[0])
        weight = self.settings.embed.passage_lexical_weight
        if weight and len(self._passage_rows):
            lexical = self._passage_lexicon()
            mask = None if keys is None else lexical.mask(set(keys))
            hits = lexical.rank(query, depth, mask)
            for key, _ in hits:
                if key not in scores and key in self.passages_index:
                    scores[key] = float(self.passages_index.vector(key) @ qvec)
            top = hits[0][1] if hits else 1.0
            for key, bm25 in hits:
                if key in scores:
                    scores[key] += weight * bm25 / top
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        out = []
        for key, score in ranked:
            passage = self._passage_rows.loc[key]
            row = self._row(passage["item_id"]) if passage["item_id"] in self.items.index else {}
            out.append(
                SearchResult(
                    item_id=passage["item_id"],
                    kind=row.get("kind", "episode"),
                    title=_text(row.get("title")),
                    score=round(float(score), 6),
                    snippet=_clip(_text(passage["text"])),
                    start=_seconds(passage["start"]),
                    end=_seconds(passage["end"]),
                    passage=int(passage["passage"]),
                    language=row["language"] if isinstance(row.get("language"), str) else None,
                    genre=row["genre"] if isinstance(row.get("genre"), str) else None,
                )
            )
        return out

    def _passage_lexicon(self) -> Lexical:
        if self._passage_lexical is None:
            rows = self._passage_rows
            self._passage_lexical = Lexical(list(rows.index), [_text(x) for x in rows["text"]])
        return self._passage_lexical

    # --- helpers -----------------------------------------------------------------

    def intent_of(self, query: str) -> dict[str, float]:
        """p(genre | query) from the intent classifier, best first ({} when there is none)."""
        query = _text(query)
        if self.intent is None or not query:
            return {}
        p = self.intent.probabilities(self.encoder.encode_query(query))[0]
        return {self.intent.labels[i]: round(float(p[i]), 4) for i in np.argsort(-p)}

    def candidates(
        self, query: str, k: int = 10, kind: str | None = None, lexical: bool = True
    ) -> Candidates:
        """The candidates modes intent and fused score for `query`, with every part of their
        score (for benchmarks and tuning; `search` adds them up with the settings' weights)."""
        query = _text(query)
        if not query:
            raise EmptyQueryError("the query is empty: give some words to search for")
        depth = max(5 * k, 50, self.settings.embed.intent_depth)
        with torch_threads(1):
            qvec = self.encoder.encode_query(query)
            return self._candidates(query, qvec, depth, self._filter(kind, None, None), lexical)

    def _candidates(
        self, query: str, qvec: np.ndarray, depth: int, filt: _Filter, lexical: bool
    ) -> Candidates:
        """Dense top `depth` and, when `lexical`, the BM25 top `depth` (cosines read from the
        index), each with its cosine, BM25 / best BM25 (0: no shared word) and p(its genre |
        query) (0: no genre the classifier knows)."""
        scores = dict(self._dense(qvec, depth, filt))
        in_dense = len(scores)
        bm25: dict[str, float] = {}
        best_bm25 = 0.0
        if lexical:
            hits = self.lexical.rank(query, depth, filt.lexical)
            top = hits[0][1] if hits else 1.0
            best_bm25 = hits[0][1] if hits else 0.0
            for key, value in hits:
                if key not in scores and key in self.items_index:
                    scores[key] = float(self.items_index.vector(key) @ qvec)
                bm25[key] = value / top
        keys = list(scores)
        p = self.intent.probabilities(qvec)[0] if self.intent is not None else np.zeros(1)
        cols = np.fromiter((self._genre_col.get(key, -1) for key in keys), np.int64, len(keys))
        confidence = float(p.max()) if self.intent is not None else 0.0
        tree = self.intent.tree_similarity(qvec) if self.intent is not None else None
        return Candidates(
            keys=keys,
            cosine=np.fromiter(scores.values(), np.float64, len(keys)),
            lexical=np.fromiter((bm25.get(key, 0.0) for key in keys), np.float64, len(keys)),
            genre_p=np.where(cols >= 0, p[np.maximum(cols, 0)], 0.0).astype(np.float64),
            confidence=confidence,
            in_dense=np.arange(len(keys)) < in_dense,
            gate_features=gate_features(query, confidence, best_bm25),
            class_p=np.asarray(p, dtype=np.float64),
            genre_col=cols,
            tree_similarity=tree,
        )

    def _boosted(
        self,
        query: str,
        qvec: np.ndarray,
        depth: int,
        filt: _Filter,
        lexical_weight: float,
        intent_weight: float,
        confidence_power: float,
    ) -> list[tuple[str, float]]:
        """cosine + lexical_weight * BM25 / best BM25 + intent_weight * c**confidence_power *
        p(item's genre | query), c being the classifier's confidence (its top probability).

        Candidates: the dense top `depth` and, with a lexical weight, the BM25 top `depth`.
        Items of a genre the classifier does not know, or with no genre, get no boost;
        nothing is dropped, so a query the classifier cannot place still gets its dense
        (and lexical) ranking. With a confidence power above 0 the boost fades as the
        classifier hesitates between genres, so a query for one show keeps the ranking its
        words and meaning give it.
        """
        c = self._candidates(query, qvec, depth, filt, lexical=bool(lexical_weight))
        scores = c.score(lexical_weight, intent_weight, confidence_power)
        return sorted(zip(c.keys, scores.tolist()), key=lambda kv: (-kv[1], kv[0]))

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

    def _row(self, item_id: str) -> dict:
        """The item's columns (KeyError: not a spoken item of the catalogue)."""
        at = self.items.index.get_loc(item_id)
        return {c: self.items[c].iat[at] for c in self.items.columns}

    def _dense(self, qvec: np.ndarray, depth: int, filt: _Filter) -> list[tuple[str, float]]:
        return self.items_index.search(qvec, depth, filt.dense)[0]

    def _result(self, item_id: str, score: float, qvec: np.ndarray | None) -> SearchResult:
        row = self._row(item_id)
        snippet, start, end = None, None, None
        if qvec is not None and row["kind"] == "episode" and item_id in self._passages_of:
            best = self.passages_index.search(qvec, 1, self._passages_of[item_id])[0]
            if best:
                passage = self._passage_rows.loc[best[0][0]]
                start, end, snippet = (
                    _seconds(passage["start"]),
                    _seconds(passage["end"]),
                    passage["text"],
                )
        if snippet is None:
            snippet = _text(row["description"]) or None
        return SearchResult(
            item_id=item_id,
            kind=row["kind"],
            title=_text(row["title"]),
            score=round(float(score), 6),
            snippet=_clip(snippet) if snippet else None,
            start=start,
            end=end,
            language=row["language"] if isinstance(row["language"], str) else None,
            genre=row["genre"] if isinstance(row["genre"], str) else None,
        )
