"""Decoding: every supported format to 16 kHz mono float32, in bounded pieces; clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transcripts import SAMPLE_RATE, AudioError, load_audio, probe_duration, stream_audio
from transcripts.audio import ENCODERS, write_audio

JFK = Path(__file__).parent / "data" / "jfk.flac"


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    return load_audio(JFK)


def test_jfk_decodes_to_16k_mono_float32(jfk):
    assert jfk.dtype == np.float32 and jfk.ndim == 1
    assert jfk.size == 11 * SAMPLE_RATE
    assert 0.1 < np.abs(jfk).max() < 2.0  # real speech, not silence or garbage


@pytest.mark.parametrize("suffix", sorted(ENCODERS))
def test_each_format_round_trips(tmp_path, jfk, suffix):
    path = write_audio(tmp_path / f"clip{suffix}", jfk)
    decoded = load_audio(path)
    # Lossy codecs add priming samples; the length stays within 0.1 s.
    assert decoded.dtype == np.float32
    assert abs(decoded.size - jfk.size) < 0.1 * SAMPLE_RATE
    # The waveform survives: after undoing the codec's delay, its loudness envelope
    # (100 ms frames) correlates with the source's.
    delay = max(0, decoded.size - jfk.size)
    shifted = decoded[delay:]
    n = min(shifted.size, jfk.size) // 1600 * 1600
    env_a = np.sqrt((jfk[:n].reshape(-1, 1600) ** 2).mean(1))
    env_b = np.sqrt((shifted[:n].reshape(-1, 1600) ** 2).mean(1))
    assert np.corrcoef(env_a, env_b)[0, 1] > 0.95
    assert probe_duration(path) == pytest.approx(11.0, abs=0.1)


def test_resamples_other_rates_and_stereo(tmp_path):
    t = np.arange(44_100 * 2) / 44_100
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = write_audio(tmp_path / "tone.wav", tone, rate=44_100)
    audio = load_audio(path)
    assert audio.size == pytest.approx(2 * SAMPLE_RATE, abs=32)
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE)[spectrum.argmax()] == pytest.approx(
        440, abs=2
    )


def test_stream_yields_fixed_pieces_that_concatenate_to_the_whole(jfk):
    pieces = list(stream_audio(JFK, chunk_seconds=4))
    assert [p.size for p in pieces] == [64_000, 64_000, 48_000]
    np.testing.assert_array_equal(np.concatenate(pieces), jfk)


def test_empty_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "empty.mp3"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.mp3.*empty") as err:
        load_audio(path)
    assert err.value.path == str(path)


@pytest.mark.parametrize(
    "name, content, cause",
    [
        ("notes.txt", b"these are not the samples you are looking for\n" * 20, "no audio stream"),
        (
            "noise.mp3",
            bytes(np.random.default_rng(0).integers(0, 256, 8000, dtype=np.uint8)),
            "not a readable audio file",
        ),
    ],
)
def test_non_audio_is_an_error_naming_it(tmp_path, name, content, cause):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError, match=f"{name}.*{cause}"):
        load_audio(path)


def test_missing_file_and_directory_are_errors(tmp_path):
    with pytest.raises(AudioError, match="gone.wav: file not found"):
        load_audio(tmp_path / "gone.wav")
    with pytest.raises(AudioError, match="not a regular file"):
        load_audio(tmp_path)


def test_header_without_samples_is_an_error(tmp_path, jfk):
    good = write_audio(tmp_path / "clip.wav", jfk).read_bytes()
    truncated = tmp_path / "header-only.wav"
    truncated.write_bytes(good[:44])  # the RIFF header alone: a wav with no samples
    with pytest.raises(AudioError, match="header-only.wav"):
        load_audio(truncated)


def test_video_without_audio_stream_is_an_error(tmp_path):
    import av

    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width = stream.height = 32
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(AudioError, match="silent-film.mp4: the file has no audio stream"):
        load_audio(path)


def test_package_imports_nothing_from_the_other_packages():
    import subprocess
    import sys

    code = (
        "import sys, transcripts, transcripts.convert, transcripts.transcribe\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('coldstart', 'graph', 'training'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
