"""faiss indexes over content vectors: build, save/load, incremental add/remove.

Two indexes live under `<home>/indexes/`:

* `items`: one vector per show, episode and audiobook (`embeddings.item_vectors`);
* `passages`: one vector per transcript passage, key `"<item_id>#<passage>"`, for snippets.

Each index maps string keys to stable int64 ids (a hash of the key) with an id table
saved next to it, so removing or replacing an item never renumbers the others.
Small catalogs get exact search (`IndexIDMap2` over `IndexFlatIP`); past
`settings.embed.exact_index_max` vectors an `IndexIVFFlat` (which, unlike HNSW,
supports `remove_ids`) is built; its nprobe is doubled until recall@10 against exact
search reaches `settings.embed.target_recall`, and the measured recall is written to
the manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

from coldstart.content.adapt import adapt_encoder
from coldstart.content.embeddings import (
    SPOKEN_KINDS,
    EmbedReport,
    Encoder,
    current_adapted,
    embed_items,
    item_vectors,
    load_encoder,
    load_encoder_at,
    passage_rows,
    resolve_model_path,
)
from coldstart.content.intent import train_intent
from coldstart.core.config import Settings
from coldstart.core.store import Store, utcnow

__all__ = [
    "INDEX_UNITS",
    "VectorIndexError",
    "ModelMismatchError",
    "VectorIndex",
    "SyncReport",
    "index_dir",
    "key_id",
    "passage_key",
    "load_index",
    "sync_indexes",
    "index_content",
]

INDEX_UNITS = ("items", "passages")


class VectorIndexError(RuntimeError):
    """An index is missing or unusable (named with its path)."""


class ModelMismatchError(VectorIndexError):
    """The index was built with another encoder than the one asked to query it."""


def key_id(key: str) -> int:
    """A stable non-negative int64 id for a string key."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def passage_key(item_id: str, passage: int) -> str:
    return f"{item_id}#{passage}"


def _entry_hash(key: str, vector: np.ndarray) -> str:
    return hashlib.blake2b(
        key.encode() + np.ascontiguousarray(vector, dtype=np.float32).tobytes(), digest_size=8
    ).hexdigest()


def _as_matrix(vectors) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    return x if x.ndim == 2 else x.reshape(1, -1)


