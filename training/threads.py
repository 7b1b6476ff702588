"""One way to pin CPU threads for a block of work.

On a small shared CPU, OpenMP pools that spin-wait (torch's and faiss's) slow
everything down when they compete; short requests run fastest on one thread.
"""

from __future__ import annotations

from contextlib import contextmanager

import faiss
import torch

__all__ = ["torch_threads"]


@contextmanager
def torch_threads(n: int | None):
    """Run a block with `n` torch intra-op and faiss OpenMP threads, then restore.
    `n` None or 0 leaves the current settings alone."""
    before = torch.get_num_threads(), faiss.omp_get_max_threads()
    if n:
        torch.set_num_threads(n)
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        faiss.omp_set_num_threads(before[1])
