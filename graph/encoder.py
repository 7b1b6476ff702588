"""Two-layer heterogeneous GraphSAGE item encoder with L2-normalised outputs.

Each node starts from what we know about it, so an item with no edges (a new
audiobook) still gets a meaningful embedding:

    h0 = W_content x * has_content + id_embedding * keep + w_deg log_degree + b_type

During training the id embedding is dropped for a random share of the nodes that
have text (`id_dropout`), which teaches the layers to place an item from its text
and neighbours alone; nodes added after training have no id row and use the
content path only. Nodes without text always keep their id: featureless nodes in
structurally alike places are otherwise indistinguishable to message passing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ItemEncoder", "NodeInput"]

EdgeType = tuple[str, str, str]


class NodeInput(nn.Module):
    """Initial features of one node type: content projection + id embedding + degree."""

    def __init__(self, num_nodes: int, content_dim: int, hidden: int, use_ids: bool = True) -> None:
        super().__init__()
        self.content = nn.Linear(content_dim, hidden) if content_dim > 0 else None
        self.ids = nn.Embedding(num_nodes, hidden) if use_ids and num_nodes > 0 else None
        self.degree = nn.Linear(1, hidden)
        self.num_ids = num_nodes if self.ids is not None else 0

    def forward(
        self,
        n_id: Tensor,
        x: Tensor,
        has_content: Tensor,
        log_degree: Tensor,
        id_keep: Tensor | None = None,
    ) -> Tensor:
        # Scaled so that a large degree does not swamp the other inputs (10 ~ 22k weight).
        h = self.degree(log_degree.unsqueeze(-1) / 10.0)
        if self.content is not None:
            h = h + self.content(x) * has_content.unsqueeze(-1).to(x.dtype)
        if self.ids is not None:
            # Nodes beyond the trained table (added later) have no id row.
            known = n_id < self.num_ids
            keep = known if id_keep is None else known & id_keep
            emb = self.ids(n_id.clamp(max=self.num_ids - 1))
            h = h + emb * keep.unsqueeze(-1).to(emb.dtype)
        return h


class ItemEncoder(nn.Module):
    def __init__(
        self,
        num_nodes: dict[str, int],
        edge_types: Sequence[EdgeType],
        content_dim: int,
        hidden: int = 64,
        out_dim: int = 64,
        use_ids: bool = True,
        id_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.node_types = list(num_nodes)
        self.edge_types = [tuple(et) for et in edge_types]
        self.id_dropout = id_dropout
        self.inputs = nn.ModuleDict(
            {t: NodeInput(n, content_dim, hidden, use_ids) for t, n in num_nodes.items()}
        )
        # imported here: a module that only loads models without a graph encoder
        # (the server) does not import torch_geometric
        from torch_geometric.nn import HeteroConv

        from graph.conv import WeightedSAGEConv

        self.conv1 = HeteroConv(
            {et: WeightedSAGEConv(hidden, hidden) for et in self.edge_types}, aggr="sum"
        )
        self.conv2 = HeteroConv(
            {et: WeightedSAGEConv(hidden, out_dim) for et in self.edge_types}, aggr="sum"
        )
        self.skip = nn.ModuleDict({t: nn.Linear(hidden, out_dim) for t in self.node_types})

    def forward(
        self,
        n_id: dict[str, Tensor],
        x: dict[str, Tensor],
        has_content: dict[str, Tensor],
        log_degree: dict[str, Tensor],
        edge_index: dict[EdgeType, Tensor],
        edge_weight: dict[EdgeType, Tensor],
    ) -> dict[str, Tensor]:
        """All inputs are local to one (sub)graph; `n_id` maps local -> global id.
        Returns an L2-normalised (num_nodes, out_dim) embedding per node type."""
        h = {}
        for t in self.node_types:
            keep = None
            if self.training and self.id_dropout > 0:
                # Only where text can stand in for the id: an item without content
                # is told apart from its structural twins by its id alone.
                keep = (
                    torch.rand(n_id[t].numel(), device=n_id[t].device) >= self.id_dropout
                ) | ~has_content[t]
            h[t] = self.inputs[t](n_id[t], x[t], has_content[t], log_degree[t], keep)
        ei = {et: edge_index[et] for et in self.edge_types}
        # log1p keeps a heavy pair from drowning the rest of a node's neighbours.
        ew = {et: torch.log1p(edge_weight[et]) for et in self.edge_types}
        h1 = self.conv1(h, ei, edge_weight_dict=ew)
        h1 = {t: F.relu(h1.get(t, h[t])) + h[t] for t in self.node_types}
        h2 = self.conv2(h1, ei, edge_weight_dict=ew)
        out = {t: h2.get(t, 0) + self.skip[t](h1[t]) for t in self.node_types}
        return {t: F.normalize(v, dim=-1) for t, v in out.items()}
