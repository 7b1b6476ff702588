"""Encoder adaptation, the query-intent boost and search-mode selection, on a tiny labelled
catalogue with the real MiniLM weights, sklearn, faiss and SQLite."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from coldstart.cli import app
from coldstart.content.adapt import adapt_encoder, training_pairs
from coldstart.content.embeddings import (
    current_adapted,
    embed_items,
    encoder_path,
    load_encoder,
    model_id_for,
    resolve_model_path,
)
from coldstart.content.index import index_content, sync_indexes
from coldstart.content.intent import load_intent, train_intent
from coldstart.content.search import MODES, SearchService
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store, upsert

# Three labelled groups of shows. The labels are opaque on purpose: the product must
# learn what they mean from the texts, never from the label's words.
GROUPS = {
    "G-kitchen": [
        ("Pan and Oven", "Home cooks share weeknight recipes, baking tips and kitchen tricks."),
        ("The Spice Rack", "Exploring herbs, spices and the dishes that made them famous."),
        ("Sourdough Sundays", "Bread baking for beginners: starters, flour and proofing."),
        ("Chef's Table Talk", "Restaurant chefs talk about menus, flavour and cooking techniques."),
        ("Plant Plate", "Vegetarian meals, seasonal produce and simple healthy recipes."),
        ("Sweet Tooth", "Cakes, pastries and desserts, step by step from the oven."),
        ("Grill Masters", "Barbecue, smoking meat and outdoor cooking all summer."),
        ("Noodle Notes", "Pasta, ramen and noodle dishes from around the world."),
    ],
    "G-stars": [
        ("Deep Sky", "Astronomers explain galaxies, black holes and the expanding universe."),
        ("Orbit Weekly", "Rocket launches, space stations and missions to Mars."),
        ("Star Party", "Telescopes, constellations and observing the night sky."),
        ("Cosmic Questions", "Physicists answer questions about dark matter and gravity."),
        ("Planet Hunters", "The search for exoplanets and life beyond Earth."),
        ("Moonshot", "The history and future of lunar exploration and astronauts."),
        ("Solar Winds", "Our sun, solar flares and the weather of space."),
        ("Light Years", "Stars are born, live and die: stellar astrophysics made simple."),
    ],
    "G-ball": [
        ("Full Time", "Football match analysis, tactics and transfer news."),
        ("Courtside", "Basketball highlights, trades and playoff predictions."),
        ("The Dugout", "Baseball stats, pitching and the pennant race."),
        ("Fantasy Picks", "Weekly fantasy league advice and player rankings."),
        ("Sideline Stories", "Athletes talk about training, injuries and winning."),
        ("Goal Line", "Goalkeepers, defenders and the art of the clean sheet."),
        ("Tennis Rally", "Grand slams, rankings and the stars of the tour."),
        ("Race Day", "Marathon runners and cyclists on competition and endurance."),
    ],
}


def _rows(labelled: bool = True) -> list[dict]:
    rows = []
    for group, shows in GROUPS.items():
        for i, (title, description) in enumerate(shows):
            rows.append(
                {
                    "item_id": f"{group}-{i}",
                    "kind": "show",
                    "title": title,
                    "description": description,
                    "language": "en",
                    "genre": group if labelled else None,
                    "show_id": None,
                    "author": None,
                    "explicit": False,
                }
            )
    return rows


def _store(home, labelled: bool = True, **embed) -> tuple[Store, Settings]:
    settings = Settings(home=home)
    for key, value in embed.items():
        setattr(settings.embed, key, value)
    store = Store.from_settings(settings)
    with store.begin() as conn:
        upsert(conn, t.items, _rows(labelled))
    return store, settings


TINY_ADAPT = dict(adapt=True, adapt_steps=2, adapt_batch=4, adapt_min_pairs=10, adapt_max_tokens=32)


@pytest.fixture(scope="module")
def base():
    return load_encoder(Settings())


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, base):
    store, settings = _store(tmp_path_factory.mktemp("intent"))
    embed_items(store, settings, encoder=base, progress=False)
    sync_indexes(store, settings, base.model_id, dim=base.dim)
    report = train_intent(store, settings, base.model_id)
    return store, settings, report


# --- adaptation -------------------------------------------------------------------------


def test_training_pairs_come_from_the_store(tmp_path):
    store, _ = _store(tmp_path)
    pairs, genres = training_pairs(store, genre_pairs=False, seed=0)
    assert len(pairs) == 24 and ("Deep Sky", GROUPS["G-stars"][0][1]) in pairs
    with_genre, genres = training_pairs(store, genre_pairs=True, seed=0)
    assert len(with_genre) == 48
    # a genre pair joins two different shows of one group
    extra = with_genre[24:]
    texts = {f"{ti}. {d}": g for g, shows in GROUPS.items() for ti, d in shows}
    assert all(a != b and texts[a] == texts[b] for a, b in extra)
    assert training_pairs(store, genre_pairs=True, seed=0) == (with_genre, genres)


def test_adaptation_writes_a_versioned_model_deterministically(tmp_path, base):
    ids = []
    for run in ("a", "b"):
        store, settings = _store(tmp_path / run, **TINY_ADAPT)
        report = adapt_encoder(store, settings, base)
        assert report.action == "trained" and report.steps == 2 and report.pairs == 48
        folder = current_adapted(settings)
        manifest = json.loads((folder / "adaptation.json").read_text())
        assert manifest["base_model_id"] == base.model_id and manifest["settings"]["seed"] == 0
        assert store.artifact("encoder:adapted")["manifest"]["model_id"] == report.model_id
        assert encoder_path(settings) == folder and model_id_for(settings) == report.model_id
        ids.append(report.model_id)
    assert ids[0] == ids[1]  # same store, settings and seed: the same weights
    assert ids[0] != base.model_id and ids[0].split("@")[0] != base.model_id.split("@")[0]
    # with adaptation off the same home uses the base model again
    settings.embed.adapt = False
    assert encoder_path(settings) == resolve_model_path("bundled")


def test_adaptation_skips_a_catalogue_too_small(tmp_path, base):
    store, settings = _store(tmp_path, **{**TINY_ADAPT, "adapt_min_pairs": 1000})
    report = adapt_encoder(store, settings, base)
    assert report.action == "skipped" and "adapt_min_pairs" in report.reason
    assert current_adapted(settings) is None and model_id_for(settings) == base.model_id


# --- query intent ------------------------------------------------------------------------


def test_intent_classifier_is_trained_with_a_manifest(labelled, base):
    store, settings, report = labelled
    assert report.action == "trained"
    model = load_intent(settings, base.model_id)
    assert model.labels == sorted(GROUPS) and model.manifest["items"] == 24
    assert store.artifact("intent")["manifest"]["data_hash"] == model.manifest["data_hash"]
    assert (
        load_intent(settings, "another-model@123") is None
    )  # never applied to another model's vectors
    p = model.probabilities(base.encode(["telescopes and the planets", "a recipe for dinner"]))
    assert np.allclose(p.sum(axis=1), 1.0)
    assert (
        model.labels[int(p[0].argmax())] == "G-stars"
        and model.labels[int(p[1].argmax())] == "G-kitchen"
    )


def test_intent_skips_an_unlabelled_catalogue(tmp_path, base):
    store, settings = _store(tmp_path, labelled=False)
    embed_items(store, settings, encoder=base, progress=False)
    sync_indexes(store, settings, base.model_id, dim=base.dim)
    report = train_intent(store, settings, base.model_id)
    assert report.action == "skipped" and "genres" in report.reason
    service = SearchService(store, settings, base)
    assert service.intent is None
    query = "rockets and astronauts"
    assert [r.item_id for r in service.search(query, k=5, mode="intent")] == [
        r.item_id for r in service.search(query, k=5, mode="dense")
    ]


def test_intent_boost_is_soft(labelled, base):
    store, settings, _ = labelled
    service = SearchService(store, settings, base)
    settings.embed.intent_weight = 5.0  # far beyond any tuned value
    try:
        # words no show uses still get results, and nothing is filtered out
        for query in ("zxqv blorf wuggle", "quantum entanglement of kitchen basketballs"):
            hits = service.search(query, k=24, mode="intent")
            assert len(hits) == 24
            assert {h.genre for h in hits} == set(GROUPS)
        # a clear query puts its group first
        top = service.search("looking at galaxies through a telescope", k=8, mode="intent")
        assert sum(h.genre == "G-stars" for h in top) >= 7
    finally:
        settings.embed.intent_weight = Settings().embed.intent_weight
    assert list(service.intent_of("baking bread"))[0] == "G-kitchen"


def _fused_by_hand(service, query: str, weights: dict) -> dict[str, float]:
    """cosine + lw * BM25 / best BM25 + iw * confidence**power * p(genre), over every item."""
    qvec = service.encoder.encode_query(query)
    tokens = service.lexical._tokens([query])[0]
    bm25 = np.asarray(service.lexical.retriever.get_scores(tokens), dtype=np.float64)
    p = service.intent.probabilities(qvec)[0]
    boost = weights["fused_intent_weight"] * float(p.max()) ** weights["intent_confidence_power"]
    out = {}
    for i, item_id in enumerate(service.lexical.ids):
        genre = service.items.loc[item_id, "genre"]
        out[item_id] = (
            float(service.items_index.vector(item_id) @ qvec)
            + weights["lexical_weight"] * bm25[i] / bm25.max()
            + boost * float(p[service.intent.index[genre]])
        )
    return out


@pytest.mark.parametrize("power", [0.0, 2.0])
def test_fused_scores_are_the_documented_sum(labelled, base, power):
    """Every item of the tiny catalogue is a candidate: the service's ranking and scores
    must be the formula's, computed here from the parts."""
    store, settings, _ = labelled
    weights = dict(lexical_weight=0.4, fused_intent_weight=0.6, intent_confidence_power=power)
    other = settings.model_copy(deep=True)
    for name, value in weights.items():
        setattr(other.embed, name, value)
    service = SearchService(store, other, base)
    for query in ("rocket launches to Mars", "bread starters and flour", "pitching stats"):
        expected = _fused_by_hand(service, query, weights)
        hits = service.search(query, k=24, mode="fused")
        assert [h.item_id for h in hits] == sorted(expected, key=lambda i: (-expected[i], i))
        assert [h.score for h in hits] == pytest.approx(
            [expected[h.item_id] for h in hits], abs=1e-5
        )


