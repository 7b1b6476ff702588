"""Business rules, each on a hand-made ranked list."""

from __future__ import annotations

import datetime as dt

from coldstart.core.config import RulesSettings
from coldstart.recommend.candidates import Candidate
from coldstart.recommend.merge import ScoredItem, rank_candidates
from coldstart.recommend.rules import (
    RuleContext,
    apply_rules,
    editorial_boost,
    explicit_filter,
    freshness_boost,
    genre_diversity,
    language_match,
    one_per_show,
    pin,
)

NOW = dt.datetime(2026, 11, 23, 12, 0)


def item(item_id, score=1.0, kind="show", **meta) -> ScoredItem:
    return ScoredItem(item_id=item_id, kind=kind, score=score, reasons=["source:affinity"], **meta)


def ids(items) -> list[str]:
    return [i.item_id for i in items]


def test_language_match_drops_other_languages_and_keeps_unknown():
    items = [item("a", language="en"), item("b", language="es"), item("c", language=None)]
    out = language_match(items, RulesSettings(), RuleContext(language="en"))
    assert ids(out) == ["a", "c"]
    assert "rule:language_match" in out[0].reasons
    assert "rule:language_match" not in out[1].reasons


def test_language_match_is_off_without_a_user_language_or_when_disabled():
    items = [item("a", language="en"), item("b", language="es")]
    assert ids(language_match(list(items), RulesSettings(), RuleContext(language=None))) == [
        "a",
        "b",
    ]
    off = RulesSettings(match_language=False)
    assert ids(language_match(list(items), off, RuleContext(language="en"))) == ["a", "b"]


def test_explicit_filter_by_config_and_by_age():
    items = [item("clean"), item("rude", explicit=True)]
    allowed = RulesSettings(allow_explicit=True, explicit_min_age=18)
    assert ids(explicit_filter(list(items), allowed, RuleContext(age=30))) == ["clean", "rude"]
    assert ids(explicit_filter(list(items), allowed, RuleContext(age=15))) == ["clean"]
    banned = RulesSettings(allow_explicit=False)
    out = explicit_filter(list(items), banned, RuleContext(age=40))
    assert ids(out) == ["clean"] and "rule:explicit_filter" in out[0].reasons


def test_explicit_items_are_excluded_when_the_age_is_unknown_unless_configured():
    items = [item("clean"), item("rude", explicit=True)]
    default = RulesSettings()
    assert default.explicit_when_age_unknown is False
    out = explicit_filter(list(items), default, RuleContext(age=None))
    assert ids(out) == ["clean"] and "rule:explicit_filter" in out[0].reasons
    opted_in = RulesSettings(explicit_when_age_unknown=True)
    assert ids(explicit_filter(list(items), opted_in, RuleContext(age=None))) == ["clean", "rude"]
    # A known adult still gets them by default; the opt-in never overrides a minor.
    assert ids(explicit_filter(list(items), default, RuleContext(age=30))) == ["clean", "rude"]
    assert ids(explicit_filter(list(items), opted_in, RuleContext(age=12))) == ["clean"]


def test_one_per_show_keeps_the_best_episode_of_each_show():
    items = [
        item("s1-e1", 0.9, kind="episode", show_id="s1"),
        item("s1-e2", 0.8, kind="episode", show_id="s1"),
        item("s2-e1", 0.7, kind="episode", show_id="s2"),
        item("show3", 0.6),
    ]
    out = one_per_show(items, RulesSettings(max_episodes_per_show=1), RuleContext())
    assert ids(out) == ["s1-e1", "s2-e1", "show3"]
    two = one_per_show(list(items), RulesSettings(max_episodes_per_show=2), RuleContext())
    assert ids(two) == ["s1-e1", "s1-e2", "s2-e1", "show3"]


