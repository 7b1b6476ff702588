"""A seeded synthetic world with structure models can learn and be judged on.

Every listener has a latent taste: a mixture over `segments` taste clusters. A
cluster prefers one music genre and one spoken-word genre, and the pairing is a
fixed random permutation, so a model has to *learn* which music predicts which
podcasts. Item popularity is heavy-tailed (log-normal), so popularity stays a real
baseline. Spoken-word items exist in English and Spanish, and listeners mostly stay
in their own language. Text (titles, descriptions, transcripts) is generated from
per-genre topic words, so a genre is recoverable from content alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from coldstart.demo.vocab import (
    AUTHORS,
    BOOK_TITLES,
    COUNTRIES,
    MUSIC_GENRES,
    SENTENCES,
    SHOW_TITLES,
    SPOKEN_GENRES,
    TOPICS,
)

__all__ = ["WorldConfig", "World", "build_world", "write_world"]

EPOCH_NOW = pd.Timestamp("2026-11-01")
ASSETS = Path(__file__).resolve().parent.parent / "demo_assets"
# Real speech (espeak-ng) shipped in the package: clip name -> genre it talks about.
AUDIO_CLIPS = {
    "science": "science",
    "history": "history",
    "technology": "technology",
    "truecrime": "true crime",
}


@dataclass(frozen=True)
class WorldConfig:
    users: int = 1500
    artists: int = 160
    tracks_per_artist: int = 4
    shows: int = 48
    episodes_per_show: int = 6
    audiobooks: int = 160
    seed: int = 0
    spanish_share: float = 0.35
    podcast_share: float = 0.7  # listeners with podcast history
    audiobook_share: float = 0.5  # listeners with audiobook history
    taste_sharpness: float = 3.0  # how strongly taste beats popularity when choosing


@dataclass
class World:
    config: WorldConfig
    items: pd.DataFrame
    interactions: pd.DataFrame
    users: pd.DataFrame
    playlists: pd.DataFrame
    transcripts: pd.DataFrame
    # Latent truth, for tests: user -> taste mixture; cluster -> (music genre, spoken genre).
    taste: np.ndarray = field(repr=False, default=None)
    spoken_of_cluster: list[str] = field(default_factory=list)


def _pick(rng: np.random.Generator, options, size=None):
    return (
        options[rng.integers(len(options))]
        if size is None
        else [options[i] for i in rng.integers(len(options), size=size)]
    )


def _sentence(rng, lang: str, genre: str) -> str:
    words = TOPICS[lang][genre]
    a, b = rng.choice(len(words), size=2, replace=False)
    return _pick(rng, SENTENCES[lang]).format(a=words[a], b=words[b])


def _choice_probs(popularity: np.ndarray, affinity: np.ndarray, sharpness: float) -> np.ndarray:
    logits = np.log(popularity) + sharpness * affinity
    p = np.exp(logits - logits.max())
    return p / p.sum()


def build_world(config: WorldConfig = WorldConfig()) -> World:
    rng = np.random.default_rng(config.seed)
    n_clusters = len(MUSIC_GENRES)
    spoken_of_cluster = [SPOKEN_GENRES[i] for i in rng.permutation(len(SPOKEN_GENRES))]

    # --- listeners -----------------------------------------------------------
    taste = rng.dirichlet(np.full(n_clusters, 0.25), size=config.users)
    is_spanish = rng.random(config.users) < config.spanish_share
    countries = np.where(
        is_spanish,
        _pick_many(rng, ["ES", "MX", "AR"], config.users),
        _pick_many(rng, ["US", "GB"], config.users),
    )
    user_ids = [f"u{i:05d}" for i in range(config.users)]
    users = pd.DataFrame(
        {
            "user_id": user_ids,
            "country": countries,
            "language": [COUNTRIES[c] for c in countries],
            "age": rng.integers(16, 70, size=config.users).astype(float),
        }
    )
    music_aff = taste  # cluster c loves MUSIC_GENRES[c]
    spoken_aff = taste @ np.eye(n_clusters)[[SPOKEN_GENRES.index(g) for g in spoken_of_cluster]]

    # --- music catalog ---------------------------------------------------------
    artist_genre = rng.integers(len(MUSIC_GENRES), size=config.artists)
    artist_pop = rng.lognormal(0, 1.0, size=config.artists)
    items = [
        {
            "item_id": f"artist{a:04d}",
            "kind": "artist",
            "title": f"Artist {a}",
            "genre": MUSIC_GENRES[g],
            "language": None,
        }
        for a, g in enumerate(artist_genre)
    ]
    track_artist = np.repeat(np.arange(config.artists), config.tracks_per_artist)
    track_ids = [f"track{t:05d}" for t in range(len(track_artist))]
    track_pop = artist_pop[track_artist] * rng.lognormal(0, 0.5, size=len(track_artist))
    items += [
        {
            "item_id": tid,
            "kind": "track",
            "title": f"Song {t} by Artist {a}",
            "genre": MUSIC_GENRES[artist_genre[a]],
            "language": None,
        }
        for t, (tid, a) in enumerate(zip(track_ids, track_artist))
    ]

    # --- spoken-word catalog ---------------------------------------------------
    show_rows, episode_rows, transcript_rows = _spoken_catalog(rng, config)
    transcript_rows = _attach_audio(episode_rows, transcript_rows)
    items += show_rows + episode_rows
    book_rows = _audiobooks(rng, config)
    items += book_rows
    items_df = pd.DataFrame(items)

    show_genre = np.array([SPOKEN_GENRES.index(r["genre"]) for r in show_rows])
    show_lang = np.array([r["language"] for r in show_rows])
    show_pop = rng.lognormal(0, 1.2, size=len(show_rows))
    episodes_of = {r["item_id"]: [] for r in show_rows}
    for e in episode_rows:
        episodes_of[e["show_id"]].append(e["item_id"])
    book_genre = np.array([SPOKEN_GENRES.index(r["genre"]) for r in book_rows])
    book_lang = np.array([r["language"] for r in book_rows])
    book_pop = rng.lognormal(0, 1.2, size=len(book_rows))

    # --- listening ---------------------------------------------------------------
    inter, playlists = [], []
    for u, uid in enumerate(user_ids):
        lang = users.at[u, "language"]
        day = lambda: int((EPOCH_NOW - pd.Timedelta(days=int(rng.integers(0, 180)))).timestamp())  # noqa: E731
        p = _choice_probs(
            track_pop, music_aff[u][artist_genre[track_artist]], config.taste_sharpness
        )
        n_tracks = int(rng.integers(15, 40))
        tracks = rng.choice(len(track_ids), size=n_tracks, replace=False, p=p)
        for t in tracks:
            inter.append((uid, track_ids[t], float(rng.poisson(8) + 1), day()))
        if rng.random() < 0.6:
            for pos, t in enumerate(tracks[: int(rng.integers(8, 15))]):
                playlists.append((f"pl-{uid}", track_ids[t], pos))
        lang_match = lambda langs, lang=lang: np.where(langs == lang, 1.0, 0.04)  # noqa: E731
        if rng.random() < config.podcast_share:
            p = _choice_probs(
                show_pop * lang_match(show_lang), spoken_aff[u][show_genre], config.taste_sharpness
            )
            for s in rng.choice(len(show_rows), size=int(rng.integers(1, 5)), replace=False, p=p):
                eps = episodes_of[show_rows[s]["item_id"]]
                for e in rng.choice(
                    len(eps), size=int(rng.integers(1, len(eps) + 1)), replace=False
                ):
                    inter.append((uid, eps[e], float(rng.integers(5, 60)), day()))
        if rng.random() < config.audiobook_share:
            p = _choice_probs(
                book_pop * lang_match(book_lang), spoken_aff[u][book_genre], config.taste_sharpness
            )
            for b in rng.choice(len(book_rows), size=int(rng.integers(1, 5)), replace=False, p=p):
                inter.append((uid, book_rows[b]["item_id"], float(rng.integers(30, 600)), day()))

    interactions = pd.DataFrame(inter, columns=["user_id", "item_id", "weight", "timestamp"])
    interactions["timestamp"] = pd.to_datetime(interactions["timestamp"], unit="s").dt.strftime(
        "%Y-%m-%dT%H:%M:%S"
    )
    return World(
        config=config,
        items=items_df,
        interactions=interactions,
        users=users,
        playlists=pd.DataFrame(playlists, columns=["playlist_id", "item_id", "position"]),
        transcripts=pd.DataFrame(transcript_rows, columns=["item_id", "start", "end", "text"]),
        taste=taste,
        spoken_of_cluster=spoken_of_cluster,
    )


def _pick_many(rng, options: list[str], n: int) -> np.ndarray:
    return np.array(options)[rng.integers(len(options), size=n)]


def _spoken_catalog(rng, config: WorldConfig):
    shows, episodes, transcripts = [], [], []
    for s in range(config.shows):
        genre = SPOKEN_GENRES[s % len(SPOKEN_GENRES)]
        lang = "es" if rng.random() < config.spanish_share else "en"
        topic = _pick(rng, TOPICS[lang][genre])
        show_id = f"show{s:03d}"
        shows.append(
            {
                "item_id": show_id,
                "kind": "show",
                "title": _pick(rng, SHOW_TITLES[lang]).format(T=topic.title()),
                "description": " ".join(_sentence(rng, lang, genre) for _ in range(2)),
                "language": lang,
                "genre": genre,
                "explicit": bool(genre == "comedy" and rng.random() < 0.5),
            }
        )
        for e in range(config.episodes_per_show):
            ep_id = f"{show_id}-ep{e:02d}"
            words = TOPICS[lang][genre]
            title_word = words[int(rng.integers(len(words)))]
            episodes.append(
                {
                    "item_id": ep_id,
                    "kind": "episode",
                    "show_id": show_id,
                    "title": f"#{e + 1}: {title_word.capitalize()}",
                    "description": _sentence(rng, lang, genre),
                    "language": lang,
                    "genre": genre,
                    "explicit": shows[-1]["explicit"],
                    "published_at": (
                        EPOCH_NOW - pd.Timedelta(days=int(7 * (config.episodes_per_show - e)))
                    ).strftime("%Y-%m-%d"),
                }
            )
            t = 0.0
            for _ in range(int(rng.integers(6, 12))):
                dur = float(rng.uniform(4, 12))
                transcripts.append(
                    (ep_id, round(t, 2), round(t + dur, 2), _sentence(rng, lang, genre))
                )
                t += dur
    return shows, episodes, transcripts


def _attach_audio(episodes: list[dict], transcripts: list[tuple]) -> list[tuple]:
    """Give the first English episode of a matching genre a real recorded clip.

    Those episodes carry no transcript: the transcription stage makes it from audio.
    Paths are relative to COLDSTART_HOME; the demo copies the clips there.
    """
    taken = set()
    for clip, genre in AUDIO_CLIPS.items():
        for ep in episodes:
            if ep["genre"] == genre and ep["language"] == "en" and ep["item_id"] not in taken:
                ep["audio_path"] = f"audio/{clip}.ogg"
                taken.add(ep["item_id"])
                break
    return [row for row in transcripts if row[0] not in taken]


def _audiobooks(rng, config: WorldConfig):
    books = []
    for b in range(config.audiobooks):
        genre = SPOKEN_GENRES[int(rng.integers(len(SPOKEN_GENRES)))]
        lang = "es" if rng.random() < config.spanish_share else "en"
        topic = _pick(rng, TOPICS[lang][genre])
        books.append(
            {
                "item_id": f"book{b:04d}",
                "kind": "audiobook",
                "title": _pick(rng, BOOK_TITLES[lang]).format(T=topic),
                "author": _pick(rng, AUTHORS),
                "description": " ".join(_sentence(rng, lang, genre) for _ in range(2)),
                "language": lang,
                "genre": genre,
            }
        )
    return books


def write_world(world: World, out: Path) -> str:
    """Write the world as a contract dataset directory; returns a hash of its files."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    for name in ("items", "interactions", "users", "playlists", "transcripts"):
        path = out / f"{name}.csv"
        getattr(world, name).to_csv(path, index=False)
        digest.update(path.read_bytes())
    (out / "world.json").write_text(pd.Series(asdict(world.config)).to_json(indent=2))
    return digest.hexdigest()