def test_fused_boost_follows_the_classifier_confidence(labelled, base):
    """A hesitant classifier boosts little: with a confidence power the boost shrinks as the
    top probability falls, so the gap it makes between groups is smaller for a vague query
    than for a clear one, and a named show stays first in fused mode."""
    store, settings, _ = labelled
    other = settings.model_copy(deep=True)
    other.embed.lexical_weight, other.embed.fused_intent_weight = 0.5, 1.0
    other.embed.intent_confidence_power = 2.0
    service = SearchService(store, other, base)

    def boost(query: str) -> float:
        p = service.intent.probabilities(base.encode_query(query))[0]
        return float(p.max()) ** 2 * float(p.max() - np.sort(p)[-2])

    assert boost("zxqv blorf wuggle") < boost("telescopes, galaxies and black holes")
    # a show named by its own rare words comes first even when its group is not the query's
    top = service.search("pennant race pitching for astronomers", k=3, mode="fused")[0]
    assert top.title == "The Dugout"


# --- search modes --------------------------------------------------------------------------


def test_default_mode_comes_from_settings(labelled, base):
    store, settings, _ = labelled
    query = "athletes and match tactics"
    for mode in MODES:
        other = settings.model_copy(deep=True)
        other.embed.search_mode = mode
        service = SearchService(store, other, base)
        assert [r.item_id for r in service.search(query, k=6)] == [
            r.item_id for r in service.search(query, k=6, mode=mode)
        ]
    with pytest.raises(ValueError, match="mode must be one of"):
        SearchService(store, settings, base).search(query, mode="psychic")


