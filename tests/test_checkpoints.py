"""Checkpoints hold tensors and JSON: a checkpoint carrying a pickled object is refused,
never executed (torch.load(weights_only=True) everywhere)."""

from __future__ import annotations

import pickle

import pytest
import torch

from training.affinity import AffinityModel
from training.served import CHECKPOINT_FILE
from training.two_tower import TwoTowerRecommender


class _Payload:
    """Unpickling this creates `marker`: proof that the checkpoint ran code."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _poisoned(path, marker) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"user_tower": {}, "config": _Payload(marker)}, path)


def test_two_tower_refuses_a_checkpoint_with_a_pickled_object(tmp_path):
    marker = tmp_path / "pwned"
    _poisoned(tmp_path / "tt" / CHECKPOINT_FILE, marker)
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only"):
        TwoTowerRecommender.load(tmp_path / "tt")
    assert not marker.exists()


def test_affinity_refuses_a_checkpoint_with_a_pickled_object(tmp_path):
    marker = tmp_path / "pwned"
    _poisoned(tmp_path / "aff" / CHECKPOINT_FILE, marker)
    with pytest.raises(pickle.UnpicklingError, match="[Ww]eights only"):
        AffinityModel.load(tmp_path / "aff")
    assert not marker.exists()
