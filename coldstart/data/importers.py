"""Importers: public datasets -> contract datasets (a directory of CSV files).

Each importer reads one public format, names the file and the cause when it cannot,
and writes `items.csv` and `interactions.csv` that `coldstart ingest` loads. Ids are
prefixed by source (`lastfm:`, `apple:`, `gb:`) so several sources share one store.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

__all__ = [
    "SourceFormatError",
    "lastfm_hetrec",
    "apple_podcasts",
    "goodbooks",
    "douban",
    "DOUBAN_TARGETS",
]

# What Douban's books stand in for: shows (the podcast target) or audiobooks.
DOUBAN_TARGETS = ("show", "audiobook")

# ISO 639-2 (as goodbooks writes them) -> ISO 639-1.
_ISO3_TO_ISO1 = {
    "eng": "en",
    "en": "en",
    "spa": "es",
    "fre": "fr",
    "fra": "fr",
    "ger": "de",
    "deu": "de",
    "ita": "it",
    "por": "pt",
    "jpn": "ja",
    "ara": "ar",
    "nld": "nl",
    "dut": "nl",
    "swe": "sv",
    "rus": "ru",
    "pol": "pl",
    "tur": "tr",
    "ind": "id",
    "per": "fa",
    "fil": "tl",
    "nor": "no",
    "dan": "da",
    "vie": "vi",
    "msa": "ms",
    "rum": "ro",
    "gre": "el",
    "heb": "he",
    "kor": "ko",
    "zho": "zh",
    "chi": "zh",
}


class SourceFormatError(ValueError):
    """A source file is missing or not in the expected format."""


def _require(path: Path) -> Path:
    if not path.exists():
        raise SourceFormatError(f"{path}: file not found")
    return path


def _read(path: Path, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(_require(path), **kwargs)
    except SourceFormatError:
        raise
    except Exception as exc:
        raise SourceFormatError(f"{path}: cannot read ({exc})") from exc


def _need_columns(frame: pd.DataFrame, path: Path, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SourceFormatError(
            f"{path}: missing column(s) {', '.join(missing)}; found {list(frame.columns)}"
        )


def _write(out: Path, **frames: pd.DataFrame) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(out / f"{name}.csv", index=False)
    return {name: len(frame) for name, frame in frames.items()}


def lastfm_hetrec(src: Path, out: Path) -> dict[str, int]:
    """HetRec 2011 Last.fm: artists with their most used tag as genre; plays as weights."""
    src, out = Path(src), Path(out)
    artists_path, plays_path = src / "artists.dat", src / "user_artists.dat"
    tags_path, tagged_path = src / "tags.dat", src / "user_taggedartists.dat"
    artists = _read(artists_path, sep="\t", encoding="utf-8", encoding_errors="replace", quoting=3)
    _need_columns(artists, artists_path, ["id", "name"])
    plays = _read(plays_path, sep="\t")
    _need_columns(plays, plays_path, ["userID", "artistID", "weight"])

    genre = pd.Series(dtype=object)
    if tags_path.exists() and tagged_path.exists():
        tags = _read(tags_path, sep="\t", encoding="latin-1")
        tagged = _read(tagged_path, sep="\t")
        _need_columns(tagged, tagged_path, ["artistID", "tagID"])
        counts = tagged.groupby(["artistID", "tagID"]).size().rename("n").reset_index()
        top = counts.sort_values(
            ["artistID", "n", "tagID"], ascending=[True, False, True]
        ).drop_duplicates("artistID")
        genre = top.set_index("artistID")["tagID"].map(tags.set_index("tagID")["tagValue"])

    items = pd.DataFrame(
        {
            "item_id": "lastfm:artist:" + artists["id"].astype(str),
            "kind": "artist",
            "title": artists["name"],
            "genre": artists["id"].map(genre),
        }
    )
    known = set(artists["id"])
    plays = plays[plays["artistID"].isin(known)]
    interactions = pd.DataFrame(
        {
            "user_id": "lastfm:user:" + plays["userID"].astype(str),
            "item_id": "lastfm:artist:" + plays["artistID"].astype(str),
            "weight": plays["weight"].astype(float),
        }
    )
    return _write(out, items=items, interactions=interactions)


def apple_podcasts(src: Path, out: Path) -> dict[str, int]:
    """Apple Podcasts catalogue JSON (list of shows) -> show items.

    The catalogue is the US store and has no language field; shows are marked English.
    The show id is Apple's numeric id from the link; genre "NA" means no genre.
    """
    src, out = Path(src), Path(out)
    try:
        records = json.loads(_require(src).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SourceFormatError(f"{src}: not valid JSON ({exc})") from exc
    if not isinstance(records, list):
        raise SourceFormatError(f"{src}: expected a JSON list of shows")
    rows, seen = [], set()
    for i, rec in enumerate(records, start=1):
        if not isinstance(rec, dict) or not rec.get("title"):
            raise SourceFormatError(f"{src}: record {i} has no title")
        match = re.search(r"/id(\d+)", rec.get("link") or "")
        item_id = f"apple:{match.group(1)}" if match else f"apple:record{i}"
        if item_id in seen:
            continue  # the catalogue lists a few shows twice
        seen.add(item_id)
        genre = rec.get("genre")
        rows.append(
            {
                "item_id": item_id,
                "kind": "show",
                "title": rec["title"].strip(),
                "description": (rec.get("description") or "").strip() or None,
                "language": "en",
                "genre": None if genre in (None, "", "NA") else genre,
                "author": rec.get("producer"),
            }
        )
    items = pd.DataFrame(rows)
    interactions = pd.DataFrame(columns=["user_id", "item_id", "weight"])
    return _write(out, items=items, interactions=interactions)


# ISO 639-1 -> the language's English name, for the text of an imported item.
_LANGUAGE_NAMES = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "ja": "Japanese",
    "ar": "Arabic",
    "nl": "Dutch",
    "sv": "Swedish",
    "ru": "Russian",
    "pl": "Polish",
    "tr": "Turkish",
    "id": "Indonesian",
    "fa": "Persian",
    "tl": "Filipino",
    "no": "Norwegian",
    "da": "Danish",
    "vi": "Vietnamese",
    "ms": "Malay",
    "ro": "Romanian",
    "el": "Greek",
    "he": "Hebrew",
    "ko": "Korean",
    "zh": "Chinese",
}
# "Title (Series Name, #3)": goodbooks writes a book's series in its title.
_SERIES = re.compile(r"^(?P<title>.*?)\s*\((?P<series>[^()]*#\s*[\d.]+[^()]*)\)\s*$")


def _text(value) -> str:
    return (
        "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value).strip()
    )


def goodbooks_description(
    title: str, original_title: str, year: float | None, language: str | None
) -> str | None:
    """Everything goodbooks knows about a book besides its title and authors (the
    `author` column, which the embedding text adds: "TITLE by AUTHORS"), one sentence
    per field: the original title when it differs, the series and the book's number in
    it, the first publication year, the language. None when there is nothing."""
    parts = []
    match = _SERIES.match(title)
    plain = match.group("title") if match else title
    if original_title and original_title.casefold() != plain.casefold():
        parts.append(f"Original title: {original_title}.")
    if match:
        parts.append(f"Series: {match.group('series')}.")
    if year is not None and not pd.isna(year):
        parts.append(f"First published in {int(year)}.")
    if language:
        parts.append(f"Language: {_LANGUAGE_NAMES.get(language, language)}.")
    return " ".join(parts) or None


def goodbooks(src: Path, out: Path) -> dict[str, int]:
    """goodbooks-10k: books become audiobooks; a rating (1-5) is the interaction weight.

    ratings.csv's book_id is books.csv's `id` column (1..10000), not goodreads' book_id.
    Every text field the source has goes into the item: `title` (goodbooks' title, with
    the series), `author` (all authors), and `description` (`goodbooks_description`:
    original title, series, first publication year, language). Ratings counts and averages are not text and stay out.
    """
    src, out = Path(src), Path(out)
    books_path, ratings_path = src / "books.csv", src / "ratings.csv"
    books = _read(books_path)
    _need_columns(books, books_path, ["id", "title", "authors"])
    ratings = _read(ratings_path)
    _need_columns(ratings, ratings_path, ["user_id", "book_id", "rating"])

    year = pd.to_numeric(books.get("original_publication_year"), errors="coerce")
    language = books.get("language_code", pd.Series(index=books.index, dtype=object)).map(
        lambda c: _ISO3_TO_ISO1.get(str(c).split("-")[0].lower()) if pd.notna(c) else None
    )
    original = books.get("original_title", pd.Series(index=books.index, dtype=object))
    description = [
        goodbooks_description(_text(t), _text(o), y, lang)
        for t, o, y, lang in zip(books["title"], original, year, language)
    ]
    items = pd.DataFrame(
        {
            "item_id": "gb:book:" + books["id"].astype(str),
            "kind": "audiobook",
            "title": books["title"],
            "description": description,
            "author": books["authors"],
            "language": language,
            "published_at": year.map(
                lambda y: f"{int(y):04d}-01-01" if pd.notna(y) and 1 <= y <= 2100 else None
            ),
        }
    )
    ratings = ratings[ratings["book_id"].isin(set(books["id"]))]
    interactions = pd.DataFrame(
        {
            "user_id": "gb:user:" + ratings["user_id"].astype(str),
            "item_id": "gb:book:" + ratings["book_id"].astype(str),
            "weight": ratings["rating"].astype(float),
        }
    )
    return _write(out, items=items, interactions=interactions)


def _douban_ratings(path: Path) -> pd.DataFrame:
    """`user_id item_id rating` rows, tab-separated, no header; ratings 1-5.
    A bad row is named by its 1-based line number."""
    frame = _read(path, sep="\t", header=None, dtype=str, keep_default_na=False)
    if frame.shape[1] != 3:
        raise SourceFormatError(
            f"{path}: expected 3 tab-separated columns (user_id, item_id, rating), found {frame.shape[1]}"
        )
    frame.columns = ["user_id", "item_id", "rating"]
    for column in frame.columns:
        bad = ~frame[column].str.fullmatch(r"\s*\d+\s*")
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise SourceFormatError(
                f"{path}: line {row + 1}, column {column}: expected an integer, got {frame[column].iat[row]!r}"
            )
    frame = frame.apply(lambda c: c.str.strip().astype(int))
    out_of_range = ~frame["rating"].between(1, 5)
    if out_of_range.any():
        row = int(out_of_range.to_numpy().argmax())
        raise SourceFormatError(
            f"{path}: line {row + 1}, column rating: expected 1-5, got {frame['rating'].iat[row]}"
        )
    return frame


def douban(src: Path, out: Path, target: str = "audiobook") -> dict[str, int]:
    """Douban cross-domain ratings (music + books for the same users, as published with
    GA-DTCDR): music items become `track`s, books the chosen spoken-word kind
    (`show` or `audiobook`); the rating (1-5) is the interaction weight. ID-only: the
    data has no titles, text, demographics or timestamps."""
    if target not in DOUBAN_TARGETS:
        raise SourceFormatError(
            f"unknown target kind {target!r}; expected one of {', '.join(DOUBAN_TARGETS)}"
        )
    src, out = Path(src), Path(out)
    music = _douban_ratings(src / "music_ratings.dat")
    books = _douban_ratings(src / "book_ratings.dat")
    frames = []
    for ratings, kind, prefix in (
        (music, "track", "douban:music:"),
        (books, target, "douban:book:"),
    ):
        # A user who rated an item twice keeps the last rating.
        ratings = ratings.drop_duplicates(["user_id", "item_id"], keep="last")
        frames.append((ratings, kind, prefix))
    items = pd.concat(
        [
            pd.DataFrame(
                {
                    "item_id": prefix + pd.Series(sorted(r["item_id"].unique())).astype(str),
                    "kind": kind,
                }
            )
            for r, kind, prefix in frames
        ],
        ignore_index=True,
    )
    interactions = pd.concat(
        [
            pd.DataFrame(
                {
                    "user_id": "douban:user:" + r["user_id"].astype(str),
                    "item_id": prefix + r["item_id"].astype(str),
                    "weight": r["rating"].astype(float),
                }
            )
            for r, _, prefix in frames
        ],
        ignore_index=True,
    )
    return _write(out, items=items, interactions=interactions)
