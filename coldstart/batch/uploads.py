"""New episodes from creators: register them, then score them in batch.

Registering writes the `uploads` row and the episode's `items` row in one
transaction (status `pending`; the episode is not recommendable until `scored`).

`coldstart.batch.upload_pipeline.score_uploads` takes every unfinished upload through

    pending -> transcribed -> embedded -> indexed -> scored      (or -> failed, with the error)

(`UploadStatus`), locally or on Ray Data; this module holds what its stages share:
the upload rows and the audience prediction.

The predicted audience of an episode is computed with the affinity model's content
path: the episode's content vector becomes an item vector (calibrated to its show's
scores), every known listener is scored against the catalog plus the new episode, and
the model's softmax gives each listener's probability of picking it. The answer is the
expected number of listeners (overall and per (country, language) segment), the most
likely listeners, and how many would have it in their top `serve.audience_top_k`; the
per-listener table goes to `<home>/audiences/<upload_id>.parquet`.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sqlalchemy import select, update

from coldstart.batch.audience_pass import SAMPLED_CATALOG_MIN, sampled_catalog_summary
from coldstart.batch.listeners import Listeners, listener_table
from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store, utcnow
from coldstart.core.upload_status import UNFINISHED, UploadStatus
from training.affinity import AffinityModel
from training.data import UserProfile, episodes_to_shows, item_rows

__all__ = [
    "UploadError",
    "UploadRefused",
    "UploadTooLarge",
    "UploadNotFound",
    "STATUSES",
    "UNFINISHED",
    "UploadStatus",
    "resolve_upload_path",
    "register_upload",
    "get_upload",
    "list_uploads",
    "ScoreReport",
    "predict_audience",
    "write_audience",
    "audience_summary",
    "save_audience",
    "affinity_artifact",
    "picks_per_listener",
    "listener_profiles",
    "served_affinity_model",
]

STATUSES = tuple(UploadStatus)
# A new episode's rank among the catalog is kept per listener down to this depth.
RANK_DEPTH = 100
# Listeners x catalog scores held at once in the catalog pass (float32: 128 MiB); the
# listener batch shrinks as the catalog grows, so the pass's memory does not.
CATALOG_PASS_SCORES = 2**25
# Rows a new item's content vector is run through the network as (`_new_item_vector`).
NEW_ITEM_ROWS = 8


class UploadError(ValueError):
    """Bad upload input; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UploadRefused(PermissionError):
    """A path outside the uploads directory (or escaping it through a link)."""


class UploadTooLarge(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"upload exceeds the limit of {limit} bytes (serve.max_upload_bytes)")
        self.limit = limit


class UploadNotFound(LookupError):
    pass


# --- paths ---------------------------------------------------------------------------


def resolve_upload_path(settings: Settings, path: str) -> Path:
    """The real path of `path` (relative to the uploads directory, or absolute), which
    must be an existing file inside the uploads directory. `..` anywhere is refused
    before touching the file system; links are followed and must stay inside."""
    root = settings.uploads_path
    raw = Path(path)
    if not path or "\x00" in path:
        raise UploadError("audio_path", "empty or invalid path")
    if ".." in raw.parts:
        raise UploadRefused(f"audio_path {path!r}: '..' is not allowed")
    candidate = raw if raw.is_absolute() else root / raw
    real = Path(os.path.realpath(candidate))
    if real != root and root not in real.parents:
        raise UploadRefused(f"audio_path {path!r} resolves outside the uploads directory")
    if not real.is_file():
        raise UploadError("audio_path", f"{path!r} is not a file in the uploads directory")
    return real


def new_upload_id() -> str:
    return uuid.uuid4().hex[:16]


def upload_file_path(settings: Settings, upload_id: str, filename: str | None) -> Path:
    suffix = Path(filename or "").suffix.lower()
    suffix = suffix if suffix.isascii() and suffix[1:].isalnum() and len(suffix) <= 6 else ".bin"
    return settings.uploads_path / "received" / f"{upload_id}{suffix}"


# --- registration -----------------------------------------------------------------------


