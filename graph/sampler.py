"""Mini-batches for link prediction on a heterogeneous graph, in plain torch.

PyG's `LinkNeighborLoader` needs `pyg-lib` or `torch-sparse` for neighbour sampling
(it raises ImportError without them), and neither ships wheels for torch 2.13 on
CPU. This module does the same job with tensor ops only:

* `EdgeTypeBalancedSampler` draws the same number of positive edges from every
  edge type per batch (2T-HGNN's multi-link sampler: the rare audiobook-audiobook
  links are not drowned by podcast-podcast ones).
* `sample_subgraph` grows a `len(fanouts)`-hop neighbourhood around the seed nodes,
  sampling up to `fanout` in-neighbours per node and edge type (uniformly, with
  replacement, then de-duplicated), and relabels it to local ids.

A batch therefore touches O(batch * prod(fanouts)) nodes however big the graph.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CSR", "Subgraph", "LinkBatch", "sample_subgraph", "EdgeTypeBalancedSampler", "to_csr"]

EdgeType = tuple[str, str, str]


@dataclass
class CSR:
    """In-edges of one edge type grouped by destination (compressed sparse column)."""

    colptr: Tensor  # (num_dst + 1,)
    row: Tensor  # source of each edge, sorted by destination
    weight: Tensor


def to_csr(edge_index: Tensor, edge_weight: Tensor, num_dst: int) -> CSR:
    order = torch.argsort(edge_index[1], stable=True)
    dst = edge_index[1, order]
    colptr = torch.zeros(num_dst + 1, dtype=torch.long)
    colptr[1:] = torch.cumsum(torch.bincount(dst, minlength=num_dst), 0)
    return CSR(
        colptr=colptr, row=edge_index[0, order].contiguous(), weight=edge_weight[order].contiguous()
    )


@dataclass
class Subgraph:
    """Sampled nodes (global ids, per type) and the edges among them in local ids."""

    n_id: dict[str, Tensor]
    edge_index: dict[EdgeType, Tensor]
    edge_weight: dict[EdgeType, Tensor]

    def local(self, node_type: str, global_ids: Tensor) -> Tensor:
        """Local positions of `global_ids`, which must have been sampled."""
        return torch.searchsorted(self.n_id[node_type], global_ids)


def _sample_in_edges(
    csr: CSR, dst: Tensor, fanout: int, gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    start, deg = csr.colptr[dst], csr.colptr[dst + 1] - csr.colptr[dst]
    has = deg > 0
    dst, start, deg = dst[has], start[has], deg[has]
    if dst.numel() == 0:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty, torch.empty(0)
    # `fanout` draws with replacement per node; low-degree nodes just repeat.
    offsets = (torch.rand(dst.numel(), fanout, generator=gen) * deg.unsqueeze(1)).long()
    pos = (start.unsqueeze(1) + offsets).reshape(-1)
    return csr.row[pos], dst.repeat_interleave(fanout), csr.weight[pos]


def sample_subgraph(
    csr: dict[EdgeType, CSR],
    num_nodes: dict[str, int],
    seeds: dict[str, Tensor],
    fanouts: Sequence[int],
    gen: torch.Generator,
    exclude: dict[EdgeType, Tensor] | None = None,
) -> Subgraph:
    """Sample around `seeds` (global ids per type). `exclude[et]` is a (2, E) tensor of
    global edges to leave out (the positives being predicted, so the model cannot
    read the answer off the message-passing graph)."""
    frontier = {t: torch.unique(seeds.get(t, torch.empty(0, dtype=torch.long))) for t in num_nodes}
    nodes = {t: [frontier[t]] for t in num_nodes}
    edges: dict[EdgeType, list[tuple[Tensor, Tensor, Tensor]]] = {et: [] for et in csr}
    for fanout in fanouts:
        nxt: dict[str, list[Tensor]] = {t: [] for t in num_nodes}
        for et, c in csr.items():
            src_t, _, dst_t = et
            src, dst, w = _sample_in_edges(c, frontier[dst_t], fanout, gen)
            edges[et].append((src, dst, w))
            nxt[src_t].append(src)
        frontier = {
            t: torch.unique(torch.cat(v)) if v else torch.empty(0, dtype=torch.long)
            for t, v in nxt.items()
        }
        for t in num_nodes:
            nodes[t].append(frontier[t])

    n_id = {t: torch.unique(torch.cat(v)) for t, v in nodes.items()}
    edge_index, edge_weight = {}, {}
    for et, parts in edges.items():
        src_t, _, dst_t = et
        src = torch.cat([p[0] for p in parts])
        dst = torch.cat([p[1] for p in parts])
        w = torch.cat([p[2] for p in parts])
        key = src * num_nodes[dst_t] + dst
        key, first = _unique_first(key)
        src, dst, w = src[first], dst[first], w[first]
        if exclude is not None and et in exclude and exclude[et].numel():
            ex = exclude[et]
            keep = ~torch.isin(key, ex[0] * num_nodes[dst_t] + ex[1])
            src, dst, w = src[keep], dst[keep], w[keep]
        edge_index[et] = torch.stack(
            [torch.searchsorted(n_id[src_t], src), torch.searchsorted(n_id[dst_t], dst)]
        )
        edge_weight[et] = w
    return Subgraph(n_id=n_id, edge_index=edge_index, edge_weight=edge_weight)


def _unique_first(key: Tensor) -> tuple[Tensor, Tensor]:
    """Unique keys and the index of one occurrence of each."""
    uniq, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((uniq.numel(),), -1, dtype=torch.long)
    first.scatter_(0, inverse, torch.arange(key.numel()))
    return uniq, first


@dataclass
class LinkBatch:
    """Positive edges per type (global ids) and the subgraph that embeds their ends."""

    positives: dict[EdgeType, Tensor]
    subgraph: Subgraph


class EdgeTypeBalancedSampler:
    """Endless batches; each holds `batch_size // len(types)` positives per non-empty
    edge type, drawn with replacement in proportion to the co-listening count (a
    pair heard together by many listeners is a surer positive than a one-off)."""

    def __init__(
        self,
        edge_index: dict[EdgeType, Tensor],
        edge_weight: dict[EdgeType, Tensor],
        num_nodes: dict[str, int],
        *,
        batch_size: int = 512,
        fanouts: Sequence[int] = (10, 5),
        seed: int = 0,
    ) -> None:
        self.edge_index = {et: ei for et, ei in edge_index.items() if ei.size(1) > 0}
        self.edge_weight = {et: edge_weight[et].float() for et in self.edge_index}
        if not self.edge_index:
            raise ValueError("the graph has no edges to learn from")
        self.num_nodes = num_nodes
        self.csr = {
            et: to_csr(edge_index[et], edge_weight[et], num_nodes[et[2]]) for et in edge_index
        }
        self.per_type = max(1, batch_size // len(self.edge_index))
        self.fanouts = list(fanouts)
        self.gen = torch.Generator().manual_seed(seed)

    @property
    def num_edges(self) -> int:
        return sum(int(ei.size(1)) for ei in self.edge_index.values())

    def batch(self) -> LinkBatch:
        positives: dict[EdgeType, Tensor] = {}
        seeds: dict[str, list[Tensor]] = {t: [] for t in self.num_nodes}
        exclude: dict[EdgeType, list[Tensor]] = {et: [] for et in self.csr}
        for et, ei in self.edge_index.items():
            pick = torch.multinomial(
                self.edge_weight[et], self.per_type, replacement=True, generator=self.gen
            )
            pos = ei[:, pick]
            positives[et] = pos
            seeds[et[0]].append(pos[0])
            seeds[et[2]].append(pos[1])
            exclude[et].append(pos)
            exclude[(et[2], et[1], et[0])].append(pos.flip(0))  # the reverse copy too
        seed_t = {
            t: torch.cat(v) if v else torch.empty(0, dtype=torch.long) for t, v in seeds.items()
        }
        excl = {et: torch.cat(v, 1) for et, v in exclude.items() if v}
        sub = sample_subgraph(
            self.csr, self.num_nodes, seed_t, self.fanouts, self.gen, exclude=excl
        )
        return LinkBatch(positives=positives, subgraph=sub)

    def __iter__(self) -> Iterator[LinkBatch]:
        while True:
            yield self.batch()
