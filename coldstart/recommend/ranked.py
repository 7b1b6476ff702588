"""Layers 2 and 3 over arrays: the merge (`merge.rank_candidates`) and the business
rules (`rules.apply_rules`) of one list, computed on the candidates' catalogue rows.

`RankedList` holds one list's candidates as parallel arrays (catalogue row, score,
which sources proposed each and what they contributed, which rule touched each) and
an order (positions into those arrays). The rules filter and reorder that order; only
the `k` items answered become `ScoredItem`s, with the same scores and reasons as the
object path (`tests/test_fast_serving.py` checks both lists against it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from coldstart.core.config import RulesSettings
from coldstart.recommend.columns import (
    CatalogColumns,
    RuleColumns,
    micros,
    sorted_groups,
    unique_inverse,
)
from coldstart.recommend.merge import ScoredItem, _normalise
from coldstart.recommend.rules import RuleContext

__all__ = ["RankedList", "SourceReasons", "merge_sources", "apply_rule_columns", "RULE_REASONS"]

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
_PIN = RULE_REASONS.index("rule:pin")
_RULE_BITS = 1 << np.arange(len(RULE_REASONS), dtype=np.int64)
# The reasons of every pattern of rules touching an item, in rule order.
_RULE_TRAILS = [
    tuple(r for n, r in enumerate(RULE_REASONS) if bits >> n & 1)
    for bits in range(1 << len(RULE_REASONS))
]
DAY_MICROS = 86_400_000_000


class RankedList:
    """Candidates of one list as arrays; `base_reasons(at)` gives the reasons of the
    candidates at positions `at` before the rules (sources, fallback, episode trail)."""

    def __init__(
        self,
        rows: np.ndarray,
        scores: np.ndarray,
        order: np.ndarray,
        base_reasons: Callable[[np.ndarray], list[list[str]]],
    ) -> None:
        self.rows = rows
        self.scores = scores
        self.order = order
        self.base_reasons = base_reasons
        self.touched = np.zeros((len(RULE_REASONS), len(rows)), bool)

    def items(self, columns: CatalogColumns, k: int | None) -> list[ScoredItem]:
        """The first `k` items in order, as `ScoredItem`s."""
        order = self.order if k is None else self.order[:k]
        if not len(order):
            return []
        rows = self.rows[order].tolist()
        scores = self.scores[order].tolist()
        # What the rules did to each item, as a bit pattern: its reasons from a table.
        patterns = (_RULE_BITS @ self.touched[:, order]).tolist()
        rule_reasons = [_RULE_TRAILS[bits] for bits in patterns]
        base = self.base_reasons(order)
        fields = columns.fields
        out = []
        for n, row in enumerate(rows):
            item_id, kind, *rest = fields(row)
            out.append(ScoredItem(item_id, kind, scores[n], [*base[n], *rule_reasons[n]], *rest))
        return out


def merge_sources(
    sources: Sequence[tuple[str, np.ndarray, np.ndarray]],
    weights: Mapping[str, float],
    columns: CatalogColumns,
    fallback: bool,
    default_weight: float = 0.5,
) -> RankedList:
    """`rank_candidates` over (source name, catalogue rows, scores) in candidate order:
    each source's scores min-max normalised over all its candidates, weighted, summed
    per item in source order; rows -1 (not in the catalogue) are dropped after
    normalising. Best first, ties by item id."""
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for name, rows, scores in sources:
        if not len(rows):  # a source without candidates takes no part
            continue
        groups.setdefault(name, []).append((rows, scores))
    names = list(groups)
    source_rows: list[np.ndarray] = []
    source_parts: list[np.ndarray] = []
    for name in names:
        pairs = groups[name]
        rows = np.concatenate([r for r, _ in pairs]) if len(pairs) > 1 else pairs[0][0]
        scores = np.concatenate([s for _, s in pairs]) if len(pairs) > 1 else pairs[0][1]
        part = float(weights.get(name, default_weight)) * _normalise(scores)
        if rows.min() < 0:
            keep = rows >= 0
            rows, part = rows[keep], part[keep]
        source_rows.append(rows)
        source_parts.append(part)
    if not source_rows:
        empty = np.zeros(0, np.int64)
        return RankedList(empty, np.zeros(0), empty, lambda at: [[] for _ in range(len(at))])
    rows, inverse = unique_inverse(np.concatenate(source_rows))
    # Summed per item in candidate order (bincount adds its weights in input order),
    # as the object path's running sums do.
    total = np.bincount(inverse, weights=np.concatenate(source_parts), minlength=len(rows))
    order = np.lexsort((columns.id_rank[rows], -total))
    slots, start = [], 0
    for part in source_parts:  # each source's candidates, as places among `rows`
        slots.append(inverse[start : start + len(part)])
        start += len(part)
    reasons = SourceReasons(names, slots, source_parts, len(rows), fallback)
    return RankedList(rows, total, order, reasons)


class SourceReasons:
    """`base_reasons` of a merged list: for each candidate asked about, the sources that
    proposed it, the strongest contribution first (then by name), and the fallback
    mark. Worked out only for the items answered."""

    def __init__(
        self,
        names: list[str],
        slots: list[np.ndarray],
        source_parts: list[np.ndarray],
        candidates: int,
        fallback: bool,
    ) -> None:
        self.names = names
        self.slots, self.source_parts = slots, source_parts
        self.candidates = candidates
        self.tail = ["fallback:popularity"] if fallback else []

    def __call__(self, at: np.ndarray) -> list[list[str]]:
        names, tail = self.names, self.tail
        if len(names) == 1:  # every candidate comes from the one source
            return [[f"source:{names[0]}", *tail] for _ in range(len(at))]
        # What each source contributed to each candidate (-inf: did not propose it); an
        # item appears once per source (a pin named twice: the same value twice).
        absent = -np.inf
        contribution = np.full((len(names), self.candidates), absent)
        for s, (slots, part) in enumerate(zip(self.slots, self.source_parts)):
            contribution[s, slots] = np.maximum(part, 0.0)
        labels = [f"source:{name}" for name in names]
        out = []
        for values in contribution[:, at].T.tolist():
            mine = [(-v, names[s], labels[s]) for s, v in enumerate(values) if v != absent]
            if len(mine) > 1:  # strongest first, then by name
                mine.sort()
            out.append([label for _, _, label in mine] + tail)
        return out


def apply_rule_columns(
    ranked: RankedList,
    rules: RulesSettings,
    rule_columns: RuleColumns,
    columns: CatalogColumns,
    ctx: RuleContext,
    k: int | None = None,
) -> RankedList:
    """`rules.apply_rules` on `ranked` in place: filters and reorders its order, adds
    boosts to its scores and marks what each rule touched. With `k`, only the first `k`
    items of the order are final (what `items(columns, k)` reads)."""
    order, scores, touched = ranked.order, ranked.scores, ranked.touched
    rows = ranked.rows
    # language_match and explicit_filter: one mask per (language, minor) over the rows
    match = bool(rules.match_language and ctx.language)
    if ctx.age is None:
        minor = not rules.explicit_when_age_unknown
    else:
        minor = ctx.age < rules.explicit_min_age
    filter_explicit = not (rules.allow_explicit and not minor)
    r = rows[order]  # the catalogue rows in the current order
    if match or filter_explicit:
        code = columns.languages.get(ctx.language, -2) if match else None
        keep = rule_columns.allowed(code, filter_explicit)[r]
        order, r = order[keep], r[keep]
        if match:
            touched[0, order[columns.has_language[r]]] = True
        if filter_explicit:
            touched[1, order] = True
    # freshness_boost
    if rules.freshness_boost != 0 and rules.freshness_days > 0:
        now = micros(ctx.now or dt.datetime.now(dt.UTC).replace(tzinfo=None))
        low = now - rules.freshness_days * DAY_MICROS  # exact: whole microseconds
        published = columns.published_or_never[r]
        fresh = order[(low <= published) & (published <= now + DAY_MICROS)]
        scores[fresh] += rules.freshness_boost
        touched[2, fresh] = True
    # boost
    if rules.boosts:
        extra = rule_columns.boost[r]
        boosted = extra != 0
        scores[order[boosted]] += extra[boosted]
        touched[3, order[boosted]] = True
    # sort
    order = order[np.lexsort((columns.id_rank[r], -scores[order]))]
    # pin
    if rules.pins:
        position = rule_columns.pin[rows[order]]
        pinned = position >= 0
        first = order[pinned][np.argsort(position[pinned], kind="stable")]
        touched[_PIN, first] = True
        order = np.concatenate([first, order[~pinned]])
    # one_per_show
    episodes = columns.episode_with_show[rows[order]]
    if episodes.any():
        order = _one_per_show(order, episodes, columns.show[rows[order]], touched, rules)
    # genre_diversity
    if rules.max_per_genre > 0 and len(order):
        genre = columns.genre[rows[order]]
        order = _genre_diversity(order, genre, touched, rules.max_per_genre, k)
    ranked.order = order
    return ranked


def _one_per_show(
    order: np.ndarray,
    episodes: np.ndarray,
    show: np.ndarray,
    touched: np.ndarray,
    rules: RulesSettings,
) -> np.ndarray:
    """In list order, at most `max_episodes_per_show` episodes of each show stay (the
    first ones); every episode kept is marked. Counted per show by a stable grouping."""
    at = np.flatnonzero(episodes)  # places in the order
    perm, first = sorted_groups(show[at])
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, len(perm)))
    nth = np.empty(len(perm), np.intp)
    nth[perm] = np.arange(len(perm)) - np.repeat(starts, sizes)
    within = nth < rules.max_episodes_per_show
    touched[5, order[at[within]]] = True
    if within.all():
        return order
    keep = np.ones(len(order), bool)
    keep[at[~within]] = False
    return order[keep]


def _genre_diversity(
    order: np.ndarray, genre: np.ndarray, touched: np.ndarray, cap: int, k: int | None
):
    """Greedy in list order: an item whose genre already has `cap` items ahead of it
    moves below the items that fit (relative order kept); pinned items always count.
    With `k`, the walk stops once `k` items fit: the first `k` of the order are then
    final (what follows them is left in its previous order, unmarked)."""
    pinned = touched[_PIN, order].tolist() if _any_pinned(touched) else None
    head: list[int] = []
    moved: list[int] = []
    counts: dict[int, int] = {}
    end = len(order)
    for j, g in enumerate(genre.tolist()):
        if g >= 0:
            count = counts.get(g, 0)
            if count < cap or (pinned is not None and pinned[j]):
                counts[g] = count + 1
            else:
                moved.append(j)
                continue
        head.append(j)
        if k is not None and len(head) >= k:
            end = j + 1
            break
    if not moved:
        return order
    moved_at = np.array(moved, np.int64)
    touched[6, order[moved_at]] = True
    return np.concatenate([order[head], order[moved_at], order[end:]])


def _any_pinned(touched: np.ndarray) -> bool:
    """Whether the pin rule placed any item (pinned items always count for genres)."""
    return bool(touched[_PIN].any())
