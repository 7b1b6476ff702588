"""The loaded models, swapped atomically when the store says something changed.

Requests read `ServingState.current()`, which only returns the current snapshot: no
SQL, no locks on the event loop. A background task (`watch`, started by the app's
lifespan) compares `store_version` (two aggregate queries over `artifacts` and scored
`uploads`) with the loaded version every `serve.reload_check_seconds`, in a worker
thread; on a change it loads everything again in that thread and swaps it in, while
requests keep being answered by the previous models. `reload()` does the same
synchronously (`POST /v1/admin/reload`); one reload runs at a time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from dataclasses import dataclass

from coldstart.core.config import Settings
from coldstart.core.store import Store
from coldstart.recommend.loading import ServingModels, load_serving_models, store_version
from coldstart.recommend.pipeline import OnboardingPipeline

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
        self._reloading = threading.Lock()
        self.checks = 0  # version checks done by `watch` (observable in tests)
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
        return self._snapshot

    def check_once(self) -> bool:
        """Reload if the store changed since the loaded version (blocking; run it in a
        thread). True when a reload happened."""
        self.checks += 1
        if store_version(self.store) == self._snapshot.models.version or self._reloading.locked():
            return False
        self.reload()
        return True

    async def watch(self) -> None:
        """The background version check, for the app's lifespan (cancel to stop)."""
        while True:
            await asyncio.sleep(self.settings.serve.reload_check_seconds)
            try:
                await asyncio.to_thread(self.check_once)
            except asyncio.CancelledError:
                raise
            except Exception:  # logged by reload (or a store hiccup): keep watching
                log.exception("store version check failed; still serving the previous models")

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