def _record(row) -> dict:
    data = dict(row)
    for key in ("created_at", "updated_at"):
        if data.get(key) is not None:
            data[key] = data[key].isoformat()
    return data


def register_upload(
    store: Store,
    *,
    show_id: str,
    title: str,
    audio_path: Path,
    description: str | None = None,
    language: str | None = None,
    upload_id: str | None = None,
) -> dict:
    """Store a new episode of `show_id` (an existing show) and its upload row together."""
    if not title or not title.strip():
        raise UploadError("title", "must not be empty")
    with store.connect() as conn:
        show = (
            conn.execute(
                select(t.items).where(t.items.c.item_id == show_id, t.items.c.kind == "show")
            )
            .mappings()
            .first()
        )
    if show is None:
        raise UploadError("show_id", f"unknown show {show_id!r}")
    upload_id = upload_id or new_upload_id()
    item_id = f"upload-{upload_id}"
    now = utcnow()
    language = language or show["language"]
    with store.begin() as conn:
        conn.execute(
            t.items.insert().values(
                item_id=item_id,
                kind="episode",
                title=title.strip(),
                description=description,
                language=language,
                genre=show["genre"],
                show_id=show_id,
                audio_path=str(audio_path),
                explicit=bool(show["explicit"]),
                published_at=now,
            )
        )
        store.table_changed(conn, "items")
        conn.execute(
            t.uploads.insert().values(
                upload_id=upload_id,
                item_id=item_id,
                show_id=show_id,
                title=title.strip(),
                description=description,
                language=language,
                audio_path=str(audio_path),
                status=UploadStatus.PENDING.value,
                created_at=now,
                updated_at=now,
            )
        )
    return get_upload(store, upload_id)


def get_upload(store: Store, upload_id: str) -> dict:
    with store.connect() as conn:
        row = (
            conn.execute(select(t.uploads).where(t.uploads.c.upload_id == upload_id))
            .mappings()
            .first()
        )
    if row is None:
        raise UploadNotFound(f"no upload {upload_id!r}")
    return _record(row)


def list_uploads(store: Store, statuses: Iterable[str] | None = None) -> list[dict]:
    stmt = select(t.uploads).order_by(t.uploads.c.created_at, t.uploads.c.upload_id)
    if statuses is not None:
        stmt = stmt.where(t.uploads.c.status.in_(list(statuses)))
    with store.connect() as conn:
        return [_record(r) for r in conn.execute(stmt).mappings().all()]


def _set_status(
    store: Store, upload_id: str, status: str, error: str | None = None, audience: Any = None
) -> None:
    values: dict[str, Any] = {
        "status": UploadStatus(status).value,
        "error": error,
        "updated_at": utcnow(),
    }
    if audience is not None:
        values["audience"] = audience
    with store.begin() as conn:
        conn.execute(update(t.uploads).where(t.uploads.c.upload_id == upload_id).values(**values))


# --- audience ------------------------------------------------------------------------------


def listener_profiles(store: Store) -> list[UserProfile]:
    """Every known listener with music history, as `UserProfile`s (plays of an item at
    several times add up, as in training). Score-uploads holds them as columns
    (`listener_table`) and builds the profiles a batch at a time."""
    return listener_table(store).profiles()


def picks_per_listener(store: Store) -> float:
    """Mean number of distinct shows a podcast listener plays (episode plays count for
    their show): how many draws from the model's distribution one listener makes."""
    kinds = ["show", "episode"]
    items = store.frame(t.items, t.items.c.kind.in_(kinds), ["item_id", "kind", "show_id"])
    plays = store.plays_of(kinds, ["user_id", "item_id"])
    # Over integer codes (no merge, no string groupby): each play's item row, the show
    # it counts for (an episode's show_id), distinct (listener, show) pairs per listener.
    rows = item_rows(items, plays["item_id"])
    user_codes, _ = pd.factorize(plays["user_id"])
    played = (rows >= 0) & (user_codes >= 0)
    if not played.any():
        return 1.0
    shows = episodes_to_shows(items)["item_id"]
    show_codes, show_ids = pd.factorize(shows)
    users, show = user_codes[played], show_codes[rows[played]]
    listeners = np.unique(users)
    pairs = np.unique(users[show >= 0].astype(np.int64) * max(len(show_ids), 1) + show[show >= 0])
    per_listener = len(pairs) / len(listeners)  # listeners whose shows are all unknown count 0
    return float(max(per_listener, 1.0))


