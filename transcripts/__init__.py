"""Whisper transcription of audio files: decode, transcribe, typed results.

    >>> from transcripts import load_engine, transcribe_file
    >>> t = transcribe_file("episode.mp3", load_engine("faster-whisper", "tiny.en"))
    >>> t.text, t.segments[0].start

This package imports nothing from coldstart, graph or training.
"""

from transcripts.audio import SAMPLE_RATE, load_audio, probe_duration, stream_audio
from transcripts.engines import (
    ENGINES,
    DecodeOptions,
    Engine,
    FasterWhisperEngine,
    OpenAIWhisperEngine,
    default_cache_dir,
    load_engine,
    prepare_model,
)
from transcripts.transcribe import transcribe_file
from transcripts.types import AudioError, ModelError, Segment, Transcript
from transcripts.weights import BUNDLED_MODELS, ModelRef, resolve_model

__all__ = [
    "SAMPLE_RATE",
    "stream_audio",
    "load_audio",
    "probe_duration",
    "Engine",
    "FasterWhisperEngine",
    "OpenAIWhisperEngine",
    "ENGINES",
    "DecodeOptions",
    "load_engine",
    "prepare_model",
    "default_cache_dir",
    "ModelRef",
    "resolve_model",
    "BUNDLED_MODELS",
    "transcribe_file",
    "Transcript",
    "Segment",
    "AudioError",
    "ModelError",
]
