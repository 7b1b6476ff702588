"""Co-listening graph construction on a hand-made log."""

import numpy as np
import pandas as pd
import pytest
import torch

from graph import build_colisten_graph, colisten_pairs

ITEMS = pd.DataFrame(
    {
        "item_id": ["s1", "s2", "b1", "b2", "b3", "art"],
        "kind": ["show", "show", "audiobook", "audiobook", "audiobook", "artist"],
    }
)
# u1: s1 s2 b1 ; u2: s1 b1 ; u3: b1 b2 (far apart in time) ; u4: b3 only
EVENTS = pd.DataFrame(
    {
        "user_id": ["u1", "u1", "u1", "u1", "u2", "u2", "u3", "u3", "u4"],
        "item_id": ["s1", "s2", "b1", "s1", "s1", "b1", "b1", "b2", "b3"],
        "timestamp": [100, 110, 120, 500, 100, 200, 1_000, 900_000, 50],
        "weight": [1, 1, 1, 3, 1, 1, 1, 1, 1],
    }
)


def edges(g, et):
    ei = g.data[et].edge_index
    names_s, names_d = g.item_ids[et[0]], g.item_ids[et[2]]
    return {
        (names_s[s], names_d[d]): float(w)
        for s, d, w in zip(ei[0].tolist(), ei[1].tolist(), g.data[et].edge_weight)
    }


def test_edges_types_and_weights_are_exact():
    g = build_colisten_graph(ITEMS, EVENTS)
    assert g.item_ids == {"show": ["s1", "s2"], "audiobook": ["b1", "b2", "b3"]}
    assert edges(g, ("show", "colisten", "show")) == {("s1", "s2"): 1.0, ("s2", "s1"): 1.0}
    assert edges(g, ("show", "colisten", "audiobook")) == {("s1", "b1"): 2.0, ("s2", "b1"): 1.0}
    assert edges(g, ("audiobook", "colisten", "show")) == {("b1", "s1"): 2.0, ("b1", "s2"): 1.0}
    assert edges(g, ("audiobook", "colisten", "audiobook")) == {
        ("b1", "b2"): 1.0,
        ("b2", "b1"): 1.0,
    }
    assert g.num_edges == 8
    # b3 was heard by one user only: an isolated node, still present.
    assert g.data["audiobook"].num_nodes == 3
    assert torch.allclose(
        g.data["audiobook"].log_degree, torch.log1p(torch.tensor([2.0 + 1 + 1, 1, 0]))
    )


def test_time_window_drops_far_apart_pairs():
    g = build_colisten_graph(ITEMS, EVENTS, window_seconds=3600)
    assert edges(g, ("audiobook", "colisten", "audiobook")) == {}
    assert edges(g, ("show", "colisten", "audiobook")) == {("s1", "b1"): 2.0, ("s2", "b1"): 1.0}


def test_cap_keeps_most_recent_items_per_user():
    pairs = colisten_pairs(EVENTS, max_items_per_user=2)
    # u1 keeps b1 (t=120) and s2 (t=110); s1 first heard at t=100 is dropped.
    got = {(a, b): c for a, b, c in pairs.itertuples(index=False)}
    assert got == {("b1", "s2"): 1, ("b1", "s1"): 1, ("b1", "b2"): 1}


def test_content_features_and_mask():
    content = {
        "b2": np.array([0.6, 0.8], dtype=np.float32),
        "s1": np.array([1.0, 0.0], dtype=np.float32),
    }
    g = build_colisten_graph(ITEMS, EVENTS, content)
    assert g.data["audiobook"].x.shape == (3, 2)
    assert g.data["audiobook"].has_content.tolist() == [False, True, False]
    assert torch.equal(g.data["audiobook"].x[1], torch.tensor([0.6, 0.8]))
    assert g.data["show"].has_content.tolist() == [True, False]


def test_unknown_item_is_a_clear_error():
    bad = pd.concat(
        [
            EVENTS,
            pd.DataFrame({"user_id": ["u9"], "item_id": ["nope"], "timestamp": [0], "weight": [1]}),
        ]
    )
    with pytest.raises(ValueError, match="nope"):
        build_colisten_graph(ITEMS, bad)


def test_no_events_gives_isolated_nodes():
    g = build_colisten_graph(ITEMS, EVENTS.iloc[:0])
    assert g.num_edges == 0
    assert g.data["show"].num_nodes == 2