def test_search_mode_setting_is_validated(monkeypatch):
    monkeypatch.setenv("COLDSTART_EMBED__SEARCH_MODE", "fused")
    assert Settings().embed.search_mode == "fused"
    monkeypatch.setenv("COLDSTART_EMBED__SEARCH_MODE", "psychic")
    with pytest.raises(ValueError):
        Settings()


def test_cli_index_trains_intent_and_search_takes_every_mode(tmp_path):
    store, settings = _store(tmp_path)
    runner = CliRunner()
    out = runner.invoke(app, ["--home", str(tmp_path), "index", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout)["embed"]
    assert report["intent"]["action"] == "trained" and report["intent"]["genres"] == 3
    assert "adapt" not in report  # adaptation is off by default
    for mode in MODES:
        res = runner.invoke(
            app,
            [
                "--home",
                str(tmp_path),
                "search",
                "rocket launches",
                "--k",
                "3",
                "--mode",
                mode,
                "--json",
            ],
        )
        assert res.exit_code == 0, res.output
        rows = json.loads(res.stdout)
        # BM25 alone returns only shows that share a word with the query
        assert len(rows) == (1 if mode == "lexical" else 3) and rows[0]["title"] == "Orbit Weekly"


@pytest.mark.slow
def test_index_adapts_then_embeds_with_the_adapted_model(tmp_path, base):
    store, settings = _store(tmp_path, **TINY_ADAPT)
    report, syncs = index_content(store, settings, progress=False)
    assert report.adapt["action"] == "trained"
    assert report.model_id == report.adapt["model_id"] != base.model_id
    assert all(s.manifest["model_id"] == report.model_id for s in syncs)
    assert report.intent["model_id"] == report.model_id
    service = SearchService(store, settings)
    assert service.encoder.model_id == report.model_id and service.intent is not None
    assert service.search("telescopes and galaxies", k=3, mode="intent")[0].genre == "G-stars"
    # a second full index keeps the adapted model (no retraining) and embeds nothing new
    again, _ = index_content(store, settings, progress=False)
    assert again.adapt is None and again.embedded == 0
    # another seed is another model
    other, other_settings = _store(tmp_path / "seed1", **TINY_ADAPT)
    other_settings.train.seed = 1
    assert adapt_encoder(other, other_settings, base).model_id not in (
        report.model_id,
        base.model_id,
    )
