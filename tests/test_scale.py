"""The audience of a new upload is scored in batches of listeners (no dense
listeners x catalog matrix) and gives the same answer as the dense computation."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import serving_world

from coldstart.batch.uploads import listener_profiles, predict_audience, served_affinity_model
from coldstart.content.embeddings import item_vectors, model_id_for
from coldstart.core.config import Settings
from coldstart.core.store import Store


def dense_reference(model, profiles, item_id, show_id, vector):
    """The computation score-uploads did before batching: one users x catalog matrix
    (for a catalog item, the catalog without itself)."""
    existing = len(model.item_ids)
    if item_id not in model.item_ids:
        model.add_items(pd.DataFrame({"item_id": [item_id]}), {item_id: vector})
    column = model.item_ids.index(item_id)
    scores, known, _ = model.score_batch(profiles)
    mine = scores[:, column]
    show = scores[known, model.item_ids.index(show_id)]
    ref = mine[known]
    mine = (mine - ref.mean()) / (ref.std() or 1.0) * show.std() + show.mean()
    catalog = np.zeros(scores.shape[1], bool)
    catalog[: int(model.metrics.get("catalog", existing))] = True
    catalog[column] = False
    others = scores[:, catalog]
    better = (others > mine[:, None]).sum(axis=1)
    shift = np.maximum(others.max(axis=1), mine)
    own = np.exp(mine - shift)
    probability = own / (own + np.exp(others - shift[:, None]).sum(axis=1))
    frame = pd.DataFrame(
        {"user_id": [p.user_id for p in profiles], "rank": better + 1, "probability": probability}
    )
    frame = frame[known].reset_index(drop=True)
    top = frame.sort_values(["probability", "user_id"], ascending=[False, True]).head(20)
    return frame, top["user_id"].tolist()


def assert_ranks_match(rank, dense_rank, depth):
    """Ranks equal the dense ones down to `depth` (float32 rounding may move one
    listener by one place) and are NA exactly below it."""
    rank = rank.to_numpy(dtype=float, na_value=np.nan)
    deep = dense_rank.to_numpy() > depth
    assert (np.isnan(rank) != deep).sum() <= 1
    both = ~np.isnan(rank) & ~deep
    assert (rank[both] != dense_rank.to_numpy()[both]).sum() <= 1


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = serving_world.build(tmp_path_factory.mktemp("world"))
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    return settings, store, served_affinity_model(store), listener_profiles(store)


@pytest.mark.parametrize("batch_users", [7, 64, 100_000])
def test_batched_audience_matches_the_dense_matrix(world, batch_users):
    settings, store, model, profiles = world
    vectors = item_vectors(store, model_id_for(settings), ["episode"])
    episodes = store.items(["episode"])
    for row in episodes.head(3).itertuples():
        vector = vectors[row.item_id]
        new_id = f"new-{row.item_id}-{batch_users}"
        ref_frame, ref_top = dense_reference(
            copy.deepcopy(model), profiles, new_id, row.show_id, vector
        )
        summary, frame = predict_audience(
            copy.deepcopy(model),
            profiles,
            new_id,
            row.show_id,
            vector,
            10,
            20,
            1.0,
            batch_users=batch_users,
        )
        assert summary["method"] == "content (calibrated to its show)"
        assert frame["user_id"].tolist() == ref_frame["user_id"].tolist()
        assert len(frame) > 200
        # float32 matrix-vector and matrix-matrix products may differ in the last bit
        np.testing.assert_allclose(
            frame["probability"], ref_frame["probability"], rtol=1e-4, atol=1e-9
        )
        assert_ranks_match(frame["rank"], ref_frame["rank"], 100)
        assert [u["user_id"] for u in summary["top_users"]] == ref_top


def test_the_catalog_pass_shrinks_its_listener_batch_to_the_score_budget(world, monkeypatch):
    """With room for only 5 listeners' catalog scores at a time, the audience is the same
    as the dense computation's."""
    from coldstart.batch import uploads

    settings, store, model, profiles = world
    monkeypatch.setattr(uploads, "CATALOG_PASS_SCORES", 5 * int(model.metrics["catalog"]))
    seen = []
    real = uploads._catalog_summary
    monkeypatch.setattr(uploads, "_catalog_summary", lambda *a: seen.append(a[-1]) or real(*a))
    row = next(store.items(["episode"]).head(1).itertuples())
    vector = item_vectors(store, model_id_for(settings), ["episode"])[row.item_id]
    ref_frame, ref_top = dense_reference(
        copy.deepcopy(model), profiles, "budget-ep", row.show_id, vector
    )
    summary, frame = predict_audience(
        copy.deepcopy(model), profiles, "budget-ep", row.show_id, vector, 10, 20
    )
    assert seen == [5]
    np.testing.assert_allclose(frame["probability"], ref_frame["probability"], rtol=1e-4, atol=1e-9)
    assert_ranks_match(frame["rank"], ref_frame["rank"], 100)
    assert [u["user_id"] for u in summary["top_users"]] == ref_top


