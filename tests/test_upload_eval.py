"""`coldstart evaluate-uploads`: the cold-item protocol on the goodbooks slice, its
metrics against sklearn, and the training side that must never see hidden plays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from coldstart.cli import app
from coldstart.core.config import Settings
from coldstart.core.store import Store
from coldstart.data.importers import goodbooks
from coldstart.data.ingest import ingest_dataset
from training.upload_audience import AudienceData, source_scores
from training.upload_protocol import UploadCatalog, auc_per_row, recall_per_row


@pytest.fixture(scope="module")
def goodbooks_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("gb")
    goodbooks(Path(__file__).parent / "data" / "goodbooks-slice", root / "dataset")
    home = root / "home"
    home.mkdir()
    ingest_dataset(Store.from_settings(Settings(home=home)), root / "dataset")
    return home


def test_evaluate_uploads_on_the_slice(goodbooks_home, tmp_path):
    out = tmp_path / "uploads.json"
    result = CliRunner().invoke(
        app,
        ["--home", str(goodbooks_home), "evaluate-uploads", "--seeds", "0,1", "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report["models"]) == {
        "random",
        "activity",
        "group",
        "centroid",
        "max_sim",
        "item_knn",
        "served",
    }
    assert report["items_with_text"] == 60 and len(report["splits"]) == 2
    for split in report["splits"]:
        assert split["hidden_items"] == 12 and split["known_listeners"] <= 80
    for entry in report["models"].values():
        assert 0.0 <= entry["auc"]["mean"] <= 1.0 and entry["auc"]["n"] == 24
        assert 0.0 <= entry["ndcg@10"]["mean"] <= 1.0
    # Content and authors carry signal on real readers; random does not.
    assert abs(report["models"]["random"]["auc"]["mean"] - 0.5) < 0.1
    assert report["models"]["served"]["auc"]["mean"] > 0.65
    assert "served blend" in out.with_suffix(".md").read_text()


def test_bad_options_are_named(goodbooks_home):
    runner = CliRunner()
    bad = runner.invoke(app, ["--home", str(goodbooks_home), "evaluate-uploads", "--kind", "radio"])
    assert bad.exit_code != 0 and "radio" in bad.output
    frac = runner.invoke(
        app, ["--home", str(goodbooks_home), "evaluate-uploads", "--hidden-fraction", "1.5"]
    )
    assert frac.exit_code != 0 and "hidden fraction" in frac.output


def test_auc_and_recall_match_their_definitions():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(6, 40)).astype(float)  # ties on purpose
    truth = [np.sort(rng.choice(40, size=n, replace=False)) for n in (1, 3, 5, 8, 13, 20)]
    for row, positives, auc in zip(scores, truth, auc_per_row(scores, truth)):
        labels = np.zeros(40)
        labels[positives] = 1
        assert auc == pytest.approx(roc_auc_score(labels, row))
    ranked = np.tile(np.arange(40.0)[::-1], (2, 1))  # column 0 best
    assert recall_per_row(ranked, [np.array([0, 1, 30]), np.array([39])], 10).tolist() == [
        pytest.approx(2 / 3),
        0.0,
    ]


def _catalog() -> UploadCatalog:
    vectors = np.eye(4)[[0, 0, 1, 1, 2, 3]]
    groups = sparse.csr_matrix(np.eye(3)[[0, 0, 1, 1, 2, 2]])
    plays = pd.DataFrame(
        [("a", "i0"), ("a", "i1"), ("b", "i2"), ("b", "i3"), ("c", "i4"), ("c", "i5"), ("d", "i5")],
        columns=["user_id", "item_id"],
    )
    return UploadCatalog([f"i{n}" for n in range(6)], vectors, groups, np.full(6, 5), plays)


def test_hidden_items_leave_no_trace_in_the_training_side():
    catalog = _catalog()
    train, known = catalog.hide(np.array([1, 5]))
    assert train.plays[:, [1, 5]].nnz == 0
    assert catalog.users[known].tolist() == ["a", "b", "c"]  # d only played a hidden item
    assert not train.vectors[[1, 5]].any() and train.groups[[1, 5]].nnz == 0


def test_sources_rank_the_right_listener_first():
    catalog = _catalog()
    train, known = catalog.hide(np.array([1]))
    scores = source_scores(train, catalog.vectors[[1]], catalog.groups[[1]])
    listeners = list(catalog.users[known])
    for name in ("group", "centroid", "max_sim", "item_knn"):
        assert listeners[int(np.argmax(scores[name][0]))] == "a", name
    assert isinstance(train, AudienceData)


def test_lsa_content_is_a_fast_lexical_stand_in(goodbooks_home, tmp_path):
    from coldstart.batch.upload_eval import lsa_vectors

    vectors = lsa_vectors(["the hunger games", None, "hunger games catching fire", "gatsby"])
    norms = np.linalg.norm(vectors, axis=1)
    assert norms[1] == 0 and np.allclose(norms[[0, 2, 3]], 1.0)
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[3]
    out = tmp_path / "lsa.json"
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(goodbooks_home),
            "evaluate-uploads",
            "--content",
            "lsa",
            "--seeds",
            "0",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["content"] == "lsa" and report["models"]["served"]["auc"]["n"] == 12
    bad = CliRunner().invoke(
        app, ["--home", str(goodbooks_home), "evaluate-uploads", "--content", "word2vec"]
    )
    assert bad.exit_code != 0 and "word2vec" in bad.output
