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


def _brute_force_pairs(events: pd.DataFrame, cap: int, window: float | None) -> dict:
    """Every pair of one listener's (capped, most recent) items, counted one by one."""
    ev = events.groupby(["user_id", "item_id"], as_index=False).agg(
        timestamp=("timestamp", "min"), weight=("weight", "sum")
    )
    counts: dict = {}
    for _, group in ev.groupby("user_id"):
        group = group.sort_values(
            ["timestamp", "weight", "item_id"], ascending=[False, False, True]
        ).head(cap)
        rows = list(zip(group["item_id"], group["timestamp"]))
        for i, (a, ta) in enumerate(rows):
            for b, tb in rows[i + 1 :]:
                if window is None or abs(ta - tb) <= window or ta <= 0 or tb <= 0:
                    key = (min(a, b), max(a, b))
                    counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.parametrize("pairs_per_block", [1, 7, 2**24])
@pytest.mark.parametrize("cap,window", [(50, None), (3, None), (50, 4000.0)])
def test_pair_counts_match_counting_one_listener_at_a_time(
    monkeypatch, pairs_per_block, cap, window
):
    """Listeners are paired a block at a time (memory bounded at any audience); the
    counts are those of enumerating each listener's pairs."""
    import graph.colisten as colisten

    monkeypatch.setattr(colisten, "PAIRS_PER_BLOCK", pairs_per_block)
    rng = np.random.default_rng(3)
    n = 600
    events = pd.DataFrame(
        {
            "user_id": [f"u{x}" for x in rng.integers(0, 60, n)],
            "item_id": [f"i{x:02d}" for x in rng.integers(0, 25, n)],
            "timestamp": rng.choice([0.0, 100.0, 5000.0, 9000.0], n),
            "weight": rng.integers(1, 4, n).astype(float),
        }
    )
    pairs = colisten_pairs(events, max_items_per_user=cap, window_seconds=window)
    got = {(a, b): c for a, b, c in pairs.itertuples(index=False)}
    assert got == _brute_force_pairs(events, cap, window) and len(got) > 50
    assert list(pairs.columns) == ["item_id_a", "item_id_b", "count"]
    assert pairs[["item_id_a", "item_id_b"]].apply(tuple, axis=1).is_monotonic_increasing
    assert colisten_pairs(events.iloc[:0]).empty
