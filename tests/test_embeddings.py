"""Text units, passages, and embedding into `content_vectors` with the bundled MiniLM."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from coldstart.content.embeddings import (
    embed_items,
    item_text,
    item_vectors,
    load_encoder,
    model_id_for,
    model_id_of,
    passage_rows,
    resolve_model_path,
    split_passages,
)
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store, upsert, utcnow


def _words(text: str) -> int:
    return len(text.split())


def _count(texts):
    return [_words(x) for x in texts]


@pytest.fixture(scope="session")
def encoder():
    return load_encoder(Settings())


def test_item_text_by_kind():
    assert (
        item_text({"kind": "episode", "title": "Pilot", "description": "We  begin.\n"})
        == "Pilot. We begin."
    )
    assert (
        item_text({"kind": "show", "title": "Why?", "description": "Answers."}) == "Why? Answers."
    )
    book = {
        "kind": "audiobook",
        "title": "Dune",
        "author": "Frank Herbert",
        "description": "Spice.",
    }
    assert item_text(book) == "Dune by Frank Herbert. Spice."
    assert item_text({"kind": "episode", "title": None, "description": float("nan")}) is None
    assert (
        item_text({"kind": "show", "title": "  ", "description": "Only a description"})
        == "Only a description"
    )


def test_passages_keep_segment_times_and_budget():
    segs = pd.DataFrame(
        {
            "start": [0.0, 4.0, 9.0, 15.0, 21.0],
            "end": [4.0, 9.0, 15.0, 21.0, 30.0],
            "text": [
                "one two three",
                "four five",
                "six seven eight nine",
                "",
                "ten eleven twelve thirteen fourteen fifteen",
            ],
        }
    )
    passages = split_passages(segs, max_tokens=6, count_tokens=_count)
    assert passages == [
        (0.0, 9.0, "one two three four five"),
        (9.0, 15.0, "six seven eight nine"),
        (21.0, 30.0, "ten eleven twelve thirteen fourteen fifteen"),  # over budget alone, never cut
    ]
    assert all(_words(text) <= 6 for _, _, text in passages)


def test_model_path_and_id(tmp_path, encoder):
    assert resolve_model_path("bundled").name == "model"
    with pytest.raises(FileNotFoundError, match="no config.json"):
        resolve_model_path(str(tmp_path))
    assert encoder.model_id.startswith("all-MiniLM-L6-v2@")
    assert model_id_for(Settings()) == encoder.model_id  # computed without loading the model
    assert encoder.dim == 384
    # the id follows the files: another config is another model
    (tmp_path / "config.json").write_text('{"a": 1}')
    first = model_id_of(tmp_path)
    (tmp_path / "config.json").write_text('{"a": 2}')
    assert model_id_of(tmp_path) != first
    assert model_id_of(tmp_path, "bf16").endswith("+bf16")


def test_encode_is_normalised_and_semantic(encoder):
    v = encoder.encode(
        ["a recipe for banana bread", "baking a cake at home", "the stock market fell"]
    )
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    assert encoder.encode([]).shape == (0, 384)


def test_single_query_path_matches_batch_encoding(encoder):
    texts = ["a recipe for banana bread", "interviews with athletes about training and competition"]
    for text, batch in zip(texts, encoder.encode(texts)):
        q = encoder.encode_query(text)
        assert q.shape == (384,) and q.dtype == np.float32
        assert abs(float(np.linalg.norm(q)) - 1.0) < 1e-5
        assert float(q @ batch) > 0.9999  # fp32 query vs bf16 batch: the same vector to 4 decimals


def _store(tmp_path) -> tuple[Store, Settings]:
    settings = Settings(home=tmp_path)
    settings.embed.passage_tokens = 12
    store = Store.from_settings(settings)
    base = {"show_id": None, "author": None, "explicit": False, "language": "en", "genre": None}
    items = [
        {
            **base,
            "item_id": "show",
            "kind": "show",
            "title": "Garden Hour",
            "description": "Plants and soil.",
        },
        {
            **base,
            "item_id": "ep1",
            "kind": "episode",
            "show_id": "show",
            "title": "Roses",
            "description": "Pruning roses.",
        },
        {
            **base,
            "item_id": "ep2",
            "kind": "episode",
            "show_id": "show",
            "title": None,
            "description": None,
        },
        {
            **base,
            "item_id": "book",
            "kind": "audiobook",
            "title": "Moss",
            "author": "R. Field",
            "description": "A novel.",
        },
        {**base, "item_id": "blank", "kind": "audiobook", "title": None, "description": None},
        {**base, "item_id": "artist", "kind": "artist", "title": "Some Band", "description": None},
    ]
    segs = [
        {
            "item_id": "ep2",
            "idx": 0,
            "start": 0.0,
            "end": 5.0,
            "text": "Tomatoes need sun and water every day.",
        },
        {
            "item_id": "ep2",
            "idx": 1,
            "start": 5.0,
            "end": 9.5,
            "text": "Compost feeds the soil for next year.",
        },
    ]
    with store.begin() as conn:
        upsert(conn, t.items, items)
        upsert(
            conn,
            t.transcripts,
            [
                {
                    "item_id": "ep2",
                    "engine": "provided",
                    "model": "provided",
                    "language": "en",
                    "duration": 9.5,
                    "created_at": utcnow(),
                    "text": " ".join(s["text"] for s in segs),
                }
            ],
        )
        upsert(conn, t.segments, segs)
    return store, settings


def test_embed_items_is_incremental_and_skips_items_without_text(tmp_path, encoder):
    store, settings = _store(tmp_path)
    first = embed_items(store, settings, encoder=encoder, progress=False)
    # own texts of show, ep1, book + two transcript passages of ep2 (an episode with only a transcript)
    assert (first.items, first.units, first.embedded, first.unchanged) == (5, 5, 5, 0)
    assert first.no_text == ["blank"]
    with store.connect() as conn:
        rows = conn.execute(select(t.content_vectors)).mappings().all()
    assert {r["model_id"] for r in rows} == {encoder.model_id}
    assert {(r["item_id"], r["passage"]) for r in rows} == {
        ("show", -1),
        ("ep1", -1),
        ("book", -1),
        ("ep2", 0),
        ("ep2", 1),
    }
    ep2 = sorted((r for r in rows if r["item_id"] == "ep2"), key=lambda r: r["passage"])
    assert [(r["start"], r["end"]) for r in ep2] == [(0.0, 5.0), (5.0, 9.5)]

    again = embed_items(store, settings, encoder=encoder, progress=False)
    assert (again.embedded, again.unchanged, again.removed) == (0, 5, 0)

    # a changed description re-embeds that unit only; a vanished text is removed
    with store.begin() as conn:
        conn.execute(
            t.items.update()
            .where(t.items.c.item_id == "ep1")
            .values(description="Pruning roses in March.")
        )
        conn.execute(
            t.items.update()
            .where(t.items.c.item_id == "book")
            .values(title=None, author=None, description=None)
        )
    changed = embed_items(store, settings, encoder=encoder, progress=False)
    assert (changed.embedded, changed.unchanged, changed.removed) == (1, 3, 1)
    assert changed.changed_items == ["book", "ep1"]
    assert set(changed.no_text) == {"blank", "book"}


def test_item_vectors_aggregate_and_omit_items_without_text(tmp_path, encoder):
    store, settings = _store(tmp_path)
    embed_items(store, settings, encoder=encoder, progress=False)
    vectors = item_vectors(store, encoder.model_id)
    assert set(vectors) == {"show", "ep1", "ep2", "book"}
    for v in vectors.values():
        assert v.shape == (384,) and abs(np.linalg.norm(v) - 1) < 1e-5
    passages = passage_rows(store, encoder.model_id)
    transcript = np.mean(np.stack(passages["vector"]), axis=0)
    np.testing.assert_allclose(vectors["ep2"], transcript / np.linalg.norm(transcript), atol=1e-6)
    own_show = encoder.encode(["Garden Hour. Plants and soil."])[0]
    episodes = (vectors["ep1"] + vectors["ep2"]) / 2
    expected = own_show + episodes / np.linalg.norm(episodes)
    np.testing.assert_allclose(vectors["show"], expected / np.linalg.norm(expected), atol=1e-5)
    assert set(item_vectors(store, encoder.model_id, ["audiobook"])) == {"book"}
    assert item_vectors(store, "another-model@0") == {}
    # Only the items asked for are read, with the same vectors as the whole catalogue's.
    some = item_vectors(store, encoder.model_id, ["episode", "audiobook"], ["ep2", "book", "x"])
    assert set(some) == {"ep2", "book"}
    for key, vector in some.items():
        np.testing.assert_array_equal(vector, vectors[key])
    with pytest.raises(ValueError, match="show"):
        item_vectors(store, encoder.model_id, ["show"], ["show"])


def test_unknown_item_ids_are_named(tmp_path, encoder):
    store, settings = _store(tmp_path)
    with pytest.raises(KeyError, match="nope"):
        embed_items(store, settings, item_ids=["ep1", "nope"], encoder=encoder, progress=False)