def predict_audience(
    model,
    profiles,
    item_id: str,
    show_id: str,
    vector: np.ndarray | None,
    top_k: int,
    top_users: int,
    picks: float = 1.0,
    batch_users: int = 4096,
    rank_depth: int = RANK_DEPTH,
):
    """(audience summary dict, per-listener frame) for one new episode.

    The affinity model is a softmax over the catalog, so `probability` is the model's
    chance that a listener's next show is this episode (competing with the catalog it
    was trained on). A listener who plays `picks` shows listens to it with probability
    1 - (1 - p)^picks; the expected audience is the sum of that over listeners, per
    (country, language) segment too. `in_top_k` marks listeners for whom it would rank
    in their top `top_k`.

    `rank` is the new episode's rank among the catalog for each listener, exact down to
    `max(top_k, rank_depth)`; listeners for whom it ranks lower have no rank (NA).

    Listeners are scored `batch_users` at a time against the catalog (no dense
    listeners x catalog matrix), once per batch of uploads (the catalog side is cached
    on the model): memory is O(listeners x depth + batch_users x catalog), and each
    further upload costs O(listeners x (dim + depth)).
    """
    existing = len(model.item_ids)
    catalog = _catalog_positions(model)
    new_item = None
    if item_id in catalog:
        column, method = catalog[item_id], "content"
    elif (
        vector is not None
        and model.content_matrix is not None
        and len(vector) == model.content_matrix.shape[1]
    ):
        # Its vector alone, the model left as it is (adding it to the model would copy
        # the catalogue's content matrix and run every item through the network again).
        new_item = _new_item_vector(model, vector)
        column, method = -1, "content"
    elif show_id in catalog:
        column, method = catalog[show_id], "show"
    else:
        raise ValueError(
            f"cannot score {item_id}: no usable content vector and show {show_id!r} is unknown to the model"
        )
    mine, known, rank, probability = _audience_scores(
        model,
        profiles,
        column,
        new_item,
        catalog.get(show_id),
        method == "content",
        int(model.metrics.get("catalog", existing)),
        batch_users,
        max(top_k, rank_depth),
    )
    if method == "content" and show_id in catalog:
        method = "content (calibrated to its show)"
    listeners = _listener_columns(model, profiles)
    frame = pd.DataFrame(
        {
            "user_id": listeners["user_id"],
            "country": listeners["country"],
            "language": listeners["language"],
            "score": mine.astype(np.float64),
            "rank": pd.Series(rank, dtype="Int64").mask(rank == 0),
            "probability": probability.astype(np.float64),
        }
    )
    frame = frame[known].reset_index(drop=True)
    frame["listens"] = 1.0 - (1.0 - frame["probability"]) ** picks
    frame["in_top_k"] = frame["rank"].le(top_k).fillna(False).astype(bool)
    key = (id(profiles), len(profiles))
    cached = getattr(model, "_audience_segments", None)
    if cached is None or cached[0] != key:
        cached = (key, _segments(listeners, known), profiles)
        model._audience_segments = cached
    summary = audience_summary(
        frame, method, "affinity:podcast", picks, top_k, top_users, segments=cached[1]
    )
    return summary, frame


