"""The lifecycle every served model shares, in the style of implicit's model classes.

`ServedModel` sits between `Recommender` and the models the server loads
(`training.affinity.AffinityModel`, `training.two_tower.TwoTowerRecommender`). It owns:

* `fit`: threads, seeds and the taste vectors, then the subclass's `_fit`;
* `_train`: one early-stopping loop (AdamW over `net`, batches of training rows,
  `graph.early_stopping.EarlyStopping` on the validation metric the config names);
* `_fit_blend`: one wide & deep blend fit (`training.blend`): the wide part (ridge +
  popularity) against the network's scores under one source name, `NETWORK`;
* `recommend` / `recommend_batch`: the served ranking, through the blend when there
  is one (popularity, flagged as a fallback, for a listener the model cannot read);
* `save` / `load`: one format for every model: tensors in `model.pt` (loaded with
  `torch.load(weights_only=True)`: a checkpoint never runs pickled code), everything
  else as JSON in `model.json`, the taste model in `taste/`, and `manifest.json` with
  the same keys for every kind.

A subclass supplies its features and its network (a module of its own), and:

* `_fit(data, rng)`: build the catalog, features and a training run, call `_train`
  and `_fit_blend`;
* `_batch_loss(run, rows, rng)` and `_validation_score(run)`: what `_train` steps on
  and stops on;
* `network_scores(users)`: the network's scores for every catalog item;
* `_network_state()` / `_restore_network(tensors, metadata)`: its part of the checkpoint.

docs/served_models.md lists the steps to add a served model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from graph.early_stopping import EarlyStopping
from training.base import MANIFEST_FILE, Recommender
from training.blend import ScoreBlend, choose_blend
from training.cross_domain import WidePart, served_blend_metrics
from training.data import InteractionData, Ranking, UserProfile
from training.ranking import top_k
from training.taste import TasteModel, fit_taste
from training.threads import torch_threads

__all__ = ["ServedModel", "CHECKPOINT_FILE", "METADATA_FILE", "NETWORK", "json_value"]

CHECKPOINT_FILE = "model.pt"  # tensors only
METADATA_FILE = "model.json"  # config, vocabularies, catalog ids
NETWORK = "network"  # the network's scores, as a blend source


class ServedModel(Recommender):
    """A trained network served through a validation-chosen wide & deep blend.

    Fitted state (set by `fit` or `load`; empty before):

    * `taste` (`TasteModel` | None): music taste vectors, the network's main input;
    * `net` (`nn.Module` | None): the subclass's network, in eval mode after `fit`;
    * `item_ids` (list[str]) and `_ids` (object array of the same): the catalog,
      most popular first, items added since `fit` at the end;
    * `pop_scores` (float64 array, one per catalog item): popularity, the fallback;
    * `wide` (`WidePart` | None) and `blend` (`ScoreBlend` | None): the wide part and
      the blend weights (None when the config's `blend` is False: the network alone);
    * `metrics` (dict): training and validation figures (the manifest's `metrics`);
    * `data_hash` (str | None): a fingerprint of the training data.

    Subclasses declare their own fitted state in `__init__` the same way.
    """

    kind: ClassVar[str] = "served"  # the manifest kind (`coldstart.artifacts.registry`)
    description: ClassVar[str] = ""  # the manifest's "model"
    config_class: ClassVar[type] = object  # has `from_dict`
    train_command: ClassVar[str] = "coldstart train"  # named when a checkpoint is missing

    def __init__(self, target: str, seed: int, config: Any) -> None:
        super().__init__(target, seed)
        self.config = config
        self.taste: TasteModel | None = None
        self.net: nn.Module | None = None
        self.item_ids: list[str] = []
        self._ids: np.ndarray = np.empty(0, dtype=object)
        self.pop_scores: np.ndarray = np.zeros(0)
        self.wide: WidePart | None = None
        self.blend: ScoreBlend | None = None
        self.metrics: dict = {}
        self.data_hash: str | None = None

    # --- what a subclass supplies ---------------------------------------------------

    def _threads(self) -> int | None:
        """Torch threads while fitting (None: leave torch's setting)."""
        return None

    def _fit(self, data: InteractionData, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def _batch_loss(
        self, run: Any, rows: np.ndarray, rng: np.random.Generator
    ) -> torch.Tensor | None:
        """The loss of training rows `rows` of `run` (None: skip the batch)."""
        raise NotImplementedError

    def _validation_score(self, run: Any) -> float:
        """The early-stopping metric (`config.early_stopping`@`config.val_k`) on the
        run's validation users, higher is better."""
        raise NotImplementedError

    def network_scores(
        self, users: Sequence[UserProfile]
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """(network scores [users x catalog], usable mask, unknown music items per user)."""
        raise NotImplementedError

    def _network_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(tensors, JSON metadata) the network needs besides its state dict."""
        raise NotImplementedError

    def _restore_network(self, tensors: dict[str, Any], metadata: dict[str, Any]) -> None:
        """Rebuild `net` (and the subclass's state) from a checkpoint; the state dict is
        `tensors["network"]`."""
        raise NotImplementedError

    def _blend_usable(self, users: Sequence[UserProfile], usable: np.ndarray) -> np.ndarray:
        """Who the blend can rank (others get popularity, flagged): by default those
        the network can read."""
        return usable

    def _network_rankings(
        self, users: Sequence[UserProfile], k: int, exclude: Sequence[str]
    ) -> list[Ranking]:
        """Rankings by the network alone (a model trained with `blend=False`)."""
        scores, usable, unknown = self.network_scores(users)
        return [
            self._ranking(s, ok, miss, k, exclude) for s, ok, miss in zip(scores, usable, unknown)
        ]

    # --- fit ------------------------------------------------------------------------

    def fit(self, data: InteractionData) -> ServedModel:
        with torch_threads(self._threads()):
            torch.manual_seed(self.config.seed)
            rng = np.random.default_rng(self.config.seed)
            self.taste = fit_taste(data, self.config.taste)
            self._fit(data, rng)
        return self

    def _train(self, run: Any, n_rows: int, rng: np.random.Generator) -> dict:
        """Epochs over the `n_rows` training rows of `run` in shuffled batches, early-
        stopped on the validation metric; `net` ends with the best epoch's weights, in
        eval mode. Returns the training metrics (best value, epochs, history)."""
        cfg = self.config
        metric = f"val_{cfg.early_stopping}"
        optimiser = torch.optim.AdamW(
            self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        stopping = EarlyStopping(metric, cfg.patience, initial=-1.0, state=self.net.state_dict())
        history = []
        for epoch in tqdm(range(cfg.max_epochs), desc=self.kind, disable=not cfg.progress):
            self.net.train()
            perm = rng.permutation(n_rows)
            losses = []
            for start in range(0, len(perm), cfg.batch_size):
                loss = self._batch_loss(run, perm[start : start + cfg.batch_size], rng)
                if loss is None:
                    continue
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
            score = self._validation_score(run)
            history.append(
                {"epoch": epoch, "loss": float(np.mean(losses)) if losses else 0.0, metric: score}
            )
            if stopping.update(epoch, score, self.net.state_dict):
                break
        self.net.load_state_dict(stopping.best_state)
        self.net.eval()
        return {
            f"{metric}@{cfg.val_k}": stopping.best,
            "best_epoch": stopping.best_epoch,
            "epochs": len(history),
            "history": history,
        }

    def _fit_blend(
        self,
        wide: WidePart,
        wide_scores: np.ndarray,
        network: np.ndarray,
        truth: Sequence[set[int]],
        listeners: np.ndarray,
        own: np.ndarray,
    ) -> None:
        """The network's weight next to the wide part, on validation users: `wide_scores`
        are out of fold (the ridge that scored them never saw them), `network` the
        network's scores, `truth` their catalog positions; `listeners` per item and the
        users' `own` plays give the manifest's popularity figure."""
        self.wide = wide
        k = self.config.val_k
        self.blend = choose_blend({"wide": wide_scores, NETWORK: network}, truth, k)
        self.metrics.update(served_blend_metrics(self.blend, wide, k, listeners, own, truth))

    # --- serving --------------------------------------------------------------------

    def served_scores(
        self, users: Sequence[UserProfile]
    ) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """What the model ranks by: the blend of network, wide ridge and popularity
        (the network alone without a blend): (scores, usable mask, unknown items)."""
        network, usable, unknown = self.network_scores(users)
        if self.blend is None:
            return network, usable, unknown
        wide = self.wide.scores([u.music for u in users])
        if wide.shape[1] < network.shape[1]:  # items added since, unknown to the wide part
            wide = np.hstack([wide, np.zeros((len(users), network.shape[1] - wide.shape[1]))])
        scores = self.blend.apply({"wide": wide, NETWORK: network})
        return scores, self._blend_usable(users, usable), unknown

    def recommend(self, user: UserProfile, k: int = 10, exclude: Sequence[str] = ()) -> Ranking:
        return self._served_rankings([user], k, exclude)[0]

    def recommend_batch(self, users: Sequence[UserProfile], k: int = 10) -> list[Ranking]:
        return self._served_rankings(users, k, ())

    def _served_rankings(
        self, users: Sequence[UserProfile], k: int, exclude: Sequence[str]
    ) -> list[Ranking]:
        if not users:
            return []
        if self.blend is None:
            return self._network_rankings(users, k, exclude)
        scores, usable, unknown = self.served_scores(users)
        return [
            self._ranking(s, ok, miss, k, exclude) for s, ok, miss in zip(scores, usable, unknown)
        ]

    def _ranking(
        self, scores: np.ndarray, usable: bool, unknown: list[str], k: int, exclude: Sequence[str]
    ) -> Ranking:
        if not usable:  # nothing the model can read: popularity, and say so
            return top_k(
                self._ids, self.pop_scores, k, exclude, fallback=True, unknown_items=unknown
            )
        return top_k(self._ids, scores, k, exclude, unknown_items=unknown)

    # --- persistence ----------------------------------------------------------------

    def save(self, directory: Path | str, extra_manifest: dict | None = None) -> dict:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.taste.save(directory / "taste")
        own_tensors, own_metadata = self._network_state()
        tensors = {
            "network": self.net.state_dict(),
            "pop_scores": torch.tensor(self.pop_scores),
            "blend": None,
            **own_tensors,
        }
        if self.blend is not None:
            # The wide part is tensors and plain values: weights_only-safe.
            tensors["blend"] = {
                "weights": self.blend.weights,
                "validation": self.blend.validation,
                "wide": self.wide.state(),
            }
        metadata = {
            "kind": self.kind,
            "name": self.name,
            "target": self.target,
            "config": asdict(self.config),
            "item_ids": list(self.item_ids),
            **own_metadata,
        }
        # A new file replaces the old one (never rewritten in place): a server that
        # memory-maps the previous checkpoint keeps reading intact pages.
        partial = directory / f".{CHECKPOINT_FILE}.partial"
        torch.save(tensors, partial)
        partial.replace(directory / CHECKPOINT_FILE)
        (directory / METADATA_FILE).write_text(json.dumps(metadata, default=json_value) + "\n")
        manifest = {
            "kind": self.kind,
            "name": self.name,
            "target": self.target,
            "model": self.description,
            "config": asdict(self.config),
            "blend": None if self.blend is None else self.blend.weights,
            "taste": self.taste.manifest,
            "data_hash": self.data_hash,
            "metrics": {k: v for k, v in self.metrics.items() if k != "history"},
            "files": [CHECKPOINT_FILE, METADATA_FILE, "taste/"],
            "torch": torch.__version__,
            **(extra_manifest or {}),
        }
        (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
        return manifest

    @classmethod
    def load(cls, directory: Path | str) -> ServedModel:
        directory = Path(directory)
        path = directory / CHECKPOINT_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: no {cls.kind} checkpoint (run `{cls.train_command}`)")
        # weights_only: tensors and plain containers only; a pickled object is refused
        # (torch raises UnpicklingError) instead of being executed.
        # mmap: the checkpoint's tensors are pages of the file, read on first touch and
        # shared by every server worker that maps it (the wide part's coefficients are
        # the largest), instead of a private copy per process.
        tensors = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        meta_path = directory / METADATA_FILE
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path}: no {cls.kind} metadata next to the checkpoint")
        metadata = json.loads(meta_path.read_text())
        if metadata.get("kind") != cls.kind:
            raise ValueError(
                f"{directory} holds a {metadata.get('kind')!r} model, not {cls.kind!r}"
            )
        config = cls.config_class.from_dict(metadata["config"])
        model = cls(metadata["target"], config.seed, config)
        model.taste = TasteModel.load(directory / "taste")
        model.item_ids = list(metadata["item_ids"])
        model._ids = np.asarray(model.item_ids, dtype=object)
        model.pop_scores = tensors["pop_scores"].numpy()
        manifest_path = directory / MANIFEST_FILE
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        model.metrics = manifest.get("metrics", {})
        model.data_hash = manifest.get("data_hash")
        model._restore_network(tensors, metadata)
        model.net.eval()
        if tensors.get("blend") is not None:
            part = tensors["blend"]
            model.blend = ScoreBlend(dict(part["weights"]), dict(part["validation"]))
            model.wide = WidePart.from_state(part["wide"])
        return model


def json_value(value):
    """numpy scalars and arrays as plain JSON values (checkpoint metadata)."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
