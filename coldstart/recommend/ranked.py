"""Layers 2 and 3 of one list in one pass over its candidates' catalogue rows: the
merge (`merge.rank_candidates`) and the business rules (`rules.apply_rules`).

A list holds a few dozen candidates; numpy's per-call cost on arrays that small is
most of the work, so the pass gathers what the rules read of every candidate's row
with one index into `CatalogColumns.rule_table` and runs the merge and the rules as
one Python loop each over those values (Python floats: the same IEEE operations, in
the same order, as the object path). Only the `k` items answered become
`ScoredItem`s, with the same scores and reasons as the object path
(`tests/test_fast_serving.py` checks every list against it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

from coldstart.core.config import RulesSettings
from coldstart.recommend.columns import CatalogColumns, RuleColumns, micros
from coldstart.recommend.merge import ScoredItem
from coldstart.recommend.rules import RuleContext

__all__ = [
    "Merged",
    "SourceParts",
    "RULE_REASONS",
    "merge_sources",
    "apply_rule_rows",
    "scored_items",
]

# The reasons the rules add, in the order they run (`rules.RULES`).
RULE_REASONS = (
    "rule:language_match",
    "rule:explicit_filter",
    "rule:freshness_boost",
    "rule:boost",
    "rule:pin",
    "rule:one_per_show",
    "rule:genre_diversity",
)
_LANGUAGE, _EXPLICIT, _FRESH, _BOOST, _PIN, _SHOW, _GENRE = (1 << n for n in range(7))
# The reasons of every pattern of rules touching an item, in rule order.
_RULE_TRAILS = [
    tuple(r for n, r in enumerate(RULE_REASONS) if bits >> n & 1)
    for bits in range(1 << len(RULE_REASONS))
]
DAY_MICROS = 86_400_000_000


class Merged(NamedTuple):
    """A merged list: distinct catalogue rows, their summed scores (candidate order),
    and `reasons(place)`, the source reasons of the row at a place."""

    rows: list[int]
    scores: list[float]
    reasons: Callable[[int], list[str]]


class SourceParts:
    """What one source's candidates contribute to a merge: its rows in candidate order
    and row -> weighted, normalised score; kept for the score arrays a source hands
    out again and again (a popularity list per segment, content neighbours per seed
    set: read-only arrays held by their caches), up to `KEPT` of them."""

    KEPT = 8192

    def __init__(self) -> None:
        # id(scores) -> (scores, weight, rows, parts, row -> part): the array is held,
        # so its id names it for as long as it is kept
        self.kept: dict[int, tuple] = {}

    def of(self, rows: np.ndarray, scores: np.ndarray, weight: float, shared: bool):
        """(rows, parts, row -> part) of one source; `shared`: its arrays come from a
        cache that hands the same array objects out again (kept here)."""
        if shared:
            kept = self.kept.get(id(scores))
            if kept is not None and kept[0] is scores and kept[1] == weight:
                return kept[2:]
        row_list = rows.tolist()
        # `merge._normalise`, weighted: the same float64 operations
        low, high = float(scores.min()), float(scores.max())
        if high - low < 1e-12:
            parts = [weight * 1.0] * len(row_list)
        else:
            parts = (weight * ((scores - low) / (high - low))).tolist()
        by_row = dict(zip(row_list, parts))
        if shared and len(self.kept) < self.KEPT:
            self.kept[id(scores)] = (scores, weight, row_list, parts, by_row)
        return row_list, parts, by_row


def merge_sources(
    sources: Sequence[tuple[str, np.ndarray, np.ndarray]],
    weights: Mapping[str, float],
    fallback: bool,
    kept: SourceParts | None = None,
    default_weight: float = 0.5,
) -> Merged:
    """`rank_candidates` over (source name, catalogue rows, float64 scores): each
    source's scores min-max normalised over all its candidates, weighted, summed per
    item in source order; rows -1 (not in the catalogue) are dropped after
    normalising. The reasons list the sources that proposed an item, strongest
    contribution first (then by name), then the fallback mark. With `kept`, the
    parts of a source's read-only score arrays are kept there (`SourceParts`)."""
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for name, rows, scores in sources:
        if len(rows):  # a source without candidates takes no part
            groups.setdefault(name, []).append((rows, scores))
    names = list(groups)
    total: dict[int, float] = {}
    # per source: row -> its contribution (the last one of an item it names twice)
    parts_of: list[dict[int, float]] = []
    for name in names:
        pairs = groups[name]
        if len(pairs) == 1:
            rows, scores = pairs[0]
        else:
            rows = np.concatenate([r for r, _ in pairs])
            scores = np.concatenate([s for _, s in pairs])
        shared = kept is not None and len(pairs) == 1 and not scores.flags.writeable
        row_list, parts, by_row = (kept or SourceParts()).of(
            rows, scores, float(weights.get(name, default_weight)), shared
        )
        if len(by_row) != len(row_list):  # an item twice, or rows -1: every one counts
            by_row = {r: p for r, p in by_row.items() if r >= 0}
            for row, part in zip(row_list, parts):
                if row >= 0:
                    total[row] = total.get(row, 0.0) + part
        elif not total:
            total = dict(by_row)  # 0.0 + part, for the first source of every item
        else:
            get = total.get
            for row, part in by_row.items():
                total[row] = get(row, 0.0) + part
        parts_of.append(by_row)
    tail = ["fallback:popularity"] if fallback else []
    labels = [f"source:{name}" for name in names]
    merged_rows = list(total)

    def reasons(place: int) -> list[str]:
        row = merged_rows[place]
        mine = [
            (-max(by_row[row], 0.0), names[s], labels[s])
            for s, by_row in enumerate(parts_of)
            if row in by_row
        ]
        if len(mine) > 1:  # strongest first, then by name
            mine.sort()
        return [label for _, _, label in mine] + tail

    return Merged(merged_rows, list(total.values()), reasons)


