"""Training the item encoder by link prediction, and embedding every node with it.

The loop, top to bottom:
1. hold out a share of co-listening pairs (both directions) for early stopping;
2. each step, the edge-type-balanced sampler draws positive pairs of every type and
   the neighbourhood that embeds their ends (the positives themselves are cut out
   of that neighbourhood, or the model could read the answer off the graph);
3. a symmetric in-batch InfoNCE per edge type pulls co-listened items together and
   pushes the other items of the batch apart;
4. after each epoch the same loss on the held-out pairs decides early stopping, and
   the best weights are kept.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from graph.colisten import ColistenGraph
from graph.early_stopping import EarlyStopping
from graph.encoder import ItemEncoder
from graph.losses import link_contrastive_loss
from graph.sampler import EdgeTypeBalancedSampler, Subgraph, sample_subgraph

__all__ = ["GNNConfig", "FitHistory", "fit_item_encoder", "embed_nodes", "split_edges"]

EdgeType = tuple[str, str, str]


@dataclass(frozen=True)
class GNNConfig:
    hidden: int = 64
    out_dim: int = 64
    fanouts: tuple[int, ...] = (10, 5)
    batch_size: int = 512
    lr: float = 5e-3
    weight_decay: float = 1e-5
    epochs: int = 20
    max_steps_per_epoch: int = 50
    patience: int = 3
    val_fraction: float = 0.1
    val_batches: int = 4
    temperature: float = 0.1
    use_ids: bool = True
    id_dropout: float = 0.5
    seed: int = 0


@dataclass
class FitHistory:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    steps: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def split_edges(
    graph: ColistenGraph, fraction: float, gen: torch.Generator
) -> tuple[dict, dict, dict]:
    """(train edge_index, train edge_weight, held-out edge_index) per edge type.

    A pair is held out in both directions, so it never leaks through its reverse copy.
    """
    types = graph.node_types
    rank = {t: i for i, t in enumerate(types)}
    held: dict[tuple[str, str], Tensor] = {}
    train_ei, train_w, val_ei = {}, {}, {}
    for et in graph.edge_types:
        s, _, d = et
        ei = graph.data[et].edge_index
        # Decide once per unordered pair, on its canonical copy (lower type, then lower id).
        if rank[s] <= rank[d]:
            canonical = ei[0] < ei[1] if s == d else torch.ones(ei.size(1), dtype=torch.bool)
            pick = (torch.rand(ei.size(1), generator=gen) < fraction) & canonical
            held[(s, d)] = ei[:, pick]
    for et in graph.edge_types:
        s, _, d = et
        ei, w = graph.data[et].edge_index, graph.data[et].edge_weight
        out = held[(s, d)] if (s, d) in held else held[(d, s)].flip(0)
        both = torch.cat([out, out.flip(0)], 1) if s == d else out
        n_dst = graph.data[d].num_nodes
        drop = torch.isin(ei[0] * n_dst + ei[1], both[0] * n_dst + both[1])
        train_ei[et], train_w[et] = ei[:, ~drop], w[~drop]
        val_ei[et] = out
    return train_ei, train_w, val_ei


def _inputs(graph: ColistenGraph, sub: Subgraph) -> tuple[dict, dict, dict]:
    x = {t: graph.data[t].x[sub.n_id[t]] for t in sub.n_id}
    has = {t: graph.data[t].has_content[sub.n_id[t]] for t in sub.n_id}
    deg = {t: graph.data[t].log_degree[sub.n_id[t]] for t in sub.n_id}
    return x, has, deg


def _batch_loss(
    encoder: ItemEncoder,
    graph: ColistenGraph,
    positives: dict[EdgeType, Tensor],
    sub: Subgraph,
    temperature: float,
) -> Tensor:
    x, has, deg = _inputs(graph, sub)
    emb = encoder(sub.n_id, x, has, deg, sub.edge_index, sub.edge_weight)
    losses = []
    for (s, _, d), pos in positives.items():
        src = emb[s][sub.local(s, pos[0])]
        dst = emb[d][sub.local(d, pos[1])]
        losses.append(link_contrastive_loss(src, dst, pos[1], pos[0], temperature))
    return torch.stack(losses).mean()


def fit_item_encoder(
    graph: ColistenGraph, config: GNNConfig = GNNConfig(), progress: bool = False
) -> tuple[ItemEncoder, FitHistory]:
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    num_nodes = {t: int(graph.data[t].num_nodes) for t in graph.node_types}
    content_dim = int(graph.data[graph.node_types[0]].x.size(1))
    encoder = ItemEncoder(
        num_nodes,
        graph.edge_types,
        content_dim,
        config.hidden,
        config.out_dim,
        config.use_ids,
        config.id_dropout,
    )
    history = FitHistory()
    if graph.num_edges == 0:
        return encoder.eval(), history  # nothing to learn: features-only embeddings

    train_ei, train_w, val_ei = split_edges(graph, config.val_fraction, gen)
    sampler = EdgeTypeBalancedSampler(
        train_ei,
        train_w,
        num_nodes,
        batch_size=config.batch_size,
        fanouts=config.fanouts,
        seed=config.seed,
    )
    # Validation batches are fixed once: the same pairs, the same neighbourhoods.
    val_batches = _validation_batches(sampler, val_ei, num_nodes, config)
    optimizer = torch.optim.Adam(
        encoder.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    steps = min(
        config.max_steps_per_epoch, max(1, math.ceil(sampler.num_edges / config.batch_size))
    )

    # Validation loss, lower is better; an epoch counts only when it gains 1e-4.
    stopping = EarlyStopping(
        "val_loss",
        config.patience,
        higher_is_better=False,
        min_delta=1e-4,
        state=encoder.state_dict(),
    )
    bar = tqdm(range(config.epochs), desc="gnn", disable=not progress)
    for epoch in bar:
        encoder.train()
        total = 0.0
        for _ in range(steps):
            batch = sampler.batch()
            loss = _batch_loss(encoder, graph, batch.positives, batch.subgraph, config.temperature)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.train_loss.append(total / steps)
        history.steps += steps

        encoder.eval()
        with torch.no_grad():
            val = [
                _batch_loss(encoder, graph, pos, sub, config.temperature).item()
                for pos, sub in val_batches
            ]
        val_loss = sum(val) / len(val) if val else history.train_loss[-1]
        history.val_loss.append(val_loss)
        bar.set_postfix(train=f"{history.train_loss[-1]:.3f}", val=f"{val_loss:.3f}")
        stop = stopping.update(epoch, val_loss, encoder.state_dict)
        history.best_epoch = stopping.best_epoch
        if stop:
            break
    encoder.load_state_dict(stopping.best_state)
    return encoder.eval(), history


def _validation_batches(
    sampler: EdgeTypeBalancedSampler, val_ei: dict, num_nodes: dict, config: GNNConfig
) -> list:
    gen = torch.Generator().manual_seed(config.seed + 1)
    per_type = sampler.per_type
    batches = []
    nonempty = {et: ei for et, ei in val_ei.items() if ei.size(1) > 1}
    for _ in range(config.val_batches if nonempty else 0):
        positives, seeds = {}, {t: [] for t in num_nodes}
        for et, ei in nonempty.items():
            pos = ei[:, torch.randint(ei.size(1), (min(per_type, ei.size(1)),), generator=gen)]
            positives[et] = pos
            seeds[et[0]].append(pos[0])
            seeds[et[2]].append(pos[1])
        seed_t = {
            t: torch.cat(v) if v else torch.empty(0, dtype=torch.long) for t, v in seeds.items()
        }
        batches.append(
            (positives, sample_subgraph(sampler.csr, num_nodes, seed_t, config.fanouts, gen))
        )
    return batches


@torch.no_grad()
def embed_nodes(encoder: ItemEncoder, graph: ColistenGraph) -> dict[str, Tensor]:
    """Embeddings of every node from the whole graph in one pass (eval mode).

    Memory is O(nodes * hidden + edges); past one machine's memory this becomes a
    layer-wise pass over node batches, as PyG's `inference` helpers do.
    """
    encoder.eval()
    n_id = {t: torch.arange(graph.data[t].num_nodes) for t in graph.node_types}
    x = {t: graph.data[t].x for t in graph.node_types}
    has = {t: graph.data[t].has_content for t in graph.node_types}
    deg = {t: graph.data[t].log_degree for t in graph.node_types}
    ei = {et: graph.data[et].edge_index for et in graph.edge_types}
    ew = {et: graph.data[et].edge_weight for et in graph.edge_types}
    return encoder(n_id, x, has, deg, ei, ew)
