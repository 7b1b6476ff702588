"""The serving catalogue as a compact file, so a server starts without the SQL that
builds it (item metadata, hidden uploads, distinct listeners per item: a join over
every play, minutes at a million listeners).

`<home>/catalog/` holds `items.parquet` (the recommendable items' metadata columns),
`listeners.parquet` (distinct listeners per item) and `manifest.json` with the store
fingerprint they were built from. The fingerprint is a few aggregate queries that
change whenever the catalogue could: spoken-word items by kind (count, largest id,
newest publication), the number of interactions, and uploads (count, newest status
change, by status: an upload becomes recommendable once scored). `load_catalog` reads the file
when the fingerprint matches and otherwise builds the catalogue from SQL and writes
the file again (atomically: a new file renamed over the old one). `coldstart index`,
`train` and `score-uploads` leave the store changed, so the next server start or
reload rebuilds it once. An in-place edit that keeps all of these (a title changed by
hand in SQL) is not seen: delete the directory, or run `coldstart serve` after any
ingest, which changes the counts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import func, select

from coldstart.core import tables as t
from coldstart.core.store import Store
from coldstart.recommend.catalog import METADATA_COLUMNS, Catalog, ItemMetadata
from training.baselines import SegmentPopularityRecommender
from training.data import SPOKEN_KINDS, InteractionData

__all__ = [
    "FORMAT",
    "catalog_fingerprint",
    "write_catalog",
    "read_catalog",
    "load_catalog",
    "load_popularity",
]

log = logging.getLogger(__name__)
FORMAT = 1


def catalog_fingerprint(store: Store) -> dict:
    """Aggregates that change whenever the serving catalogue may have changed."""
    with store.connect() as conn:
        kinds = conn.execute(
            select(
                t.items.c.kind,
                func.count(),
                func.max(t.items.c.item_id),
                func.max(t.items.c.published_at),
            )
            .where(t.items.c.kind.in_(SPOKEN_KINDS))
            .group_by(t.items.c.kind)
        ).all()
        plays = conn.execute(select(func.count()).select_from(t.interactions)).scalar()
        uploads = conn.execute(
            select(t.uploads.c.status, func.count(), func.max(t.uploads.c.updated_at)).group_by(
                t.uploads.c.status
            )
        ).all()
    return {
        "items": {str(k): [int(n), str(top), str(newest)] for k, n, top, newest in sorted(kinds)},
        "interactions": int(plays or 0),
        "uploads": {str(s): [int(n), str(last)] for s, n, last in sorted(uploads)},
    }


def _replace(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_catalog(catalog: Catalog, directory: Path, fingerprint: dict) -> dict:
    """Write `catalog` with the fingerprint of the store it came from; returns the manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    metadata = catalog.metadata
    ids = list(metadata)
    if isinstance(metadata, ItemMetadata):  # its columns, not a dict per item
        items = pd.DataFrame({"item_id": metadata.ids, **metadata.columns})
    else:
        items = pd.DataFrame(
            {"item_id": ids, **{c: [metadata[i][c] for i in ids] for c in METADATA_COLUMNS}}
        )
    items["explicit"] = items["explicit"].astype(bool)
    items["published_at"] = pd.to_datetime(items["published_at"])
    listeners = pd.DataFrame(
        {"item_id": list(catalog.listeners), "listeners": list(catalog.listeners.values())}
    )
    manifest = {
        "kind": "serving_catalog",
        "format": FORMAT,
        "fingerprint": fingerprint,
        "items": len(items),
        "listened_items": len(listeners),
        "written_at": pd.Timestamp.now("UTC").isoformat(),
    }
    _replace(directory / "items.parquet", lambda p: items.to_parquet(p, index=False))
    _replace(directory / "listeners.parquet", lambda p: listeners.to_parquet(p, index=False))
    # The manifest last: a reader that sees it sees the files it describes.
    _replace(directory / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=2)))
    return manifest


