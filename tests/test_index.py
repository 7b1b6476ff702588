"""faiss indexes: exact and IVF, string keys, incremental changes, persistence, manifests."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coldstart.content.index import (
    ModelMismatchError,
    VectorIndex,
    VectorIndexError,
    key_id,
    load_index,
)
from coldstart.core.config import Settings


def _unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _keys(n: int) -> list[str]:
    return [f"item{i:04d}" for i in range(n)]


def test_exact_index_finds_each_vector_first():
    x = _unit_rows(200)
    index = VectorIndex.build(_keys(200), x, model_id="m", unit="items", exact_max=1000)
    assert index.index_type == "IDMap2,FlatIP" and len(index) == 200
    hits = index.search(x[:20], k=3)
    assert [row[0][0] for row in hits] == _keys(20)
    assert all(row[0][1] == pytest.approx(1.0, abs=1e-5) for row in hits)
    np.testing.assert_allclose(index.vector("item0007"), x[7], atol=1e-7)


def test_key_ids_are_stable_and_non_negative():
    assert key_id("show:1") == key_id("show:1") != key_id("show:2")
    assert all(key_id(k) >= 0 for k in _keys(500))


def test_add_replace_remove_without_rebuilding():
    x = _unit_rows(50)
    index = VectorIndex.build(_keys(50), x, model_id="m", unit="items", exact_max=1000)
    fresh = _unit_rows(1, seed=9)
    index.add(["new"], fresh)
    assert index.search(fresh, 1)[0][0][0] == "new" and len(index) == 51
    # replacing a key keeps one entry and moves it
    index.add(["item0003"], fresh)
    assert len(index) == 51
    assert {k for k, _ in index.search(fresh, 2)[0]} == {"new", "item0003"}
    assert index.remove(["new", "item0003", "never-there"]) == 2
    assert len(index) == 49 and "new" not in index
    assert all(k not in {"new", "item0003"} for k, _ in index.search(fresh, 49)[0])


def test_allowed_restricts_candidates_exactly():
    x = _unit_rows(100)
    index = VectorIndex.build(_keys(100), x, model_id="m", unit="items", exact_max=1000)
    allowed = ["item0010", "item0020", "item0030"]
    hits = index.search(x[0], k=10, allowed=allowed)[0]
    assert sorted(k for k, _ in hits) == allowed
    assert index.search(x[0], k=10, allowed=["unknown"]) == [[]]


def test_saved_and_loaded_index_gives_identical_results(tmp_path):
    x = _unit_rows(300)
    index = VectorIndex.build(_keys(300), x, model_id="model-a", unit="items", exact_max=1000)
    manifest = index.save(tmp_path / "items")
    loaded = VectorIndex.load(tmp_path / "items")
    q = _unit_rows(10, seed=3)
    assert loaded.search(q, 10) == index.search(q, 10)
    on_disk = json.loads((tmp_path / "items" / "manifest.json").read_text())
    assert on_disk == manifest
    assert (
        on_disk["count"] == 300 and on_disk["dimension"] == 16 and on_disk["model_id"] == "model-a"
    )
    assert on_disk["data_hash"] == loaded.data_hash()


def test_data_hash_tracks_contents_not_order():
    x = _unit_rows(30)
    a = VectorIndex.build(_keys(30), x, model_id="m", unit="items", exact_max=1000)
    b = VectorIndex.build(_keys(30)[::-1], x[::-1], model_id="m", unit="items", exact_max=1000)
    assert a.data_hash() == b.data_hash()
    b.add(["item0000"], _unit_rows(1, seed=5))
    assert a.data_hash() != b.data_hash()


def test_large_catalog_gets_ivf_with_measured_recall(tmp_path):
    x = _unit_rows(3000, dim=32)
    index = VectorIndex.build(_keys(3000), x, model_id="m", unit="items", exact_max=1000, nprobe=8)
    assert index.index_type == "IVFFlat"
    m = index.manifest
    assert 0.0 < m["recall_at_10"] <= 1.0
    # nprobe starts at 8 and doubles until the measured recall reaches the target (or all lists)
    assert m["nprobe"] >= 8 and (m["recall_at_10"] >= 0.95 or m["nprobe"] == m["nlist"])
    assert m["nprobe"] in {8 * 2**i for i in range(12)} | {m["nlist"]}
    # IVF supports incremental removal and addition too
    assert index.remove(["item0001"]) == 1
    index.add(["extra"], x[1:2])
    assert index.search(x[1], 1)[0][0][0] == "extra"
    index.save(tmp_path / "ivf")
    loaded = VectorIndex.load(tmp_path / "ivf")
    assert loaded.search(x[:5], 5) == index.search(x[:5], 5)
    assert loaded.manifest["recall_at_10"] == index.manifest["recall_at_10"]
    # memory-mapped (search's read-only load): the same answers, filtered or not, and vectors
    mapped = VectorIndex.load(tmp_path / "ivf", mmap=True)
    allowed = _keys(3000)[::3]
    for found in (mapped, loaded):
        assert found.search(x[:20], 7) == index.search(x[:20], 7)
        assert found.search(x[:20], 7, allowed) == index.search(x[:20], 7, allowed)
        assert found.search(x[:3], 4, found.ids_of(allowed)) == index.search(x[:3], 4, allowed)
        assert np.array_equal(found.vector("extra"), index.vector("extra"))
        assert "extra" in found and "item0001" not in found
        assert found.data_hash() == index.data_hash() and found.keys() == loaded.keys()


def test_incomplete_or_mismatched_index_is_a_clear_error(tmp_path):
    settings = Settings(home=tmp_path)
    with pytest.raises(VectorIndexError, match="coldstart"):
        load_index(settings, "items")
    index = VectorIndex.build(
        _keys(5), _unit_rows(5), model_id="model-a", unit="items", exact_max=10
    )
    directory = tmp_path / "indexes" / "items"
    index.save(directory)
    with pytest.raises(ModelMismatchError, match="model-a"):
        load_index(settings, "items", model_id="model-b")
    assert len(load_index(settings, "items", model_id="model-a")) == 5
    (directory / "ids.parquet").unlink()
    with pytest.raises(VectorIndexError, match="ids.parquet"):
        load_index(settings, "items")
