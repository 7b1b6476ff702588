"""Several API worker processes that share one load of the models.

uvicorn's own `workers=N` starts N fresh interpreters, and each loads the catalogue,
the models and the indexes itself: N loads at once on N cores, so the first answer
comes after N loads' worth of CPU. Here the parent loads once (`create_app(...,
preload=True)`), freezes what it loaded out of the garbage collector's sight, binds
the socket, and forks the workers: each starts answering at once, and the loaded
arrays stay shared copy-on-write between them (a reload, which each worker still does
on its own when the store changes, replaces only that worker's copy).

The parent only supervises: SIGINT/SIGTERM go to every worker, and a worker that dies
unexpectedly is forked again from the parent's loaded state (no reload).

The parent loads with its thread pools already pinned to one thread (as every worker
runs), so no OpenMP pool exists when it forks. Each child drops the database
connections it inherited (`Store.after_fork`) before its first request.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import time

import uvicorn

from coldstart.api.app import create_app
from coldstart.core.config import Settings
from coldstart.core.store import Store
from training.threads import pin_process_threads

__all__ = ["serve_preforked"]

log = logging.getLogger(__name__)

RESPAWN_PAUSE_SECONDS = 1.0  # between forks of a worker that keeps dying
# A worker that exits within this many seconds of its start, this many times in a row,
# cannot start at all (a port taken, a broken lifespan): the server stops, with an error.
QUICK_EXIT_SECONDS = 5.0
QUICK_EXITS = 3


def serve_preforked(settings: Settings, store: Store, workers: int, **options) -> None:
    """Load the models once, then serve `options` (uvicorn.Config keywords: host, port,
    log_level, ...) from `workers` forked processes until SIGINT/SIGTERM."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    pin_process_threads(1)  # before loading: no intra-op pool exists when we fork
    app = create_app(settings, store, preload=True)
    config = uvicorn.Config(app, lifespan="on", **options)
    sock = config.bind_socket()
    children: dict[int, tuple[int, float]] = {}  # pid -> (worker number, start time)
    stopping = False
    quick_exits = 0

    def start(number: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                store.after_fork()
                uvicorn.Server(uvicorn.Config(app, lifespan="on", **options)).run(sockets=[sock])
            except BaseException:  # a worker never returns into the parent's loop
                log.exception("worker %d failed", number)
                code = 1
            finally:
                os._exit(code)
        children[pid] = (number, time.monotonic())

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for number in range(workers):
            start(number)
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            number, started = children.pop(pid, (-1, 0.0))
            if number < 0 or stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            quick_exits = quick_exits + 1 if time.monotonic() - started < QUICK_EXIT_SECONDS else 0
            if quick_exits >= QUICK_EXITS:
                stop(signal.SIGTERM, None)
                raise RuntimeError(
                    f"worker {number} exited with status {code} within {QUICK_EXIT_SECONDS:.0f} s "
                    f"of its start {QUICK_EXITS} times in a row; stopping the server (see the log)"
                )
            log.warning(
                "worker %d (pid %d) exited with status %d; starting it again", number, pid, code
            )
            time.sleep(RESPAWN_PAUSE_SECONDS)
            if not stopping:
                start(number)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
        gc.unfreeze()  # let the interpreter collect the loaded models at exit