class VectorIndex:
    """A faiss inner-product index over unit vectors, addressed by string keys."""

    def __init__(self, index: faiss.Index, table: pd.DataFrame, manifest: dict) -> None:
        self.index = index
        self.manifest = manifest
        # id table: id (int64) -> key; key -> int64 id, no re-hashing per query. Built from
        # Python lists (a million keys in about a second, not a Series iterated per row).
        keys = table["key"].tolist()
        self._key = dict(zip(table["id"].to_numpy(dtype=np.int64).tolist(), keys))
        self._id = dict(zip(self._key.values(), self._key.keys()))
        # entry hash (key + vector) for change detection: read by `coldstart index` only,
        # so made into a dict on first use (`_hash`), not at every server start
        self._hashes: dict[str, str] | None = None
        self._hash_column: tuple[list[str], pd.Series] | None = (keys, table["hash"])

    @property
    def _hash(self) -> dict[str, str]:
        if self._hashes is None:
            keys, hashes = self._hash_column or ([], pd.Series([], dtype=object))
            self._hashes = dict(zip(keys, hashes.tolist()))
            self._hash_column = None
        return self._hashes

    # --- construction ----------------------------------------------------------

    @classmethod
    def build(
        cls,
        keys: Sequence[str],
        vectors,
        *,
        model_id: str,
        unit: str,
        exact_max: int,
        nprobe: int = 16,
        target_recall: float = 0.95,
        dim: int | None = None,
    ) -> VectorIndex:
        x = _as_matrix(vectors)
        dim = int(x.shape[1]) if len(keys) else int(dim or 0)
        if len(keys) != len(x):
            raise ValueError(f"{len(keys)} keys for {len(x)} vectors")
        if not dim:
            raise ValueError("an empty index needs its dimension")
        started = time.perf_counter()
        manifest = {
            "unit": unit,
            "model_id": model_id,
            "dimension": dim,
            "metric": "inner_product",
        }
        if len(keys) > exact_max:
            # sqrt(n) lists; k-means on up to 64 points per list, 10 iterations: a 1M-vector
            # build trains in seconds, and recall is measured below rather than assumed.
            nlist = max(1, min(int(round(math.sqrt(len(keys)))), len(keys) // 39))
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.niter = 10
            index.cp.max_points_per_centroid = 64
            index.cp.seed = 0
            index.train(x)
            index.nprobe = min(nprobe, nlist)
            # A hashtable direct map keeps reconstruct() and remove_ids() working with arbitrary ids.
            index.set_direct_map_type(faiss.DirectMap.Hashtable)
            manifest.update(index_type="IVFFlat", nlist=nlist, nprobe=index.nprobe)
        else:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            manifest.update(index_type="IDMap2,FlatIP")
        built = cls(index, pd.DataFrame({"id": [], "key": [], "hash": []}), manifest)
        built.add(keys, x)
        if manifest["index_type"] == "IVFFlat":
            manifest["nprobe"], manifest["recall_at_10"] = _tune_nprobe(
                index, keys, x, target_recall
            )
            manifest["target_recall"] = target_recall
        manifest["build_seconds"] = round(time.perf_counter() - started, 3)
        manifest["built_at"] = utcnow().isoformat()
        return built

    # --- contents ----------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def dim(self) -> int:
        return int(self.manifest["dimension"])

    @property
    def index_type(self) -> str:
        return self.manifest["index_type"]

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def __contains__(self, key: str) -> bool:
        return key in self._id

    def keys(self) -> list[str]:
        return list(self._hash)

    def entry_hash(self, key: str) -> str | None:
        return self._hash.get(key)

    def vector(self, key: str) -> np.ndarray:
        if key not in self._id:
            raise KeyError(key)
        return self.index.reconstruct(self._id[key])

    def ids_of(self, keys: Iterable[str]) -> np.ndarray:
        """The int64 ids of the `keys` held here, for `search(allowed=...)` in a loop."""
        return np.fromiter((self._id[k] for k in keys if k in self._id), dtype=np.int64)

    def data_hash(self) -> str:
        """Order-independent digest of (key, vector) entries."""
        return hashlib.sha256("\n".join(sorted(self._hash.values())).encode()).hexdigest()[:16]

    # --- changes -------------------------------------------------------------------

    def add(self, keys: Sequence[str], vectors) -> None:
        """Add entries; a key already present is replaced."""
        if not len(keys):
            return
        x = _as_matrix(vectors)
        if x.shape != (len(keys), self.dim):
            raise ValueError(f"expected {len(keys)} vectors of dimension {self.dim}, got {x.shape}")
        self.remove([k for k in keys if k in self._hash])
        ids = np.array([key_id(k) for k in keys], dtype=np.int64)
        self.index.add_with_ids(x, ids)
        for k, i, v in zip(keys, ids, x):
            self._key[int(i)] = k
            self._id[k] = int(i)
            self._hash[k] = _entry_hash(k, v)

    def remove(self, keys: Iterable[str]) -> int:
        keys = [k for k in keys if k in self._hash]
        if not keys:
            return 0
        ids = np.array([key_id(k) for k in keys], dtype=np.int64)
        # IVF's hashtable direct map only accepts an explicit id array.
        removed = int(self.index.remove_ids(faiss.IDSelectorArray(ids)))
        for k, i in zip(keys, ids):
            self._key.pop(int(i), None)
            self._id.pop(k, None)
            self._hash.pop(k, None)
        return removed

    # --- queries -------------------------------------------------------------------

    def search(
        self, queries, k: int, allowed: Iterable[str] | np.ndarray | None = None
    ) -> list[list[tuple[str, float]]]:
        """Top-k (key, score) per query row; `allowed` (keys, or an int64 array from `ids_of`)
        restricts the candidates exactly."""
        q = _as_matrix(queries)
        if q.shape[1] != self.dim:
            raise ValueError(f"query dimension {q.shape[1]} != index dimension {self.dim}")
        if len(self) == 0 or k <= 0:
            return [[] for _ in range(len(q))]
        params = None
        if allowed is not None:
            ids = allowed if isinstance(allowed, np.ndarray) else self.ids_of(allowed)
            if not len(ids):
                return [[] for _ in range(len(q))]
            sel = faiss.IDSelectorBatch(ids)
            k = min(k, len(ids))
            if isinstance(self.index, faiss.IndexIVF):
                params = faiss.SearchParametersIVF(sel=sel, nprobe=self.index.nprobe)
            else:
                params = faiss.SearchParameters(sel=sel)
        scores, ids = self.index.search(q, min(k, len(self)), params=params)
        return [
            [(self._key[int(i)], float(s)) for s, i in zip(srow, irow) if i >= 0]
            for srow, irow in zip(scores, ids)
        ]

    # --- persistence -----------------------------------------------------------------

    def save(self, directory: Path) -> dict:
        """Write index.faiss, ids.parquet and manifest.json (each replaced atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        table = pd.DataFrame(
            {
                "id": np.array(list(self._key), dtype=np.int64),
                "key": list(self._key.values()),
            }
        )
        table["hash"] = [self._hash[k] for k in table["key"]]
        self.manifest.update(
            count=len(self), data_hash=self.data_hash(), saved_at=utcnow().isoformat()
        )
        for name, write in (
            ("index.faiss", lambda p: faiss.write_index(self.index, str(p))),
            ("ids.parquet", lambda p: table.to_parquet(p, index=False)),
            ("manifest.json", lambda p: p.write_text(json.dumps(self.manifest, indent=2) + "\n")),
        ):
            tmp = directory / f".{name}.tmp"
            write(tmp)
            os.replace(tmp, directory / name)
        return dict(self.manifest)

    @classmethod
    def load(cls, directory: Path, mmap: bool = False) -> VectorIndex:
        """With `mmap`, an IVF index's vectors stay in the file, memory-mapped read-only
        (pages shared by the server's workers; `add` and `remove` then fail): for search."""
        directory = Path(directory)
        paths = {n: directory / n for n in ("index.faiss", "ids.parquet", "manifest.json")}
        missing = [str(p) for p in paths.values() if not p.exists()]
        if missing:
            raise VectorIndexError(
                f"index at {directory} is incomplete: missing {', '.join(missing)}; run `coldstart index`"
            )
        manifest = json.loads(paths["manifest.json"].read_text())
        index = faiss.read_index(str(paths["index.faiss"]), faiss.IO_FLAG_MMAP if mmap else 0)
        table = pd.read_parquet(paths["ids.parquet"])
        if index.ntotal != len(table):
            raise VectorIndexError(
                f"{directory}: index holds {index.ntotal} vectors but the id table {len(table)}"
            )
        if isinstance(index, faiss.IndexIVF):
            index.nprobe = int(manifest.get("nprobe", index.nprobe))
        return cls(index, table, manifest)


def _tune_nprobe(
    index: faiss.IndexIVF, keys: Sequence[str], x: np.ndarray, target: float, queries: int = 500
) -> tuple[int, float]:
    """Double nprobe from its start until recall@10 against exact search reaches `target`.

    Queries are stored vectors (up to 500); the answer is (nprobe, recall) as measured,
    so the manifest states the recall the index really has.
    """
    rng = np.random.default_rng(0)
    q = x[rng.choice(len(x), size=min(queries, len(x)), replace=False)]
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    k = min(10, len(x))
    _, truth = exact.search(q, k)
    ids = np.array([key_id(key) for key in keys], dtype=np.int64)
    truth_sets = [set(ids[row]) for row in truth]
    while True:
        _, got = index.search(q, k)
        recall = float(np.mean([len(t & set(g)) / k for t, g in zip(truth_sets, got)]))
        if recall >= target or index.nprobe >= index.nlist:
            return int(index.nprobe), round(recall, 4)
        index.nprobe = min(index.nlist, index.nprobe * 2)


# --- the project's two indexes -------------------------------------------------------


def index_dir(settings: Settings, unit: str) -> Path:
    return (settings.home / "indexes" / unit).resolve()


def load_index(
    settings: Settings, unit: str, model_id: str | None = None, mmap: bool = False
) -> VectorIndex:
    """Load `unit`; with `model_id`, refuse an index built by another encoder; `mmap`:
    read-only, see `VectorIndex.load`."""
    directory = index_dir(settings, unit)
    if not directory.exists():
        raise VectorIndexError(
            f"no {unit} index at {directory}; run `coldstart --home {settings.home} index` first"
        )
    index = VectorIndex.load(directory, mmap)
    if model_id is not None and index.model_id != model_id:
        raise ModelMismatchError(
            f"the {unit} index at {directory} was built with model {index.model_id!r} but the "
            f"configured encoder is {model_id!r}; run `coldstart index` to re-embed and rebuild"
        )
    return index


@dataclass
class SyncReport:
    unit: str
    action: str  # "built" | "updated" | "unchanged"
    added: int = 0
    replaced: int = 0
    removed: int = 0
    manifest: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        keep = (
            "index_type",
            "count",
            "dimension",
            "model_id",
            "recall_at_10",
            "target_recall",
            "nlist",
            "nprobe",
            "data_hash",
        )
        return {
            "unit": self.unit,
            "action": self.action,
            "added": self.added,
            "replaced": self.replaced,
            "removed": self.removed,
            **{k: self.manifest[k] for k in keep if k in self.manifest},
        }


def _current(
    store: Store, model_id: str, unit: str, item_ids: set[str] | None
) -> dict[str, np.ndarray]:
    """The vectors the index should hold now (for `item_ids` only, when given)."""
    if unit == "items":
        vectors = item_vectors(store, model_id, SPOKEN_KINDS)
        return vectors if item_ids is None else {k: v for k, v in vectors.items() if k in item_ids}
    rows = passage_rows(store, model_id)
    if item_ids is not None:
        rows = rows[rows["item_id"].isin(item_ids)]
    return {passage_key(r.item_id, r.passage): r.vector for r in rows.itertuples()}


def _affected(store: Store, item_ids: Iterable[str]) -> set[str]:
    """Changed items plus the shows whose aggregate vector depends on them."""
    ids = set(item_ids)
    items = store.items(["episode"])
    shows = items.loc[items["item_id"].isin(ids), "show_id"].dropna()
    return ids | set(shows)


def _item_of(key: str, unit: str) -> str:
    return key.rsplit("#", 1)[0] if unit == "passages" else key


def sync_indexes(
    store: Store,
    settings: Settings,
    model_id: str,
    item_ids: Iterable[str] | None = None,
    rebuild: bool = False,
    dim: int = 384,
) -> list[SyncReport]:
    """Make the saved indexes hold exactly the stored vectors of `model_id`.

    Incremental where possible: entries whose vector changed are replaced, new ones
    added, vanished ones removed. A missing index, another model's index, an exact
    index grown past `exact_index_max`, or `rebuild=True` builds from scratch.
    `item_ids` restricts the update to those items (and their shows) - the upload path.
    """
    reports = []
    scope = None if item_ids is None else _affected(store, item_ids)
    for unit in INDEX_UNITS:
        directory = index_dir(settings, unit)
        current = _current(store, model_id, unit, None if rebuild else scope)
        index = None
        if not rebuild and (directory / "manifest.json").exists():
            index = VectorIndex.load(directory)
            if index.model_id != model_id:
                index = None  # never mix models: rebuild from this model's vectors
        if index is not None:
            held = [k for k in index.keys() if scope is None or _item_of(k, unit) in scope]  # noqa: SIM118 (a VectorIndex, not a dict)
            gone = [k for k in held if k not in current]
            fresh = [k for k in current if index.entry_hash(k) != _entry_hash(k, current[k])]
            replaced = sum(1 for k in fresh if k in index)
            report = SyncReport(
                unit,
                "updated" if gone or fresh else "unchanged",
                added=len(fresh) - replaced,
                replaced=replaced,
            )
            report.removed = index.remove(gone)
            if fresh:
                index.add(fresh, np.stack([current[k] for k in fresh]))
            if index.index_type != "IVFFlat" and len(index) > settings.embed.exact_index_max:
                index = None  # grown past exact search: switch to the approximate index
        if index is None:
            if scope is not None and not rebuild:
                current = _current(store, model_id, unit, None)
            keys = sorted(current)
            vectors = (
                np.stack([current[k] for k in keys]) if keys else np.zeros((0, dim), np.float32)
            )
            index = VectorIndex.build(
                keys,
                vectors,
                model_id=model_id,
                unit=unit,
                exact_max=settings.embed.exact_index_max,
                nprobe=settings.embed.nprobe,
                target_recall=settings.embed.target_recall,
                dim=dim,
            )
            report = SyncReport(unit, "built", added=len(keys))
        report.manifest = index.save(directory)
        store.register_artifact(f"index:{unit}", directory, report.manifest)
        reports.append(report)
    return reports


def index_content(
    store: Store,
    settings: Settings,
    item_ids: Iterable[str] | None = None,
    *,
    encoder: Encoder | None = None,
    rebuild: bool = False,
    progress: bool | None = None,
    adapt: bool = False,
) -> tuple[EmbedReport, list[SyncReport]]:
    """(Adapt the encoder,) embed what is new or changed, bring both indexes up to date,
    (train the intent classifier).

    The whole catalog by default (`coldstart index`); `item_ids=[new_episode]` is the
    upload path: one episode embedded and added, its show's vector replaced, and neither
    the encoder nor the classifier retrained.

    On a full run with `embed.adapt` on, the encoder is adapted to the catalogue first
    when this home has no adapted encoder yet, or when `adapt=True` (`--adapt`); then
    everything is embedded with it. The intent classifier is retrained on every full run,
    and the search catalogue (items, passages, BM25: `search_file.py`) written again.
    """
    adapted = None
    if item_ids is None and settings.embed.adapt and (adapt or current_adapted(settings) is None):
        base = load_encoder_at(resolve_model_path(settings.embed.model), settings)
        adapted = adapt_encoder(store, settings, base, progress=bool(progress))
        encoder = None  # the adapted model, when trained, is the encoder from now on
    encoder = encoder or load_encoder(settings)
    report = embed_items(store, settings, item_ids=item_ids, encoder=encoder, progress=progress)
    syncs = sync_indexes(
        store, settings, encoder.model_id, item_ids=item_ids, rebuild=rebuild, dim=encoder.dim
    )
    if adapted is not None:
        report.adapt = adapted.to_dict()
    if item_ids is None:
        report.intent = train_intent(store, settings, encoder.model_id, encoder).to_dict()
        # lazy: search_file imports this module
        from coldstart.content.search_file import write_search_catalogue

        started = time.perf_counter()
        _, manifest = write_search_catalogue(store, settings, encoder.model_id)
        report.lexical = {
            "documents": manifest["documents"],
            "passages": manifest["passages"],
            "seconds": round(time.perf_counter() - started, 1),
        }
    return report, syncs
