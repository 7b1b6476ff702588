"""The genre tree in search mode gated: subgenre names per genre, embedded with the intent
classifier, give a query's best cosine to each genre's phrases, and a softmax of it is
blended into p(genre | query). Real MiniLM weights, sklearn, faiss and SQLite."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from coldstart.content.embeddings import embed_items, load_encoder
from coldstart.content.index import sync_indexes
from coldstart.content.intent import (
    PACKAGED_GENRE_TREE,
    load_genre_tree,
    load_intent,
    train_intent,
)
from coldstart.content.query_gate import PACKAGED_GATE, load_gate
from coldstart.content.search import SearchService
from coldstart.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_adapt_intent import _store  # noqa: E402

# the tiny catalogue's opaque genres, with subgenre names a listener would use; "G-none" is
# not a genre of the catalogue and must be ignored
TREE = {
    "phrase": "podcasts about {}",
    "genres": {
        "g-KITCHEN": ["Baking", "Recipes"],  # matches the catalogue's G-kitchen
        "G-stars": ["Astronomy", "Space Exploration"],
        "G-ball": ["Football", "Baseball"],
        "G-none": ["Knitting"],
    },
}


@pytest.fixture(scope="module")
def base():
    return load_encoder(Settings())


@pytest.fixture(scope="module")
def with_tree(tmp_path_factory, base):
    home = tmp_path_factory.mktemp("tree")
    path = home / "tree.json"
    path.write_text(json.dumps(TREE))
    store, settings = _store(home, genre_tree=str(path))
    embed_items(store, settings, encoder=base, progress=False)
    sync_indexes(store, settings, base.model_id, dim=base.dim)
    report = train_intent(store, settings, base.model_id, base)
    return store, settings, report


def test_packaged_tree_names_every_genre_once():
    phrase, genres, path = load_genre_tree(Settings())
    assert path == PACKAGED_GENRE_TREE and "{}" in phrase
    assert len(genres) == 19
    names = [n for subs in genres.values() for n in subs]
    assert len(names) == len(set(names))  # a subgenre belongs to one genre
    assert "Places & Travel" in genres["Society & Culture"]
    assert load_genre_tree(Settings(embed={"genre_tree": ""})) is None


def test_a_broken_tree_file_is_named(tmp_path):
    bad = tmp_path / "tree.json"
    for text, field in (
        ("{not json", "not JSON"),
        ('{"phrase": "no slot", "genres": {}}', "phrase"),
        ('{"genres": {"Arts": "Books"}}', "genres"),
        ('{"genres": {"Arts": [1, 2]}}', "genres"),
    ):
        bad.write_text(text)
        with pytest.raises(ValueError, match=field) as err:
            load_genre_tree(Settings(embed={"genre_tree": str(bad)}))
        assert str(bad) in str(err.value)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_genre_tree(Settings(embed={"genre_tree": str(tmp_path / "missing.json")}))


def test_tree_phrases_are_saved_with_the_classifier(with_tree, base):
    store, settings, report = with_tree
    model = load_intent(settings, base.model_id)
    summary = model.manifest["genre_tree"]
    # three genres of the catalogue, each with its own name and two subgenres; G-none dropped
    assert summary["phrases"] == 9 and summary["genres_covered"] == 3
    assert sorted(np.bincount(model.tree_genre).tolist()) == [3, 3, 3]
    assert model.tree_vectors.shape == (9, base.dim)
    assert np.allclose(np.linalg.norm(model.tree_vectors, axis=1), 1.0, atol=1e-5)
    # the query's best cosine per genre: a request for one subgenre points at its genre
    for query, genre in (("podcasts about baking", "G-kitchen"), ("space exploration", "G-stars")):
        best = model.tree_similarity(base.encode_query(query))
        assert model.labels[int(np.argmax(best))] == genre
    # the cosine is the one with the phrase's own vector
    vec = base.encode_query("podcasts about Baking")
    assert model.tree_similarity(vec).max() == pytest.approx(1.0, abs=1e-5)


def test_no_encoder_or_no_tree_leaves_the_classifier_alone(tmp_path, base):
    store, settings = _store(tmp_path, genre_tree="")
    embed_items(store, settings, encoder=base, progress=False)
    train_intent(store, settings, base.model_id, base)
    model = load_intent(settings, base.model_id)
    assert model.manifest["genre_tree"] is None
    assert model.tree_similarity(base.encode_query("baking")) is None
    with pytest.raises(ValueError, match="is not the vectors' model"):
        train_intent(store, settings, "another-model@1", base)


def test_feedback_blends_the_tree_softmax_into_the_classifier(with_tree, base):
    store, settings, _ = with_tree
    service = SearchService(store, settings, base)
    c = service.candidates("sourdough and pastry recipes", kind=None)
    assert c.tree_similarity is not None
    t = 0.05
    soft = np.exp((c.tree_similarity - c.tree_similarity.max()) / t)
    soft /= soft.sum()
    top = np.argsort(-(c.cosine + 0.5 * c.lexical), kind="stable")[:5]
    shares = np.bincount(c.genre_col[top], minlength=len(c.class_p)) / 5
    p = 0.5 * c.class_p + 0.2 * shares + 0.3 * soft
    expected = p[c.genre_col]
    assert c.feedback_genre_p(0.2, 5, 0.5, 0.3, t) == pytest.approx(expected, abs=1e-12)
    # the tree alone: its softmax, whatever the classifier says
    assert c.feedback_genre_p(0.0, 5, 0.5, 1.0, t) == pytest.approx(soft[c.genre_col])
    # no tree: its weight stays with the classifier
    plain = service.candidates("sourdough and pastry recipes", kind=None)
    object.__setattr__(plain, "tree_similarity", None)
    assert np.array_equal(plain.feedback_genre_p(0.0, 5, 0.5, 0.3, t), plain.genre_p)


def test_gated_search_uses_the_gates_tree_weight(with_tree, base):
    store, settings, _ = with_tree
    service = SearchService(store, settings, base)
    fb = service.gate.feedback
    query = "space exploration"
    c = service.candidates(query, kind="show", k=24)
    lw, iw = c.gated_weights(service.gate)
    genre_p = c.feedback_genre_p(
        fb["weight"],
        int(fb["depth"]),
        fb["lexical_weight"],
        fb["tree_weight"],
        fb["tree_temperature"],
    )
    expected = dict(zip(c.keys, c.cosine + lw * c.lexical + iw * genre_p))
    hits = service.search(query, k=5, kind="show")
    assert [h.score for h in hits] == pytest.approx(sorted(expected.values(), reverse=True)[:5])
    assert all(h.genre == "G-stars" for h in hits)


def test_gate_files_before_the_tree_still_load(tmp_path):
    data = json.loads(PACKAGED_GATE.read_text())
    assert 0.0 < data["genre_feedback"]["tree_weight"] <= 1 - data["genre_feedback"]["weight"]
    old = dict(data, genre_feedback={"weight": 0.25, "depth": 20, "lexical_weight": 0.5})
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    assert load_gate(path).feedback["tree_weight"] == 0.0
    old["genre_feedback"] = dict(old["genre_feedback"], tree_weight=0.9)
    path.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="tree_weight"):
        load_gate(path)
