"""Link-prediction training of the item encoder on small planted graphs."""

import numpy as np
import pandas as pd
import pytest
import torch

from graph import build_colisten_graph
from graph.fit import GNNConfig, embed_nodes, fit_item_encoder, split_edges


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny sparse ops run far faster on one thread on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def two_communities(seed: int = 0):
    """Listeners of community A play only A items, B only B; A and B mix shows and books."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame(
        {
            "item_id": [f"{c}{i}" for c in "ab" for i in range(12)],
            "kind": ["show", "audiobook"] * 12,
        }
    )
    rows = []
    for u in range(120):
        c = "ab"[u % 2]
        for i in rng.choice(12, size=4, replace=False):
            rows.append((f"u{u}", f"{c}{i}"))
    return items, pd.DataFrame(rows, columns=["user_id", "item_id"])


def test_split_edges_holds_out_pairs_in_both_directions():
    items, events = two_communities()
    g = build_colisten_graph(items, events)
    train, _, val = split_edges(g, 0.3, torch.Generator().manual_seed(0))
    for et in g.edge_types:
        s, r, d = et
        n = g.data[d].num_nodes
        rev = (d, r, s)
        held = val[et]
        assert held.size(1) > 0
        keys = set((train[et][0] * n + train[et][1]).tolist())
        assert not keys & set((held[0] * n + held[1]).tolist())
        # ...and the reverse copy of a held-out pair is gone from the reverse type too.
        n_rev = g.data[s].num_nodes
        rev_keys = set((train[rev][0] * n_rev + train[rev][1]).tolist())
        assert not rev_keys & set((held[1] * n_rev + held[0]).tolist())
    assert sum(t.size(1) for t in train.values()) < g.num_edges


def test_encoder_learns_the_communities():
    items, events = two_communities()
    g = build_colisten_graph(items, events)
    cfg = GNNConfig(
        hidden=16,
        out_dim=16,
        batch_size=64,
        epochs=8,
        max_steps_per_epoch=10,
        patience=8,
        use_ids=True,
    )
    encoder, history = fit_item_encoder(g, cfg)
    assert len(history.train_loss) == len(history.val_loss) >= 1
    assert history.train_loss[-1] < history.train_loss[0]
    emb = embed_nodes(encoder, g)
    vecs = torch.cat([emb[t] for t in g.node_types])
    ids = [i for t in g.node_types for i in g.item_ids[t]]
    community = torch.tensor([i[0] == "a" for i in ids])
    sims = vecs @ vecs.T
    same = community[:, None] == community[None, :]
    off_diag = ~torch.eye(len(ids), dtype=torch.bool)
    assert sims[same & off_diag].mean() > sims[~same].mean() + 0.3


def test_no_edges_means_features_only_embeddings():
    items, events = two_communities()
    g = build_colisten_graph(items, events.iloc[:0], {"a0": np.ones(4, np.float32)})
    encoder, history = fit_item_encoder(g, GNNConfig(hidden=8, out_dim=8))
    assert history.steps == 0
    emb = embed_nodes(encoder, g)
    assert emb["show"].shape == (12, 8) and torch.isfinite(emb["show"]).all()
