"""Domain adaptation of the sentence encoder on the catalogue itself.

Pairs come from the store alone:

* title <-> description of every item that has both;
* episode <-> its show (own texts);
* with `embed.adapt_genre_pairs`, item <-> another item of the same genre (the store's
  `genre` column; no genre name appears in this code).

The loss is MultipleNegativesRankingLoss (in-batch softmax over scaled cosines, scale
20) written out in torch, with same-genre in-batch "negatives" masked out when genre
pairs are used. Training is bounded (`embed.adapt_steps` steps of `embed.adapt_batch`
pairs, texts cut to `embed.adapt_max_tokens` tokens, only the top
`embed.adapt_layers` transformer layers updated), seeded, and runs offline on CPU.

The result is a sentence-transformers folder under `<home>/models/encoder/<name>/`
with `adaptation.json` (base model id, data hash, settings, loss curve): its model id
(folder name + hash of its files) differs from the base model's, so vectors of the two
never mix. `<home>/models/encoder/CURRENT` names the folder in use; `load_encoder`
picks it when `embed.adapt` is on.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from coldstart.content.embeddings import (
    SPOKEN_KINDS,
    Encoder,
    adapted_dir,
    clean_text,
    current_adapted,
    item_text,
    model_id_of,
)
from coldstart.core.config import Settings
from coldstart.core.store import Store
from training.threads import torch_threads

__all__ = ["AdaptReport", "adapted_dir", "current_adapted", "training_pairs", "adapt_encoder"]


@dataclass
class AdaptReport:
    action: str  # "trained" | "skipped"
    reason: str = ""
    model_id: str | None = None
    path: str | None = None
    pairs: int = 0
    steps: int = 0
    seconds: float = 0.0
    loss_first: float | None = None
    loss_last: float | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}


def training_pairs(
    store: Store, genre_pairs: bool, seed: int
) -> tuple[list[tuple[str, str]], list[str | None]]:
    """(anchor, positive) text pairs and each pair's genre (None when it has none), in a fixed order."""
    items = store.items(SPOKEN_KINDS).sort_values("item_id")
    own = {}
    genre_of: dict[str, str | None] = {}
    pairs: list[tuple[str, str]] = []
    genres: list[str | None] = []
    for r in items.to_dict("records"):
        text = item_text(r)
        g = (
            " ".join(str(r["genre"]).split())
            if isinstance(r.get("genre"), str) and r["genre"].strip()
            else None
        )
        genre_of[r["item_id"]] = g
        if text:
            own[r["item_id"]] = text
        title, description = clean_text(r.get("title")), clean_text(r.get("description"))
        if title and description and title != description:
            pairs.append((title, description))
            genres.append(g)
    for r in items[items["kind"] == "episode"].to_dict("records"):
        show = r.get("show_id")
        if isinstance(show, str) and r["item_id"] in own and show in own:
            pairs.append((own[r["item_id"]], own[show]))
            genres.append(genre_of.get(r["item_id"]) or genre_of.get(show))
    if genre_pairs:
        rng = random.Random(seed)
        by_genre: dict[str, list[str]] = {}
        for item_id in sorted(own):
            if genre_of.get(item_id):
                by_genre.setdefault(genre_of[item_id], []).append(item_id)
        for g in sorted(by_genre):
            members = by_genre[g]
            if len(members) < 2:
                continue
            for item_id in members:
                other = item_id
                while other == item_id:
                    other = rng.choice(members)
                pairs.append((own[item_id], own[other]))
                genres.append(g)
    return pairs, genres


