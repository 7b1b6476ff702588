"""Typed results and errors shared by every stage of the transcription pipeline."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["Segment", "Transcript", "AudioError", "ModelError"]


class AudioError(ValueError):
    """An audio file that cannot be decoded: empty, corrupt, not audio, or unreadable."""

    def __init__(self, path, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


class ModelError(RuntimeError):
    """A Whisper model that cannot be resolved, converted, or loaded."""


@dataclass(frozen=True)
class Segment:
    """A stretch of speech; times are seconds from the start of the file."""

    start: float
    end: float
    text: str
    avg_logprob: float | None = None


@dataclass
class Transcript:
    language: str | None
    duration: float
    model: str
    engine: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    def to_dict(self) -> dict:
        data = asdict(self)
        data["text"] = self.text
        return data
