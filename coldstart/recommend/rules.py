"""Layer 3: business rules from `settings.rules`, applied to a ranked list.

Each rule is one function `(items, rules, context) -> items` and marks every item
it touched with a `rule:<name>` reason. `apply_rules` runs them in this order:

1. `language_match`  drop items in another language than the listener's
2. `explicit_filter` drop explicit items (config, listener under `explicit_min_age`,
                     or age unknown unless `explicit_when_age_unknown`)
3. `freshness_boost` add `freshness_boost` to items published in the last `freshness_days`
4. `boost`           add editorial boosts (keys: an item id, or `genre:<name>`)
5. (re-sort by score)
6. `pin`             editorial pins go first, in the configured order
7. `one_per_show`    at most `max_episodes_per_show` episodes of one show
8. `genre_diversity` at most `max_per_genre` items of a genre; the rest move down

Filters run before boosts so a boost never resurrects a filtered item; pins run
after sorting so they stay where the editor put them; the caps run last so they
see the final order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from coldstart.core.config import RulesSettings
from coldstart.recommend.merge import ScoredItem

__all__ = [
    "RuleContext",
    "RULES",
    "apply_rules",
    "language_match",
    "explicit_filter",
    "freshness_boost",
    "editorial_boost",
    "pin",
    "one_per_show",
    "genre_diversity",
]


@dataclass(frozen=True)
class RuleContext:
    language: str | None = None
    age: float | None = None
    now: dt.datetime | None = None  # naive UTC; defaults to the current time


Rule = Callable[[list[ScoredItem], RulesSettings, RuleContext], list[ScoredItem]]


def language_match(
    items: list[ScoredItem], rules: RulesSettings, ctx: RuleContext
) -> list[ScoredItem]:
    if not rules.match_language or not ctx.language:
        return items
    kept = []
    for item in items:
        if item.language and item.language != ctx.language:
            continue
        if item.language:
            item.touch("rule:language_match")
        kept.append(item)
    return kept


def explicit_filter(
    items: list[ScoredItem], rules: RulesSettings, ctx: RuleContext
) -> list[ScoredItem]:
    if ctx.age is None:
        # Anonymous onboarding: the listener may be a minor. Safe unless configured.
        minor = not rules.explicit_when_age_unknown
    else:
        minor = ctx.age < rules.explicit_min_age
    if rules.allow_explicit and not minor:
        return items
    kept = [item for item in items if not item.explicit]
    for item in kept:
        item.touch("rule:explicit_filter")
    return kept


def freshness_boost(
    items: list[ScoredItem], rules: RulesSettings, ctx: RuleContext
) -> list[ScoredItem]:
    if rules.freshness_boost == 0 or rules.freshness_days <= 0:
        return items
    now = ctx.now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    horizon = now - dt.timedelta(days=rules.freshness_days)
    for item in items:
        if item.published_at is not None and horizon <= item.published_at <= now + dt.timedelta(
            days=1
        ):
            item.score += rules.freshness_boost
            item.touch("rule:freshness_boost")
    return items


def editorial_boost(
    items: list[ScoredItem], rules: RulesSettings, ctx: RuleContext
) -> list[ScoredItem]:
    if not rules.boosts:
        return items
    for item in items:
        extra = rules.boosts.get(item.item_id, 0.0)
        if item.genre:
            extra += rules.boosts.get(f"genre:{item.genre}", 0.0)
        if extra:
            item.score += extra
            item.touch("rule:boost")
    return items


def _sort(items: list[ScoredItem], rules: RulesSettings, ctx: RuleContext) -> list[ScoredItem]:
    return sorted(items, key=lambda item: (-item.score, item.item_id))


def pin(items: list[ScoredItem], rules: RulesSettings, ctx: RuleContext) -> list[ScoredItem]:
    if not rules.pins:
        return items
    order = {item_id: n for n, item_id in enumerate(rules.pins)}
    pinned = sorted(
        (item for item in items if item.item_id in order), key=lambda item: order[item.item_id]
    )
    for item in pinned:
        item.touch("rule:pin")
    return pinned + [item for item in items if item.item_id not in order]


def one_per_show(
    items: list[ScoredItem], rules: RulesSettings, ctx: RuleContext
) -> list[ScoredItem]:
    seen: dict[str, int] = {}
    kept = []
    for item in items:
        if item.kind == "episode" and item.show_id:
            if seen.get(item.show_id, 0) >= rules.max_episodes_per_show:
                continue
            seen[item.show_id] = seen.get(item.show_id, 0) + 1
            item.touch("rule:one_per_show")
        kept.append(item)
    return kept


def genre_diversity(
    items: list[ScoredItem], rules: RulesSettings, ctx: RuleContext
) -> list[ScoredItem]:
    """Greedy: an item whose genre already has `max_per_genre` items ahead of it moves
    below every item that fits, keeping relative order. Pinned items always count."""
    if rules.max_per_genre <= 0:
        return items
    counts: dict[str, int] = {}
    head, tail = [], []
    for item in items:
        genre = item.genre
        if (
            genre is None
            or "rule:pin" in item.reasons
            or counts.get(genre, 0) < rules.max_per_genre
        ):
            if genre is not None:
                counts[genre] = counts.get(genre, 0) + 1
            head.append(item)
        else:
            item.touch("rule:genre_diversity")
            tail.append(item)
    return head + tail


RULES: list[tuple[str, Rule]] = [
    ("language_match", language_match),
    ("explicit_filter", explicit_filter),
    ("freshness_boost", freshness_boost),
    ("boost", editorial_boost),
    ("sort", _sort),
    ("pin", pin),
    ("one_per_show", one_per_show),
    ("genre_diversity", genre_diversity),
]


def apply_rules(
    items: list[ScoredItem], rules: RulesSettings, ctx: RuleContext, k: int | None = None
) -> list[ScoredItem]:
    """Every rule in order, then the first `k` items."""
    for _, rule in RULES:
        items = rule(list(items), rules, ctx)
    return items if k is None else items[:k]
