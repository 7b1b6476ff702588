"""Contrastive losses with in-batch negatives.

`in_batch_softmax` is the sampled softmax of two-tower retrieval (Yi et al., RecSys
2019): row i's positive is column i, every other column is a negative. Popular
items appear as in-batch negatives more often than they appear in the catalog's
true softmax, so their logits are corrected by subtracting log Q(item), the
probability that the item is sampled into a batch (the "logQ correction").
Columns holding the same item as the positive are masked so an item is never its
own negative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["in_batch_softmax", "link_contrastive_loss"]


def in_batch_softmax(
    queries: Tensor,
    keys: Tensor,
    *,
    temperature: float = 0.1,
    log_q: Tensor | None = None,
    key_ids: Tensor | None = None,
) -> Tensor:
    """Mean cross-entropy of (B, d) queries against (B, d) keys; row i matches key i.

    log_q: (B,) log sampling probability of each key (logQ correction).
    key_ids: (B,) item id of each key; duplicates of the positive are masked out.
    """
    if queries.shape != keys.shape:
        raise ValueError(f"queries {tuple(queries.shape)} and keys {tuple(keys.shape)} differ")
    logits = queries @ keys.T / temperature
    if log_q is not None:
        logits = logits - log_q.unsqueeze(0)
    if key_ids is not None:
        same = key_ids.unsqueeze(0) == key_ids.unsqueeze(1)
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(queries.size(0), device=queries.device)
    return F.cross_entropy(logits, target)


def link_contrastive_loss(
    src: Tensor, dst: Tensor, dst_ids: Tensor, src_ids: Tensor, temperature: float = 0.1
) -> Tensor:
    """Symmetric InfoNCE over one edge type's positive pairs: each source must pick
    its own destination among the batch's destinations, and vice versa."""
    forward = in_batch_softmax(src, dst, temperature=temperature, key_ids=dst_ids)
    backward = in_batch_softmax(dst, src, temperature=temperature, key_ids=src_ids)
    return 0.5 * (forward + backward)
