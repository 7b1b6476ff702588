"""One way to pin CPU threads for a block of work.

On a small shared CPU, OpenMP pools that spin-wait (torch's, faiss's and numpy's BLAS) slow
everything down when they compete; short requests run fastest on one thread.

A server sets its thread counts once per process with `pin_process_threads`; from
then on `torch_threads` blocks leave them alone (torch's and faiss's thread counts
are process-wide: changing them per request races with a model reload thread).
"""

from __future__ import annotations

from contextlib import contextmanager

import faiss
import torch
from threadpoolctl import threadpool_limits

__all__ = ["torch_threads", "pin_process_threads", "unpin_process_threads"]

_PINNED: list[int] = []  # the pinned count while a server runs in this process
_BLAS_LIMITS: list = []  # numpy's BLAS pool limits set by `pin_process_threads`


def pin_process_threads(n: int) -> None:
    """Set torch, faiss and numpy's BLAS to `n` threads for the whole process, once."""
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    _BLAS_LIMITS.append(threadpool_limits(n, user_api="blas"))
    _PINNED.append(n)


def unpin_process_threads() -> None:
    if _PINNED:
        _PINNED.pop()
    if _BLAS_LIMITS:
        _BLAS_LIMITS.pop().restore_original_limits()


@contextmanager
def torch_threads(n: int | None):
    """Run a block with `n` torch intra-op and faiss OpenMP threads, then restore.
    `n` None or 0 leaves the current settings alone, and so does a pinned process."""
    if _PINNED or not n:
        yield
        return
    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        faiss.omp_set_num_threads(before[1])
