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
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select

from coldstart.core import tables as t
from coldstart.core.store import Store
from coldstart.recommend.catalog import METADATA_COLUMNS, Catalog
from training.data import SPOKEN_KINDS

__all__ = ["FORMAT", "catalog_fingerprint", "write_catalog", "read_catalog", "load_catalog"]

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
    ids = list(catalog.metadata)
    items = pd.DataFrame(
        {"item_id": ids, **{c: [catalog.metadata[i][c] for i in ids] for c in METADATA_COLUMNS}}
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
    items = pd.read_parquet(directory / "items.parquet")
    listeners = pd.read_parquet(directory / "listeners.parquet")
    counts = dict(zip(listeners["item_id"].astype(str), listeners["listeners"].astype(int)))
    return Catalog.from_frames(items, counts)


def load_catalog(store: Store, directory: Path) -> tuple[Catalog, str]:
    """The catalogue from `directory` when it matches the store, else from SQL (and the
    file rewritten). Returns (catalog, "file" or "sql")."""
    fingerprint = catalog_fingerprint(store)
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
