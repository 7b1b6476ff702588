"""The demo world: deterministic, contract-valid, and structured enough to learn from."""

from __future__ import annotations

import numpy as np

from coldstart.core.store import Store
from coldstart.data.ingest import ingest_dataset
from coldstart.demo.world import WorldConfig, build_world, write_world

SMALL = WorldConfig(users=200, artists=40, shows=16, episodes_per_show=3, audiobooks=30)


def test_same_seed_same_world(tmp_path):
    a = write_world(build_world(SMALL), tmp_path / "a")
    b = write_world(build_world(SMALL), tmp_path / "b")
    c = write_world(build_world(WorldConfig(**{**SMALL.__dict__, "seed": 1})), tmp_path / "c")
    assert a == b
    assert a != c


def test_world_is_a_valid_contract_dataset(tmp_path):
    world = build_world(SMALL)
    write_world(world, tmp_path / "ds")
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    ingest_dataset(store, tmp_path / "ds")
    stats = store.stats()
    assert set(stats["items"]["by_kind"]) == {"artist", "track", "show", "episode", "audiobook"}
    assert set(stats["items"]["by_language"]["show"]) == {"en", "es"}
    audio = world.items[world.items["audio_path"].notna()]
    assert len(audio) >= 2  # real clips to transcribe
    assert not set(audio["item_id"]) & set(
        world.transcripts["item_id"]
    )  # those have no provided text


def test_spoken_listening_follows_music_taste():
    """Listeners whose music leans to a cluster's genre favour that cluster's spoken genre."""
    world = build_world(WorldConfig(users=800, seed=3))
    items = world.items.set_index("item_id")
    inter = world.interactions.join(items[["kind", "genre"]], on="item_id")
    dominant = np.argmax(world.taste, axis=1)
    user_cluster = dict(zip(world.users["user_id"], dominant))
    spoken = inter[inter["kind"] == "episode"].copy()
    spoken["expected"] = spoken["user_id"].map(lambda u: world.spoken_of_cluster[user_cluster[u]])
    match_rate = (spoken["genre"] == spoken["expected"]).mean()
    assert match_rate > 0.25  # chance is 1/8
    music = inter[inter["kind"] == "track"].copy()
    # Popularity still matters: the most played show has several times the median's plays.
    show_plays = spoken.groupby(spoken["item_id"].str[:7])["weight"].count()
    assert show_plays.max() > 3 * show_plays.median()
    assert len(music) > 0
