"""Check the known-item queries (benchmarks/known_item_queries.py) against the catalogue.

Rules, per query and its show:
* 6-15 words (separated by white space);
* no word of the show's title: words are lowercased runs of letters and digits, compared
  after English Snowball stemming ("crimes" counts as "crime"); function words
  (FUNCTION_WORDS: articles, prepositions, pronouns, "and", "is", ...) are exempt;
* no run of 3 consecutive words of the show's description (same words, not stemmed,
  function words included);
* the show exists, once, and every genre has the same number of queries.

    .venv/bin/python benchmarks/check_known_items.py /work/shared/data/apple-podcasts/podcasts_info.json
    .venv/bin/python benchmarks/check_known_items.py    # the copy of those shows in tests/data
    .venv/bin/python benchmarks/check_known_items.py CATALOGUE --sample   # how the shows were drawn

Exit status 1, with one line per broken rule naming the show and the query, when any fails.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from known_item_queries import KNOWN_ITEMS  # noqa: E402

SHOWS_COPY = ROOT / "tests/data/known-item-shows.json"
FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "about",
        "as",
        "into",
        "over",
        "under",
        "is",
        "are",
        "was",
        "be",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "you",
        "your",
        "me",
        "my",
        "we",
        "our",
        "us",
        "he",
        "his",
        "she",
        "her",
        "they",
        "their",
        "them",
        "i",
        "s",
        "t",
        "how",
        "what",
        "who",
        "where",
        "when",
        "why",
        "not",
        "no",
        "all",
    ]
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def show_id(record: dict, position: int) -> str:
    """The id `coldstart import apple-podcasts` gives a show."""
    match = re.search(r"/id(\d+)", record.get("link") or "")
    return f"apple:{match.group(1)}" if match else f"apple:record{position}"


def load_shows(path: Path) -> dict[str, dict]:
    shows: dict[str, dict] = {}
    for i, rec in enumerate(json.loads(path.read_text(encoding="utf-8")), start=1):
        shows.setdefault(rec.get("item_id") or show_id(rec, i), rec)
    return shows


def problems(
    shows: dict[str, dict], queries: dict[str, list[tuple[str, str]]] = KNOWN_ITEMS
) -> list[str]:
    """Every broken rule of `queries` (genre -> [(show id, query)]), one line each (empty: all pass)."""
    import Stemmer

    stem = Stemmer.Stemmer("english").stemWord
    out = []
    sizes = {len(rows) for rows in queries.values()}
    if len(sizes) != 1:
        out.append(f"genres have different numbers of queries: {sizes}")
    seen: set[str] = set()
    for genre, rows in queries.items():
        for item_id, query in rows:
            where = f"{genre} / {item_id} / {query!r}"
            if item_id in seen:
                out.append(f"{where}: the show has two queries")
            seen.add(item_id)
            show = shows.get(item_id)
            if show is None:
                out.append(f"{where}: no such show in the catalogue")
                continue
            if show.get("genre") != genre:
                out.append(f"{where}: the show's genre is {show.get('genre')!r}")
            q = words(query)
            if not 6 <= len(query.split()) <= 15:
                out.append(f"{where}: {len(query.split())} words, not 6-15")
            title = {stem(w) for w in words(show["title"]) if w not in FUNCTION_WORDS}
            shared = sorted({w for w in q if w not in FUNCTION_WORDS and stem(w) in title})
            if shared:
                out.append(f"{where}: title word(s) {shared}")
            d = words(show.get("description") or "")
            runs = {tuple(d[i : i + 3]) for i in range(len(d) - 2)}
            copied = [
                " ".join(q[i : i + 3]) for i in range(len(q) - 2) if tuple(q[i : i + 3]) in runs
            ]
            if copied:
                out.append(f"{where}: description run(s) {copied}")
    return out


def sample(
    catalogue: Path, per_genre: int = 6, seed: int = 28
) -> dict[str, list[tuple[str, str, str]]]:
    """The draw the queries were written for: per genre, the first `per_genre` of a seeded
    shuffle of the shows with a genre and an English description of >= 15 words."""
    by_genre: dict[str, list[tuple[str, str, str]]] = {}
    seen = set()
    for i, rec in enumerate(json.loads(catalogue.read_text(encoding="utf-8")), start=1):
        item_id = show_id(rec, i)
        if item_id in seen:
            continue
        seen.add(item_id)
        desc = (rec.get("description") or "").strip()
        if rec.get("genre") in (None, "", "NA") or len(desc.split()) < 15:
            continue
        if sum(c.isascii() for c in desc) / len(desc) < 0.97:
            continue
        by_genre.setdefault(rec["genre"], []).append((item_id, rec["title"], desc))
    rng = random.Random(seed)
    drawn = {}
    for genre in sorted(by_genre):
        shows = by_genre[genre][:]
        rng.shuffle(shows)
        drawn[genre] = shows[:per_genre]
    return drawn


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("catalogue", nargs="?", type=Path, default=SHOWS_COPY)
    parser.add_argument("--sample", action="store_true", help="Print the seeded draw of shows.")
    parser.add_argument(
        "--copy", type=Path, help="Write the queried shows (id, title, genre, description) here."
    )
    args = parser.parse_args()
    if args.sample:
        for genre, shows in sample(args.catalogue).items():
            print(f"== {genre}")
            for item_id, title, desc in shows:
                print(f"[{item_id}] {title} :: {desc}")
        return
    shows = load_shows(args.catalogue)
    if args.copy:
        wanted = [item_id for rows in KNOWN_ITEMS.values() for item_id, _ in rows]
        rows = [
            {"item_id": i, **{k: shows[i].get(k) for k in ("title", "genre", "description")}}
            for i in wanted
            if i in shows
        ]
        args.copy.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    found = problems(shows)
    for line in found:
        print(line)
    n = sum(len(rows) for rows in KNOWN_ITEMS.values())
    print(f"{n} queries over {len(KNOWN_ITEMS)} genres: {len(found)} problem(s)")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
