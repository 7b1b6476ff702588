"""Co-listening graph of spoken-word items and the GNN operators trained on it.

Works on pandas frames and tensors only; imports nothing from the other packages.
"""

from graph.colisten import NODE_TYPES, RELATION, ColistenGraph, build_colisten_graph, colisten_pairs
from graph.conv import WeightedSAGEConv
from graph.encoder import ItemEncoder, NodeInput
from graph.fit import FitHistory, GNNConfig, embed_nodes, fit_item_encoder, split_edges
from graph.losses import in_batch_softmax, link_contrastive_loss
from graph.sampler import CSR, EdgeTypeBalancedSampler, LinkBatch, Subgraph, sample_subgraph, to_csr

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
