"""Co-listening graph of spoken-word items and the GNN operators trained on it.

Works on pandas frames and tensors only; imports nothing from the other packages.
The names below are imported on first use (PEP 562): a server that loads a model
importing `graph.early_stopping` or `graph.losses` does not pay for torch_geometric.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_MODULE_OF = {
    "NODE_TYPES": "colisten",
    "RELATION": "colisten",
    "ColistenGraph": "colisten",
    "build_colisten_graph": "colisten",
    "colisten_pairs": "colisten",
    "WeightedSAGEConv": "conv",
    "ItemEncoder": "encoder",
    "NodeInput": "encoder",
    "GNNConfig": "fit",
    "FitHistory": "fit",
    "fit_item_encoder": "fit",
    "embed_nodes": "fit",
    "split_edges": "fit",
    "in_batch_softmax": "losses",
    "link_contrastive_loss": "losses",
    "CSR": "sampler",
    "EdgeTypeBalancedSampler": "sampler",
    "LinkBatch": "sampler",
    "Subgraph": "sampler",
    "sample_subgraph": "sampler",
    "to_csr": "sampler",
}

__all__ = [
    "NODE_TYPES",
    "RELATION",
    "ColistenGraph",
    "build_colisten_graph",
    "colisten_pairs",
    "WeightedSAGEConv",
    "ItemEncoder",
    "NodeInput",
    "GNNConfig",
    "FitHistory",
    "fit_item_encoder",
    "embed_nodes",
    "split_edges",
    "in_batch_softmax",
    "link_contrastive_loss",
    "CSR",
    "EdgeTypeBalancedSampler",
    "LinkBatch",
    "Subgraph",
    "sample_subgraph",
    "to_csr",
]

if TYPE_CHECKING:
    from graph.colisten import (
        NODE_TYPES,
        RELATION,
        ColistenGraph,
        build_colisten_graph,
        colisten_pairs,
    )
    from graph.conv import WeightedSAGEConv
    from graph.encoder import ItemEncoder, NodeInput
    from graph.fit import FitHistory, GNNConfig, embed_nodes, fit_item_encoder, split_edges
    from graph.losses import in_batch_softmax, link_contrastive_loss
    from graph.sampler import (
        CSR,
        EdgeTypeBalancedSampler,
        LinkBatch,
        Subgraph,
        sample_subgraph,
        to_csr,
    )


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'graph' has no attribute {name!r}")
    value = getattr(import_module(f"graph.{module}"), name)
    globals()[name] = value
    return value
