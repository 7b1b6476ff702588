"""Music taste vectors: item2vec over playlists and listening histories.

Artists and tracks are words; every playlist (in position order) and every user's
listening history is a sentence. A history has no order, so it is written as a
shuffled sequence in which each item appears `1 + log2(1 + plays)` times (capped):
heavy rotation counts more than a single play, without one obsessive artist
drowning out the rest. gensim's skip-gram with negative sampling learns one vector
per item; a user's taste vector is the play-weighted (log-scaled) mean of the
vectors of the items they played. Items the model has never seen are skipped and
reported, so the caller can tell how much of a profile was usable.

Why word2vec rather than matrix factorisation: it is a well-kept library already
in the stack, it learns from playlists (sequence co-occurrence) and histories in
one model, and with `workers=1` plus a fixed seed and a stable hash it is bit-for-bit
deterministic. See docs/evaluation.md.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from gensim.models import KeyedVectors, Word2Vec

from training.data import MUSIC_KINDS, InteractionData
from training.sampling import sample_listeners
from training.taste_batch import taste_vectors

__all__ = [
    "TasteConfig",
    "TasteModel",
    "fit_taste",
    "remember_taste",
    "stable_hash",
    "music_fingerprint",
]

MODEL_FILE = "taste.kv"
MANIFEST_FILE = "taste.json"


def stable_hash(text: str) -> int:
    """Process-independent replacement for `hash` (gensim seeds each word's initial
    vector with it; the builtin is salted per process, which breaks determinism)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "little")


@dataclass(frozen=True)
class TasteConfig:
    dim: int = 32
    window: int = 20
    negative: int = 10
    epochs: int = 10
    min_count: int = 1
    max_repeats: int = 2  # an item appears at most this many times in a history sentence
    max_sentence: int = 1000  # longer histories are split into several sentences
    # Small corpora get more epochs (up to `max_epochs`): word2vec needs enough
    # updates to move vectors apart, and tiny datasets would otherwise stay at noise.
    min_words: int = 200_000
    max_epochs: int = 200
    # Large corpora get fewer epochs: at most this many corpus words over all epochs
    # (at least one epoch). Skip-gram time is linear in the words trained, so the stage
    # stops growing with the audience once a corpus is this large (every real dataset
    # here is far below: Douban dev and the demo world train well under 1M). 0: no cap.
    max_corpus_words: int = 8_000_000
    # Large audiences: the histories of a seeded uniform sample of this many music
    # listeners (playlists are all kept); the manifest records how many were used.
    # Binds above 50k listeners (the scale benchmark's 100k and 1M worlds), not on the
    # real datasets. 0: every listener. See docs/scale.md.
    max_listeners: int = 50_000
    seed: int = 0


