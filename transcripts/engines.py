"""Two Whisper engines behind one interface.

Both decode with the same explicit settings (beam size, temperature 0 without
fallback, no conditioning on previous text unless asked) so that they produce the same
words:

- `faster-whisper`: CTranslate2, int8 on CPU, loads the CTranslate2 weights directly.
- `openai-whisper`: PyTorch; the same weights converted once into an openai-whisper
  checkpoint cached under `<cache_dir>/<model>.pt` (see transcripts.convert).

Engines take 16 kHz mono float32 arrays; timestamps they return are relative to the
array. Splitting a long file into pieces is transcripts.transcribe's job.

faster-whisper alone offers two speed-ups, off unless asked for (DecodeOptions):
`vad_filter` (Silero VAD drops silence before decoding) and `batch_size` > 0
(faster-whisper's BatchedInferencePipeline: chunks of at most 30 s decoded
`batch_size` at a time; with `vad_filter` they are VAD's speech chunks and the rest is
dropped, without it they tile the whole signal, cut at pauses: transcripts.chunks).
`without_timestamps`
samples text tokens only: segments then span a whole 30 s window (or VAD chunk).
openai-whisper has neither VAD nor batching and ignores those two options.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel

from transcripts.chunks import pause_chunks
from transcripts.types import ModelError, Segment
from transcripts.weights import ModelRef, resolve_model

__all__ = [
    "DecodeOptions",
    "Engine",
    "FasterWhisperEngine",
    "OpenAIWhisperEngine",
    "ENGINES",
    "load_engine",
    "prepare_model",
    "default_cache_dir",
]


def default_cache_dir() -> Path:
    """`~/.cache/transcripts/whisper`: where converted checkpoints go when the caller
    names no `cache_dir` (the application always passes its own, under its home)."""
    return Path.home() / ".cache" / "transcripts" / "whisper"


@dataclass(frozen=True)
class DecodeOptions:
    beam_size: int = 1
    # None: detect per file on multilingual models; English-only models always use "en".
    language: str | None = None
    # faster-whisper only: drop silence with Silero VAD before decoding.
    vad_filter: bool = False
    # faster-whisper only: > 0 decodes chunks of <= 30 s this many at a time
    # (BatchedInferencePipeline): VAD's speech chunks with vad_filter, else chunks that
    # cover the whole signal, cut at pauses (transcripts.chunks.pause_chunks).
    batch_size: int = 0
    # Sample text tokens only; segment times are then window (or VAD chunk) bounds.
    without_timestamps: bool = False
    # Prompt each 30 s window with the previous one's text (both engines; sequential only).
    condition_on_previous_text: bool = False
    # faster-whisper's Silero VadOptions as (name, value) pairs, e.g. (("threshold", 0.2),);
    # empty: the library's defaults. Used where VAD runs (vad_filter).
    vad_parameters: tuple[tuple[str, float], ...] = ()


class Engine(ABC):
    """Transcribes one in-memory 16 kHz mono float32 signal."""

    name: str

    def __init__(self, model: ModelRef, options: DecodeOptions) -> None:
        self.model = model
        self.options = options

    def _language(self, language: str | None) -> str | None:
        if not self.model.multilingual:
            return "en"
        return language or self.options.language

    @abstractmethod
    def transcribe(
        self, audio: np.ndarray, language: str | None = None
    ) -> tuple[str | None, list[Segment]]:
        """(language, segments with times relative to `audio`)."""


class FasterWhisperEngine(Engine):
    name = "faster-whisper"

    def __init__(self, model: ModelRef, options: DecodeOptions, cpu_threads: int = 0) -> None:
        super().__init__(model, options)

        try:
            self._model = WhisperModel(
                str(model.path), device="cpu", compute_type="int8", cpu_threads=cpu_threads
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"faster-whisper cannot load {model.path}: {exc}") from exc
        self._batched = None
        if options.batch_size > 0:
            self._batched = BatchedInferencePipeline(self._model)

    def transcribe(self, audio, language=None):
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        common = dict(
            language=self._language(language),
            task="transcribe",
            beam_size=self.options.beam_size,
            temperature=0.0,
            condition_on_previous_text=self.options.condition_on_previous_text,
            without_timestamps=self.options.without_timestamps,
        )
        vad_parameters = dict(self.options.vad_parameters) or None
        if self._batched is not None and self.options.vad_filter:
            # VAD chunks: what Silero VAD scores as non-speech is dropped.
            segments, info = self._batched.transcribe(
                audio,
                vad_filter=True,
                vad_parameters=vad_parameters,
                batch_size=self.options.batch_size,
                **common,
            )
        elif self._batched is not None:
            # Chunks tiling the whole signal, cut at pauses: nothing is dropped.
            if audio.size == 0:
                return self._language(language), []
            segments, info = self._batched.transcribe(
                audio,
                clip_timestamps=pause_chunks(audio),
                batch_size=self.options.batch_size,
                **common,
            )
        else:
            segments, info = self._model.transcribe(
                audio, vad_filter=self.options.vad_filter, vad_parameters=vad_parameters, **common
            )
        out = [
            Segment(float(s.start), float(s.end), s.text.strip(), float(s.avg_logprob))
            for s in segments
            if s.text.strip()
        ]
        return info.language, out


class OpenAIWhisperEngine(Engine):
    name = "openai-whisper"

    def __init__(
        self, model: ModelRef, options: DecodeOptions, cache_dir: Path, cpu_threads: int = 0
    ) -> None:
        super().__init__(model, options)
        # Imported here: only this engine needs openai-whisper and torch (about 6 s to
        # import, `python -X importtime -c 'import whisper'`); the default CTranslate2
        # engine and `import transcripts` do without them.
        import torch
        import whisper

        if cpu_threads > 0:
            torch.set_num_threads(cpu_threads)

        from transcripts.convert import ensure_openai_checkpoint  # imports torch: see above

        checkpoint = ensure_openai_checkpoint(model.path, Path(cache_dir) / f"{model.slug}.pt")
        try:
            self._model = whisper.load_model(str(checkpoint), device="cpu")
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelError(f"openai-whisper cannot load {checkpoint}: {exc}") from exc
        self._model.eval()
        self._torch = torch

    def transcribe(self, audio, language=None):
        with self._torch.inference_mode():
            result = self._model.transcribe(
                np.ascontiguousarray(audio, dtype=np.float32),
                language=self._language(language),
                task="transcribe",
                beam_size=self.options.beam_size,
                temperature=0.0,
                condition_on_previous_text=self.options.condition_on_previous_text,
                without_timestamps=self.options.without_timestamps,
                fp16=False,
                verbose=None,
            )
        out = [
            Segment(float(s["start"]), float(s["end"]), s["text"].strip(), float(s["avg_logprob"]))
            for s in result["segments"]
            if s["text"].strip()
        ]
        return result.get("language"), out


ENGINES: dict[str, type[Engine]] = {
    FasterWhisperEngine.name: FasterWhisperEngine,
    OpenAIWhisperEngine.name: OpenAIWhisperEngine,
}


def prepare_model(engine: str, model: str, cache_dir: Path | str | None = None) -> ModelRef:
    """Resolve the model and make the engine's on-disk format (joined parts, converted
    checkpoint) without loading it: run once in a parent before starting workers."""
    if engine not in ENGINES:
        raise ModelError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    ref = resolve_model(model, cache)
    if engine == OpenAIWhisperEngine.name:
        # Imported here: the converter imports torch (about 4.5 s), which only the openai
        # engine needs.
        from transcripts.convert import ensure_openai_checkpoint

        ensure_openai_checkpoint(ref.path, cache / f"{ref.slug}.pt")
    return ref


@functools.lru_cache(maxsize=4)
def load_engine(
    engine: str = "faster-whisper",
    model: str = "tiny.en",
    cache_dir: Path | str | None = None,
    beam_size: int = 1,
    language: str | None = None,
    threads: int = 0,
    *,
    vad_filter: bool = False,
    batch_size: int = 0,
    without_timestamps: bool = False,
    condition_on_previous_text: bool = False,
    vad_parameters: tuple[tuple[str, float], ...] = (),
) -> Engine:
    """An engine with its model loaded; cached per process so models load once.

    `threads`: CPU threads for the engine (0 keeps the library default). The keyword
    options are DecodeOptions' (faster-whisper's VAD and batching, text-only decoding).
    """
    if engine not in ENGINES:
        raise ModelError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    ref = resolve_model(model, cache)
    if batch_size < 0:
        raise ValueError(f"batch_size must be 0 (sequential) or more, not {batch_size}")
    options = DecodeOptions(
        beam_size=beam_size,
        language=language,
        vad_filter=vad_filter,
        batch_size=batch_size,
        without_timestamps=without_timestamps,
        condition_on_previous_text=condition_on_previous_text,
        vad_parameters=tuple(vad_parameters),
    )
    if engine == OpenAIWhisperEngine.name:
        return OpenAIWhisperEngine(ref, options, cache, cpu_threads=threads)
    return FasterWhisperEngine(ref, options, cpu_threads=threads)
