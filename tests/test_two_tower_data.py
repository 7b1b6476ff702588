"""What the two-tower fit reads off the interactions over their integer codes (the
spoken-word plays, the data fingerprint, popularity without some listeners' plays)
equals the string merge, sort and refiltered frames it replaces, exactly."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from recommender_contract import toy_world
from test_training_data import awkward_world

from coldstart.artifacts.training import load_interaction_data
from coldstart.core.config import Settings
from coldstart.core.store import Store
from coldstart.data.importers import douban
from coldstart.data.ingest import ingest_dataset
from graph import NODE_TYPES
from training.data import InteractionData, episodes_to_shows, user_profile, user_profiles
from training.item_graph import spoken_events
from training.ranking import popularity
from training.splits import hidden_kinds
from training.two_tower_data import data_hash
from training.two_tower_features import vocabulary

DATA = Path(__file__).parent / "data"


def merged_spoken_events(data: InteractionData) -> pd.DataFrame:
    """The reference: merge the items in by id, map episodes to shows, keep spoken kinds."""
    inter = episodes_to_shows(
        data.interactions.merge(data.items[["item_id", "kind", "show_id"]], on="item_id")
    )
    inter = inter[inter["kind"].isin(NODE_TYPES) & inter["item_id"].notna()]
    cols = ["user_id", "item_id", "kind", "weight"] + (
        ["timestamp"] if "timestamp" in inter else []
    )
    return inter[cols].reset_index(drop=True)


def sorted_string_hash(data: InteractionData) -> str:
    """The reference fingerprint: the frames sorted by their id strings, then hashed."""
    h = hashlib.sha256()
    inter = data.interactions[["user_id", "item_id", "weight"]].sort_values(["user_id", "item_id"])
    h.update(pd.util.hash_pandas_object(inter, index=False).values.tobytes())
    h.update(
        pd.util.hash_pandas_object(
            data.items[["item_id", "kind"]].sort_values("item_id"), index=False
        ).values.tobytes()
    )
    return h.hexdigest()[:16]


def without_target_plays(data: InteractionData, users: set[str], target: str) -> InteractionData:
    """The reference: `data` less these users' plays of the target kind."""
    kinds = data.items.set_index("item_id")["kind"]
    inter = data.interactions
    hide = inter["user_id"].isin(users) & inter["item_id"].map(kinds).isin(hidden_kinds(target))
    return replace(data, interactions=inter[~hide].reset_index(drop=True))


def assert_matches(data: InteractionData) -> None:
    pd.testing.assert_frame_equal(spoken_events(data), merged_spoken_events(data), check_exact=True)
    assert data_hash(data) == sorted_string_hash(data)
    for target in ("podcast", "audiobook"):
        listeners = sorted(data.target_interactions(target)["user_id"].unique())
        leave_out = set(listeners[::3])
        pd.testing.assert_series_equal(
            popularity(data, target, leave_out=leave_out),
            popularity(without_target_plays(data, leave_out, target), target),
            check_exact=True,
        )


def real_listening(tmp_path: Path, kind: str) -> InteractionData:
    douban(DATA / "douban-slice", tmp_path / "dataset", target=kind)
    store = Store.from_settings(Settings(home=tmp_path / "home"))
    ingest_dataset(store, tmp_path / "dataset")
    return load_interaction_data(store, content=False)


def test_code_views_equal_the_string_passes_on_awkward_rows():
    data = awkward_world()
    assert_matches(data)  # an unknown item and a missing user: the string sort
    inter = data.interactions
    known = inter["item_id"].isin(data.items["item_id"]) & inter["user_id"].notna()
    assert_matches(replace(data, interactions=inter[known]))  # repeated plays, sorted by codes


def test_code_views_equal_the_string_passes_on_the_toy_world():
    world = toy_world()  # shared by other tests (cached): a copy of its frames
    data = InteractionData(items=world.items, interactions=world.interactions)
    assert_matches(data)
    shuffled = data.interactions.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert data_hash(replace(data, interactions=shuffled)) == data_hash(data)


@pytest.mark.parametrize("kind", ["show", "audiobook"])
def test_code_views_equal_the_string_passes_on_real_listening(tmp_path, kind):
    assert_matches(real_listening(tmp_path, kind))


def test_profiles_read_in_one_reindex_equal_the_lookup_per_listener():
    users = toy_world().users.copy()
    users.loc[1, "country"] = None  # a missing value
    users.loc[2, "age"] = float("nan")
    frame = users.drop_duplicates("user_id").set_index("user_id")
    ids = [*users["user_id"].iloc[:6], "nobody"]  # and a listener the frame does not know
    music = [{f"t{i}": float(i + 1)} for i in range(len(ids))]
    spoken = [{}, {"show-1": 1.0}, {}, {}, {}, {}, {"book": 1.0}]
    assert user_profiles(ids, music, spoken, frame) == [
        user_profile(u, m, s, frame) for u, m, s in zip(ids, music, spoken)
    ]
    assert user_profiles(ids, music) == [user_profile(u, m) for u, m in zip(ids, music)]


def test_vocabulary_of_distinct_values_equals_the_set_of_every_row():
    values = pd.Series(["en", None, "fr", "en", float("nan"), "de", "fr"], dtype="object")
    rows = sorted({str(v) for v in values if v is not None and not pd.isna(v)})
    assert vocabulary(values) == {v: i + 1 for i, v in enumerate(rows)}
    assert vocabulary(["b", "a", None]) == {"a": 1, "b": 2}