@pytest.mark.parametrize("quantile", [0.1, 0.3, 0.6])
def test_ranks_are_exact_down_to_the_depth_and_missing_below(world, quantile):
    settings, store, model, profiles = world
    vectors = item_vectors(store, model_id_for(settings), ["episode"])
    row = next(store.items(["episode"]).head(1).itertuples())
    vector, new_id = vectors[row.item_id], f"deep-{row.item_id}"
    ref_frame, _ = dense_reference(copy.deepcopy(model), profiles, new_id, row.show_id, vector)
    # (a depth that covers the whole catalog makes every rank exact)
    depth = min(int(np.quantile(ref_frame["rank"], quantile)), int(model.metrics["catalog"]) - 1)
    summary, frame = predict_audience(
        copy.deepcopy(model), profiles, new_id, row.show_id, vector, 1, 20, rank_depth=depth
    )
    assert 0 < (ref_frame["rank"] > depth).sum() < len(ref_frame)  # both sides occur
    assert_ranks_match(frame["rank"], ref_frame["rank"], depth)
    assert summary["in_top_k"] == int((ref_frame["rank"] == 1).sum())


def test_a_catalog_item_competes_with_the_catalog_without_itself(world):
    settings, store, model, profiles = world
    show_id = model.item_ids[1]
    ref_frame, ref_top = dense_reference(copy.deepcopy(model), profiles, show_id, show_id, None)
    summary, frame = predict_audience(
        copy.deepcopy(model), profiles, show_id, show_id, None, 3, 20, rank_depth=5
    )
    np.testing.assert_allclose(frame["probability"], ref_frame["probability"], rtol=1e-4)
    # The item ties with its own catalog score (up to float32 rounding of two products),
    # so a rank may move by one place, and in or out of the depth at its edge.
    rank = frame["rank"].to_numpy(dtype=float, na_value=np.inf)
    dense = ref_frame["rank"].to_numpy().astype(float)
    dense[dense > 5] = np.inf
    assert np.isinf(rank).sum() > 0 and np.isfinite(rank).sum() > 0
    edge = np.isinf(rank) != np.isinf(dense)
    both = ~edge & np.isfinite(rank)
    assert (np.abs(rank[both] - dense[both]) <= 1).all()
    assert np.isin(np.where(np.isinf(rank), dense, rank)[edge], [5, 6]).all()
    assert [u["user_id"] for u in summary["top_users"]] == ref_top


def test_per_user_ndcg_partial_selection_matches_a_full_stable_sort():
    """per_user_ndcg selects the top k in O(items); ties must break as a stable argsort does."""
    from training.metrics import ndcg_at_k, per_user_ndcg

    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m, k = int(rng.integers(1, 60)), int(rng.integers(1, 12)), int(rng.integers(1, 15))
        scores = rng.integers(0, 5, size=(m, n)).astype(np.float32)  # many ties
        truth = [set(rng.choice(n, size=min(n, 3), replace=False).tolist()) for _ in range(m)]
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        expected = np.array([ndcg_at_k(list(t), rel, k) for t, rel in zip(top, truth)])
        assert np.array_equal(per_user_ndcg(scores, truth, k), expected)


def test_listener_vectors_are_reused_across_uploads_with_the_same_answers(world):
    settings, store, model, profiles = world
    vectors = item_vectors(store, model_id_for(settings), ["episode"])
    rows = list(store.items(["episode"]).head(2).itertuples())
    shared = copy.deepcopy(model)
    for row in rows:
        vector, new_id = vectors[row.item_id], f"again-{row.item_id}"
        reused, _ = predict_audience(shared, profiles, new_id, row.show_id, vector, 10, 20)
        fresh, _ = predict_audience(
            copy.deepcopy(model), profiles, new_id, row.show_id, vector, 10, 20
        )
        assert reused == fresh
    assert shared._audience_users[0] == (id(profiles), len(profiles))
    assert shared._audience_catalog[3] is shared._audience_users[1]  # one catalog pass


def test_listener_profiles_add_plays_of_one_item_at_several_times(tmp_path):
    """What score-uploads scores: the listener's plays of an item, all of them (as the
    models were trained), not the last row read."""
    from coldstart.data.ingest import ingest_dataset

    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "items.csv").write_text("item_id,kind\nt1,track\nt2,track\ns1,show\n")
    (ds / "interactions.csv").write_text(
        "user_id,item_id,weight,timestamp\n"
        "u1,t1,2,2026-01-01T10:00:00\nu1,t1,3,2026-01-02T10:00:00\nu1,t2,1,\n"
        "u2,s1,4,\nu3,t2,7,\n"
    )
    store = Store.from_settings(Settings(home=tmp_path / "home"))
    ingest_dataset(store, ds)
    profiles = {p.user_id: p.music for p in listener_profiles(store)}
    assert profiles == {"u1": {"t1": 5.0, "t2": 1.0}, "u3": {"t2": 7.0}}  # u2: no music


