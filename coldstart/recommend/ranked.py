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
from coldstart.recommend.columns import CatalogColumns, RuleColumns, micros
from coldstart.recommend.merge import ScoredItem, _normalise
from coldstart.recommend.rules import RuleContext

__all__ = ["RankedList", "merge_sources", "apply_rule_columns", "RULE_REASONS"]

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


class RankedList:
    """Candidates of one list as arrays; `base_reasons(i)` gives candidate i's reasons
    before the rules (sources, fallback, episode trail)."""

    def __init__(
        self,
        rows: np.ndarray,
        scores: np.ndarray,
        order: np.ndarray,
        base_reasons: Callable[[int], list[str]],
    ) -> None:
        self.rows = rows
        self.scores = scores
        self.order = order
        self.base_reasons = base_reasons
        self.touched = np.zeros((len(RULE_REASONS), len(rows)), bool)

    def items(self, columns: CatalogColumns, k: int | None) -> list[ScoredItem]:
        """The first `k` items in order, as `ScoredItem`s."""
        order = self.order if k is None else self.order[:k]
        rows = self.rows[order].tolist()
        scores = self.scores[order].tolist()
        touched = self.touched[:, order].T.tolist()
        ids, metadata = columns.ids, columns.metadata
        out = []
        for n, i in enumerate(order.tolist()):
            reasons = self.base_reasons(i)
            reasons += [reason for reason, hit in zip(RULE_REASONS, touched[n]) if hit]
            item_id = ids[rows[n]]
            meta = metadata[item_id]
            out.append(
                ScoredItem(
                    item_id,
                    meta["kind"],
                    scores[n],
                    reasons,
                    meta["title"],
                    meta["language"],
                    meta["genre"],
                    bool(meta["explicit"]),
                    meta["show_id"],
                    meta["published_at"],
                )
            )
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
    parts = []
    for name in names:
        pairs = groups[name]
        rows = np.concatenate([r for r, _ in pairs]) if len(pairs) > 1 else pairs[0][0]
        scores = np.concatenate([s for _, s in pairs]) if len(pairs) > 1 else pairs[0][1]
        part = float(weights.get(name, default_weight)) * _normalise(scores)
        keep = rows >= 0
        parts.append((rows[keep], part[keep]))
    every = np.concatenate([r for r, _ in parts]) if parts else np.zeros(0, np.int64)
    rows, inverse = np.unique(every, return_inverse=True)
    # Summed per item in candidate order (bincount adds its weights in input order),
    # as the object path's running sums do.
    weights_in_order = np.concatenate([p for _, p in parts]) if parts else np.zeros(0)
    total = np.bincount(inverse, weights=weights_in_order, minlength=len(rows))
    total = total.astype(np.float64, copy=False)  # an empty bincount is int64
    present = np.zeros((len(names), len(rows)), bool)
    contribution = np.zeros((len(names), len(rows)))
    start = 0
    for s, (_, part) in enumerate(parts):
        at = inverse[start : start + len(part)]
        start += len(part)
        present[s, at] = True
        # An item appears once per source (a pin named twice: the same value twice).
        contribution[s, at] = np.maximum(part, 0.0)
    order = np.lexsort((columns.id_rank[rows], -total))
    labels = [f"source:{name}" for name in names]
    tail = ["fallback:popularity"] if fallback else []

    by_item = present.T.tolist()

    def base_reasons(i: int) -> list[str]:
        mine = [s for s, hit in enumerate(by_item[i]) if hit]
        if len(mine) > 1:  # strongest first, then by name
            mine.sort(key=lambda s: (-contribution[s, i], names[s]))
        return [labels[s] for s in mine] + tail

    return RankedList(rows, total, order, base_reasons)


def apply_rule_columns(
    ranked: RankedList,
    rules: RulesSettings,
    rule_columns: RuleColumns,
    columns: CatalogColumns,
    ctx: RuleContext,
) -> RankedList:
    """`rules.apply_rules` on `ranked` in place: filters and reorders its order, adds
    boosts to its scores and marks what each rule touched."""
    order, scores, touched = ranked.order, ranked.scores, ranked.touched
    rows = ranked.rows
    # language_match
    if rules.match_language and ctx.language:
        language = columns.language[rows[order]]
        code = columns.languages.get(ctx.language, -2)
        keep = (language < 0) | (language == code)
        order = order[keep]
        touched[0, order[language[keep] >= 0]] = True
    # explicit_filter
    if ctx.age is None:
        minor = not rules.explicit_when_age_unknown
    else:
        minor = ctx.age < rules.explicit_min_age
    if not (rules.allow_explicit and not minor):
        order = order[~columns.explicit[rows[order]]]
        touched[1, order] = True
    # freshness_boost
    if rules.freshness_boost != 0 and rules.freshness_days > 0:
        now = ctx.now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        low = micros(now - dt.timedelta(days=rules.freshness_days))
        high = micros(now + dt.timedelta(days=1))
        r = rows[order]
        published = columns.published[r]
        fresh = order[columns.has_published[r] & (low <= published) & (published <= high)]
        scores[fresh] += rules.freshness_boost
        touched[2, fresh] = True
    # boost
    if rules.boosts:
        extra = rule_columns.boost[rows[order]]
        boosted = extra != 0
        scores[order[boosted]] += extra[boosted]
        touched[3, order[boosted]] = True
    # sort
    order = order[np.lexsort((columns.id_rank[rows[order]], -scores[order]))]
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
        keep = np.ones(len(order), bool)
        seen: dict[int, int] = {}
        cap = rules.max_episodes_per_show
        for j in np.flatnonzero(episodes).tolist():
            show = int(columns.show[rows[order[j]]])
            count = seen.get(show, 0)
            if count >= cap:
                keep[j] = False
                continue
            seen[show] = count + 1
            touched[5, order[j]] = True
        order = order[keep]
    # genre_diversity
    if rules.max_per_genre > 0 and len(order):
        order = _genre_diversity(order, columns.genre[rows[order]], touched, rules.max_per_genre)
    ranked.order = order
    return ranked


def _genre_diversity(order: np.ndarray, genre: np.ndarray, touched: np.ndarray, cap: int):
    """Greedy in list order: an item whose genre already has `cap` items ahead of it
    moves below the items that fit (relative order kept); pinned items always count."""
    pinned = touched[_PIN, order]
    head = np.ones(len(order), bool)
    counts: dict[int, int] = {}
    for j, g in enumerate(genre.tolist()):
        if g < 0:
            continue
        count = counts.get(g, 0)
        if pinned[j] or count < cap:
            counts[g] = count + 1
        else:
            head[j] = False
    moved = order[~head]
    touched[6, moved] = True
    return np.concatenate([order[head], moved])
