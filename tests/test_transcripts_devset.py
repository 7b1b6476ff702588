"""Real recorded speech: the dev set itself, the default config's accuracy, engine parity.

Every bound is a word error rate (Whisper's normaliser) with room to spare over what
benchmarks/transcribe.py measured, because int8 decodes differ between CPUs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coldstart.core.config import TranscribeSettings
from transcripts import load_engine, probe_duration, transcribe_file
from transcripts.wer import corpus_word_error_rate, word_error_rate

DEFAULT = TranscribeSettings()
DEV_SET = Path(__file__).parent / "data" / "speech-dev"  # README.md there: sources, licences


def dev_clips() -> list[dict]:
    """The dev set's clips: file, path, text (reference), seconds, words, source, licence."""
    manifest = json.loads((DEV_SET / "manifest.json").read_text())
    return [dict(c, path=DEV_SET / c["file"]) for c in manifest["clips"]]


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory):
    return str(tmp_path_factory.getbasetemp() / "whisper-models")


def _engine(name: str, model: str, beam_size: int, cache: str, **options):
    return load_engine(name, model, cache, beam_size, None, 0, **options)


def default_engine(cache: str):
    from coldstart.content.speech import engine_for
    from coldstart.core.config import Settings

    return engine_for(Settings(home=Path(cache)))  # the engine the CLI and the store batches load


def test_dev_set_is_real_speech_with_references_and_licences():
    clips = dev_clips()
    assert sum(c["seconds"] for c in clips) >= 180  # at least 3 minutes
    assert (DEV_SET / "README.md").exists()
    for c in clips:
        assert c["path"].exists(), c["file"]
        assert probe_duration(c["path"]) == pytest.approx(c["seconds"], abs=0.1)
        assert len(c["text"].split()) == c["words"] > 50
        assert "public domain" in c["licence"] and c["source"]
    # Small enough to live in the repository.
    assert sum(c["path"].stat().st_size for c in clips) < 3 * 2**20


def test_default_config_reaches_the_wer_bound_on_a_real_clip(model_cache):
    # Sonnet 1, 53 s of read poetry: the hardest kind of clip in the dev set.
    clip = next(c for c in dev_clips() if c["file"] == "sonnet-001.ogg")
    transcript = transcribe_file(clip["path"], default_engine(model_cache))
    assert transcript.language == "en"
    assert word_error_rate(clip["text"], transcript.text) <= 0.15, transcript.text


def test_batched_pipeline_and_vad_transcribe_real_speech(model_cache):
    clip = next(c for c in dev_clips() if c["file"] == "sonnet-002.ogg")
    for options in ({"vad_filter": True}, {"batch_size": 4}):
        engine = _engine("faster-whisper", "tiny.en", 1, model_cache, **options)
        assert engine.options.vad_filter == options.get("vad_filter", False)
        transcript = transcribe_file(clip["path"], engine)
        assert word_error_rate(clip["text"], transcript.text) <= 0.25, (options, transcript.text)
        assert all(0 <= s.start <= s.end <= transcript.duration + 0.5 for s in transcript.segments)


# The two engines on the whole dev set, same model and beam. Measured difference
# (benchmarks/transcribe.py, docs/transcripts.md): within PARITY_WER of each other.
PARITY_WER = 0.03


@pytest.mark.slow
def test_engines_agree_on_the_dev_set(model_cache):
    clips = dev_clips()
    refs = [c["text"] for c in clips]
    model, beam = DEFAULT.model, DEFAULT.beam_size
    wer = {
        name: corpus_word_error_rate(
            refs,
            [
                transcribe_file(c["path"], _engine(name, model, beam, model_cache)).text
                for c in clips
            ],
        )
        for name in ("faster-whisper", "openai-whisper")
    }
    assert abs(wer["faster-whisper"] - wer["openai-whisper"]) <= PARITY_WER, wer
    assert max(wer.values()) <= 0.12, wer