def audience_summary(
    frame: pd.DataFrame,
    method: str,
    model: str,
    picks: float,
    top_k: int,
    top_users: int,
    segments: tuple[np.ndarray, pd.MultiIndex] | None = None,
) -> dict:
    """What an upload's row stores from its per-listener table (`predict_audience`'s
    columns): the expected audience overall and per (country, language) segment, the
    most likely listeners, and how many have it in their top `top_k`. `segments`: each
    row's segment code and the segments (`_segments`), when the caller has them: the
    same sums as grouping by the two string columns, grouped by one integer column."""
    top = _top_users(frame, top_users)
    columns = ["listens", "in_top_k", "user_id"]
    if segments is None:
        grouped = frame.fillna({"country": "unknown", "language": "unknown"}).groupby(
            ["country", "language"]
        )
    else:
        codes, labels = segments
        grouped = frame[columns].groupby(codes, sort=True)
    per_segment = grouped.agg(
        expected=("listens", "sum"), in_top_k=("in_top_k", "sum"), listeners=("user_id", "size")
    )
    if segments is not None:
        per_segment.index = segments[1][per_segment.index.to_numpy()]
    segments_sorted = per_segment.sort_values("expected", ascending=False)
    expected = float(frame["listens"].sum())
    return {
        "method": method,
        "model": model,
        "listeners_scored": int(len(frame)),
        "picks_per_listener": round(picks, 3),
        "expected_listeners": round(expected, 1),
        "size": int(round(expected)),
        "top_k": top_k,
        "in_top_k": int(frame["in_top_k"].sum()),
        "top_users": [
            {
                "user_id": r.user_id,
                "probability": round(float(r.probability), 5),
                "score": round(float(r.score), 4),
            }
            for r in top.itertuples()
        ],
        "segments": [
            {
                "country": c,
                "language": lang,
                "expected_listeners": round(float(row.expected), 1),
                "in_top_k": int(row.in_top_k),
                "listeners_scored": int(row.listeners),
            }
            for (c, lang), row in segments_sorted.iterrows()
        ],
    }


def write_audience(
    settings: Settings,
    model,
    profiles,
    picks: float,
    upload_id: str,
    item_id: str,
    show_id: str,
    vector: np.ndarray | None,
) -> dict:
    """`predict_audience` for an upload with the configured `serve.audience_top_k` and
    `audience_top_users`; the per-listener table goes to
    `<home>/audiences/<upload_id>.parquet`. Returns the summary to store."""
    summary, frame = predict_audience(
        model,
        profiles,
        item_id,
        show_id,
        vector,
        settings.serve.audience_top_k,
        settings.serve.audience_top_users,
        picks,
    )
    return save_audience(settings, upload_id, summary, frame)


