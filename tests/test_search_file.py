"""The search catalogue saved by `coldstart index` (items, passages, BM25 memory-mapped)
answers every query exactly as the one built from the store, on a small demo world
indexed with the real MiniLM encoder, faiss, bm25s and SQLite; and the column-wise build
gives the documents, rows and genre columns of the per-row code it replaced."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from coldstart.content.embeddings import SPOKEN_KINDS, item_text, load_encoder
from coldstart.content.index import index_content, index_dir
from coldstart.content.search import SearchService
from coldstart.content.search_file import _documents, build_search_catalogue
from coldstart.core.config import Settings
from coldstart.core.store import Store
from coldstart.data.ingest import ingest_dataset
from coldstart.demo.world import WorldConfig, build_world, write_world

CONFIG = WorldConfig(
    users=300, artists=40, shows=12, episodes_per_show=2, audiobooks=16, seed=5
)  # fmt: skip
QUERIES = [
    "history of ancient rome",
    "how to cook pasta at home",
    "football match analysis",
    "historia de la ciencia",
    "true crime murder investigation",
    "the",  # a stopword only: no BM25 answer
]
FILTERS = [{}, {"kind": "episode"}, {"kind": "audiobook", "language": "es"}, {"genre": "comedy"}]
MODES = ("dense", "lexical", "hybrid", "intent", "fused", "gated")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("searchfile")
    settings = Settings(home=home)
    settings.embed.adapt = False
    settings.embed.passage_tokens = 40  # several passages per transcript
    store = Store.from_settings(settings)
    write_world(build_world(CONFIG), home / "dataset")
    ingest_dataset(store, home / "dataset")
    encoder = load_encoder(settings)
    report, _ = index_content(store, settings, encoder=encoder, progress=False)
    assert report.lexical["documents"] > 0 and report.lexical["passages"] > 0
    return store, settings, encoder


def _answers(service: SearchService) -> list:
    out = []
    for query in QUERIES:
        for filt in FILTERS:
            for mode in MODES:
                out.append([r.to_dict() for r in service.search(query, k=8, mode=mode, **filt)])
        for weight in (0.0, 0.3):
            service.settings.embed.passage_lexical_weight = weight
            out.append([r.to_dict() for r in service.search_passages(query, k=5)])
            out.append([r.to_dict() for r in service.search_passages(query, k=5, language="en")])
    for item_id in service.items.index[:: max(1, len(service.items) // 10)]:
        if item_id in service.items_index:
            out.append([r.to_dict() for r in service.similar(item_id, k=5)])
            out.append([r.to_dict() for r in service.similar(item_id, k=5, kind="any")])
    return out


def test_saved_catalogue_answers_as_the_one_built_from_the_store(world):
    store, settings, encoder = world
    saved = SearchService(store, settings, encoder)
    assert saved.catalogue_source == "file"
    directory = index_dir(settings, "lexical")
    shutil.rmtree(directory)
    built = SearchService(store, settings, encoder)
    assert built.catalogue_source == "built" and (directory / "manifest.json").exists()
    pd.testing.assert_frame_equal(saved.items, built.items)
    pd.testing.assert_frame_equal(saved._passage_rows, built._passage_rows)
    assert saved.lexical.ids == built.lexical.ids and saved._genre_col == built._genre_col
    for query in QUERIES:
        tokens = built.lexical._tokens([query])[0]
        if tokens:
            np.testing.assert_array_equal(
                saved.lexical.retriever.get_scores(tokens),
                built.lexical.retriever.get_scores(tokens),
            )
    assert _answers(saved) == _answers(built)
    assert any(r for r in _answers(saved))  # the comparison is not between empty lists


def test_column_build_matches_the_per_row_code_it_replaced(world):
    store, settings, encoder = world
    catalogue = build_search_catalogue(store, encoder.model_id)
    items = store.items(SPOKEN_KINDS).set_index("item_id")  # every column, as before
    passages = catalogue.passages
    transcript = passages.sort_values("passage").groupby("item_id")["text"].agg(" ".join)
    ids, docs = [], []
    for item_id, row in items.iterrows():
        doc = " ".join(
            x
            for x in (item_text({**row, "item_id": item_id}) or "", transcript.get(item_id, ""))
            if x
        )
        if doc:
            ids.append(item_id)
            docs.append(doc)
    assert _documents(catalogue.items, transcript) == (ids, docs)
    assert catalogue.lexical.ids == ids
    service = SearchService(store, settings, encoder)
    rows = items.to_dict("index")
    for item_id in items.index:
        row = service._row(item_id)
        for column, value in row.items():
            expected = rows[item_id][column]
            assert value == expected or (pd.isna(value) and pd.isna(expected)), (item_id, column)
    genre_col = {}
    for item_id, genre in items["genre"].items():
        if isinstance(genre, str) and " ".join(genre.split()) in service.intent.index:
            genre_col[item_id] = service.intent.index[" ".join(genre.split())]
    assert genre_col and service._genre_col == genre_col


def test_a_stale_or_broken_catalogue_is_built_again(world):
    store, settings, encoder = world
    manifest_path = index_dir(settings, "lexical") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["fingerprint"]["items_version"] = "another"
    manifest_path.write_text(json.dumps(manifest))
    assert SearchService(store, settings, encoder).catalogue_source == "built"
    assert SearchService(store, settings, encoder).catalogue_source == "file"  # written again
    (index_dir(settings, "lexical") / "items.parquet").write_bytes(b"not parquet")
    assert SearchService(store, settings, encoder).catalogue_source == "built"
