"""Chunks for batched decoding that keep every word: cut at pauses, drop nothing.

faster-whisper's BatchedInferencePipeline decodes chunks of at most 30 s. By default it
makes them with Silero VAD, which also *drops* whatever it scores as non-speech; on
conversation (telephone lines, quiet or overlapping speakers, old tape) that gate
dropped whole phrases (docs/transcripts.md). `pause_chunks` uses the same VAD model
only to find *where to cut*: the chunks tile the whole signal, end to end, and each
cut falls on the least speech-like moment between `min_seconds` and `max_seconds`
after the previous cut, so a cut lands in a pause rather than inside a word.
"""

from __future__ import annotations

import numpy as np
from faster_whisper.vad import get_vad_model

__all__ = ["pause_chunks", "speech_probabilities", "CHUNK_SECONDS", "MIN_CHUNK_SECONDS"]

SAMPLE_RATE = 16_000
# Silero VAD scores frames of 512 samples (32 ms) at 16 kHz.
FRAME = 512
# Whisper reads 30-second windows: a chunk longer than that would lose its end.
CHUNK_SECONDS = 30.0
# The earliest a cut may come after the previous one (shorter chunks waste batch slots).
MIN_CHUNK_SECONDS = 10.0
# Frames averaged when looking for a pause (5 x 32 ms): a pause, not one quiet frame.
SMOOTH_FRAMES = 5


def speech_probabilities(audio: np.ndarray) -> np.ndarray:
    """Silero VAD's speech probability for each 512-sample frame of 16 kHz audio."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    padded = np.pad(audio, (0, -audio.size % FRAME))
    if padded.size == 0:
        return np.zeros(0, dtype=np.float32)
    return np.asarray(get_vad_model()(padded), dtype=np.float32).reshape(-1)


def pause_chunks(
    audio: np.ndarray,
    max_seconds: float = CHUNK_SECONDS,
    min_seconds: float = MIN_CHUNK_SECONDS,
    probabilities: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """[{"start": s, "end": s}, ...] in seconds: consecutive chunks covering all of
    `audio` (16 kHz), each at most `max_seconds`, cut at the quietest smoothed frame.

    `probabilities` (per 512-sample frame) default to Silero VAD's; pass your own to
    cut elsewhere (tests do). Audio of `max_seconds` or less is one chunk."""
    if not 0 < min_seconds < max_seconds:
        raise ValueError(f"need 0 < min_seconds < max_seconds, got {min_seconds}, {max_seconds}")
    total = int(np.asarray(audio).shape[0])
    if total <= max_seconds * SAMPLE_RATE:
        return [{"start": 0.0, "end": total / SAMPLE_RATE}]
    probs = speech_probabilities(audio) if probabilities is None else np.asarray(probabilities)
    if probs.shape[0] < -(-total // FRAME):
        raise ValueError(f"{probs.shape[0]} frame probabilities for {total} samples")
    smooth = np.convolve(probs, np.ones(SMOOTH_FRAMES) / SMOOTH_FRAMES, mode="same")
    cuts = [0]
    while total - cuts[-1] > max_seconds * SAMPLE_RATE:
        start = cuts[-1]
        first = -(-(start + int(min_seconds * SAMPLE_RATE)) // FRAME)  # frames fully inside
        last = (start + int(max_seconds * SAMPLE_RATE)) // FRAME - 1
        quietest = first + int(np.argmin(smooth[first:last]))  # the earliest of equals
        cuts.append(quietest * FRAME + FRAME // 2)  # the middle of the quietest frame
    cuts.append(total)
    return [{"start": a / SAMPLE_RATE, "end": b / SAMPLE_RATE} for a, b in zip(cuts[:-1], cuts[1:])]