def save_audience(settings: Settings, upload_id: str, summary: dict, frame: pd.DataFrame) -> dict:
    """Write the per-listener table to `<home>/audiences/<upload_id>.parquet`; returns
    the summary to store, with the table's path and the time."""
    out_dir = settings.home / "audiences"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{upload_id}.parquet"
    frame.to_parquet(path, index=False)
    summary["parquet"] = str(path)
    summary["scored_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return summary


def _audience_scores(
    model,
    profiles,
    column: int,
    new_item: tuple[np.ndarray, np.float32] | None,
    show_column: int | None,
    calibrate: bool,
    catalog_size: int,
    batch: int,
    depth: int,
):
    """(score of the new item per listener, known-taste mask, its rank among the catalog
    per listener (0 where it ranks below the `depth` best), softmax probability of it).
    The item is the model's item `column`, or `new_item` (its vector and bias) when given.

    The catalog side (each listener's log-sum-exp and `depth` best scores) is computed
    once per batch of uploads (`_catalog_summary`); each upload then costs
    O(listeners x (dim + log depth)), not listeners x catalog.
    """
    _, vecs, bias = model.item_vectors()
    u, known = _user_vectors(model, profiles, batch)
    rows = max(1, min(batch, CATALOG_PASS_SCORES // max(catalog_size, 1)))
    lse, best = _catalog_summary(model, u, vecs, bias, catalog_size, depth, rows)
    vector, item_bias = new_item if new_item is not None else (vecs[column], bias[column])
    raw = u @ vector + item_bias
    mine = raw
    if calibrate and show_column is not None:
        # A single episode's content vector sits further from the catalog centre than
        # the show-level vectors the model ranks, which inflates its raw scores for
        # everyone. Calibrate: keep who likes it (the order over listeners) from the
        # content path, and take the scale from the episode's own show.
        show = (u @ vecs[show_column] + bias[show_column])[known]
        ref = raw[known]
        mine = (raw - ref.mean()) / (ref.std() or 1.0) * show.std() + show.mean()
    depth = best.shape[1]
    # Catalog scores above the new item's, among each listener's `depth` best (sorted
    # ascending): when fewer than `depth` of them are above, no other item is either.
    above = depth - _count_at_most(best, mine)
    if (
        new_item is None and column < catalog_size
    ):  # a catalog item competes with the catalog without itself
        lse = lse + np.log1p(-np.exp(np.minimum(raw - lse, 0.0)))
        above = above - ((raw > mine) & (raw >= (best[:, 0] if depth else np.inf)))
    # Exact when fewer than `depth` are above, or when the depth covers the catalog.
    rank = np.where((above < depth) | (depth >= catalog_size), above + 1, 0)
    probability = 1.0 / (1.0 + np.exp(lse - mine.astype(np.float64)))
    return mine, known, rank, probability


def _catalog_positions(model) -> dict[str, int]:
    """item id -> its column in the model, built once per model (and again after
    `add_items`): a list lookup per upload is linear in the catalogue."""
    key = (id(model.item_ids), len(model.item_ids))
    cached = getattr(model, "_audience_positions", None)
    if cached is None or cached[0] != key:
        cached = (key, {item: c for c, item in enumerate(model.item_ids)})
        model._audience_positions = cached
    return cached[1]


def _new_item_vector(model, vector: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """(item vector, bias) of an item with no listeners from its content vector: what
    `add_items` would give it (no id embedding), without adding it to the model.

    The vector goes through the network as `NEW_ITEM_ROWS` copies: a product of one or
    two rows takes the matrix-vector path, whose rounding differs in the last bit from
    the matrix-matrix path `add_items` takes for the whole catalogue; with several rows
    the row comes out the same (tests/test_scale.py)."""
    row = np.asarray(vector, np.float32)
    content = torch.from_numpy(np.repeat(row[None, :], NEW_ITEM_ROWS, axis=0))
    ids = torch.full((NEW_ITEM_ROWS,), -1, dtype=torch.int64)
    with torch.no_grad():
        vecs, bias = model.net.item_vectors(content, ids)
    return vecs.numpy()[0].copy(), bias.numpy()[0]


def _count_at_most(ascending: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, how many entries of the row are <= its value."""
    return (ascending <= values.astype(ascending.dtype)[:, None]).sum(axis=1)


def _catalog_summary(model, u, vecs, bias, catalog_size: int, depth: int, batch: int):
    """(log-sum-exp over the catalog [listeners] in float64, each listener's `depth`
    highest catalog scores sorted ascending [listeners x depth]): one pass over the
    catalog, `batch` listeners at a time, cached on the model for a batch of uploads
    (new uploads are appended after the catalog, so it does not change between them)."""
    key = (id(u), catalog_size, depth)
    cached = getattr(model, "_audience_catalog", None)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    if catalog_size > SAMPLED_CATALOG_MIN:  # estimated, linear in listeners: audience_pass.py
        lse, best = sampled_catalog_summary(u, vecs, bias, catalog_size, depth)
        model._audience_catalog = (key, lse, best, u)
        return lse, best
    depth = min(depth, catalog_size)
    cat_vecs, cat_bias = np.ascontiguousarray(vecs[:catalog_size]), bias[:catalog_size]
    lse = np.full(len(u), -np.inf)
    best = np.zeros((len(u), depth), np.float32)
    for lo in range(0, len(u) if catalog_size else 0, batch):
        scores = u[lo : lo + batch] @ cat_vecs.T + cat_bias
        top = scores.max(axis=1)
        lse[lo : lo + batch] = top + np.log(
            np.exp(scores - top[:, None]).sum(axis=1, dtype=np.float64)
        )
        if depth:
            kept = np.partition(scores, catalog_size - depth, axis=1)[:, catalog_size - depth :]
            best[lo : lo + batch] = np.sort(kept, axis=1)
    model._audience_catalog = (key, lse, best, u)  # keeps `u` alive, so its id stays unique
    return lse, best


def _listener_columns(model, profiles) -> pd.DataFrame:
    """The listeners' ids, countries and languages as columns, and their (country,
    language) segment codes (`_segments`), built once per (model, listeners) like their
    user vectors: each upload's table reuses them."""
    key = (id(profiles), len(profiles))
    cached = getattr(model, "_audience_listeners", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    if isinstance(profiles, Listeners):
        columns = pd.DataFrame(
            {
                "user_id": profiles.user_ids,
                "country": profiles.country,
                "language": profiles.language,
            }
        )
    else:
        columns = pd.DataFrame(
            {
                "user_id": [p.user_id for p in profiles],
                "country": [p.country for p in profiles],
                "language": [p.language for p in profiles],
            }
        )
    model._audience_listeners = (key, columns, profiles)  # keeps `profiles` alive
    return columns


def _segments(columns: pd.DataFrame, known: np.ndarray) -> tuple[np.ndarray, pd.MultiIndex]:
    """(segment code of each known listener, the (country, language) segments in the
    sorted order a groupby of `audience_summary`'s gives them, missing as "unknown")."""
    filled = columns.loc[known, ["country", "language"]].fillna("unknown")
    codes, labels = pd.factorize(pd.MultiIndex.from_frame(filled), sort=True)
    return codes, pd.MultiIndex.from_tuples(list(labels), names=["country", "language"])


def _profile_batch(profiles, lo: int, hi: int) -> list[UserProfile]:
    """Listeners lo..hi as `UserProfile`s (built for this batch from `Listeners`)."""
    return profiles.profiles(lo, hi) if isinstance(profiles, Listeners) else profiles[lo:hi]


def _user_vectors(model, profiles, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Every listener's user-tower output, computed once per (model, profiles list): a
    batch of uploads scores the same listeners again and again."""
    key = (id(profiles), len(profiles))
    cached = getattr(model, "_audience_users", None)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    users, masks = [], []
    for lo in range(0, len(profiles), batch):
        u, ok, _ = model.user_vectors(_profile_batch(profiles, lo, lo + batch))
        users.append(u)
        masks.append(ok)
    u = (
        np.concatenate(users)
        if users
        else np.zeros((0, model.item_vectors()[1].shape[1]), np.float32)
    )
    known = np.concatenate(masks) if masks else np.zeros(0, bool)
    model._audience_users = (
        key,
        u,
        known,
        profiles,
    )  # keeps `profiles` alive, so its id stays unique
    return u, known


def _top_users(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """The `n` rows of highest probability (ties by user_id), without sorting them all:
    a partial selection keeps every row tied with the n-th, then only those are sorted."""
    if n <= 0 or frame.empty:
        return frame.head(0)
    p = frame["probability"].to_numpy()
    if len(p) > n:
        threshold = np.partition(p, len(p) - n)[len(p) - n]
        frame = frame[p >= threshold]
    return frame.sort_values(["probability", "user_id"], ascending=[False, True]).head(n)


# --- what a scoring run reports, and the model it scores with ------------------------------


@dataclass
class ScoreReport:
    """What a scoring run did, by upload id."""

    scored: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  # leased by another live worker: left to it

    def to_dict(self) -> dict:
        return {
            "scored": self.scored,
            "failed": self.failed,
            "skipped": self.skipped,
            "busy": self.busy,
        }


def affinity_artifact(store: Store) -> dict | None:
    """The newest registered affinity model for podcasts (artifact row), if any."""
    rows = [
        row
        for row in store.frame(t.artifacts).to_dict("records")
        if (row["manifest"] or {}).get("kind") == "affinity"
        and (row["manifest"] or {}).get("target") == "podcast"
    ]
    return max(rows, key=lambda row: row["created_at"]) if rows else None


def served_affinity_model(store: Store):
    row = affinity_artifact(store)
    if row is None:
        raise RuntimeError(
            "no trained affinity model for podcasts in the store; run `coldstart train` first"
        )
    return AffinityModel.load(row["path"])
