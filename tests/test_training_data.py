"""`InteractionData`'s derived views (music plays, target plays) equal the string merge
and two-key groupby they replace, on real data and on the awkward rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from recommender_contract import toy_world

from coldstart.artifacts.training import load_interaction_data
from coldstart.core.config import Settings
from coldstart.core.store import Store
from coldstart.data.importers import douban
from coldstart.data.ingest import ingest_dataset
from training.data import MUSIC_KINDS, TARGET_KINDS, InteractionData, episodes_to_shows

DATA = Path(__file__).parent / "data"


def merged_target(data: InteractionData, target: str) -> pd.DataFrame:
    """The reference: merge the items in by id, map episodes to shows, group by the ids."""
    inter = data.interactions.merge(data.items[["item_id", "kind", "show_id"]], on="item_id")
    if target == "podcast":
        inter = episodes_to_shows(inter)
    inter = inter[inter["kind"].isin(TARGET_KINDS[target]) & inter["item_id"].notna()]
    return inter.groupby(["user_id", "item_id"], as_index=False)["weight"].sum()


def merged_music(data: InteractionData) -> pd.DataFrame:
    inter = data.interactions.merge(data.items[["item_id", "kind"]], on="item_id")
    inter = inter[inter["kind"].isin(MUSIC_KINDS)]
    return inter.groupby(["user_id", "item_id"], as_index=False)["weight"].sum()


def assert_views_match(data: InteractionData) -> None:
    pd.testing.assert_frame_equal(data.music_interactions(), merged_music(data), check_exact=True)
    for target in TARGET_KINDS:
        pd.testing.assert_frame_equal(
            data.target_interactions(target), merged_target(data, target), check_exact=True
        )


def awkward_world() -> InteractionData:
    """Repeated plays, an unknown item, a listener without an id, a NaN weight, an
    episode without a show, an episode whose show is not an item, ids that sort
    differently as strings than as first seen."""
    s = lambda values: pd.Series(values, dtype="str")  # noqa: E731
    items = pd.DataFrame(
        {
            "item_id": s(["t2", "t10", "a1", "show-b", "ep1", "ep2", "ep3", "book", "show-a"]),
            "kind": s(
                ["track", "track", "artist", "show", "episode", "episode", "episode"]
                + ["audiobook", "show"]
            ),
            "show_id": s([None, None, None, None, "show-a", None, "show-z", None, None]),
        }
    )
    inter = pd.DataFrame(
        {
            "user_id": s(["u2", "u10", "u2", "u2", None, "u10", "u10", "u10", "u2", "u2", "u1"]),
            "item_id": s(
                ["t10", "t2", "t10", "ep1", "t2", "show-a", "ep1", "ep2", "ep3", "x", "book"]
            ),
            "timestamp": np.arange(11, dtype=np.int64),
            "weight": [1.0, 2.0, 0.5, 3.0, 4.0, 1.0, 2.0, 7.0, 1.5, 9.0, np.nan],
        }
    )
    return InteractionData(items=items, interactions=inter)


def test_views_equal_the_merge_on_awkward_rows():
    data = awkward_world()
    assert_views_match(data)
    podcast = data.target_interactions("podcast")
    # ep1's plays count for show-a (with the direct play), ep3's for show-z (not an
    # item), ep2 has no show; the unknown item and the listener without an id are gone
    assert podcast.to_dict("list") == {
        "user_id": ["u10", "u2", "u2"],
        "item_id": ["show-a", "show-a", "show-z"],
        "weight": [3.0, 3.0, 1.5],
    }
    assert data.music_interactions()["item_id"].tolist() == ["t2", "t10"]


@pytest.mark.parametrize("kind", ["show", "audiobook"])
def test_views_equal_the_merge_on_real_listening(tmp_path, kind):
    douban(DATA / "douban-slice", tmp_path / "dataset", target=kind)
    store = Store.from_settings(Settings(home=tmp_path / "home"))
    ingest_dataset(store, tmp_path / "dataset")
    assert_views_match(load_interaction_data(store, content=False))


def test_views_follow_a_replaced_frame_and_callers_cannot_edit_them():
    world = toy_world()  # shared by other tests (cached): replace frames on a copy only
    data = InteractionData(items=world.items, interactions=world.interactions)
    assert_views_match(data)
    music = data.music_interactions()
    music["weight"] = 0.0  # a caller's edit
    assert data.music_interactions()["weight"].gt(0).all()
    data.interactions = data.interactions.iloc[: len(data.interactions) // 2]
    assert_views_match(data)


def test_repeated_item_ids_are_refused():
    data = awkward_world()
    data.items = pd.concat([data.items, data.items.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="item_id must be unique"):
        data.music_interactions()