def read_catalog(directory: Path) -> Catalog:
    """The catalogue in `directory`, read as Arrow columns into Python lists (no
    per-row pandas conversion: a million items in about a second)."""
    items = pq.read_table(directory / "items.parquet")
    items = items.filter(pc.is_in(items["kind"], pa.array(SPOKEN_KINDS)))
    columns = {}
    for col in METADATA_COLUMNS:
        if col not in items.column_names:
            columns[col] = [None] * items.num_rows
        elif col == "published_at":  # datetime.datetime, None where missing
            columns[col] = items[col].cast(pa.timestamp("us")).to_pylist()
        else:
            columns[col] = items[col].to_pylist()
    listeners = pq.read_table(directory / "listeners.parquet")
    counts = dict(
        zip(
            listeners["item_id"].cast(pa.string()).to_pylist(),
            listeners["listeners"].cast(pa.int64()).to_pylist(),
        )
    )
    ids = items["item_id"].cast(pa.string()).to_pylist()
    return Catalog.from_columns(ids, columns, counts)


def load_catalog(
    store: Store, directory: Path, fingerprint: dict | None = None
) -> tuple[Catalog, str]:
    """The catalogue from `directory` when it matches the store, else from SQL (and the
    file rewritten). Returns (catalog, "file" or "sql")."""
    fingerprint = fingerprint or catalog_fingerprint(store)
    manifest_path = directory / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") == FORMAT and manifest.get("fingerprint") == fingerprint:
            return read_catalog(directory), "file"
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:  # unreadable: rebuilt below
        log.warning("catalogue file %s unreadable, rebuilding: %s", directory, exc)
    catalog = Catalog.from_store(store)
    try:
        write_catalog(catalog, directory, fingerprint)
    except OSError as exc:  # a read-only home still serves, from SQL
        log.warning("could not write the catalogue file %s: %s", directory, exc)
    return catalog, "sql"


def popularity_key(store: Store, fingerprint: dict) -> dict | None:
    """What the popularity fallbacks are fitted from: the versions of the interactions,
    users and items (`Store.table_changed`), and the catalogue fingerprint. None when a
    table has no version (a store written before versions): then nothing is cached."""
    versions = {name: store.data_version(name) for name in ("interactions", "users", "items")}
    if None in versions.values():
        return None
    return {"versions": versions, "fingerprint": fingerprint}


def load_popularity(
    store: Store,
    directory: Path,
    targets: list[str],
    fit_data: Callable[[], InteractionData],
    fingerprint: dict | None = None,
) -> tuple[dict[str, SegmentPopularityRecommender], str]:
    """The segment-popularity fallback of each target, read from `directory` when saved
    there from the same tables, else fitted on `fit_data()` (the spoken-word plays, which
    at a million listeners take a minute to read and fit) and saved for the next start.
    Returns (models, "file" or "fitted")."""
    key = popularity_key(store, fingerprint or catalog_fingerprint(store))
    if key is not None:  # a saved model fitted with other settings is not this one
        key["min_users"] = SegmentPopularityRecommender().min_users
    saved: dict[str, SegmentPopularityRecommender] = {}
    for target in targets if key is not None else []:
        path = directory / f"popularity-{target}"
        try:
            manifest = json.loads((path / "manifest.json").read_text())
            if manifest.get("fitted_from") == key:
                saved[target] = SegmentPopularityRecommender.load(path)
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError) as exc:  # unreadable: fitted again below
            log.warning("popularity fallback %s unreadable, fitting it again: %s", path, exc)
    if len(saved) == len(targets):
        return saved, "file"
    data = fit_data()
    models = {target: SegmentPopularityRecommender(target).fit(data) for target in targets}
    if key is not None:
        for target, model in models.items():
            try:
                _save_model(model, directory / f"popularity-{target}", {"fitted_from": key})
            except OSError as exc:  # a read-only home still serves, fitted each start
                log.warning("could not save the popularity fallback in %s: %s", directory, exc)
    return models, "fitted"


def _save_model(model, path: Path, extra_manifest: dict) -> None:
    """Save into a new directory, then swap it in: a reader sees the old or the new."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp, extra_manifest)
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
