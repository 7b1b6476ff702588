"""The Ray Data stages: callable classes that `map_batches` runs in an actor pool.

Each actor loads its model once, in `__init__` (Whisper for `Transcribe`, MiniLM for
`Embed`), and then serves batch after batch. Rows carry everything a stage needs
(audio path, item text, transcript segments, stored text hashes), so the actors never
touch the store: they can run on any node of a cluster. Their outputs are plain
columns (strings, floats, bytes) that go to Parquet.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from coldstart.content.embeddings import TextUnit, item_text, load_encoder, split_passages
from coldstart.content.speech import engine_for, transcribe_one
from coldstart.core.config import Settings
from transcripts import Segment, Transcript

__all__ = ["Transcribe", "Embed", "transcript_to_json", "transcript_from_json"]


def transcript_to_json(transcript) -> str:
    return json.dumps(
        {
            "language": transcript.language,
            "duration": transcript.duration,
            "model": transcript.model,
            "engine": transcript.engine,
            "segments": [[s.start, s.end, s.text, s.avg_logprob] for s in transcript.segments],
        }
    )


def transcript_from_json(text: str):
    data = json.loads(text)
    segments = [
        Segment(float(a), float(b), str(c), None if d is None else float(d))
        for a, b, c, d in data.pop("segments")
    ]
    return Transcript(segments=segments, **data)


def _settings(settings_json: str):
    return Settings.model_validate_json(settings_json)


class Transcribe:
    """Rows (item_id, path) -> (item_id, transcript JSON or "", error or "", audio seconds)."""

    def __init__(self, settings_json: str, threads: int = 0) -> None:
        self.settings = _settings(settings_json)
        self.engine = engine_for(self.settings, threads=threads or None)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        cfg = self.settings.transcribe
        out = {"item_id": [], "transcript": [], "error": [], "seconds": []}
        for item_id, path in zip(batch["item_id"], batch["path"]):
            transcript, error = transcribe_one(
                self.engine, Path(path), cfg.chunk_seconds, cfg.language
            )
            out["item_id"].append(str(item_id))
            out["transcript"].append("" if transcript is None else transcript_to_json(transcript))
            out["error"].append(error or ("" if transcript is not None else "unknown error"))
            out["seconds"].append(0.0 if transcript is None else float(transcript.duration))
        return pd.DataFrame(out)


class Embed:
    """Rows (item_id, item JSON, segments JSON, stored hashes JSON) -> one row per text
    unit: (item_id, passage, start, end, text, text_hash, vector bytes or b"" when the
    stored vector's text is unchanged). Passages are split exactly as `embed_items` does."""

    def __init__(self, settings_json: str, threads: int = 0) -> None:
        self.settings = _settings(settings_json)
        if threads:
            torch.set_num_threads(threads)
        self.encoder = load_encoder(self.settings)

    def units(self, item: dict, segments: list) -> list:
        units = []
        own = item_text(item)
        if own:
            units.append(TextUnit(item["item_id"], -1, own))
        if item.get("kind") == "episode" and segments:
            frame = pd.DataFrame(segments, columns=["start", "end", "text"])
            for i, (start, end, text) in enumerate(
                split_passages(frame, self.settings.embed.passage_tokens, self.encoder.count_tokens)
            ):
                units.append(TextUnit(item["item_id"], i, text, start, end))
        return units

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        units, todo = [], []
        for item_json, seg_json, known_json in zip(
            batch["item"], batch["segments"], batch["known"]
        ):
            known = json.loads(known_json)
            for unit in self.units(json.loads(item_json), json.loads(seg_json)):
                units.append(unit)
                if known.get(str(unit.passage)) != unit.text_hash:
                    todo.append(len(units) - 1)
        vectors = self.encoder.encode([units[i].text for i in todo])
        blobs = [b""] * len(units)
        for i, vec in zip(todo, vectors):
            blobs[i] = np.asarray(vec, np.float32).tobytes()
        return pd.DataFrame(
            {
                "item_id": [u.item_id for u in units],
                "passage": np.array([u.passage for u in units], np.int64),
                "start": np.array(
                    [np.nan if u.start is None else u.start for u in units], np.float64
                ),
                "end": np.array([np.nan if u.end is None else u.end for u in units], np.float64),
                "text": [u.text for u in units],
                "text_hash": [u.text_hash for u in units],
                "vector": blobs,
                "model_id": [self.encoder.model_id] * len(units),
            }
        )