def apply_rule_rows(
    rows: list[int],
    scores: list[float],
    rules: RulesSettings,
    rule_columns: RuleColumns,
    ctx: RuleContext,
    k: int,
) -> list[tuple[int, float, int]]:
    """`rules.apply_rules` over candidates given as catalogue rows and scores, cut to
    the first `k`: (place among the candidates, final score, bits of the rules that
    touched it) per item answered.

    The filters and boosts run over every candidate, then one sort; `one_per_show`
    and `genre_diversity` run as one walk down the sorted list that stops once `k`
    items fit (an item's fate in either depends only on the items above it)."""
    if not rows:
        return []
    columns = rule_columns.columns
    table = columns.rule_table[rows].tolist()
    match = bool(rules.match_language and ctx.language)
    code = columns.languages.get(ctx.language, -2) if match else -2
    if ctx.age is None:
        minor = not rules.explicit_when_age_unknown
    else:
        minor = ctx.age < rules.explicit_min_age
    filter_explicit = not (rules.allow_explicit and not minor)
    fresh = rules.freshness_boost != 0 and rules.freshness_days > 0
    if fresh:
        now = micros(ctx.now or dt.datetime.now(dt.UTC).replace(tzinfo=None))
        low, high = now - rules.freshness_days * DAY_MICROS, now + DAY_MICROS
        freshness_boost = rules.freshness_boost
    boosts = rule_columns.boost[rows].tolist() if rules.boosts else None
    bits = [_EXPLICIT if filter_explicit else 0] * len(rows)
    final = list(scores) if fresh or boosts is not None else scores
    # language_match, explicit_filter, freshness_boost, boost; then sorted by
    # (-score, id rank): the rank is unique, the place never compared
    items = []
    for place, (rank, language, explicit, published, _, _, _) in enumerate(table):
        if match and language >= 0:
            if language != code:
                continue
            bits[place] |= _LANGUAGE
        if filter_explicit and explicit:
            continue
        score = scores[place]
        if fresh and low <= published <= high:
            score += freshness_boost
            bits[place] |= _FRESH
        if boosts is not None:
            extra = boosts[place]
            if extra != 0:
                score += extra
                bits[place] |= _BOOST
        final[place] = score
        items.append((-score, rank, place))
    items.sort()
    if rules.pins:
        pins = rule_columns.pin[rows].tolist()
        pinned = sorted((it for it in items if pins[it[2]] >= 0), key=lambda it: pins[it[2]])
        for it in pinned:
            bits[it[2]] |= _PIN
        items = pinned + [it for it in items if pins[it[2]] < 0]
    # one_per_show (the first `max_episodes_per_show` episodes of each show stay) and
    # genre_diversity (past `max_per_genre` items of a genre ahead, an item moves below
    # the items that fit; pinned items always count)
    per_show, per_genre = rules.max_episodes_per_show, rules.max_per_genre
    shows: dict[int, int] = {}
    genres: dict[int, int] = {}
    head: list[int] = []
    moved: list[int] = []
    for _, _, place in items:
        _, _, _, _, episode_show, show, genre = table[place]
        if episode_show:
            count = shows.get(show, 0)
            if count >= per_show:
                continue
            shows[show] = count + 1
            bits[place] |= _SHOW
        if per_genre > 0 and genre >= 0:
            count = genres.get(genre, 0)
            if count < per_genre or bits[place] & _PIN:
                genres[genre] = count + 1
            else:
                bits[place] |= _GENRE
                moved.append(place)
                continue
        head.append(place)
        if len(head) >= k:
            break
    answered = head if len(head) >= k else (head + moved)[:k]
    return [(place, final[place], bits[place]) for place in answered]


def scored_items(
    answered: list[tuple[int, float, int]],
    rows: list[int],
    base_reasons: Callable[[int], list[str]],
    columns: CatalogColumns,
) -> list[ScoredItem]:
    """The items `apply_rule_rows` answered as `ScoredItem`s: their fields, final
    scores, base reasons (sources, fallback, episode trail) and the rules' reasons."""
    fields = columns.fields
    out = []
    for place, score, bits in answered:
        item_id, kind, *rest = fields(rows[place])
        reasons = [*base_reasons(place), *_RULE_TRAILS[bits]]
        out.append(ScoredItem(item_id, kind, score, reasons, *rest))
    return out
