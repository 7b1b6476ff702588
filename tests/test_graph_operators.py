"""Tiny-tensor shape and behaviour tests for each graph operator."""

import math

import pandas as pd
import pytest
import torch

from graph import (
    EdgeTypeBalancedSampler,
    ItemEncoder,
    WeightedSAGEConv,
    build_colisten_graph,
    in_batch_softmax,
    link_contrastive_loss,
    sample_subgraph,
    to_csr,
)
from training.towers import ItemTower, MusicBag, UserTower, augment_for_search


def test_weighted_sage_conv_is_a_weighted_mean():
    torch.manual_seed(0)
    conv = WeightedSAGEConv((2, 3), 4)
    x_src, x_dst = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.randn(3, 3)
    ei = torch.tensor([[0, 1], [0, 0]])
    out = conv((x_src, x_dst), ei, torch.tensor([3.0, 1.0]))
    assert out.shape == (3, 4)
    mean = torch.tensor([[0.75, 0.25]])
    assert torch.allclose(out[0], (conv.lin_neigh(mean) + conv.lin_root(x_dst[:1]))[0], atol=1e-6)
    # destination 2 has no neighbours: only the root term and the bias.
    assert torch.allclose(out[2], conv.lin_neigh.bias + conv.lin_root(x_dst[2]), atol=1e-6)


def test_in_batch_softmax_logq_and_duplicate_mask():
    q = torch.eye(3)
    k = torch.eye(3)
    plain = in_batch_softmax(q, k, temperature=1.0)
    expected = -math.log(math.e / (math.e + 2))
    assert plain.item() == pytest.approx(expected, rel=1e-5)
    # Subtracting log Q of a popular key lowers its logit everywhere: loss changes.
    corrected = in_batch_softmax(
        q, k, temperature=1.0, log_q=torch.log(torch.tensor([0.8, 0.1, 0.1]))
    )
    assert corrected.item() != pytest.approx(plain.item())
    # Keys 0 and 1 are the same item: they must not compete with each other.
    masked = in_batch_softmax(q, k, temperature=1.0, key_ids=torch.tensor([7, 7, 9]))
    assert masked.item() < plain.item()
    with pytest.raises(ValueError):
        in_batch_softmax(torch.ones(2, 3), torch.ones(3, 3))


def test_music_bag_is_the_mean_over_real_items():
    bag = MusicBag(n_items=4, dim=2)
    with torch.no_grad():
        bag.vectors.weight.copy_(
            torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [4.0, 0.0]])
        )
    out = bag(torch.tensor([[1, 2, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0]]))
    assert out.shape == (3, 2)
    assert torch.allclose(out, torch.tensor([[0.5, 0.5], [2.0, 2.0], [0.0, 0.0]]))


def test_link_contrastive_loss_is_low_for_matching_pairs():
    a = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    ids = torch.arange(8)
    good = link_contrastive_loss(a, a, ids, ids)
    bad = link_contrastive_loss(a, a.roll(1, 0), ids, ids)
    assert good.shape == () and good < bad


def test_sampler_subgraph_relabels_and_excludes_positives():
    ei = torch.tensor([[0, 1, 2, 3, 1], [1, 0, 1, 1, 2]])
    csr = {("a", "r", "a"): to_csr(ei, torch.ones(5), 4)}
    assert csr[("a", "r", "a")].colptr.tolist() == [0, 1, 4, 5, 5]
    gen = torch.Generator().manual_seed(0)
    sub = sample_subgraph(
        csr,
        {"a": 4},
        {"a": torch.tensor([1])},
        [10],
        gen,
        exclude={("a", "r", "a"): torch.tensor([[0], [1]])},
    )
    # node 1's in-neighbours are 0, 2, 3; the edge 0->1 is excluded but 0 is still sampled.
    assert sub.n_id["a"].tolist() == [0, 1, 2, 3]
    got = {tuple(sub.n_id["a"][e].tolist()) for e in sub.edge_index[("a", "r", "a")].T}
    assert got == {(2, 1), (3, 1)}


def test_balanced_sampler_draws_every_edge_type_equally():
    g = build_colisten_graph(
        pd.DataFrame(
            {"item_id": ["s1", "s2", "s3", "b1"], "kind": ["show", "show", "show", "audiobook"]}
        ),
        pd.DataFrame(
            {"user_id": ["u1", "u1", "u1", "u2", "u2"], "item_id": ["s1", "s2", "s3", "s1", "b1"]}
        ),
    )
    ei = {et: g.data[et].edge_index for et in g.edge_types}
    ew = {et: g.data[et].edge_weight for et in g.edge_types}
    sampler = EdgeTypeBalancedSampler(
        ei, ew, {t: g.data[t].num_nodes for t in g.node_types}, batch_size=30, fanouts=[2, 2]
    )
    batch = sampler.batch()
    # show-show has 6 directed edges, show-audiobook 1 each way; audiobook-audiobook none.
    assert set(batch.positives) == {
        ("show", "colisten", "show"),
        ("show", "colisten", "audiobook"),
        ("audiobook", "colisten", "show"),
    }
    assert all(p.shape == (2, 10) for p in batch.positives.values())


