"""What search derives from the catalogue alone, built once by `coldstart index` and read
at start: at a million listeners, reading 1.2M items with SQL, building each item's text
and tokenising it for BM25 takes minutes; reading these files takes seconds.

`<home>/indexes/lexical/` holds `items.parquet` (the spoken items' columns search reads,
and whether each has a BM25 document), `passages.parquet` (the encoder's transcript
passages: key, item, number, start, end, text), `bm25/` (bm25s' score arrays, memory-mapped
at load) and `manifest.json` with the fingerprint they were built from: the encoder's
model id, the spoken items by kind (count, smallest and largest id), the items table's
data version (`Store.table_changed`: every ingest and upload changes it) and the data
hashes of the items and passages vector indexes (they change when a text, hence its
vector, changes and `coldstart index` runs). `load_search_catalogue` reads the files when
the fingerprint matches and otherwise builds from the store, as before, and writes the
files again (a new directory renamed over the old one). An edit by hand in SQL that keeps
all of these is not seen: delete the directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from coldstart.content.embeddings import SPOKEN_KINDS, item_text
from coldstart.content.index import VectorIndex, index_dir, load_index, passage_key
from coldstart.content.lexical import Lexical
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store, utcnow

__all__ = [
    "FORMAT",
    "ITEM_COLUMNS",
    "SearchCatalogue",
    "search_fingerprint",
    "build_search_catalogue",
    "load_search_catalogue",
    "write_search_catalogue",
    "genre_columns",
]

log = logging.getLogger(__name__)
FORMAT = 1
ITEM_COLUMNS = ("item_id", "kind", "title", "description", "language", "genre", "author")
PASSAGE_COLUMNS = ("item_id", "passage", "start", "end", "text")


@dataclass
class SearchCatalogue:
    items: pd.DataFrame  # the spoken items' ITEM_COLUMNS, indexed by item_id
    passages: pd.DataFrame  # "key" + PASSAGE_COLUMNS, the encoder's transcript passages
    lexical: Lexical  # BM25 over each item's own text plus its transcript

    def save(self, directory: Path, fingerprint: dict) -> dict:
        """Write into a new directory, then swap it in: a reader sees the old or the new."""
        tmp = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        items = self.items.reset_index()
        items["lexical"] = items["item_id"].isin(self.lexical.ids)
        items.to_parquet(tmp / "items.parquet", index=False)
        self.passages.to_parquet(tmp / "passages.parquet", index=False)
        self.lexical.save(tmp / "bm25")
        manifest = {
            "kind": "search_catalogue",
            "format": FORMAT,
            "fingerprint": fingerprint,
            "items": len(items),
            "documents": len(self.lexical.ids),
            "passages": len(self.passages),
            "written_at": utcnow().isoformat(),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        old = directory.with_name(f".{directory.name}.{os.getpid()}.old")
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
        return manifest

    @classmethod
    def load(cls, directory: Path) -> SearchCatalogue:
        items = pd.read_parquet(directory / "items.parquet")
        documents = items["lexical"].to_numpy(dtype=bool)
        ids = items["item_id"].to_numpy(dtype=object)[documents].tolist()
        return cls(
            items.drop(columns="lexical").set_index("item_id"),
            pd.read_parquet(directory / "passages.parquet"),
            Lexical.load(directory / "bm25", ids),
        )


def search_fingerprint(
    store: Store, model_id: str, items_index: VectorIndex, passages_index: VectorIndex
) -> dict:
    """What the search catalogue is built from (see the module's docstring)."""
    with store.connect() as conn:
        kinds = conn.execute(
            select(
                t.items.c.kind,
                func.count(),
                func.min(t.items.c.item_id),
                func.max(t.items.c.item_id),
            )
            .where(t.items.c.kind.in_(SPOKEN_KINDS))
            .group_by(t.items.c.kind)
        ).all()
    return {
        "model_id": model_id,
        "items": {str(k): [int(n), str(low), str(top)] for k, n, low, top in sorted(kinds)},
        "items_version": store.data_version("items"),
        "indexes": {
            "items": items_index.manifest.get("data_hash"),
            "passages": passages_index.manifest.get("data_hash"),
        },
    }


def _documents(items: pd.DataFrame, transcript: pd.Series) -> tuple[list[str], list[str]]:
    """(ids, texts) of the items with text: each one's own text, then its transcript."""
    transcripts = transcript.reindex(items.index).fillna("").tolist()
    columns = [items[c].tolist() for c in ("kind", "title", "description", "author")]
    ids, docs = [], []
    for item_id, kind, title, description, author, spoken in zip(
        items.index.tolist(), *columns, transcripts
    ):
        own = item_text(
            {"kind": kind, "title": title, "description": description, "author": author}
        )
        doc = " ".join(x for x in (own or "", spoken) if x)
        if doc:
            ids.append(item_id)
            docs.append(doc)
    return ids, docs


def build_search_catalogue(store: Store, model_id: str) -> SearchCatalogue:
    """From the store: the spoken items, this encoder's passages and BM25 over their texts."""
    items = store.frame(t.items, t.items.c.kind.in_(SPOKEN_KINDS), ITEM_COLUMNS)
    cv = t.content_vectors
    passages = store.frame(
        cv, (cv.c.model_id == model_id) & (cv.c.passage >= 0), list(PASSAGE_COLUMNS)
    )
    passages.insert(
        0, "key", [passage_key(i, n) for i, n in zip(passages["item_id"], passages["passage"])]
    )
    transcript = passages.sort_values("passage").groupby("item_id")["text"].agg(" ".join)
    items = items.set_index("item_id")
    return SearchCatalogue(items, passages, Lexical(*_documents(items, transcript)))


def _directory(settings: Settings) -> Path:
    return index_dir(settings, "lexical")


def write_search_catalogue(
    store: Store, settings: Settings, model_id: str
) -> tuple[SearchCatalogue, dict]:
    """Build from the store and save beside the vector indexes (`coldstart index`)."""
    fingerprint = search_fingerprint(
        store,
        model_id,
        load_index(settings, "items", model_id),
        load_index(settings, "passages", model_id),
    )
    catalogue = build_search_catalogue(store, model_id)
    directory = _directory(settings)
    manifest = catalogue.save(directory, fingerprint)
    store.register_artifact("index:lexical", directory, manifest)
    return catalogue, manifest


def load_search_catalogue(
    store: Store,
    settings: Settings,
    model_id: str,
    items_index: VectorIndex,
    passages_index: VectorIndex,
) -> tuple[SearchCatalogue, str]:
    """From the saved files when they match the store, else built from the store (and the
    files written again). Returns (catalogue, "file" or "built")."""
    fingerprint = search_fingerprint(store, model_id, items_index, passages_index)
    directory = _directory(settings)
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        if manifest.get("format") == FORMAT and manifest.get("fingerprint") == fingerprint:
            return SearchCatalogue.load(directory), "file"
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError) as exc:  # unreadable: rebuilt below
        log.warning("search catalogue %s unreadable, rebuilding: %s", directory, exc)
    catalogue = build_search_catalogue(store, model_id)
    try:
        catalogue.save(directory, fingerprint)
    except OSError as exc:  # a read-only home still searches, built each start
        log.warning("could not write the search catalogue %s: %s", directory, exc)
    return catalogue, "built"


def genre_columns(genres: pd.Series, index: dict[str, int]) -> dict[str, int]:
    """item id -> the classifier's column of its genre (spaces normalised), for the items
    whose genre the classifier knows: one look-up per distinct genre, not per item."""
    codes, uniques = pd.factorize(genres)
    col_of = np.array(
        [index.get(" ".join(g.split()), -1) if isinstance(g, str) else -1 for g in uniques] + [-1],
        dtype=np.int64,
    )
    cols = col_of[codes]  # code -1 (missing) takes the appended -1
    known = cols >= 0
    return dict(zip(genres.index[known].tolist(), cols[known].tolist()))
