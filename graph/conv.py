"""GraphSAGE with a weighted mean: neighbours count in proportion to the edge weight.

    h_i' = W_root h_i + W_neigh * sum_j w_ij h_j / sum_j w_ij

With all weights equal this is PyG's `SAGEConv` (mean aggregation). We pass
log1p(co-listening count) so a pair heard together by many listeners pulls harder
than a chance co-occurrence, without one giant pair drowning the rest.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter

__all__ = ["WeightedSAGEConv"]


class WeightedSAGEConv(MessagePassing):
    """Bipartite-ready: `x` may be a tensor or a (source, destination) pair."""

    def __init__(self, in_channels: int | tuple[int, int], out_channels: int) -> None:
        super().__init__(aggr="sum")
        if isinstance(in_channels, int):
            in_channels = (in_channels, in_channels)
        self.lin_neigh = nn.Linear(in_channels[0], out_channels, bias=True)
        self.lin_root = nn.Linear(in_channels[1], out_channels, bias=False)

    def forward(
        self,
        x: Tensor | tuple[Tensor, Tensor],
        edge_index: Tensor,
        edge_weight: Tensor | None = None,
    ) -> Tensor:
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        if edge_weight is None:
            edge_weight = x_src.new_ones(edge_index.size(1))
        summed = self.propagate(
            edge_index,
            x=(x_src, x_dst),
            edge_weight=edge_weight,
            size=(x_src.size(0), x_dst.size(0)),
        )
        norm = scatter(edge_weight, edge_index[1], dim=0, dim_size=x_dst.size(0), reduce="sum")
        mean = summed / norm.clamp(min=1e-12).unsqueeze(-1)
        return self.lin_neigh(mean) + self.lin_root(x_dst)

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return x_j * edge_weight.unsqueeze(-1)
