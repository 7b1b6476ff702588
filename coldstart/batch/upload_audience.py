"""The served audience blend on the store: fit it, register it, score uploads with it.

`coldstart train-upload-audience --kind audiobook|episode` fits the blend of
`training.upload_audience.UploadAudienceModel` on the store's plays of that kind,
exactly as the cold-item protocol fits its `served` row (`training.upload_protocol.
fit_served`: weights and calibration chosen on validation uploads, catalog items whose
plays are hidden), and registers it as the artifact `upload_audience:<kind>` (a JSON
file under `<home>/artifacts/` and its manifest). When there are too few validation
uploads with a known listener, the artifact records that no blend was fitted, and
`score-uploads` keeps today's scorer for that kind (the affinity model's content path).

`score-uploads`' audience stage (`coldstart.batch.upload_pipeline`) scores an upload
of a kind that has a fitted blend with `blend_audiences`: the store's catalog of that
kind (`coldstart.batch.upload_eval.load_upload_catalog`, the evaluation's loader) and
`training.upload_protocol.served_audience`, the call that gives the evaluation's
`served` row. The per-listener table keeps `predict_audience`'s columns: `score` is
the blend score, `probability` its calibrated chance that the listener plays the
upload (`listens` the same), `rank` is empty and `in_top_k` false (the blend ranks
listeners for an upload, not the upload against each listener's catalogue).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from coldstart.artifacts.training import content_model_id
from coldstart.batch.upload_eval import UPLOAD_KINDS, load_upload_catalog
from coldstart.batch.uploads import audience_summary
from coldstart.core.config import Settings
from coldstart.core.store import Store
from training.upload_audience import UploadAudienceModel
from training.upload_protocol import fit_served, served_audience

__all__ = [
    "ARTIFACT_PREFIX",
    "artifact_name",
    "fit_upload_audience",
    "save_upload_audience",
    "load_upload_audience",
    "blend_audiences",
]

ARTIFACT_PREFIX = "upload_audience"
METHOD = "audience blend (validation-chosen)"


def artifact_name(kind: str) -> str:
    return f"{ARTIFACT_PREFIX}:{kind}"


def fit_upload_audience(
    store: Store,
    settings: Settings,
    kind: str = "audiobook",
    seed: int = 0,
    validation_fraction: float = 0.2,
    progress: bool = False,
) -> dict:
    """Fit the served blend for uploads of `kind` on the whole store, save and register
    it; returns the manifest (`blend: false` and the reason when none could be fitted)."""

    catalog = load_upload_catalog(store, settings, kind, progress)
    eligible = np.flatnonzero(catalog.has_text & (catalog.listeners() > 0))
    model, facts = fit_served(
        catalog, eligible, np.random.default_rng(seed), None, validation_fraction, seed=seed
    )
    manifest = {
        "kind": ARTIFACT_PREFIX,
        "target": kind,
        "seed": seed,
        "validation_fraction": validation_fraction,
        "content_model": content_model_id(store),
        "catalog_items": int(len(catalog.item_ids)),
        "items_with_text_and_plays": int(len(eligible)),
        "listeners": int(len(catalog.users)),
        **facts,
        "blend": model is not None,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if model is None:
        manifest["fallback"] = (
            f"only {facts['validation_items']} validation uploads with a known listener "
            "(fewer than training.upload_audience.MIN_VALIDATION_UPLOADS): score-uploads "
            "keeps the affinity model's content path for this kind"
        )
    else:
        manifest["weights"] = model.blend.weights
        manifest["validation_ndcg@100"] = model.blend.validation
        manifest["calibration"] = list(model.calibration)
    return save_upload_audience(store, settings, kind, model, manifest)


def save_upload_audience(
    store: Store, settings: Settings, kind: str, model, manifest: dict
) -> dict:
    """Write the blend (None: fell back) and its manifest to
    `<home>/artifacts/upload_audience-<kind>.json`; register it as `upload_audience:<kind>`."""
    directory = settings.artifacts_path
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ARTIFACT_PREFIX}-{kind}.json"
    payload = {"manifest": manifest, "model": model.to_dict() if model else None}
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    store.register_artifact(artifact_name(kind), path, manifest)
    return manifest


def load_upload_audience(store: Store, kind: str):
    """The registered blend for uploads of `kind` (`UploadAudienceModel`), or None when
    none is registered or its fit fell back."""

    row = store.artifact(artifact_name(kind))
    if row is None or not (row["manifest"] or {}).get("blend"):
        return None
    payload = json.loads(Path(row["path"]).read_text(encoding="utf-8"))
    return UploadAudienceModel.from_dict(payload["model"])


def blend_audiences(
    store: Store, settings: Settings, model, kind: str, item_ids: Sequence[str]
) -> dict[str, tuple[dict, pd.DataFrame]]:
    """{item_id: (summary, per-listener frame)} of uploads `item_ids` (items of
    `kind` in the store) scored by the blend against every listener with a play of
    that kind."""

    if kind not in UPLOAD_KINDS:
        raise ValueError(f"unknown upload kind {kind!r}; expected one of {', '.join(UPLOAD_KINDS)}")
    catalog = load_upload_catalog(store, settings, kind)
    position = pd.Series(np.arange(len(catalog.item_ids)), index=pd.Index(catalog.item_ids))
    missing = [i for i in item_ids if i not in position.index]
    if missing:
        raise ValueError(f"not {kind} items of the store: {', '.join(missing)}")
    uploads = position[list(item_ids)].to_numpy()
    without_text = [i for i, p in zip(item_ids, uploads) if not catalog.has_text[p]]
    if without_text:
        raise ValueError(f"no text to score (no title or transcript): {', '.join(without_text)}")
    scores, known = served_audience(model, catalog, uploads)
    users = store.users().drop_duplicates("user_id").set_index("user_id")
    listeners = pd.Index(catalog.users[known].astype(str))
    meta = users.reindex(listeners)
    out = {}
    top_k, top_users = settings.serve.audience_top_k, settings.serve.audience_top_users
    for r, item_id in enumerate(item_ids):
        probability = model.probability(scores[r])
        frame = pd.DataFrame(
            {
                "user_id": listeners.to_numpy(),
                "country": meta["country"].to_numpy() if "country" in meta else None,
                "language": meta["language"].to_numpy() if "language" in meta else None,
                "score": scores[r].astype(np.float64),
                "rank": pd.array([pd.NA] * len(listeners), dtype="Int64"),
                "probability": probability,
                "listens": probability,
                "in_top_k": np.zeros(len(listeners), bool),
            }
        )
        summary = audience_summary(frame, METHOD, artifact_name(kind), 1.0, top_k, top_users)
        out[item_id] = (summary, frame)
    return out