def test_genre_diversity_moves_overflow_down_in_order():
    items = [item(f"c{i}", 1 - i / 10, genre="comedy") for i in range(4)] + [
        item("h", 0.1, genre="history")
    ]
    out = genre_diversity(items, RulesSettings(max_per_genre=2), RuleContext())
    assert ids(out) == ["c0", "c1", "h", "c2", "c3"]
    assert "rule:genre_diversity" in out[3].reasons and "rule:genre_diversity" not in out[2].reasons


def test_freshness_boost_only_inside_the_window():
    new = item("new", 0.5, kind="episode", published_at=NOW - dt.timedelta(days=2))
    old = item("old", 0.55, kind="episode", published_at=NOW - dt.timedelta(days=40))
    undated = item("undated", 0.52, kind="episode")
    rules = RulesSettings(freshness_days=14, freshness_boost=0.1)
    out = freshness_boost([new, old, undated], rules, RuleContext(now=NOW))
    assert [round(i.score, 3) for i in out] == [0.6, 0.55, 0.52]
    assert (
        out[0].reasons[-1] == "rule:freshness_boost"
        and "rule:freshness_boost" not in out[1].reasons
    )


def test_editorial_boost_by_item_and_genre():
    items = [item("a", 0.5, genre="science"), item("b", 0.5, genre="comedy")]
    rules = RulesSettings(boosts={"a": 0.2, "genre:comedy": 0.05})
    out = editorial_boost(items, rules, RuleContext())
    assert [round(i.score, 3) for i in out] == [0.7, 0.55]
    assert all("rule:boost" in i.reasons for i in out)


def test_pin_puts_pins_first_in_configured_order():
    items = [item("a", 0.9), item("b", 0.8), item("c", 0.1), item("d", 0.05)]
    out = pin(items, RulesSettings(pins=["d", "c", "missing"]), RuleContext())
    assert ids(out) == ["d", "c", "a", "b"]
    assert "rule:pin" in out[0].reasons and "rule:pin" not in out[2].reasons


def test_apply_rules_end_to_end_order_and_reasons():
    items = [
        item("es-show", 0.99, language="es", genre="comedy"),
        item("rude", 0.95, language="en", genre="comedy", explicit=True),
        item("c1", 0.9, language="en", genre="comedy"),
        item("c2", 0.8, language="en", genre="comedy"),
        item("sci", 0.5, language="en", genre="science", published_at=NOW - dt.timedelta(days=1)),
        item("hist", 0.2, language="en", genre="history"),
    ]
    rules = RulesSettings(
        allow_explicit=False, max_per_genre=1, freshness_boost=0.45, pins=["hist"]
    )
    out = apply_rules(items, rules, RuleContext(language="en", age=30, now=NOW), k=3)
    # es-show (language) and rude (explicit) are gone; sci is boosted past c1;
    # hist is pinned; c2 is the second comedy, so it would move below the cut.
    assert ids(out) == ["hist", "sci", "c1"]
    assert out[1].reasons[:1] == ["source:affinity"]
    assert {"rule:language_match", "rule:freshness_boost"} <= set(out[1].reasons)
    assert "rule:pin" in out[0].reasons


def test_rank_candidates_normalises_per_source_and_lists_sources():
    meta = {i: {"kind": "show", "title": i.upper()} for i in "abc"}
    cands = [
        Candidate("a", "affinity", 12.0),
        Candidate("b", "affinity", 2.0),
        Candidate("b", "popularity", 900.0),
        Candidate("c", "popularity", 100.0),
        Candidate("zzz", "popularity", 50.0),  # not in the catalog: dropped
    ]
    out = rank_candidates(cands, {"affinity": 1.0, "popularity": 0.3}, meta)
    assert ids(out) == ["a", "b", "c"]
    assert [round(i.score, 3) for i in out] == [1.0, 0.3, round(0.3 * 50 / 850, 3)]
    assert out[1].reasons == ["source:popularity", "source:affinity"]
    assert out[0].title == "A"