def test_listener_demographics_and_picks_per_listener_on_awkward_rows(tmp_path):
    """Profiles carry each listener's country, language and age (None where the users
    table has none, or no row); picks count distinct shows per podcast listener, an
    episode's plays counting for its show, and a listener whose episodes name no show
    counting 0 shows."""
    from coldstart.batch.uploads import picks_per_listener
    from coldstart.data.ingest import ingest_dataset

    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "items.csv").write_text(
        "item_id,kind,show_id\nt1,track,\ns1,show,\ns2,show,\ns3,show,\n"
        "e1,episode,s1\ne2,episode,s2\ne3,episode,s1\ne9,episode,\n"
    )
    (ds / "users.csv").write_text("user_id,country,language,age\nu1,SE,sv,31\nu2,US,,\n")
    (ds / "interactions.csv").write_text(
        "user_id,item_id,weight,timestamp\n"
        "u1,t1,2,\nu2,t1,1,\nu3,t1,4,\n"  # u3: no users row
        "u1,s1,1,\nu1,e1,1,\nu1,e3,1,\nu1,e2,1,\nu1,s3,2,\n"  # u1: s1, s2, s3
        "u2,e1,1,\n"  # u2: s1
        "u4,e9,1,\n"  # u4: an episode without a show
    )
    store = Store.from_settings(Settings(home=tmp_path / "home"))
    ingest_dataset(store, ds)
    profiles = {p.user_id: (p.country, p.language, p.age) for p in listener_profiles(store)}
    assert profiles == {
        "u1": ("SE", "sv", 31.0),
        "u2": ("US", None, None),
        "u3": (None, None, None),
    }
    assert picks_per_listener(store) == pytest.approx((3 + 1 + 0) / 3)


def reference_profiles(store):
    """What `listener_profiles` built before the listeners became columns: every
    history a dict from `user_histories`, demographics from one reindex."""
    from training.data import MUSIC_KINDS, UserProfile
    from training.history import user_histories

    histories = user_histories(store.plays_of(MUSIC_KINDS, ["user_id", "item_id", "weight"]))
    known = store.users().drop_duplicates("user_id").set_index("user_id").reindex(list(histories))
    columns = [
        [None if pd.isna(v) else v for v in known[c].tolist()]
        for c in ("country", "language", "age")
    ]
    return [
        UserProfile(u, histories[u], {}, country, language, age)
        for u, country, language, age in zip(histories, *columns)
    ]


def test_the_listener_table_gives_the_profiles_the_dicts_gave(world):
    from coldstart.batch.listeners import listener_table

    settings, store, model, profiles = world
    table = listener_table(store)
    reference = reference_profiles(store)
    assert table.profiles() == reference == profiles
    assert [p for lo in range(0, len(table), 7) for p in table.profiles(lo, lo + 7)] == reference


def test_a_new_items_vector_is_the_one_add_items_gives_it_bit_for_bit(world):
    """Scoring an upload leaves the model as it is; its vector and bias are those the
    model would give it as an added item (the catalogue's are unchanged by adding it)."""
    from coldstart.batch.uploads import _new_item_vector

    settings, store, model, profiles = world
    vectors = item_vectors(store, model_id_for(settings), ["episode"])
    added = copy.deepcopy(model)
    _, before, _ = added.item_vectors()
    before = before.copy()
    ids = [f"bits-{i}" for i in list(vectors)[:5]]
    for new_id, vector in zip(ids, vectors.values()):
        added.add_items(pd.DataFrame({"item_id": [new_id]}), {new_id: vector})
        _, vecs, bias = added.item_vectors()
        column = added.item_ids.index(new_id)
        mine, mine_bias = _new_item_vector(model, vector)
        assert np.array_equal(mine, vecs[column]) and mine_bias == bias[column]
    assert np.array_equal(added.item_vectors()[1][: len(before)], before)


def test_the_audience_over_the_listener_table_is_the_one_over_profiles(world):
    """The same frame and summary from the table of listeners as from the profile list
    (whose segments are grouped by the two string columns), upload after upload."""
    from coldstart.batch.listeners import listener_table
    from coldstart.batch.uploads import audience_summary

    settings, store, model, profiles = world
    table = listener_table(store)
    vectors = item_vectors(store, model_id_for(settings), ["episode"])
    on_table, on_list = copy.deepcopy(model), copy.deepcopy(model)
    for row in store.items(["episode"]).head(3).itertuples():
        new_id = f"table-{row.item_id}"
        vector = vectors[row.item_id]
        summary, frame = predict_audience(on_table, table, new_id, row.show_id, vector, 10, 20)
        ref_summary, ref_frame = predict_audience(
            on_list, profiles, new_id, row.show_id, vector, 10, 20
        )
        pd.testing.assert_frame_equal(frame, ref_frame)
        assert summary == ref_summary
        grouped = audience_summary(frame, summary["method"], summary["model"], 1.0, 10, 20)
        assert grouped == summary
    assert on_table.item_ids == model.item_ids  # nothing added to the model