def test_item_encoder_shapes_norm_and_isolated_nodes():
    torch.manual_seed(0)
    ets = [
        ("show", "colisten", "show"),
        ("show", "colisten", "audiobook"),
        ("audiobook", "colisten", "show"),
        ("audiobook", "colisten", "audiobook"),
    ]
    enc = ItemEncoder({"show": 3, "audiobook": 2}, ets, content_dim=5, hidden=8, out_dim=6).eval()
    n_id = {
        "show": torch.arange(3),
        "audiobook": torch.tensor([0, 1, 7]),
    }  # 7: added after training
    x = {"show": torch.randn(3, 5), "audiobook": torch.randn(3, 5)}
    has = {"show": torch.tensor([True, False, True]), "audiobook": torch.tensor([True, True, True])}
    deg = {"show": torch.ones(3), "audiobook": torch.zeros(3)}
    ei = {et: torch.empty(2, 0, dtype=torch.long) for et in ets}
    ei[("show", "colisten", "audiobook")] = torch.tensor([[0, 2], [0, 1]])
    ei[("audiobook", "colisten", "show")] = torch.tensor([[0, 1], [0, 2]])
    ew = {et: torch.ones(v.size(1)) for et, v in ei.items()}
    out = enc(n_id, x, has, deg, ei, ew)
    assert out["show"].shape == (3, 6) and out["audiobook"].shape == (3, 6)
    assert torch.allclose(out["audiobook"].norm(dim=-1), torch.ones(3))
    # The new node (id 7, no edges) depends only on its content: change it, output moves.
    x2 = {**x, "audiobook": x["audiobook"].clone()}
    x2["audiobook"][2] += 1.0
    out2 = enc(n_id, x2, has, deg, ei, ew)
    assert not torch.allclose(out["audiobook"][2], out2["audiobook"][2])
    assert torch.allclose(out["audiobook"][:2], out2["audiobook"][:2])


def test_towers_shapes_and_unit_norm():
    torch.manual_seed(0)
    user = UserTower(taste_dim=4, gnn_dim=6, n_countries=3, n_languages=2).eval()
    u = user(
        torch.randn(5, 4),
        torch.tensor([0, 1, 2, 3, 0]),
        torch.tensor([0, 1, 2, 0, 0]),
        torch.tensor([float("nan"), 30, 40, 50, 60]),
        torch.randn(5, 6),
        torch.tensor([True, False, True, False, False]),
    )
    assert u.shape == (5, 128) and torch.allclose(u.norm(dim=-1), torch.ones(5))
    item = ItemTower(gnn_dim=6, content_dim=3, n_languages=2, n_genres=4).eval()
    v = item(
        torch.randn(7, 6),
        torch.ones(7, dtype=torch.bool),
        torch.randn(7, 3),
        torch.zeros(7, dtype=torch.bool),
        torch.zeros(7, dtype=torch.long),
        torch.arange(7) % 5,
    )
    assert v.shape == (7, 128) and torch.allclose(v.norm(dim=-1), torch.ones(7))
    # Without a GNN input, the GNN vector must not matter.
    a = item(
        torch.randn(2, 6),
        torch.zeros(2, dtype=torch.bool),
        torch.ones(2, 3),
        torch.ones(2, dtype=torch.bool),
        torch.zeros(2, dtype=torch.long),
        torch.zeros(2, dtype=torch.long),
    )
    b = item(
        torch.randn(2, 6),
        torch.zeros(2, dtype=torch.bool),
        torch.ones(2, 3),
        torch.ones(2, dtype=torch.bool),
        torch.zeros(2, dtype=torch.long),
        torch.zeros(2, dtype=torch.long),
    )
    assert torch.allclose(a, b)


def test_towers_with_music_bag_and_item_ids():
    torch.manual_seed(0)
    user = UserTower(
        taste_dim=4, gnn_dim=0, n_countries=1, n_languages=1, n_music=10, music_dim=3
    ).eval()
    music = torch.tensor([[1, 2, 3], [4, 0, 0]])
    args = (
        torch.zeros(2, 4),
        torch.zeros(2, dtype=torch.long),
        torch.zeros(2, dtype=torch.long),
        torch.full((2,), float("nan")),
        torch.zeros(2, 0),
        torch.zeros(2, dtype=torch.bool),
    )
    u = user(*args, music)
    assert u.shape == (2, 128) and torch.allclose(u.norm(dim=-1), torch.ones(2))
    # Same taste, different music items: different vectors (the bag is read).
    assert not torch.allclose(u[0], u[1])
    item = ItemTower(
        gnn_dim=0, content_dim=0, n_languages=1, n_genres=1, n_ids=5, id_dim=4, id_dropout=1.0
    )
    feats = (
        torch.zeros(3, 0),
        torch.zeros(3, dtype=torch.bool),
        torch.zeros(3, 0),
        torch.zeros(3, dtype=torch.bool),
        torch.zeros(3, dtype=torch.long),
        torch.zeros(3, dtype=torch.long),
    )
    ids = torch.tensor([1, 2, 0])
    v = item.eval()(*feats, ids)
    assert v.shape == (3, 128) and not torch.allclose(v[0], v[1])
    # Index 0 (no trained id) and a dropped id look the same: dropout 1.0 in training.
    item.train()
    item.net.eval()  # the MLP's own dropout off: only the id dropout acts
    dropped = item(*feats, ids)
    assert torch.allclose(dropped[0], v[2], atol=1e-6) and torch.allclose(
        dropped[1], v[2], atol=1e-6
    )


def test_augment_for_search_inner_product_is_the_logit():
    users = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    items = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    pop = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    q, k = augment_for_search(users, items, pop, torch.tensor([0.5]), temperature=0.1)
    assert q.shape == (3, 5) and k.shape == (5, 5)
    assert torch.allclose(q @ k.T, users @ items.T / 0.1 + 0.5 * pop[None, :], atol=1e-5)
