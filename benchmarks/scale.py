"""How the cost of every stage grows with the audience and the catalogue.

    nice -n 10 .venv/bin/python benchmarks/scale.py --sizes 10000,100000 --budget 3000
    .venv/bin/python benchmarks/scale.py --plot-only        # tables + plot from the results file
    # a size too big for one sitting: keep its world, run the stages in several calls
    .venv/bin/python benchmarks/scale.py --sizes 1000000 --workdir /var/tmp/scale \
        --stages generate,ingest,taste
    .venv/bin/python benchmarks/scale.py --sizes 1000000 --workdir /var/tmp/scale \
        --stages affinity,two_tower,index,score_uploads,onboarding

For each size N (listeners) a synthetic world is generated (`scale_world`, the demo
world's structure, vectorised: catalogue of N/100 artists x 4 tracks, N/10 shows of 10
episodes each, N/10 audiobooks; about 35 interactions per listener) and every stage runs
in one fresh process, timed, with its peak RSS sampled every 20 ms:

- ingest: `ingest_dataset` of the CSV dataset into SQLite;
- taste: `fit_taste` (item2vec over the music histories);
- affinity: `AffinityModel("podcast")` fit, with synthetic content vectors (genre centroid +
  noise, 384-d) so that new episodes are scorable; `--epochs` fixed epochs (no early stop);
- two_tower: `TwoTowerRecommender("audiobook")` fit, `--epochs` fixed epochs;
- index: `VectorIndex.build` over one vector per show, episode and audiobook (synthetic
  vectors: MiniLM cannot embed a million texts on 2 cores in the time; the encoder's own
  throughput is in benchmarks/ray_throughput.py);
- score_uploads: the audience of 100 new episodes (`listener_table`, then
  `predict_audience` per episode: what score-uploads runs after indexing), with the
  seconds of its parts (model, listeners, picks, first upload, the other 99);
- onboarding: `OnboardingPipeline.recommend` for 200 new listeners with music only
  (models loaded from registered artifacts, as the service does); p50/p95 latency.

With `--workdir`, a size's dataset, store, artifacts and taste model stay in
WORKDIR/<size>, and `--stages` runs some of the stages; a later call runs the rest from
what the earlier ones left (the store is read and the taste model loaded outside the
timing, as in one process). Without it, every stage runs in one temporary directory.

Results are appended to benchmarks/results/scale.jsonl (or `--results`) after every
stage (a size that runs out of time keeps its finished stages); the plot and the Markdown
tables (with growth exponents: slope of log time against log interactions) go beside it,
with the same name: scale.png and scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
STAGES = [
    "generate",
    "ingest",
    "taste",
    "affinity",
    "affinity_noblend",
    "two_tower",
    "two_tower_noblend",
    "index",
    "score_uploads",
    "score_uploads_noblend",
    "onboarding",
    "onboarding_noblend",
]


# --- a vectorised demo world ---------------------------------------------------------------


def scale_world(users: int, seed: int = 0):
    """The demo world's structure (taste clusters pairing music and spoken genres,
    log-normal popularity, English/Spanish), sampled with array operations."""
    from coldstart.demo.vocab import COUNTRIES, MUSIC_GENRES, SPOKEN_GENRES

    rng = np.random.default_rng(seed)
    n_artists, n_shows, n_books, eps = (
        max(40, users // 100),
        max(16, users // 10),
        max(16, users // 10),
        10,
    )
    n_tracks = n_artists * 4
    k = len(MUSIC_GENRES)
    spoken_of = rng.permutation(len(SPOKEN_GENRES))[:k] % len(SPOKEN_GENRES)
    cluster = rng.integers(k, size=users)  # each listener's main taste
    spanish = rng.random(users) < 0.35
    countries = np.where(
        spanish,
        np.array(["ES", "MX", "AR"])[rng.integers(3, size=users)],
        np.array(["US", "GB"])[rng.integers(2, size=users)],
    )
    user_ids = np.char.add("u", np.char.zfill(np.arange(users).astype(str), 7))
    users_df = pd.DataFrame(
        {
            "user_id": user_ids,
            "country": countries,
            "language": pd.Series(countries).map(COUNTRIES).to_numpy(),
            "age": rng.integers(16, 70, size=users).astype(float),
        }
    )

    artist_genre = rng.integers(k, size=n_artists)
    track_artist = np.repeat(np.arange(n_artists), 4)
    track_genre = artist_genre[track_artist]
    track_pop = rng.lognormal(0, 1.0, n_artists)[track_artist] * rng.lognormal(0, 0.5, n_tracks)
    show_genre = np.arange(n_shows) % len(SPOKEN_GENRES)
    show_lang = np.where(rng.random(n_shows) < 0.35, "es", "en")
    show_pop = rng.lognormal(0, 1.2, n_shows)
    book_genre = rng.integers(len(SPOKEN_GENRES), size=n_books)
    book_lang = np.where(rng.random(n_books) < 0.35, "es", "en")
    book_pop = rng.lognormal(0, 1.2, n_books)

    def sampler(pop, match):  # cumulative distribution per (cluster[, language])
        p = pop * np.exp(3.0 * match)
        return np.cumsum(p) / p.sum()

    def draw(cdfs, keys, counts):
        rows, items = [], []
        for key in np.unique(keys):
            who = np.flatnonzero(keys == key)
            n = counts[who]
            picks = np.searchsorted(cdfs[key], rng.random(int(n.sum())))
            rows.append(np.repeat(who, n))
            items.append(np.minimum(picks, len(cdfs[key]) - 1))
        return np.concatenate(rows), np.concatenate(items)

    track_cdf = {c: sampler(track_pop, track_genre == c) for c in range(k)}
    lang_key = cluster * 2 + spanish
    show_cdf, book_cdf = {}, {}
    for c in range(k):
        for s in (0, 1):
            lang = "es" if s else "en"
            show_cdf[c * 2 + s] = sampler(
                show_pop * np.where(show_lang == lang, 1, 0.04), show_genre == spoken_of[c]
            )
            book_cdf[c * 2 + s] = sampler(
                book_pop * np.where(book_lang == lang, 1, 0.04), book_genre == spoken_of[c]
            )
    u_t, t_i = draw(track_cdf, cluster, rng.integers(15, 40, size=users))
    pod = np.where(rng.random(users) < 0.7, rng.integers(1, 5, size=users), 0)
    u_s, s_i = draw(show_cdf, lang_key, pod)
    ep_n = rng.integers(1, eps + 1, size=len(u_s))
    u_e = np.repeat(u_s, ep_n)
    order = rng.random((len(u_s), eps)).argsort(
        axis=1
    )  # distinct episodes of each show a listener plays
    e_i = (s_i[:, None] * eps + order)[np.arange(eps)[None, :] < ep_n[:, None]]
    books = np.where(rng.random(users) < 0.5, rng.integers(1, 5, size=users), 0)
    u_b, b_i = draw(book_cdf, lang_key, books)

    track_ids = np.char.add("track", np.char.zfill(np.arange(n_tracks).astype(str), 7))
    show_ids = np.char.add("show", np.char.zfill(np.arange(n_shows).astype(str), 6))
    ep_ids = np.char.add(
        np.repeat(show_ids, eps), np.tile([f"-ep{e:02d}" for e in range(eps)], n_shows)
    )
    book_ids = np.char.add("book", np.char.zfill(np.arange(n_books).astype(str), 6))
    frames = [
        pd.DataFrame(
            {
                "user_id": user_ids[u_t],
                "item_id": track_ids[t_i],
                "weight": rng.poisson(8, len(t_i)) + 1.0,
            }
        ),
        pd.DataFrame(
            {
                "user_id": user_ids[u_e],
                "item_id": ep_ids[e_i],
                "weight": rng.integers(5, 60, len(e_i)) * 1.0,
            }
        ),
        pd.DataFrame(
            {
                "user_id": user_ids[u_b],
                "item_id": book_ids[b_i],
                "weight": rng.integers(30, 600, len(b_i)) * 1.0,
            }
        ),
    ]
    inter = pd.concat(frames, ignore_index=True).drop_duplicates(["user_id", "item_id"])
    days = (pd.Timestamp("2026-11-01") - pd.to_timedelta(np.arange(180), unit="D")).strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    inter["timestamp"] = np.asarray(days)[rng.integers(0, 180, len(inter))]

    genres_m = np.array(MUSIC_GENRES)
    genres_s = np.array(SPOKEN_GENRES)
    artists = pd.DataFrame(
        {
            "item_id": np.char.add("artist", np.char.zfill(np.arange(n_artists).astype(str), 6)),
            "kind": "artist",
            "genre": genres_m[artist_genre],
        }
    )
    artists["title"] = "Artist " + artists.index.astype(str)
    tracks = pd.DataFrame(
        {
            "item_id": track_ids,
            "kind": "track",
            "genre": genres_m[track_genre],
            "title": [f"Song {i}" for i in range(n_tracks)],
        }
    )
    shows = pd.DataFrame(
        {
            "item_id": show_ids,
            "kind": "show",
            "genre": genres_s[show_genre],
            "language": show_lang,
            "title": [f"The {g} hour {i}" for i, g in enumerate(genres_s[show_genre])],
            "explicit": False,
        }
    )
    episodes = pd.DataFrame(
        {
            "item_id": ep_ids,
            "kind": "episode",
            "show_id": np.repeat(show_ids, eps),
            "genre": np.repeat(genres_s[show_genre], eps),
            "language": np.repeat(show_lang, eps),
            "title": [f"#{e + 1}" for e in np.tile(np.arange(eps), n_shows)],
            "explicit": False,
            "published_at": "2026-10-01",
        }
    )
    booksdf = pd.DataFrame(
        {
            "item_id": book_ids,
            "kind": "audiobook",
            "genre": genres_s[book_genre],
            "language": book_lang,
            "title": [f"Book {i}" for i in range(n_books)],
            "author": "A. Writer",
        }
    )
    items = pd.concat([artists, tracks, shows, episodes, booksdf], ignore_index=True)
    return items, inter, users_df


def write_dataset(out: Path, users: int) -> dict:
    items, inter, users_df = scale_world(users)
    out.mkdir(parents=True, exist_ok=True)
    items.to_csv(out / "items.csv", index=False)
    inter.to_csv(out / "interactions.csv", index=False)
    users_df.to_csv(out / "users.csv", index=False)
    pd.DataFrame(columns=["playlist_id", "item_id", "position"]).to_csv(
        out / "playlists.csv", index=False
    )
    pd.DataFrame(columns=["item_id", "start", "end", "text"]).to_csv(
        out / "transcripts.csv", index=False
    )
    counts = items["kind"].value_counts().to_dict()
    return {
        "listeners": users,
        "interactions": int(len(inter)),
        **{f"{k}s": int(v) for k, v in counts.items()},
    }


SPOKEN = ("show", "episode", "audiobook")
# What `coldstart.artifacts.training.load_interaction_data` loads for training: the
# product's `item_vectors(..., kinds=("show", "audiobook"))`; episode vectors are
# folded into their show's and never reach a model.
TRAINED_KINDS = ("show", "audiobook")


def content_matrix(
    items: pd.DataFrame, kinds: tuple[str, ...] = SPOKEN, dim: int = 384, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, unit vectors as rows) of the spoken items of `kinds`: a genre centroid plus
    noise. The random stream runs over every spoken item whatever `kinds` is, so an
    item's vector is the same in every selection (only the kept rows are held)."""
    rng = np.random.default_rng(seed)
    spoken = items[items["kind"].isin(SPOKEN)]
    genres = sorted(spoken["genre"].unique())
    centre = np.stack([rng.normal(size=dim) for g in genres])
    row = pd.Index(genres).get_indexer(spoken["genre"])
    keep = spoken["kind"].isin(kinds).to_numpy(dtype=bool)
    x = np.empty((int(keep.sum()), dim), np.float32)
    # 100k rows at a time (the same random stream as one call): float64 temporaries stay
    # at ~300 MB for the 1.2M spoken items of the 1M world.
    at = 0
    for lo in range(0, len(spoken), 100_000):
        part = centre[row[lo : lo + 100_000]] + rng.normal(
            scale=1.0, size=(len(row[lo : lo + 100_000]), dim)
        )
        part = part[keep[lo : lo + len(part)]]
        x[at : at + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
        at += len(part)
    return spoken["item_id"].to_numpy(dtype=object)[keep], x


def content_vectors(
    items: pd.DataFrame, kinds: tuple[str, ...] = SPOKEN, dim: int = 384, seed: int = 1
) -> dict[str, np.ndarray]:
    """`content_matrix` as item_id -> vector."""
    return dict(zip(*content_matrix(items, kinds, dim, seed)))


# --- measuring ---------------------------------------------------------------------------------


class Peak:
    """Peak resident memory of this process while a stage runs (sampled /proc)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> Peak:
        self.start = self.rss()
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


# The stages in the order they run; each later one reads what the earlier ones left in
# the size's working directory (dataset, store, artifacts, taste model).
ORDER = [
    "generate",
    "ingest",
    "taste",
    "affinity",
    "two_tower",
    "index",
    "score_uploads",
    "onboarding",
]


class World:
    """One size's working directory: the generated dataset, the SQLite store with its
    registered artifacts, and the taste model. What a stage needs is loaded on first use
    (not timed), so the stages can run in one process or, with `--workdir`, in several
    processes one after another (a size too big for one sitting is resumed stage by stage)."""

    def __init__(self, users: int, workdir: Path, epochs: int, blend: bool) -> None:
        from coldstart.core.config import Settings
        from coldstart.core.store import Store

        self.users, self.workdir, self.epochs, self.blend = users, workdir, epochs, blend
        self.settings = Settings(home=workdir / "home")
        self.store = Store.from_settings(self.settings)
        self.dataset = workdir / "dataset"
        self.taste_dir = workdir / "taste"
        self._data = None
        self._taste_ready = False  # fit_taste already holds this world's model

    @property
    def size(self) -> dict:
        path = self.dataset / "size.json"
        if not path.exists():
            raise SystemExit(f"{path}: no generated world here; run the generate stage first")
        return json.loads(path.read_text())

    @property
    def data(self):
        """The store's frames (and synthetic content vectors), read once per process."""
        if self._data is None:
            from coldstart.artifacts.training import load_interaction_data

            started = time.perf_counter()
            data = load_interaction_data(self.store, content=False)
            self.store_read_seconds = round(time.perf_counter() - started, 1)
            if not data.interaction_count():  # (the frame with string ids is not made)
                raise SystemExit(f"{self.workdir}: the store is empty; run the ingest stage first")
            # only the kinds the product's loader gives training (episodes were 5/6 of
            # the vectors, ~1.6 GB at 1M, and no model reads them)
            data.content = content_vectors(data.items, TRAINED_KINDS)
            print(
                f"read the store in {self.store_read_seconds:.0f} s, loaded it with the content "
                f"vectors in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
            self._data = data
        return self._data

    def taste(self) -> None:
        """Make the saved taste model the one the affinity and two-tower fits use (they
        call `fit_taste`, which would otherwise train it again in a new process)."""
        from training.taste import TasteModel, remember_taste

        if not self.taste_dir.exists():
            raise SystemExit(f"{self.taste_dir}: no taste model; run the taste stage first")
        if self._taste_ready:  # fitted or loaded earlier in this process
            return
        remember_taste(self.data, TasteModel.load(self.taste_dir))
        self._taste_ready = True

    @property
    def suffix(self) -> str:
        return "" if self.blend else "_noblend"  # --no-blend: the network alone


# Each stage: world -> (work, details): `work()` is timed; `details(its value)` saves what
# later stages need and returns the extra fields of the stage's row.


def _generate(world: World):
    def done(size: dict) -> dict:
        (world.dataset / "size.json").write_text(json.dumps(size))
        return {}

    return lambda: write_dataset(world.dataset, world.users), done


def _ingest(world: World):
    from coldstart.data.ingest import ingest_dataset

    return lambda: ingest_dataset(world.store, world.dataset), lambda _: {}


def _taste(world: World):
    from training.taste import fit_taste

    data = world.data
    music_listeners = int(data.music_interactions()["user_id"].nunique())

    def done(taste) -> dict:
        taste.save(world.taste_dir)
        world._taste_ready = True
        return {
            "trained_words": taste.manifest["trained_words"],
            "words": taste.manifest["words"],
            "epochs": taste.manifest["epochs"],
            "music_listeners": music_listeners,
            "sampled_listeners": taste.manifest.get("sampled_listeners"),
            "store_read_seconds": world.store_read_seconds,  # this process's, before the stage
        }

    return lambda: fit_taste(data), done


def _trained_model(world: World, model_cls, config_cls, target: str, kind: str, directory: str):
    """A training stage: fit `model_cls(target)` for the fixed epochs with the saved
    taste model, then register it as an artifact (as `coldstart train` does)."""
    world.taste()
    data = world.data
    bound = os.environ.get("SCALE_MAX_LISTENERS")  # --max-listeners: another sample bound
    extra = {} if bound is None else {"max_listeners": int(bound)}
    cfg = config_cls(max_epochs=world.epochs, patience=world.epochs + 1, blend=world.blend, **extra)

    def done(model) -> dict:
        path = world.settings.artifacts_path / directory
        world.store.register_artifact(f"{kind}:{target}", path, model.save(path))
        return {
            "max_listeners": getattr(cfg, "max_listeners", None),
            "target_listeners": model.metrics.get("target_listeners"),
            "sampled_listeners": model.metrics.get("sampled_listeners"),
            "store_read_seconds": world.store_read_seconds,  # this process's, before the stage
        }

    return lambda: model_cls(target, 0, cfg).fit(data), done


def _affinity(world: World):
    from training.affinity import AffinityConfig, AffinityModel

    return _trained_model(
        world, AffinityModel, AffinityConfig, "podcast", "affinity", "affinity-podcast"
    )


def _two_tower(world: World):
    from training.two_tower import TwoTowerConfig, TwoTowerRecommender

    return _trained_model(
        world, TwoTowerRecommender, TwoTowerConfig, "audiobook", "two_tower", "two-tower-audiobook"
    )


def _index(world: World):
    from coldstart.content.index import VectorIndex

    # Its own vectors from the catalogue (every spoken item, as before), not `world.data`:
    # indexing reads no interactions.
    keys, vectors = content_matrix(world.store.items())
    keys = keys.tolist()
    build = lambda: VectorIndex.build(  # noqa: E731
        keys,
        vectors,
        model_id="synthetic-384",
        unit="items",
        exact_max=getattr(world.settings.embed, "exact_index_max", 50_000),
    )
    return build, lambda index: {"vectors": len(keys)}


def _score_uploads(world: World):
    from coldstart.batch.listeners import listener_table
    from coldstart.batch.uploads import picks_per_listener, predict_audience, served_affinity_model

    # Not `world.data`: the command reads the store itself, and a second copy of the
    # store's frames beside it would measure (and at 1M, run out of) memory it never uses.
    store = world.store
    items = store.items()
    episodes = items[items["kind"] == "episode"].sample(100, random_state=0, replace=True)
    vectors = content_vectors(items, ("episode",))  # the world's synthetic vectors
    # Copies: a row of the matrix would keep all of it (1.5 GB at 1M) alive in the stage.
    new_vectors = [vectors[i].copy() for i in episodes["item_id"]]
    del vectors, items
    parts: dict[str, float] = {}

    def timed(name: str, started: float) -> float:
        now = time.perf_counter()
        parts[f"{name}_seconds"] = round(now - started, 1)
        return now

    def score_100() -> None:
        # What the command's audience stage runs after indexing (`UploadRun.audience_inputs`
        # once a run, then `predict_audience` per upload), its parts timed.
        started = time.perf_counter()
        model = served_affinity_model(store)
        started = timed("model", started)
        listeners = listener_table(store)
        started = timed("listeners", started)
        picks = picks_per_listener(store)
        started = timed("picks", started)
        for i, (row, vector) in enumerate(zip(episodes.itertuples(), new_vectors)):
            predict_audience(model, listeners, f"new-{i}", row.show_id, vector, 10, 20, picks)
            if i == 0:  # the listeners' vectors and the catalogue pass, once a batch
                started = timed("first_upload", started)
        timed("other_uploads", started)

    return score_100, lambda _: {"uploads": 100, **parts}


def _onboarding(world: World):
    from coldstart.recommend.loading import load_serving_models
    from coldstart.recommend.pipeline import OnboardingPipeline
    from training.data import UserProfile

    items = world.store.items()
    music = items.loc[items["kind"] == "track", "item_id"].to_numpy()
    rng = np.random.default_rng(5)
    latencies: list[float] = []

    loaded: list[float] = []

    def onboard() -> None:
        started = time.perf_counter()  # what a server does on start (catalogue, models)
        pipeline = OnboardingPipeline(
            load_serving_models(world.settings, world.store, search=False), world.settings
        )
        loaded.append(time.perf_counter() - started)
        for i in range(200):
            user = UserProfile(
                f"new{i}",
                {m: 5.0 for m in rng.choice(music, 20, replace=False)},
                country="US",
                language="en",
            )
            started = time.perf_counter()
            pipeline.recommend(user, k=10)
            latencies.append(time.perf_counter() - started)

    def done(_) -> dict:
        return {
            "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 2),
            "p95_ms": round(1000 * float(np.percentile(latencies, 95)), 2),
            "requests": len(latencies),
            "load_seconds": round(loaded[0], 1),
        }

    return onboard, done


STAGE_RUNNERS = {
    "generate": _generate,
    "ingest": _ingest,
    "taste": _taste,
    "affinity": _affinity,
    "two_tower": _two_tower,
    "index": _index,
    "score_uploads": _score_uploads,
    "onboarding": _onboarding,
}


def run_size(
    users: int,
    epochs: int,
    out: Path,
    workdir: Path,
    blend: bool = True,
    stages: list[str] | None = None,
) -> None:
    """The given stages (all by default) for one size, in this process and in `ORDER`;
    one JSON line per stage. Each stage's setup (reading the store, loading a saved
    model) is outside its timing; its work and peak memory are inside."""
    import torch

    torch.set_num_threads(2)
    world = World(users, workdir, epochs, blend)

    def record(stage: str, seconds: float, peak: Peak, **extra) -> None:
        row = {
            "listeners": users,
            "stage": stage,
            "blend": blend,
            "seconds": round(seconds, 3),
            "peak_rss_mb": round(peak.peak / 2**20, 1),
            "delta_rss_mb": round((peak.peak - peak.start) / 2**20, 1),
            **extra,
        }
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    for stage in [s for s in ORDER if s in (stages or ORDER)]:
        size = world.size if stage != "generate" else {}  # the world must exist first
        work, details = STAGE_RUNNERS[stage](world)
        with Peak() as peak:
            started, cpu = time.perf_counter(), time.process_time()
            value = work()
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu
        extra = details(value)
        name = stage + (world.suffix if stage in ("affinity", "two_tower") else "")
        record(name, seconds, peak, cpu_seconds=round(cpu, 1), **extra, **size)
        del value


# --- report ---------------------------------------------------------------------------------------


def report(results: Path) -> str:
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    # A stage measured in several runs (with and without --no-blend, reruns) keeps its
    # fastest run: the machine is shared, and the minimum is the least disturbed figure.
    frame = pd.DataFrame(rows)
    if "blend" in frame:  # what the served models were: the blend changes scoring and onboarding
        served = frame["stage"].isin(["score_uploads", "onboarding"]) & (frame["blend"] == False)  # noqa: E712
        frame.loc[served, "stage"] = frame.loc[served, "stage"] + "_noblend"
    frame = frame.sort_values("seconds").drop_duplicates(["listeners", "stage"], keep="first")
    sizes = sorted(frame["listeners"].unique())
    lines = [
        "| stage | "
        + " | ".join(f"{n:,} listeners" for n in sizes)
        + " | exponent: time vs interactions | exponent: memory vs interactions"
        + " | time exponent, two largest sizes |",
        "|---|" + "---:|" * (len(sizes) + 3),
    ]
    ingest = frame[frame["stage"] == "ingest"].set_index("listeners")
    interactions = ingest["interactions"].to_dict() if "interactions" in ingest else {}
    exponents = {}
    for stage in STAGES:
        part = frame[frame["stage"] == stage].set_index("listeners")
        if part.empty:
            continue
        cells = []
        for n in sizes:
            if n in part.index:
                r = part.loc[n]
                cells.append(f"{r['seconds']:.1f} s, {r['delta_rss_mb']:.0f} MB")
            else:
                cells.append("not run")
        if len(part) >= 2 and all(n in interactions for n in part.index):
            # Slope of log cost against log interactions (the catalogue grows with them).
            x = np.log(np.array([interactions[n] for n in part.index], float))
            et = np.polyfit(x, np.log(np.maximum(part["seconds"].to_numpy(float), 1e-3)), 1)[0]
            em = np.polyfit(x, np.log(np.maximum(part["delta_rss_mb"].to_numpy(float), 1.0)), 1)[0]
            exponents[stage] = (et, em)
            last = part.loc[sorted(part.index)[-2:]]
            local = np.ptp(np.log(last["seconds"].to_numpy(float))) / np.ptp(
                np.log([interactions[n] for n in last.index])
            )
            cells += [f"{et:.2f}", f"{em:.2f}", f"{local:.2f}"]
        else:
            cells += ["-", "-", "-"]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    onboarding = frame[frame["stage"].isin(["onboarding", "onboarding_noblend"])].sort_values(
        ["stage", "listeners"]
    )
    if not onboarding.empty:
        lines += [
            "",
            "| models | listeners | interactions | onboarding p50 | onboarding p95 |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in onboarding.itertuples():
            models = (
                "blend off (network only)" if r.stage.endswith("noblend") else "default (blend on)"
            )
            lines.append(
                f"| {models} | {r.listeners:,} | {int(r.interactions):,} | {r.p50_ms} ms | {r.p95_ms} ms |"
            )
    taste = frame[frame["stage"] == "taste"].sort_values("listeners")
    if "trained_words" in taste and taste["trained_words"].notna().any():
        # Skip-gram work is linear in the words it trains on; what grows faster than the
        # interactions is how many words a listener's history gives (see docs/scale.md).
        from training.taste import TasteConfig, epochs_for

        cfg = TasteConfig()
        taste = taste[taste["trained_words"].notna()].copy()
        # scale_world has no playlists and no history over `max_sentence` words: one
        # sentence per listener with music.
        # The epochs the run trained (recorded since the corpus-word cap); older rows
        # had the configured rule, which the cap does not change below 120M words.
        recorded = taste["epochs"] if "epochs" in taste else pd.Series(np.nan, taste.index)
        epochs = np.array(
            [
                int(e) if pd.notna(e) else epochs_for(int(w), cfg)
                for e, w in zip(recorded, taste["words"])
            ]
        )
        length = taste["trained_words"] / (epochs * taste["music_listeners"])
        taste["pairs"] = taste["trained_words"] * [contexts_per_word(x, cfg.window) for x in length]
        lines += [
            "",
            "| taste | listeners | history words per listener | trained words (all epochs)"
            " | sentence length after downsampling | context words per word | µs per trained word"
            " | ns per (word, context) pair |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r, x in zip(taste.itertuples(), length):
            lines.append(
                f"| | {r.listeners:,} | {r.words / r.music_listeners:.1f} | {int(r.trained_words):,}"
                f" | {x:.1f} | {r.pairs / r.trained_words:.1f}"
                f" | {1e6 * r.seconds / r.trained_words:.2f} | {1e9 * r.seconds / r.pairs:.0f} |"
            )
        if len(taste) >= 2:
            seconds = np.log(taste["seconds"].to_numpy(float))
            for label, column in (
                ("trained words", "trained_words"),
                ("(word, context) pairs", "pairs"),
            ):
                slope = np.polyfit(np.log(taste[column].to_numpy(float)), seconds, 1)[0]
                lines.append(f"\nExponent of taste time against {label}: {slope:.2f}.")
    sizes_rows = frame[frame["stage"] == "ingest"]
    if not sizes_rows.empty:
        cols = [
            c
            for c in ("interactions", "artists", "tracks", "shows", "episodes", "audiobooks")
            if c in sizes_rows
        ]
        lines += ["", "| listeners | " + " | ".join(cols) + " |", "|---:|" + "---:|" * len(cols)]
        for r in sizes_rows.to_dict("records"):
            lines.append(
                f"| {r['listeners']:,} | " + " | ".join(f"{int(r[c]):,}" for c in cols) + " |"
            )
    plot(frame, results.with_suffix(".png"))
    text = "\n".join(lines) + "\n"
    results.with_suffix(".md").write_text(text)
    return text


def contexts_per_word(length: float, window: int) -> float:
    """Mean number of context words skip-gram trains per word in a sentence of `length`
    words: gensim draws each word's window uniformly from 1..`window` on both sides, cut
    at the sentence's ends (interpolated between the integer lengths around `length`)."""

    def exact(n: int) -> float:
        if n <= 1:
            return 0.0
        i = np.arange(n)[:, None]
        w = np.arange(1, window + 1)[None, :]
        return float((np.minimum(i, w) + np.minimum(n - 1 - i, w)).mean())

    low = int(np.floor(length))
    return exact(low) + (length - low) * (exact(low + 1) - exact(low))


def plot(frame: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 5))
    colours = plt.get_cmap("tab20").colors
    for i, stage in enumerate(STAGES):
        part = frame[frame["stage"] == stage].sort_values("listeners")
        if part.empty:
            continue
        style = {
            "marker": "os^"[i % 3],
            "color": colours[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20],
            "linestyle": "--" if stage.endswith("noblend") else "-",
            "label": stage,
        }
        a.plot(part["listeners"], part["seconds"], **style)
        b.plot(part["listeners"], part["peak_rss_mb"], **style)
    for ax, label in ((a, "wall seconds"), (b, "peak RSS of the process (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("listeners (catalogue grows with them)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    a.legend(fontsize=8)
    fig.suptitle("coldstart stages against size (shared 2-core CPU, benchmarks/scale.py)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def stages_to_run(stages: str | None, stop_after: str | None) -> list[str]:
    """The stages named by `--stages` (in run order), or those up to `--stop-after`."""
    if stages:
        chosen = [s.strip() for s in stages.split(",") if s.strip()]
        unknown = sorted(set(chosen) - set(ORDER))
        if unknown:
            raise SystemExit(
                f"--stages: unknown {', '.join(unknown)}; expected some of {', '.join(ORDER)}"
            )
        return [s for s in ORDER if s in chosen]
    return ORDER[: ORDER.index(stop_after) + 1] if stop_after else list(ORDER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument(
        "--epochs", type=int, default=2, help="fixed training epochs for affinity and two-tower"
    )
    parser.add_argument(
        "--budget", type=float, default=3600, help="seconds allowed per size (then it is stopped)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS / "scale.jsonl")
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument(
        "--no-blend",
        action="store_true",
        help="train affinity and two-tower without the wide ridge and blend (stages *_noblend)",
    )
    parser.add_argument(
        "--stop-after",
        choices=ORDER,
        help="run the stages up to this one only (e.g. ingest at sizes whose training would not fit the time)",
    )
    parser.add_argument(
        "--stages",
        help="comma-separated stages to run (default: all, or up to --stop-after); with "
        "--workdir the later stages of a size can run in a later invocation",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep each size's world in WORKDIR/<size> (default: a temporary directory, removed)",
    )
    parser.add_argument(
        "--max-listeners",
        type=int,
        help="train affinity and two-tower on at most this many listeners (their config's "
        "max_listeners; default: the config's default)",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.max_listeners is not None:  # read by the training stages, here or in a child
        os.environ["SCALE_MAX_LISTENERS"] = str(args.max_listeners)
    stages = stages_to_run(args.stages, args.stop_after)
    if args.one:
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            run_size(args.one, args.epochs, args.results, args.workdir, not args.no_blend, stages)
            return
        with tempfile.TemporaryDirectory(dir=os.environ.get("SCALE_TMP")) as tmp:
            run_size(args.one, args.epochs, args.results, Path(tmp), not args.no_blend, stages)
        return
    if not args.plot_only:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        for n in [int(s) for s in args.sizes.split(",")]:
            started = time.time()
            cmd = [
                sys.executable,
                __file__,
                "--one",
                str(n),
                "--epochs",
                str(args.epochs),
                "--results",
                str(args.results),
            ]
            cmd += ["--no-blend"] if args.no_blend else []
            cmd += ["--stages", ",".join(stages)]
            cmd += ["--workdir", str(args.workdir / str(n))] if args.workdir else []
            try:
                done = subprocess.run(cmd, timeout=args.budget)
                status = "finished" if done.returncode == 0 else f"exit {done.returncode}"
            except subprocess.TimeoutExpired:
                status = f"stopped after the {args.budget:.0f} s budget"
            with args.results.open("a") as f:
                f.write(
                    json.dumps(
                        {
                            "listeners": n,
                            "stage": "_run",
                            "status": status,
                            "seconds": round(time.time() - started, 1),
                            "peak_rss_mb": 0,
                            "delta_rss_mb": 0,
                            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, shared",
                        }
                    )
                    + "\n"
                )
            print(f"size {n}: {status}", flush=True)
    print(report(args.results))


if __name__ == "__main__":
    main()
