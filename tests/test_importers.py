"""Importers on slices of the real public datasets (copied into tests/data)."""

from __future__ import annotations

import pandas as pd
import pytest

from coldstart.core.store import Store
from coldstart.data.importers import (
    SourceFormatError,
    apple_podcasts,
    douban,
    goodbooks,
    lastfm_hetrec,
)
from coldstart.data.ingest import ingest_dataset


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_lastfm_artists_with_top_tag_as_genre(data_dir, tmp_path, store):
    counts = lastfm_hetrec(data_dir / "lastfm-slice", tmp_path / "lfm")
    assert counts == {"items": 1060, "interactions": 1500}
    items = pd.read_csv(tmp_path / "lfm" / "items.csv").set_index("item_id")
    assert (items["kind"] == "artist").all()
    # Artist 51 (Duran Duran) is tagged most often "new wave" by these listeners.
    assert items.loc["lastfm:artist:51", "title"] == "Duran Duran"
    assert items["genre"].notna().sum() > 100
    ingest_dataset(store, tmp_path / "lfm")
    stats = store.stats()
    assert stats["items"]["by_kind"] == {"artist": 1060}
    assert stats["interactions"]["users_by_kind"]["artist"] == 30


def test_apple_podcasts_shows(data_dir, tmp_path, store):
    counts = apple_podcasts(data_dir / "apple-podcasts-sample.json", tmp_path / "apple")
    assert counts["items"] == 200
    items = pd.read_csv(tmp_path / "apple" / "items.csv")
    assert items["item_id"].str.match(r"^apple:\d+$").all()
    assert items["genre"].nunique() == 19  # "NA" becomes no genre
    assert items["genre"].isna().sum() == 10
    ingest_dataset(store, tmp_path / "apple")
    assert store.stats()["items"]["by_language"]["show"] == {"en": 200}


def test_goodbooks_books_as_audiobooks(data_dir, tmp_path, store):
    goodbooks(data_dir / "goodbooks-slice", tmp_path / "gb")
    items = pd.read_csv(tmp_path / "gb" / "items.csv").set_index("item_id")
    assert items.loc["gb:book:1", "title"].startswith("The Hunger Games")
    assert items.loc["gb:book:1", "author"] == "Suzanne Collins"
    assert items.loc["gb:book:1", "language"] == "en"
    # Every text field of the source reaches the item: series, year, language, original title.
    assert items.loc["gb:book:1", "description"] == (
        "Series: The Hunger Games, #1. First published in 2008. Language: English."
    )
    assert items.loc["gb:book:2", "description"].startswith(
        "Original title: Harry Potter and the Philosopher's Stone. Series: Harry Potter, #1."
    )
    assert items.loc["gb:book:2", "author"] == "J.K. Rowling, Mary GrandPré"
    inter = pd.read_csv(tmp_path / "gb" / "interactions.csv")
    assert inter["weight"].between(1, 5).all()
    ingest_dataset(store, tmp_path / "gb")
    assert store.stats()["items"]["by_kind"] == {"audiobook": 60}


def test_importer_errors_name_the_file(tmp_path):
    with pytest.raises(SourceFormatError, match="artists.dat: file not found"):
        lastfm_hetrec(tmp_path, tmp_path / "out")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SourceFormatError, match="bad.json: not valid JSON"):
        apple_podcasts(bad, tmp_path / "out")
    (tmp_path / "books.csv").write_text("id,name\n1,x\n")
    (tmp_path / "ratings.csv").write_text("user_id,book_id,rating\n1,1,5\n")
    with pytest.raises(SourceFormatError, match=r"books.csv: missing column\(s\) title, authors"):
        goodbooks(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("kind", ["show", "audiobook"])
def test_douban_music_as_tracks_books_as_the_chosen_kind(data_dir, tmp_path, store, kind):
    src = data_dir / "douban-slice"
    counts = douban(src, tmp_path / "db", target=kind)
    music = pd.read_csv(src / "music_ratings.dat", sep="\t", header=None)
    books = pd.read_csv(src / "book_ratings.dat", sep="\t", header=None)
    assert counts == {
        "items": music[1].nunique() + books[1].nunique(),
        "interactions": len(music) + len(books),
    }
    items = pd.read_csv(tmp_path / "db" / "items.csv")
    assert items.groupby("kind").size().to_dict() == {
        "track": music[1].nunique(),
        kind: books[1].nunique(),
    }
    inter = pd.read_csv(tmp_path / "db" / "interactions.csv")
    assert inter["weight"].between(1, 5).all()
    report = ingest_dataset(store, tmp_path / "db")
    assert store.stats()["items"]["by_kind"] == items.groupby("kind").size().to_dict()
    assert report is not None


def test_douban_bad_row_names_file_line_and_column(data_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "music_ratings.dat").write_text("1\t10\t4\n2\t11\tfive\n")
    (src / "book_ratings.dat").write_text("1\t20\t3\n")
    with pytest.raises(SourceFormatError, match=r"music_ratings\.dat: line 2, column rating"):
        douban(src, tmp_path / "out")
    (src / "music_ratings.dat").write_text("1\t10\t9\n")
    with pytest.raises(SourceFormatError, match=r"line 1, column rating: expected 1-5"):
        douban(src, tmp_path / "out")
    (src / "book_ratings.dat").unlink()
    (src / "music_ratings.dat").write_text("1\t10\t4\n")
    with pytest.raises(SourceFormatError, match=r"book_ratings\.dat: file not found"):
        douban(src, tmp_path / "out")
    with pytest.raises(SourceFormatError, match="unknown target kind"):
        douban(src, tmp_path / "out", target="episode")
    assert not (tmp_path / "out").exists()  # nothing half-written
