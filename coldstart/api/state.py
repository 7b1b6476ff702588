"""The loaded models, swapped atomically when the store says something changed.

Per request the server calls `ServingState.current()`. At most once every
`serve.reload_check_seconds` that compares `store_version` (two aggregate queries
over `artifacts` and scored `uploads`) with the version it loaded; on a change a
background thread loads everything again and swaps it in, while requests keep being
answered by the previous models. `reload()` does the same synchronously
(`POST /v1/admin/reload`).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass

from coldstart.config import Settings
from coldstart.recommend.models import ServingModels, load_serving_models, store_version
from coldstart.recommend.pipeline import OnboardingPipeline
from coldstart.store import Store

__all__ = ["ServingState", "Snapshot"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    models: ServingModels
    pipeline: OnboardingPipeline
    loaded_at: float


class ServingState:
    def __init__(self, settings: Settings, store: Store, on_reload=None) -> None:
        self.settings = settings
        self.store = store
        self.on_reload = on_reload or (lambda result: None)
        self._lock = threading.Lock()
        self._reloading = threading.Lock()
        self._last_check = time.monotonic()
        self._snapshot = self._load()
        self._freeze_heap()

    def _load(self) -> Snapshot:
        models = load_serving_models(self.settings, self.store)
        return Snapshot(models, OnboardingPipeline(models, self.settings), time.time())

    @staticmethod
    def _freeze_heap() -> None:
        """Move everything loaded so far out of the cyclic garbage collector's sight:
        full collections then scan only per-request garbage, not the models and frames
        (otherwise a periodic multi-ten-millisecond pause shows up in tail latency)."""
        gc.unfreeze()  # a previous snapshot may hold the only references to cycles
        gc.collect()
        gc.freeze()

    def current(self) -> Snapshot:
        self._maybe_reload()
        return self._snapshot

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._last_check < self.settings.serve.reload_check_seconds:
            return
        with self._lock:
            if now - self._last_check < self.settings.serve.reload_check_seconds:
                return
            self._last_check = now
        if store_version(self.store) == self._snapshot.models.version or self._reloading.locked():
            return
        threading.Thread(target=self.reload, name="coldstart-reload", daemon=True).start()

    def reload(self) -> Snapshot:
        with self._reloading:
            try:
                snapshot = self._load()
            except Exception:
                log.exception("reload failed; still serving the previous models")
                self.on_reload("error")
                raise
            self._snapshot = snapshot
            self._freeze_heap()
            self.on_reload("ok")
            return snapshot
