"""Transcribe a file of any length in bounded pieces, stitching timestamps together.

The file streams in as pieces of `chunk_seconds`. Each pass transcribes the carried
tail of the previous pass plus the next piece; segments that end well before the
end of that buffer are final, and the buffer restarts at the end of the last final
segment, so a word cut by a piece boundary is transcribed again from its start.
Memory stays at about one piece plus a short tail whatever the episode's length.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from transcripts.audio import SAMPLE_RATE, stream_audio
from transcripts.engines import Engine, load_engine
from transcripts.types import Segment, Transcript

__all__ = ["transcribe_file", "MIN_CHUNK_SECONDS"]

# Segments ending inside the last TAIL_SECONDS of a buffer may be cut off mid-word.
TAIL_SECONDS = 5.0
# Whisper reads 30-second windows; a piece must be comfortably longer than the tail.
MIN_CHUNK_SECONDS = 30.0


def _final_segments(
    segments: list[Segment], buffer_seconds: float, last: bool
) -> tuple[list[Segment], float]:
    """(segments to keep, seconds of the buffer they consume)."""
    if last:
        return segments, buffer_seconds
    keep = [s for s in segments if s.end <= buffer_seconds - TAIL_SECONDS]
    if keep:
        return keep, keep[-1].end
    if segments and segments[0].start > 0:  # speech begins late: carry it from its start
        return [], segments[0].start
    if segments:  # one segment fills the buffer from its start: take it whole rather than loop
        return segments, buffer_seconds
    # Silence or noise: carry only the tail, where speech may be starting.
    return [], max(0.0, buffer_seconds - TAIL_SECONDS)


def transcribe_file(
    path: Path | str,
    engine: Engine | str = "faster-whisper",
    *,
    chunk_seconds: float = 300.0,
    language: str | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> Transcript:
    """Transcribe one audio file; raises AudioError when it cannot be decoded.

    `on_progress(seconds)` is called with the seconds of audio finished after each pass.
    """
    if isinstance(engine, str):
        engine = load_engine(engine)
    chunk_seconds = max(float(chunk_seconds), MIN_CHUNK_SECONDS)
    pieces = stream_audio(path, chunk_seconds)
    piece = next(pieces)  # raises AudioError for empty or unreadable files
    buffer = np.zeros(0, dtype=np.float32)
    offset = 0.0  # seconds from the file's start to the buffer's start
    total_samples = 0
    detected = language
    segments: list[Segment] = []
    while piece is not None:
        following = next(pieces, None)
        total_samples += piece.size
        buffer = piece if buffer.size == 0 else np.concatenate([buffer, piece])
        buffer_seconds = buffer.size / SAMPLE_RATE
        found_language, found = engine.transcribe(buffer, detected)
        # The first pass decides the language for the rest of the file.
        detected = detected or found_language
        keep, consumed = _final_segments(found, buffer_seconds, last=following is None)
        for s in keep:
            start = min(max(s.start, 0.0), buffer_seconds)
            end = min(max(s.end, start), buffer_seconds)
            if segments and offset + start < segments[-1].start:
                start = segments[-1].start - offset
            segments.append(Segment(offset + start, offset + end, s.text, s.avg_logprob))
        cut = int(round(consumed * SAMPLE_RATE))
        buffer = buffer[cut:].copy()
        offset += cut / SAMPLE_RATE
        if on_progress is not None:
            on_progress(offset)
        piece = following
    return Transcript(
        language=detected,
        duration=total_samples / SAMPLE_RATE,
        model=engine.model.name,
        engine=engine.name,
        segments=segments,
    )