def _data_hash(pairs: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for a, b in pairs:
        digest.update(a.encode() + b"\x00" + b.encode() + b"\x01")
    return digest.hexdigest()[:12]


def _mean_pool(model, features: dict):
    out = model(features)
    return out["sentence_embedding"]


def adapt_encoder(
    store: Store, settings: Settings, base: Encoder, progress: bool = False
) -> AdaptReport:
    """Fine-tune a copy of `base` on the catalogue's pairs; save it and make it CURRENT.

    Skipped (and nothing changes) when the catalogue yields fewer than
    `embed.adapt_min_pairs` pairs. Same store, settings and seed: same weights.
    """
    # Imported here: sentence-transformers takes 10-19 s to import (see embeddings.py).
    from sentence_transformers import SentenceTransformer

    cfg = settings.embed
    seed = settings.train.seed
    pairs, genres = training_pairs(store, cfg.adapt_genre_pairs, seed)
    if len(pairs) < cfg.adapt_min_pairs:
        return AdaptReport(
            "skipped",
            f"{len(pairs)} training pairs, fewer than embed.adapt_min_pairs "
            f"({cfg.adapt_min_pairs}): the base encoder is kept",
            pairs=len(pairs),
        )
    started = time.perf_counter()
    data_hash = _data_hash(pairs)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model = SentenceTransformer(str(base.path), device="cpu")
    model.max_seq_length = cfg.adapt_max_tokens
    transformer = model[0].auto_model
    layers = transformer.encoder.layer
    for p in transformer.parameters():
        p.requires_grad = False
    for layer in layers[len(layers) - cfg.adapt_layers :]:
        for p in layer.parameters():
            p.requires_grad = True
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.adapt_lr, weight_decay=0.01)
    model.train()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    batch = min(cfg.adapt_batch, len(pairs))
    losses: list[float] = []
    pos = 0
    prep = getattr(model, "preprocess", None) or model.tokenize
    with torch_threads(cfg.threads or None):
        for step in range(cfg.adapt_steps):
            if pos + batch > len(order):
                order, pos = rng.permutation(len(pairs)), 0
            idx = order[pos : pos + batch]
            pos += batch
            anchors = prep([pairs[i][0] for i in idx])
            positives = prep([pairs[i][1] for i in idx])
            a = F.normalize(_mean_pool(model, anchors), dim=-1)
            b = F.normalize(_mean_pool(model, positives), dim=-1)
            logits = 20.0 * a @ b.T
            if cfg.adapt_genre_pairs:
                g = [genres[i] for i in idx]
                same = torch.tensor(
                    [
                        [gi is not None and gi == gj and i != j for j, gj in enumerate(g)]
                        for i, gi in enumerate(g)
                    ]
                )
                logits = logits.masked_fill(same, float("-inf"))
            target = torch.arange(len(idx))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if progress and (step + 1) % 10 == 0:
                print(
                    f"adapt step {step + 1}/{cfg.adapt_steps} loss {np.mean(losses[-10:]):.4f}",
                    flush=True,
                )
    model.eval()
    model.max_seq_length = base.max_tokens
    version = hashlib.sha256(
        json.dumps(
            [
                data_hash,
                cfg.adapt_steps,
                batch,
                cfg.adapt_lr,
                cfg.adapt_max_tokens,
                cfg.adapt_layers,
                cfg.adapt_genre_pairs,
            ]
        ).encode()
    ).hexdigest()[:10]
    name = f"{base.model_id.split('@')[0]}-adapted-{version}-s{seed}"
    root = adapted_dir(settings)
    target_dir = root / name
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp))
    manifest = {
        "kind": "adapted-encoder",
        "base_model_id": base.model_id,
        "data_hash": data_hash,
        "pairs": len(pairs),
        "loss": "MultipleNegativesRankingLoss (symmetric, scale 20)",
        "settings": {
            "steps": cfg.adapt_steps,
            "batch": batch,
            "lr": cfg.adapt_lr,
            "max_tokens": cfg.adapt_max_tokens,
            "layers": cfg.adapt_layers,
            "genre_pairs": cfg.adapt_genre_pairs,
            "seed": seed,
        },
        "loss_first10": round(float(np.mean(losses[:10])), 4),
        "loss_last10": round(float(np.mean(losses[-10:])), 4),
    }
    (tmp / "adaptation.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(target_dir, ignore_errors=True)
    os.replace(tmp, target_dir)
    pointer = root / ".CURRENT.tmp"
    pointer.write_text(name + "\n")
    os.replace(pointer, root / "CURRENT")
    model_id = model_id_of(target_dir, cfg.precision)
    store.register_artifact("encoder:adapted", target_dir, {**manifest, "model_id": model_id})
    return AdaptReport(
        "trained",
        model_id=model_id,
        path=str(target_dir),
        pairs=len(pairs),
        steps=cfg.adapt_steps,
        seconds=round(time.perf_counter() - started, 2),
        loss_first=manifest["loss_first10"],
        loss_last=manifest["loss_last10"],
    )
