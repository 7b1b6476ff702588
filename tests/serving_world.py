"""A small served world for the API and upload tests, built once per test session.

A 300-listener demo world is ingested, embedded and indexed (MiniLM, faiss); small
affinity models are trained for podcasts (with content vectors, so new uploads are
scorable) and audiobooks, and registered as artifacts exactly as `coldstart train`
does. `served` runs the real app with uvicorn in a thread on a free port.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import httpx

from coldstart.api.server import serve_in_thread
from coldstart.artifacts.training import load_interaction_data
from coldstart.content.embeddings import embed_items, item_vectors, load_encoder
from coldstart.content.index import sync_indexes
from coldstart.core.config import Settings
from coldstart.core.store import Store
from coldstart.data.ingest import ingest_dataset
from coldstart.demo.world import ASSETS, WorldConfig, build_world, write_world
from training.affinity import AffinityConfig, AffinityModel
from training.taste import TasteConfig

CONFIG = WorldConfig(users=300, artists=40, shows=16, episodes_per_show=3, audiobooks=40, seed=3)
_BUILT: dict[str, Path] = {}


def build(root: Path) -> Path:
    """The world's home directory (built on the first call of the session)."""
    if "home" in _BUILT:
        return _BUILT["home"]
    home = root / "served"
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    world = build_world(CONFIG)
    write_world(world, home / "dataset")
    ingest_dataset(store, home / "dataset")
    encoder = load_encoder(settings)
    embed_items(store, settings, encoder=encoder, progress=False)
    sync_indexes(store, settings, encoder.model_id, dim=encoder.dim)
    data = load_interaction_data(store, content=False)
    data.content = item_vectors(store, encoder.model_id)
    for target in ("podcast", "audiobook"):
        cfg = AffinityConfig(max_epochs=12, patience=4, taste=TasteConfig(epochs=5))
        model = AffinityModel(target, 0, cfg).fit(data)
        directory = settings.artifacts_path / f"affinity-{target}"
        store.register_artifact(f"affinity:{target}", directory, model.save(directory))
    uploads = settings.uploads_path
    uploads.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ASSETS / "science.ogg", uploads / "science.ogg")
    _BUILT["home"] = home
    return home


@contextmanager
def served(settings: Settings):
    """An httpx client on the real app, served by uvicorn in a thread."""
    with serve_in_thread(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client
