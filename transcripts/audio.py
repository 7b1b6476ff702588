"""Decode any audio file PyAV can read to 16 kHz mono float32, in bounded chunks.

PyAV bundles FFmpeg's libraries, so wav, flac, mp3, ogg/opus and m4a/aac decode
without a system ffmpeg. `stream_audio` yields the resampled signal in pieces of
`chunk_seconds`, so a two-hour episode never sits in memory as one array unless a
caller asks for it with `load_audio`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from transcripts.types import AudioError

__all__ = ["SAMPLE_RATE", "stream_audio", "load_audio", "probe_duration", "write_audio", "ENCODERS"]

SAMPLE_RATE = 16_000


def _open(path: Path):
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    if not os.access(path, os.R_OK):
        raise AudioError(path, "permission denied")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise AudioError(path, f"not a readable audio file ({exc.strerror or exc})") from exc
    if not container.streams.audio:
        container.close()
        raise AudioError(path, "the file has no audio stream")
    return container


def probe_duration(path: Path | str) -> float | None:
    """Duration in seconds from the container's header, or None when it does not say."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
    return None


def _frames(container, path: Path):
    """Decoded frames of the first audio stream; isolated bad packets are skipped."""
    stream = container.streams.audio[0]
    decoded = container.decode(stream)
    bad = 0
    while True:
        try:
            frame = next(decoded)
        except StopIteration:
            return
        except av.error.InvalidDataError as exc:
            bad += 1
            if bad > 100:
                raise AudioError(path, f"corrupt audio data ({exc.strerror or exc})") from exc
            continue
        except av.FFmpegError as exc:
            raise AudioError(path, f"decoding failed ({exc.strerror or exc})") from exc
        frame.pts = None  # the resampler must not enforce timestamp continuity
        yield frame


def stream_audio(path: Path | str, chunk_seconds: float = 300.0) -> Iterator[np.ndarray]:
    """Yield 16 kHz mono float32 pieces of exactly `chunk_seconds` (the last may be shorter).

    Raises AudioError naming the file when it is missing, empty, not audio, corrupt,
    or decodes to no samples at all.
    """
    path = Path(path)
    chunk = max(1, int(round(chunk_seconds * SAMPLE_RATE)))
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    pending: list[np.ndarray] = []
    buffered = 0
    total = 0
    with _open(path) as container:
        for frame in itertools.chain(_frames(container, path), [None]):
            try:
                resampled = resampler.resample(frame)
            except av.FFmpegError as exc:
                raise AudioError(path, f"resampling failed ({exc.strerror or exc})") from exc
            for out in resampled:
                samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                pending.append(samples)
                buffered += samples.size
            while buffered >= chunk:
                joined = np.concatenate(pending)
                yield joined[:chunk]
                total += chunk
                rest = joined[chunk:]
                pending, buffered = ([rest] if rest.size else []), rest.size
    if buffered:
        total += buffered
        yield np.concatenate(pending)
    if total == 0:
        raise AudioError(path, "the audio stream decodes to no samples")


def load_audio(path: Path | str) -> np.ndarray:
    """The whole file as one 16 kHz mono float32 array (for short clips)."""
    return np.concatenate(list(stream_audio(path, chunk_seconds=600.0)))


# suffix -> (container format, codec, sample format). All ship with PyAV's FFmpeg.
ENCODERS = {
    ".wav": ("wav", "pcm_s16le", "s16"),
    ".flac": ("flac", "flac", "s16"),
    ".mp3": ("mp3", "libmp3lame", "fltp"),
    ".ogg": ("ogg", "libopus", "flt"),
    ".opus": ("ogg", "libopus", "flt"),
    ".m4a": ("ipod", "aac", "fltp"),
}


def write_audio(
    path: Path | str, samples: np.ndarray, rate: int = SAMPLE_RATE, bit_rate: int | None = None
) -> Path:
    """Encode a mono float32 signal to `path`; the codec follows the suffix (see ENCODERS).

    `bit_rate` (bits per second) applies to the lossy codecs; None keeps the codec's default."""
    path = Path(path)
    if path.suffix.lower() not in ENCODERS:
        raise ValueError(f"{path}: cannot encode {path.suffix!r}; use one of {', '.join(ENCODERS)}")
    fmt, codec, sample_format = ENCODERS[path.suffix.lower()]
    if codec == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
        raise ValueError(f"{path}: opus cannot encode at {rate} Hz")
    signal = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        if bit_rate is not None:
            stream.bit_rate = int(bit_rate)
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=rate)
        block = 1 << 16
        for start in range(0, signal.size, block):
            frame = av.AudioFrame.from_ndarray(
                signal[None, start : start + block], format="flt", layout="mono"
            )
            frame.sample_rate = rate
            for out in resampler.resample(frame):
                container.mux(stream.encode(out))
        for out in resampler.resample(None):
            container.mux(stream.encode(out))
        container.mux(stream.encode(None))
    return path
