"""One way to hold leases on a set of resources (`Store.claim` / `renew` / `release`).

A worker that works on shared rows (an upload, an episode's transcription) takes a
lease on each first; a lease expires unless renewed, so a dead worker's work is
taken over once its lease runs out. `Leases` claims, keeps and releases them:

* synchronous (`background=False`): `confirm(resource)` renews the lease now; a
  worker calls it after each step it finishes, before recording the step;
* background (`background=True`): a thread renews every lease a third of the lease
  length apart while long stages run (on a cluster, say); `confirm` then reports
  whether the lease is still held.

On exit every lease still held is released.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from coldstart.core.store import Store

__all__ = ["Leases"]


class Leases:
    def __init__(self, store: Store, owner: str, seconds: float, background: bool = False) -> None:
        self.store, self.owner, self.seconds, self.background = store, owner, seconds, background
        self.held: list[str] = []
        self.lost: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def claim(self, resources: Iterable[str]) -> list[str]:
        """Claim each resource; returns those another live owner holds (not claimed)."""
        refused = []
        for resource in resources:
            if self.store.claim(resource, self.owner, self.seconds):
                with self._lock:
                    self.held.append(resource)
            else:
                refused.append(resource)
        return refused

    def confirm(self, resource: str) -> bool:
        """True while `resource` is still ours (renewed now, unless a thread renews it)."""
        if self.background:
            return resource not in self.lost
        if not self.store.renew(resource, self.owner, self.seconds):
            self.lost.add(resource)
        return resource not in self.lost

    def release(self, resource: str) -> None:
        self.store.release(resource, self.owner)
        with self._lock:
            if resource in self.held:
                self.held.remove(resource)

    def _renew_all(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            with self._lock:
                resources = list(self.held)
            for resource in resources:
                if resource not in self.lost and not self.store.renew(
                    resource, self.owner, self.seconds
                ):
                    self.lost.add(resource)

    def __enter__(self) -> Leases:
        if self.background:
            self._thread = threading.Thread(target=self._renew_all, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for resource in list(self.held):
            self.release(resource)
