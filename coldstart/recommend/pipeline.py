"""Onboarding: candidates (layer 1) -> ranking (layer 2) -> business rules (layer 3).

Shows and audiobooks each go through the three layers. Episodes come from the final
show list: the newest few episodes of every recommended show inherit their show's
score (slightly less for each older one), then the same rules run on them, so
`one_per_show` keeps one episode per show and `freshness_boost` lifts a new upload.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import torch

from coldstart.core.config import Settings
from coldstart.recommend.candidates import (
    Candidate,
    CandidateSource,
    ContentNeighbours,
    ContentSource,
    EditorialSource,
    RecommenderSource,
)
from coldstart.recommend.columns import CatalogColumns, RuleColumns
from coldstart.recommend.fast import fast_scorer, popularity_lists
from coldstart.recommend.loading import ServingModels
from coldstart.recommend.merge import ScoredItem, rank_candidates
from coldstart.recommend.ranked import SourceParts, apply_rule_rows, merge_sources, scored_items
from coldstart.recommend.row_sources import RowSource
from coldstart.recommend.rules import RuleContext, apply_rules
from training.data import UserProfile

__all__ = ["OnboardingResult", "OnboardingPipeline"]

LIST_KIND = {"podcast": "show", "audiobook": "audiobook"}
EPISODES_PER_SHOW = 3  # newest episodes of each show considered
CONTENT_SEEDS = 3  # best personalised items whose content neighbours join the candidates
# An episode's score: its show's, times this factor for the show's nth newest episode.
EPISODE_FACTORS = [1.0 - 0.01 * n for n in range(EPISODES_PER_SHOW)]
_LATEST = ("rule:latest_episode", "rule:recent_episode")


@dataclass
class OnboardingResult:
    shows: list[ScoredItem]
    episodes: list[ScoredItem]
    audiobooks: list[ScoredItem]
    fallback: bool
    unknown_items: list[str] = field(default_factory=list)
    fallback_lists: list[str] = field(default_factory=list)  # which lists fell back


class OnboardingPipeline:
    def __init__(self, models: ServingModels, settings: Settings, fast: bool = True) -> None:
        # `fast`: served models answer through `coldstart.recommend.fast` (scores prepared
        # at load time) and candidates, merge and rules run over catalogue columns
        # (`columns.py`, `ranked.py`); False runs each model's own `recommend` and the
        # object path (`rank_candidates`, `apply_rules`), the reference.
        self.models = models
        self.settings = settings
        self.fast = fast
        # Pins name shows, not episodes: the episode list's rules have none (copied once).
        self._episode_rules = settings.rules.model_copy(update={"pins": []})
        self.sources: dict[str, list[CandidateSource]] = {t: self._sources(t) for t in LIST_KIND}
        self.content: dict[str, ContentSource] = {}
        if models.search is not None:
            for target, kind in LIST_KIND.items():
                self.content[target] = ContentSource(self._neighbours(kind))
        if fast:
            catalog = models.catalog
            self.columns = CatalogColumns(catalog.metadata, catalog.episodes, EPISODES_PER_SHOW)
            self.rule_columns = RuleColumns(self.columns, settings.rules)
            self.episode_rule_columns = RuleColumns(self.columns, self._episode_rules)
            self.row_sources = {
                target: [
                    source
                    if isinstance(source, EditorialSource)
                    else RowSource(source.name, source.model, self.columns, source.keep_fallback)
                    for source in sources
                    if isinstance(source, (EditorialSource, RecommenderSource))
                ]
                for target, sources in self.sources.items()
            }
            # per list: the merge's parts of the score arrays sources hand out again
            self.source_parts = {target: SourceParts() for target in LIST_KIND}
            self.neighbours: dict[str, ContentNeighbours] = {}
            if models.search is not None:
                index = models.search.items_index
                for target, kind in LIST_KIND.items():
                    self.neighbours[target] = ContentNeighbours(index, self.columns, kind)

    def _accepts(self, kind: str):
        catalog = self.models.catalog
        return lambda item_id: catalog.kind_of(item_id) == kind

    def _neighbours(self, kind: str):
        """Batched nearest items of `kind` in the content index (recommendable ones only)."""
        index = self.models.search.items_index
        allowed = sorted(i for i in self.models.catalog.ids_of_kind(kind) if i in index)
        allowed_ids = index.ids_of(allowed) if allowed else None  # once, not per request

        def neighbours(seed_ids: list[str], k: int) -> list[list[tuple[str, float]]]:
            seeds = [s for s in seed_ids if s in index]
            if not seeds or not allowed:
                return []
            return index.search(np.stack([index.vector(s) for s in seeds]), k, allowed_ids)

        return neighbours

    def _sources(self, target: str) -> list[CandidateSource]:
        # One source per trained model of this target, named by its manifest kind (the
        # key of `serve.source_weights`), in kind order: each ranks through its own
        # `recommend` (for a served model, the blend of network, wide ridge and popularity).
        sources: list[CandidateSource] = [
            RecommenderSource(
                kind, (self.fast and fast_scorer(by_target[target])) or by_target[target]
            )
            for kind, by_target in sorted(self.models.trained.items())
            if target in by_target
        ]
        if self.settings.rules.pins:
            sources.append(
                EditorialSource(self.settings.rules.pins, self._accepts(LIST_KIND[target]))
            )
        if target in self.models.popularity:
            fitted = self.models.popularity[target]
            lists = popularity_lists(fitted) if self.fast else None
            sources.append(RecommenderSource("popularity", lists or fitted, keep_fallback=True))
        return sources

    # --- one list -------------------------------------------------------------------

    def _rank_list(self, target: str, user: UserProfile, k: int, ctx: RuleContext):
        """(ranked items, fell back to popularity, unknown music items)."""
        n = max(self.settings.serve.candidates_per_source, k)
        exclude = list(user.spoken)
        candidates: list[Candidate] = []
        personal: list[list[Candidate]] = []  # per personalised source, best first
        unknown: set[str] = set()
        for source in self.sources[target]:
            result = source.generate(user, n, exclude)
            unknown.update(result.unknown_items)
            candidates += result.candidates
            if source.name not in ("popularity", "editorial") and result.candidates:
                personal.append(result.candidates)
        fallback = not personal
        if personal and target in self.content:
            # Seeds: the best of each personalised source in turn (their scales differ).
            seeds: dict[str, Candidate] = {}
            for rank in range(max(len(ranked) for ranked in personal)):
                for ranked in personal:
                    if rank < len(ranked) and len(seeds) < CONTENT_SEEDS:
                        seeds.setdefault(ranked[rank].item_id, ranked[rank])
                if len(seeds) == CONTENT_SEEDS:
                    break
            candidates += self.content[target].expand(list(seeds.values()), n, exclude).candidates
        ranked = rank_candidates(
            candidates, self.settings.serve.source_weights, self.models.catalog.metadata
        )
        if fallback:
            for item in ranked:
                item.touch("fallback:popularity")
        return apply_rules(ranked, self.settings.rules, ctx, k), fallback, unknown

    def _rank_list_fast(self, target: str, user: UserProfile, k: int, ctx: RuleContext):
        """`_rank_list` over catalogue rows: the same candidates, merge and rules."""
        columns = self.columns
        n = max(self.settings.serve.candidates_per_source, k)
        exclude = list(user.spoken)
        found: list[tuple[str, np.ndarray, np.ndarray]] = []
        personal: list[list[str]] = []  # item ids per personalised source, best first
        unknown: set[str] = set()
        for source in self.row_sources[target]:
            if isinstance(source, EditorialSource):
                excluded = set(exclude)
                pins = [p for p in source.pins if p not in excluded]
                found.append((source.name, columns.rows(pins), np.ones(len(pins))))
                continue
            ranking = source.top(user, n, exclude)
            unknown.update(ranking.unknown)
            if ranking.fallback and not source.keep_fallback:
                continue
            found.append((source.name, ranking.rows, ranking.scores))
            if source.name != "popularity" and len(ranking.item_ids):
                # A source's items are distinct: its first CONTENT_SEEDS alone name
                # enough seeds, so the walk below never reads past them.
                personal.append(ranking.item_ids[:CONTENT_SEEDS].tolist())
        fallback = not personal
        if personal and target in self.neighbours:
            seeds: list[str] = []
            for rank in range(max(len(ids) for ids in personal)):
                for ids in personal:
                    if rank < len(ids) and len(seeds) < CONTENT_SEEDS and ids[rank] not in seeds:
                        seeds.append(ids[rank])
                if len(seeds) == CONTENT_SEEDS:
                    break
            row_of = columns.row_of
            named = [row_of.get(i, -1) for i in (*exclude, *seeds)]
            excluded_rows = np.array([r for r in named if r >= 0], np.int64)
            rows, scores = self.neighbours[target].expand(seeds, n, excluded_rows)
            found.append(("content", rows, scores))
        weights = self.settings.serve.source_weights
        merged = merge_sources(found, weights, fallback, self.source_parts[target])
        answered = apply_rule_rows(
            merged.rows, merged.scores, self.settings.rules, self.rule_columns, ctx, k
        )
        return scored_items(answered, merged.rows, merged.reasons, columns), fallback, unknown

    def _episodes_fast(self, shows: list[ScoredItem], k: int, ctx: RuleContext) -> list[ScoredItem]:
        """`_episodes` over catalogue rows."""
        columns = self.columns
        show_rows = columns.rows([show.item_id for show in shows])
        newest = columns.episodes[show_rows].tolist()  # a row -1 (unknown show) reads the last
        rows: list[int] = []
        scores: list[float] = []
        origin: list[tuple[ScoredItem, int]] = []  # per candidate: its show, its place there
        for show, row, episodes in zip(shows, show_rows.tolist(), newest):
            if row < 0:
                continue
            for n, episode in enumerate(episodes):
                if episode >= 0:
                    rows.append(episode)
                    scores.append(show.score * EPISODE_FACTORS[n])
                    origin.append((show, n))

        def trail(place: int) -> list[str]:
            show, n = origin[place]
            kept = [r for r in show.reasons if r.startswith(("source:", "fallback:"))]
            return [*kept, f"show:{show.item_id}", _LATEST[min(n, 1)]]

        answered = apply_rule_rows(
            rows, scores, self._episode_rules, self.episode_rule_columns, ctx, k
        )
        return scored_items(answered, rows, trail, columns)

    def _episodes(self, shows: list[ScoredItem], k: int, ctx: RuleContext) -> list[ScoredItem]:
        catalog = self.models.catalog
        candidates: list[ScoredItem] = []
        for show in shows:
            for n, episode_id in enumerate(
                catalog.episodes.get(show.item_id, [])[:EPISODES_PER_SHOW]
            ):
                meta = catalog.metadata[episode_id]
                reasons = [r for r in show.reasons if r.startswith(("source:", "fallback:"))]
                candidates.append(
                    ScoredItem(
                        item_id=episode_id,
                        kind="episode",
                        score=show.score * (1.0 - 0.01 * n),
                        reasons=reasons
                        + [
                            f"show:{show.item_id}",
                            "rule:latest_episode" if n == 0 else "rule:recent_episode",
                        ],
                        title=meta["title"],
                        language=meta["language"],
                        genre=meta["genre"],
                        explicit=bool(meta["explicit"]),
                        show_id=meta["show_id"],
                        published_at=meta["published_at"],
                    )
                )
        candidates.sort(key=lambda item: (-item.score, item.item_id))
        return apply_rules(candidates, self._episode_rules, ctx, k)

    # --- the whole answer -------------------------------------------------------------

    def recommend(
        self, user: UserProfile, k: int = 10, now: dt.datetime | None = None
    ) -> OnboardingResult:
        # One clock reading for the whole answer (the rules of all three lists).
        now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        if self.fast:  # numpy only; where a model runs through torch it enters the mode
            return self._recommend(user, k, now)
        # No autograd bookkeeping for any model's forward pass while serving.
        with torch.inference_mode():
            return self._recommend(user, k, now)

    def _recommend(self, user: UserProfile, k: int, now: dt.datetime) -> OnboardingResult:
        ctx = RuleContext(language=user.language, age=user.age, now=now)
        rank_list = self._rank_list_fast if self.fast else self._rank_list
        shows, shows_fallback, unknown = rank_list("podcast", user, k, ctx)
        books, books_fallback, unknown_books = rank_list("audiobook", user, k, ctx)
        fell_back = [
            name
            for name, flag in (("shows", shows_fallback), ("audiobooks", books_fallback))
            if flag
        ]
        return OnboardingResult(
            shows=shows,
            episodes=(self._episodes_fast if self.fast else self._episodes)(shows, k, ctx),
            audiobooks=books,
            fallback=bool(fell_back),
            unknown_items=sorted(
                unknown | unknown_books | {i for i in user.music if i not in self.models.music_ids}
            ),
            fallback_lists=fell_back,
        )
