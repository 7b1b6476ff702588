"""The known-item development set (benchmarks/known_item_queries.py) keeps its own rules:
no title word, no 3-word run of the description, 6-15 words, six shows per genre, and a
fixed tuning/validation split. Checked against the queried shows copied in tests/data."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from check_known_items import SHOWS_COPY, load_shows, problems  # noqa: E402
from known_item_queries import KNOWN_ITEMS, split  # noqa: E402


def test_every_query_keeps_the_rules():
    shows = load_shows(SHOWS_COPY)
    assert problems(shows) == []
    assert len(KNOWN_ITEMS) == 19 and {len(rows) for rows in KNOWN_ITEMS.values()} == {6}


def test_the_checker_catches_each_broken_rule():
    shows = load_shows(SHOWS_COPY)
    # apple:275699983 is The Moth: "moths" stems to the title's "moth"; "told live and
    # without notes" is in its description; the last query is too short
    broken = {
        "Arts": [
            ("apple:275699983", "the podcast where moths tell true stories on a stage"),
            ("apple:275699983", "stories told live and without notes on a stage"),
            ("apple:000", "a show that does not exist anywhere"),
        ],
        "Business": [("apple:137329814", "news")],
    }
    found = "\n".join(problems(shows, broken))
    assert "title word(s) ['moths']" in found
    assert "description run(s) ['stories told live', 'told live and'" in found
    assert "the show has two queries" in found
    assert "apple:000" in found and "no such show" in found
    assert "1 words, not 6-15" in found
    assert "different numbers of queries" in found


def test_halves_are_fixed_and_disjoint():
    tuning, validation = split("tuning"), split("validation")
    assert len(tuning) == len(validation) == 57
    assert not {q for *_, q in tuning} & {q for *_, q in validation}
    assert sorted(tuning + validation) == sorted(split("all"))
    # positions 0, 2, 4 of a genre tune, 1, 3, 5 validate
    assert tuning[0][1:] == KNOWN_ITEMS["Arts"][0] and validation[0][1:] == KNOWN_ITEMS["Arts"][1]
