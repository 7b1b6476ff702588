"""`coldstart score-uploads` serves the blend that `evaluate-uploads` reports as its
`served` row: on the goodbooks slice, the audience it writes for books whose plays are
gone equals the protocol's served scores for those books hidden, listener by listener."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from coldstart.batch.upload_audience import load_upload_audience, save_upload_audience
from coldstart.batch.upload_eval import load_upload_catalog
from coldstart.batch.upload_pipeline import score_uploads
from coldstart.cli import app
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store
from coldstart.data.importers import goodbooks
from coldstart.data.ingest import ingest_dataset
from training.upload_protocol import fit_served, served_audience


@pytest.fixture(scope="module")
def slice_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("gbs")
    goodbooks(Path(__file__).parent / "data" / "goodbooks-slice", root / "dataset")
    home = root / "home"
    home.mkdir()
    ingest_dataset(Store.from_settings(Settings(home=home)), root / "dataset")
    # MiniLM vectors stored once (fp32: bf16 is emulated, and slow, on CPUs without it).
    indexed = CliRunner().invoke(
        app, ["--home", str(home), "index"], env={"COLDSTART_EMBED__PRECISION": "fp32"}
    )
    assert indexed.exit_code == 0, indexed.output
    return home


def _as_uploads(store: Store, item_ids) -> None:
    """Books turned into uploads waiting for their audience: their plays gone, an
    `uploads` row at `indexed` (their text is in the store already)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with store.begin() as conn:
        conn.execute(t.interactions.delete().where(t.interactions.c.item_id.in_(item_ids)))
        store.table_changed(conn, "interactions")  # a writer of interactions outside ingest
        for n, item_id in enumerate(item_ids):
            conn.execute(
                t.uploads.insert().values(
                    upload_id=f"u{n}",
                    item_id=item_id,
                    title=item_id,
                    audio_path="-",
                    status="indexed",
                    created_at=now,
                    updated_at=now,
                )
            )


def test_score_uploads_writes_the_evaluations_served_scores(slice_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(slice_home, home)
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    # The protocol's served row for one seed: hide 20% of the books, fit the blend on
    # validation books inside the rest, score the hidden books.
    catalog = load_upload_catalog(store, settings, "audiobook")
    rng = np.random.default_rng(0)
    eligible = np.flatnonzero(catalog.has_text & (catalog.listeners() > 0))
    hidden = np.sort(rng.choice(eligible, size=12, replace=False))
    model, facts = fit_served(catalog, np.setdiff1d(eligible, hidden), rng, hidden)
    assert model is not None and facts["validation_items"] >= 5
    expected, known = served_audience(model, catalog, hidden)

    # The same books as new uploads of a store that never saw their plays.
    save_upload_audience(store, settings, "audiobook", model, {"blend": True})
    assert load_upload_audience(store, "audiobook").to_dict() == model.to_dict()
    item_ids = [str(i) for i in catalog.item_ids[hidden]]
    _as_uploads(store, item_ids)
    report = score_uploads(store, settings)
    assert sorted(report.scored) == sorted(f"u{n}" for n in range(len(item_ids)))
    listeners = catalog.users[known].astype(str)
    for n, row in enumerate(expected):
        upload = json.loads(
            json.dumps(store.frame(t.uploads).set_index("upload_id").loc[f"u{n}", "audience"])
        )
        assert upload["method"].startswith("audience blend") and upload["listeners_scored"] == len(
            listeners
        )
        frame = pd.read_parquet(upload["parquet"]).set_index("user_id")
        assert list(frame.columns) == [
            "country",
            "language",
            "score",
            "rank",
            "probability",
            "listens",
            "in_top_k",
        ]
        np.testing.assert_allclose(frame.loc[listeners, "score"].to_numpy(), row, rtol=0, atol=1e-9)
        assert frame["probability"].between(0, 1).all()
        # The calibrated probabilities order listeners as the scores do.
        assert (np.diff(frame.sort_values("score")["probability"].to_numpy()) >= 0).all()


def test_train_upload_audience_registers_a_blend_or_says_why_not(slice_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(slice_home, home)
    runner = CliRunner()
    fitted = runner.invoke(app, ["--home", str(home), "train-upload-audience", "--json"])
    assert fitted.exit_code == 0, fitted.output
    manifest = json.loads(fitted.output)["audiobook"]
    assert manifest["blend"] and manifest["weights"]["group"] >= 0
    store = Store.from_settings(Settings(home=home))
    assert store.artifact("upload_audience:audiobook")["manifest"]["blend"]
    assert load_upload_audience(store, "audiobook") is not None

    # Too few plays: no blend, the manifest says so, score-uploads keeps its fallback.
    with store.begin() as conn:
        keep = conn.execute(t.interactions.select().limit(8)).mappings().all()
        conn.execute(t.interactions.delete())
        conn.execute(t.interactions.insert(), [dict(r) for r in keep])
        store.table_changed(conn, "interactions")
    thin = runner.invoke(app, ["--home", str(home), "train-upload-audience", "--json"])
    assert thin.exit_code == 0, thin.output
    manifest = json.loads(thin.output)["audiobook"]
    assert not manifest["blend"] and "affinity" in manifest["fallback"]
    assert load_upload_audience(store, "audiobook") is None


def test_seeds_in_parallel_give_the_same_report(slice_home):
    from training.upload_protocol import evaluate_uploads

    settings = Settings(home=slice_home)
    catalog = load_upload_catalog(Store.from_settings(settings), settings, "audiobook")
    one = evaluate_uploads(catalog, (0, 1), jobs=1)
    two = evaluate_uploads(catalog, (0, 1), jobs=2)
    assert json.dumps(one, sort_keys=True, default=float) == json.dumps(
        two, sort_keys=True, default=float
    )