def epochs_for(words: int, cfg: TasteConfig) -> int:
    """Training epochs for a corpus of `words`: `cfg.epochs`, more for small corpora,
    fewer for corpora whose `cfg.epochs` passes would exceed `cfg.max_corpus_words`."""
    words = max(words, 1)
    epochs = min(max(cfg.epochs, math.ceil(cfg.min_words / words)), max(cfg.max_epochs, cfg.epochs))
    if cfg.max_corpus_words:
        epochs = min(epochs, max(1, cfg.max_corpus_words // words))
    return int(epochs)


def music_fingerprint(data: InteractionData) -> str:
    """A hash of the music side of `data` (what a taste model is trained on)."""
    music = data.music_interactions()  # sorted by user_id, item_id
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(music, index=False).values.tobytes())
    if len(data.playlists):
        pl = data.playlists[["playlist_id", "position", "item_id"]].sort_values(
            ["playlist_id", "position"]
        )
        h.update(pd.util.hash_pandas_object(pl, index=False).values.tobytes())
    return h.hexdigest()[:16]


def _listener_sample(music: pd.DataFrame, cfg: TasteConfig) -> tuple[pd.DataFrame, int, int]:
    """(music rows of the listeners trained on, listeners, listeners used): all of
    them, or a seeded uniform sample of `cfg.max_listeners` when there are more
    (`training.sampling.sample_listeners`)."""
    listeners = np.sort(music["user_id"].unique().astype(str))
    chosen, available = sample_listeners(listeners, cfg.max_listeners, cfg.seed)
    if len(chosen) == available:
        return music, available, available
    # its own stream: the shuffles below draw the same numbers as without a sample
    return music[music["user_id"].isin(chosen)], available, len(chosen)


def _sentences(
    data: InteractionData, cfg: TasteConfig, counts: dict | None = None
) -> list[list[str]]:
    """Playlists and listening histories as sentences; `counts` (when given) gets the
    number of music listeners and of those whose histories were used."""
    rng = np.random.default_rng(cfg.seed)
    sentences: list[list[str]] = []
    music_ids = set(data.items.loc[data.items["kind"].isin(MUSIC_KINDS), "item_id"])
    if len(data.playlists):
        pl = data.playlists[data.playlists["item_id"].isin(music_ids)]
        for _, group in pl.sort_values(["playlist_id", "position"]).groupby(
            "playlist_id", sort=True
        ):
            if len(group) > 1:
                sentences.append(group["item_id"].astype(str).tolist())
    music, listeners, used = _listener_sample(data.music_interactions(), cfg)
    if counts is not None:
        counts.update(listeners=listeners, sampled_listeners=used)
    music = music.sort_values(["user_id", "item_id"])
    # One listener's history at a time (in user order, the items in id order), the
    # repeats computed for every row at once.
    repeats = np.minimum(
        cfg.max_repeats, 1 + np.floor(np.log2(1 + music["weight"].clip(lower=0).to_numpy()))
    ).astype(int)
    items = music["item_id"].astype(str).to_numpy()
    user_codes, _ = pd.factorize(music["user_id"])
    keep = user_codes >= 0  # a listener without an id has no history (groupby drops it)
    items, repeats, user_codes = items[keep], repeats[keep], user_codes[keep]
    bounds = np.flatnonzero(np.diff(user_codes)) + 1
    for start, stop in zip(np.r_[0, bounds].tolist(), np.r_[bounds, len(items)].tolist()):
        if start == stop:
            continue
        words = np.repeat(items[start:stop], repeats[start:stop])
        rng.shuffle(words)
        for at in range(0, len(words), cfg.max_sentence):
            chunk = words[at : at + cfg.max_sentence].tolist()
            if len(chunk) > 1:
                sentences.append(chunk)
    return sentences


class TasteModel:
    """Item vectors plus the rule that turns a listening history into one taste vector."""

    def __init__(
        self, vectors: KeyedVectors, config: TasteConfig, manifest: dict | None = None
    ) -> None:
        self.vectors = vectors
        self.config = config
        self.manifest = manifest or {}
        self._index = {key: i for i, key in enumerate(vectors.index_to_key)}
        # Unit-length item vectors: the mean then measures shared direction, not popularity.
        self._unit = (
            vectors.get_normed_vectors() if len(vectors) else np.zeros((0, config.dim), np.float32)
        )

    @property
    def dim(self) -> int:
        return self.config.dim

    @classmethod
    def fit(
        cls, data: InteractionData, config: TasteConfig | None = None, fingerprint: str = ""
    ) -> TasteModel:
        """`fingerprint`: `music_fingerprint(data)` when the caller has it already."""
        cfg = config or TasteConfig()
        counts: dict = {}
        sentences = _sentences(data, cfg, counts)
        if not sentences:
            raise ValueError("no music listening or playlists to learn taste vectors from")
        words = sum(len(s) for s in sentences)
        epochs = epochs_for(words, cfg)
        w2v = Word2Vec(
            vector_size=cfg.dim,
            window=cfg.window,
            min_count=cfg.min_count,
            sg=1,
            negative=cfg.negative,
            epochs=epochs,
            seed=cfg.seed,
            workers=1,  # multi-threaded training is not reproducible
            hashfxn=stable_hash,
        )
        # What `Word2Vec(sentences=...)` does, with the count of words actually trained
        # (after frequent-word downsampling) kept: training time is linear in it.
        w2v.build_vocab(corpus_iterable=sentences)
        trained_words, _ = w2v.train(
            corpus_iterable=sentences,
            total_examples=w2v.corpus_count,
            total_words=w2v.corpus_total_words,
            epochs=w2v.epochs,
            start_alpha=w2v.alpha,
            end_alpha=w2v.min_alpha,
        )
        manifest = {
            "kind": "taste",
            "method": "gensim Word2Vec skip-gram (item2vec) over playlists + play-weighted histories",
            "dims": cfg.dim,
            "items": len(w2v.wv),
            "sentences": len(sentences),
            "words": words,
            "epochs": epochs,
            "trained_words": int(trained_words),  # over all epochs, after downsampling
            "music_listeners": counts["listeners"],
            "sampled_listeners": counts["sampled_listeners"],  # histories trained on
            "data_hash": fingerprint or music_fingerprint(data),
            "settings": asdict(cfg),
            "gensim": __import__("gensim").__version__,
        }
        return cls(w2v.wv, cfg, manifest)

    def user_vector(self, music: dict[str, float]) -> tuple[np.ndarray | None, list[str]]:
        """(taste vector or None when nothing is known, unknown item ids).

        The weighted mean is written out: the same float64 operations as `np.average`,
        without its argument handling (this runs once per onboarding request)."""
        index = self._index
        rows, weights, unknown = [], [], []
        for item_id, plays in music.items():
            i = index.get(item_id) if type(item_id) is str else index.get(str(item_id))
            if i is None:
                unknown.append(str(item_id))
                continue
            rows.append(i)
            weights.append(np.log1p(max(float(plays), 0.0)) + 1e-3)
        if not rows:
            return None, unknown
        w = np.asarray(weights)
        vec = (self._unit[rows] * w[:, None]).sum(axis=0) / w.sum()
        norm = np.linalg.norm(vec)
        return (vec / norm if norm > 0 else vec).astype(np.float32), unknown

    def user_matrix(self, histories: list[dict[str, float]]) -> tuple[np.ndarray, np.ndarray]:
        """Taste vectors for many users: (matrix, known mask); unknown rows are zero."""
        out, known, _ = self.user_vectors(histories)
        return out, known

    def user_vectors(
        self, histories: Sequence[Mapping[str, float]]
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """`user_vector` of many users at once, the same numbers (`training.taste_batch`):
        (matrix, zero rows where nothing is known; known mask; unknown item ids)."""
        return taste_vectors(self._index, self._unit, histories)

    # --- persistence -----------------------------------------------------------

    def save(self, directory: Path | str) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.vectors.save(str(directory / MODEL_FILE))
        (directory / MANIFEST_FILE).write_text(json.dumps(self.manifest, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: Path | str) -> TasteModel:
        directory = Path(directory)
        manifest_path = directory / MANIFEST_FILE
        if not manifest_path.exists():
            raise FileNotFoundError(f"{manifest_path}: no taste manifest (run `coldstart train`)")
        manifest = json.loads(manifest_path.read_text())
        vectors = KeyedVectors.load(str(directory / MODEL_FILE))
        return cls(vectors, TasteConfig(**manifest["settings"]), manifest)


# Several recommenders in one evaluation run need the same taste model for the same
# training data; fitting it once per (data, config) keeps the harness fast.
_CACHE: OrderedDict[tuple[str, TasteConfig], TasteModel] = OrderedDict()


def fit_taste(data: InteractionData, config: TasteConfig | None = None) -> TasteModel:
    cfg = config or TasteConfig()
    key = (music_fingerprint(data), cfg)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    model = TasteModel.fit(data, cfg, fingerprint=key[0])
    _CACHE[key] = model
    while len(_CACHE) > 4:
        _CACHE.popitem(last=False)
    return model


def remember_taste(data: InteractionData, model: TasteModel) -> None:
    """Make `fit_taste(data, model.config)` return `model`, a taste model saved earlier
    and loaded in this process, instead of training it again. Refused when `model` was
    trained on other music data than `data`'s."""
    fingerprint = music_fingerprint(data)
    if model.manifest.get("data_hash") != fingerprint:
        raise ValueError(
            f"taste model trained on music data {model.manifest.get('data_hash')!r}, "
            f"not on this data ({fingerprint!r})"
        )
    _CACHE[(fingerprint, model.config)] = model
    _CACHE.move_to_end((fingerprint, model.config))
