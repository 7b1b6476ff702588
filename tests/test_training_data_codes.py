"""The interactions read as int32 codes (`CodedPlays`, from the columnar copy) give the
same frames, views, codes and fingerprints as the frame with string ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from test_interaction_columns import FIRST, SECOND, write

from coldstart.artifacts.training import load_interaction_data
from coldstart.core.config import Settings
from coldstart.core.interaction_columns import _used_codes
from coldstart.core.store import Store
from coldstart.data.importers import douban
from coldstart.data.ingest import ingest_dataset
from training.data import TARGET_KINDS, CodedPlays, InteractionData
from training.item_graph import spoken_events
from training.two_tower_data import data_hash

DATA = Path(__file__).parent / "data"


def both_reads(store: Store) -> tuple[InteractionData, InteractionData]:
    """(the store's data with the interactions as codes, the same with the frame)."""
    coded = load_interaction_data(store, content=False)
    assert isinstance(coded._plays, CodedPlays)
    frame = InteractionData(items=coded.items, interactions=store.interactions(), users=coded.users)
    return coded, frame


def assert_same_answers(coded: InteractionData, frame: InteractionData) -> None:
    item_row, user_code, users = coded.codes()
    want_row, want_code, want_users = frame.codes()
    np.testing.assert_array_equal(item_row, want_row)
    assert item_row.dtype == want_row.dtype and user_code.dtype == want_code.dtype
    np.testing.assert_array_equal(user_code, want_code)
    pd.testing.assert_index_equal(users, want_users, exact=True)
    pd.testing.assert_frame_equal(coded.music_interactions(), frame.music_interactions())
    for target in TARGET_KINDS:
        pd.testing.assert_frame_equal(
            coded.target_interactions(target), frame.target_interactions(target)
        )
    pd.testing.assert_frame_equal(spoken_events(coded), spoken_events(frame))
    assert data_hash(coded) == data_hash(frame)
    assert isinstance(coded._plays, CodedPlays)  # none of the above made the frame


@pytest.mark.parametrize("kind", ["show", "audiobook"])
def test_codes_give_the_frames_answers_on_real_listening(tmp_path, kind):
    douban(DATA / "douban-slice", tmp_path / "dataset", target=kind)
    store = Store.from_settings(Settings(home=tmp_path / "home"))
    ingest_dataset(store, tmp_path / "dataset")
    coded, frame = both_reads(store)
    assert_same_answers(coded, frame)
    music = coded.music_interactions()
    # reading `interactions` makes the frame the columnar read gives, dtypes included,
    # and keeps the views already computed
    pd.testing.assert_frame_equal(coded.interactions, frame.interactions, check_exact=True)
    assert not isinstance(coded._plays, CodedPlays)
    assert coded._cache["music"] is not None
    pd.testing.assert_frame_equal(coded.music_interactions(), music)


def test_codes_after_a_second_ingest_and_non_ascii_ids(tmp_path):
    store = Store.from_settings(Settings(home=tmp_path / "home"))
    ingest_dataset(store, write(tmp_path / "a", FIRST))
    ingest_dataset(store, write(tmp_path / "b", SECOND))
    coded, frame = both_reads(store)
    assert_same_answers(coded, frame)
    assert coded.interaction_count() == len(frame.interactions)
    pd.testing.assert_frame_equal(coded.interactions, frame.interactions, check_exact=True)


def test_unused_dictionary_values_are_dropped_as_factorize_would():
    distinct = pa.array(["a", "b", "c", "d"])
    ids, codes = _used_codes(distinct, np.array([3, 0, 3, 2], dtype=np.int32))
    want_codes, want_ids = pd.factorize(pd.Series(["d", "a", "d", "c"], dtype="str"), sort=True)
    np.testing.assert_array_equal(codes, want_codes)
    assert codes.dtype == np.int32
    pd.testing.assert_index_equal(ids, want_ids, exact=True)
