"""Batched decoding without the VAD gate: chunks tile the whole signal and cut at pauses.

The chunking is checked exactly on planted speech probabilities, and with the real
Silero VAD on real speech; the engine built on it is checked by word error rate on
real speech (never exact words: int8 decodes differ between CPUs)."""

from __future__ import annotations

import numpy as np
import pytest
from speech import JFK, JFK_TEXT, MAX_WER

from transcripts import SAMPLE_RATE, load_audio, load_engine, transcribe_file
from transcripts.audio import write_audio
from transcripts.chunks import FRAME, pause_chunks, speech_probabilities
from transcripts.wer import word_error_rate


def _tiles(chunks: list[dict], seconds: float) -> bool:
    """Consecutive, gap-free, from 0 to the end."""
    ends = [c["end"] for c in chunks[:-1]]
    starts = [c["start"] for c in chunks[1:]]
    return chunks[0]["start"] == 0 and ends == starts and chunks[-1]["end"] == seconds


def test_short_audio_is_one_chunk():
    audio = np.zeros(20 * SAMPLE_RATE, dtype=np.float32)
    assert pause_chunks(audio) == [{"start": 0.0, "end": 20.0}]
    assert pause_chunks(np.zeros(0, dtype=np.float32)) == [{"start": 0.0, "end": 0.0}]


def test_chunks_tile_the_signal_and_cut_at_the_quietest_frames():
    seconds = 100.0
    audio = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    frames = -(-audio.size // FRAME)
    probs = np.ones(frames, dtype=np.float32)  # speech everywhere ...
    pauses = [22.0, 47.0, 70.0]  # ... but for three short pauses
    for p in pauses:
        first = int(p * SAMPLE_RATE) // FRAME
        probs[first : first + 10] = 0.0
    chunks = pause_chunks(audio, probabilities=probs)
    assert _tiles(chunks, seconds)
    assert all(c["end"] - c["start"] <= 30.0 for c in chunks)
    cuts = [c["end"] for c in chunks[:-1]]
    assert len(cuts) == len(pauses)
    for cut, pause in zip(cuts, pauses):
        assert pause <= cut <= pause + 10 * FRAME / SAMPLE_RATE, (cut, pause)


def test_without_pauses_chunks_stay_within_bounds():
    seconds = 200.0
    audio = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    probs = np.ones(-(-audio.size // FRAME), dtype=np.float32)
    chunks = pause_chunks(audio, max_seconds=30.0, min_seconds=10.0, probabilities=probs)
    assert _tiles(chunks, seconds)
    lengths = [c["end"] - c["start"] for c in chunks]
    assert all(10.0 <= n <= 30.0 for n in lengths[:-1]) and 0 < lengths[-1] <= 30.0


def test_bad_bounds_are_refused():
    audio = np.zeros(40 * SAMPLE_RATE, dtype=np.float32)
    with pytest.raises(ValueError, match="min_seconds"):
        pause_chunks(audio, max_seconds=10.0, min_seconds=10.0)
    with pytest.raises(ValueError, match="frame probabilities"):
        pause_chunks(audio, probabilities=np.ones(3))


def _jfk_with_gaps(copies: int, gap_seconds: float) -> tuple[np.ndarray, list[float]]:
    """JFK's 11 s, `copies` times, separated by silence; returns the gaps' (start, end)."""
    jfk = load_audio(JFK)
    gap = np.zeros(int(gap_seconds * SAMPLE_RATE), dtype=np.float32)
    parts, gaps, at = [], [], 0
    for i in range(copies):
        parts.append(jfk)
        at += jfk.size
        if i < copies - 1:
            parts.append(gap)
            gaps.append((at / SAMPLE_RATE, (at + gap.size) / SAMPLE_RATE))
            at += gap.size
    return np.concatenate(parts), gaps


def test_real_vad_cuts_real_speech_in_its_pauses():
    audio, gaps = _jfk_with_gaps(copies=6, gap_seconds=1.5)  # 75 s
    probs = speech_probabilities(audio)
    assert probs.shape == (-(-audio.size // FRAME),)
    chunks = pause_chunks(audio)
    assert _tiles(chunks, audio.size / SAMPLE_RATE)
    assert len(chunks) >= 3
    for c in chunks[:-1]:  # every cut lands in one of the silent gaps
        assert any(a <= c["end"] <= b for a, b in gaps), (c, gaps)


@pytest.fixture(scope="module")
def batched_no_vad(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "whisper-models"
    return load_engine(
        "faster-whisper",
        "tiny.en",
        str(cache),
        5,
        vad_filter=False,
        batch_size=4,
        without_timestamps=True,
    )


def test_batched_pause_cuts_keep_every_repetition(tmp_path, batched_no_vad):
    # 6 readings with short gaps, through the file path the CLI runs, in 40 s pieces.
    audio, _ = _jfk_with_gaps(copies=6, gap_seconds=1.5)
    path = write_audio(tmp_path / "jfk6.flac", audio)
    t = transcribe_file(path, batched_no_vad, chunk_seconds=40)
    assert word_error_rate(" ".join([JFK_TEXT] * 6), t.text) <= MAX_WER, t.text
    starts = [s.start for s in t.segments]
    assert starts == sorted(starts)
    assert all(0 <= s.start <= s.end <= t.duration for s in t.segments)
