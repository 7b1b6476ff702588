"""Content search on a small fixture catalog, with the real MiniLM encoder, faiss and SQLite."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from coldstart.cli import app
from coldstart.content.embeddings import DeferredEncoder, embed_items, load_encoder
from coldstart.content.index import ModelMismatchError, index_content, load_index, sync_indexes
from coldstart.content.search import (
    EmptyQueryError,
    NoContentVectorError,
    SearchService,
    UnknownItemError,
    reciprocal_rank_fusion,
)
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store, upsert, utcnow

# An episode whose transcript changes topic: baking first, then a volcano from 300 s on.
BAKING = [
    "Welcome back to the kitchen, today we bake a sourdough loaf.",
    "Feed the starter the night before so that it is bubbly and active.",
    "Mix flour, water and salt, then fold the dough every half hour.",
    "Shape the loaf and let it proof in a basket overnight in the fridge.",
]
VOLCANO = [
    "Now a story from our trip to Iceland, where a volcano erupted.",
    "Lava fountains rose from the fissure and the ash cloud grounded flights.",
    "Geologists measured the magma flow and the earthquakes before the eruption.",
]


def _segments(item_id: str) -> list[dict]:
    rows, clock = [], 0.0
    for i, text in enumerate(BAKING):
        rows.append(
            {"item_id": item_id, "idx": i, "start": clock, "end": clock + 20.0, "text": text}
        )
        clock += 20.0
    clock = 300.0
    for j, text in enumerate(VOLCANO, start=len(BAKING)):
        rows.append(
            {"item_id": item_id, "idx": j, "start": clock, "end": clock + 15.0, "text": text}
        )
        clock += 15.0
    return rows


ITEMS = [
    {
        "item_id": "s-food",
        "kind": "show",
        "title": "Weekend Kitchen",
        "language": "en",
        "genre": "Leisure",
        "description": "A cooking show about home baking and simple recipes.",
    },
    {
        "item_id": "s-food-e1",
        "kind": "episode",
        "show_id": "s-food",
        "title": "Sourdough and a volcano",
        "language": "en",
        "genre": "Leisure",
        "description": "Bread baking, then a detour to Iceland.",
    },
    {
        "item_id": "s-sport",
        "kind": "show",
        "title": "Ninety Minutes",
        "language": "en",
        "genre": "Sports",
        "description": "Football tactics, transfers and match analysis from the Premier League.",
    },
    {
        "item_id": "s-sport-e1",
        "kind": "episode",
        "show_id": "s-sport",
        "title": "Derby day preview",
        "language": "en",
        "genre": "Sports",
        "description": "Who wins the north London derby? Team news and tactics.",
    },
    {
        "item_id": "s-sport-e2",
        "kind": "episode",
        "show_id": "s-sport",
        "title": None,
        "language": "en",
        "genre": "Sports",
        "description": None,
    },  # no text at all
    {
        "item_id": "b-mars",
        "kind": "audiobook",
        "title": "The Martian Garden",
        "author": "Ada Green",
        "language": "en",
        "genre": "Science",
        "description": "An astronaut grows potatoes and vegetables on Mars to survive.",
    },
    {
        "item_id": "b-crime",
        "kind": "audiobook",
        "title": "El caso del faro",
        "author": "Lucia Ramos",
        "language": "es",
        "genre": "True Crime",
        "description": "Una detective investiga un asesinato en un pueblo de pescadores.",
    },
]


def _catalog(home) -> tuple[Store, Settings]:
    settings = Settings(home=home)
    settings.embed.passage_tokens = 40  # the fixture transcript then makes several passages
    store = Store.from_settings(settings)
    rows = [{**{"show_id": None, "author": None, "explicit": False}, **item} for item in ITEMS]
    with store.begin() as conn:
        upsert(conn, t.items, rows)
        segs = _segments("s-food-e1")
        upsert(
            conn,
            t.transcripts,
            [
                {
                    "item_id": "s-food-e1",
                    "engine": "provided",
                    "model": "provided",
                    "language": "en",
                    "duration": 345.0,
                    "text": " ".join(s["text"] for s in segs),
                    "created_at": utcnow(),
                }
            ],
        )
        upsert(conn, t.segments, segs)
    return store, settings


@pytest.fixture(scope="session")
def encoder():
    return load_encoder(Settings())


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, encoder):
    store, settings = _catalog(tmp_path_factory.mktemp("search"))
    embed_items(store, settings, encoder=encoder, progress=False)
    sync_indexes(store, settings, encoder.model_id, dim=encoder.dim)
    return store, settings


@pytest.fixture(scope="module")
def service(catalog, encoder):
    store, settings = catalog
    return SearchService(store, settings, encoder)


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid", "intent", "fused"])
def test_obvious_item_comes_first(service, mode):
    top = service.search("astronaut growing potatoes on Mars", k=3, mode=mode)
    assert top[0].item_id == "b-mars"
    top = service.search("football tactics derby team news", k=3, kind="episode", mode=mode)
    assert top[0].item_id == "s-sport-e1"


def test_snippet_is_the_matching_passage_with_its_start_time(service):
    volcano = service.search("lava and magma from an erupting volcano", k=1, kind="episode")[0]
    assert volcano.item_id == "s-food-e1"
    assert volcano.start == 300.0
    assert "volcano" in volcano.snippet.lower()
    bread = service.search("feeding a sourdough starter and folding dough", k=1, kind="episode")[0]
    assert bread.item_id == "s-food-e1"
    assert bread.start == 0.0
    assert "starter" in bread.snippet
    assert volcano.end > 300.0 and 0.0 < bread.end <= 300.0  # where the passage ends, too


@pytest.mark.parametrize("weight", [0.0, 0.3])
def test_passage_search_returns_the_answering_passage_with_its_times(service, weight):
    """One result per passage, best first; dense alone (weight 0) and fused with BM25."""
    service.settings.embed.passage_lexical_weight = weight
    try:
        hits = service.search_passages("why were flights grounded by the ash cloud", k=3)
        top = hits[0]
        assert top.item_id == "s-food-e1" and top.kind == "episode"
        assert "ash cloud" in top.snippet and top.start >= 300.0 and top.end > top.start
        # the passage's own times: it lies inside the volcano part of the transcript
        assert 300.0 <= top.start < top.end <= 345.0
        bread = service.search_passages("let the shaped loaf proof overnight", k=1)[0]
        assert bread.end <= 80.0 and "proof" in bread.snippet
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert len({(h.item_id, h.passage) for h in hits}) == len(hits)
        assert service.search_passages("lava", k=2, language="es") == []  # filters apply
    finally:
        service.settings.embed.passage_lexical_weight = Settings().embed.passage_lexical_weight
    with pytest.raises(EmptyQueryError):
        service.search_passages("   ")


def test_filters_restrict_results(service):
    spanish = service.search("a murder investigation", k=5, language="es")
    assert [r.item_id for r in spanish] == ["b-crime"]
    shows = service.search("cooking", k=5, kind="show")
    assert {r.kind for r in shows} == {"show"}
    sports = service.search("cooking", k=5, genre="sports")
    assert {r.genre for r in sports} == {"Sports"}
    with pytest.raises(ValueError, match="kind"):
        service.search("cooking", kind="movie")


def test_empty_query_is_a_clear_error(service):
    for query in ("", "   \n\t"):
        with pytest.raises(EmptyQueryError, match="empty"):
            service.search(query)


def test_items_without_text_are_skipped(catalog, service, encoder):
    store, settings = catalog
    assert "s-sport-e2" not in load_index(settings, "items", encoder.model_id)
    with pytest.raises(NoContentVectorError):
        service.similar("s-sport-e2")
    all_ids = {r.item_id for r in service.search("anything at all", k=50)}
    assert "s-sport-e2" not in all_ids


def test_similar(service):
    near = service.similar("s-sport", k=2, kind="any")
    assert near[0].item_id == "s-sport-e1"
    assert "s-sport" not in [r.item_id for r in near]
    assert all(r.kind == "show" for r in service.similar("s-food"))
    with pytest.raises(UnknownItemError, match="no-such-item"):
        service.similar("no-such-item")


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "a"]], k=60)
    assert [key for key, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_incremental_add_then_search_finds_the_new_item(tmp_path, encoder):
    store, settings = _catalog(tmp_path)
    embed_items(store, settings, encoder=encoder, progress=False)
    sync_indexes(store, settings, encoder.model_id, dim=encoder.dim)
    before = load_index(settings, "items").manifest["built_at"]
    new = {
        "item_id": "s-sport-e3",
        "kind": "episode",
        "show_id": "s-sport",
        "language": "en",
        "genre": "Sports",
        "title": "Chess grandmasters",
        "author": None,
        "explicit": False,
        "description": "An interview with a chess grandmaster about openings and endgames.",
    }
    with store.begin() as conn:
        upsert(conn, t.items, [new])
    report, syncs = index_content(store, settings, ["s-sport-e3"], encoder=encoder, progress=False)
    assert report.embedded == 1
    syncs = {s.unit: s for s in syncs}
    # the episode is added and its show's aggregate vector replaced; nothing rebuilt
    assert (syncs["items"].action, syncs["items"].added, syncs["items"].replaced) == (
        "updated",
        1,
        1,
    )
    assert load_index(settings, "items").manifest["built_at"] == before
    top = SearchService(store, settings, encoder).search("chess openings and endgames", k=1)
    assert top[0].item_id == "s-sport-e3"


def test_deferred_encoder_loads_on_the_first_query_and_answers_alike(catalog, service):
    store, settings = catalog
    deferred = SearchService(store, settings)  # what a server builds: no encoder given
    assert isinstance(deferred.encoder, DeferredEncoder)
    assert not deferred.encoder.loaded  # indexes and intent opened by model id alone
    assert deferred.encoder.model_id == service.encoder.model_id
    for mode in ("dense", "hybrid", "gated"):
        for query in ("astronaut growing potatoes on Mars", "football tactics"):
            got = deferred.search(query, k=5, mode=mode)
            want = service.search(query, k=5, mode=mode)
            assert [r.item_id for r in got] == [r.item_id for r in want]
            assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-6)
    assert deferred.encoder.loaded


def test_model_mismatch_is_a_clear_error(catalog):
    store, settings = catalog
    other = settings.model_copy(deep=True)
    # the same weights at another precision are another encoder, hence another model id
    other.embed.precision = "fp32" if settings.embed.precision != "fp32" else "bf16"
    with pytest.raises(ModelMismatchError, match="re-embed"):
        SearchService(store, other)


def test_cli_search_and_similar(catalog):
    store, settings = catalog
    runner = CliRunner()
    out = runner.invoke(
        app,
        [
            "--home",
            str(settings.home),
            "search",
            "volcano eruption",
            "--k",
            "2",
            "--kind",
            "episode",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert set(rows[0]) == {"item_id", "kind", "title", "score", "snippet", "start", "end"}
    assert rows[0]["item_id"] == "s-food-e1"
    passages = runner.invoke(
        app,
        ["--home", str(settings.home), "search", "lava fountains", "--passages", "--json"],
    )
    assert passages.exit_code == 0, passages.output
    top = json.loads(passages.stdout)[0]
    assert top["item_id"] == "s-food-e1" and top["start"] >= 300.0 and top["end"] > top["start"]
    assert isinstance(top["passage"], int)
    wrong = runner.invoke(
        app, ["--home", str(settings.home), "search", "lava", "--passages", "--kind", "show"]
    )
    assert wrong.exit_code != 0 and "--passages" in wrong.output
    missing = runner.invoke(
        app, ["--home", str(settings.home), "similar", "no-such-item", "--json"]
    )
    assert missing.exit_code != 0
    assert "no-such-item" in missing.output
    empty = runner.invoke(app, ["--home", str(settings.home), "search", "  "])
    assert empty.exit_code != 0 and "empty" in empty.output
