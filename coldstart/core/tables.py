"""The store's schema (SQLAlchemy Core). One MetaData; every stage's tables live here."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "metadata",
    "items",
    "interactions",
    "users",
    "playlists",
    "transcripts",
    "segments",
    "transcription_jobs",
    "content_vectors",
    "uploads",
    "artifacts",
    "leases",
    "CONTRACT_TABLES",
]

metadata = MetaData()

# --- the data contract -------------------------------------------------------

items = Table(
    "items",
    metadata,
    Column("item_id", String, primary_key=True),
    Column("kind", String, nullable=False, index=True),
    Column("title", Text),
    Column("description", Text),
    Column("language", String(8), index=True),
    Column("genre", String),
    Column("show_id", String, index=True),
    Column("author", String),
    Column("audio_path", Text),
    Column("explicit", Boolean, nullable=False, default=False),
    Column("published_at", DateTime),
)

# timestamp 0 means "unknown": it keeps (user, item, timestamp) a usable key
# (NULLs never collide in a primary key, which would break idempotent upserts).
interactions = Table(
    "interactions",
    metadata,
    Column("user_id", String, primary_key=True),
    Column("item_id", String, primary_key=True),
    Column("timestamp", BigInteger, primary_key=True, default=0),
    Column("weight", Float, nullable=False, default=1.0),
    Index("ix_interactions_item", "item_id"),
    # On SQLite the rows live in the primary key's B-tree: one tree to write per row
    # instead of a rowid table plus a key index (a bulk load writes half as much).
    sqlite_with_rowid=False,
)

users = Table(
    "users",
    metadata,
    Column("user_id", String, primary_key=True),
    Column("country", String(8)),
    Column("language", String(8)),
    Column("age", Float),
)

playlists = Table(
    "playlists",
    metadata,
    Column("playlist_id", String, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("item_id", String, nullable=False, index=True),
)

CONTRACT_TABLES = {
    "items": items,
    "interactions": interactions,
    "users": users,
    "playlists": playlists,
}

# --- transcripts -------------------------------------------------------------

transcripts = Table(
    "transcripts",
    metadata,
    Column("item_id", String, primary_key=True),
    Column("engine", String, nullable=False),  # "faster-whisper", "openai-whisper", "provided"
    Column("model", String, nullable=False),
    Column("language", String(8)),
    Column("duration", Float),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

segments = Table(
    "segments",
    metadata,
    Column("item_id", String, primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("start", Float, nullable=False),
    Column("end", Float, nullable=False),
    Column("text", Text, nullable=False),
    Column("avg_logprob", Float),
)

# One row per episode the transcriber has touched: pending -> done | failed.
transcription_jobs = Table(
    "transcription_jobs",
    metadata,
    Column("item_id", String, primary_key=True),
    Column("status", String, nullable=False),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("updated_at", DateTime, nullable=False),
)

# --- embeddings --------------------------------------------------------------

# One row per embedded text unit: an item's own text is passage -1; transcript
# passages are 0..n with their time span. Vectors from different models never mix:
# every read filters on model_id.
content_vectors = Table(
    "content_vectors",
    metadata,
    Column("item_id", String, primary_key=True),
    Column("model_id", String, primary_key=True),
    Column("passage", Integer, primary_key=True),
    Column("start", Float),
    Column("end", Float),
    Column("text", Text),
    Column("text_hash", String, nullable=False),
    Column("vector", LargeBinary, nullable=False),
)

# --- uploads and artifacts ---------------------------------------------------

uploads = Table(
    "uploads",
    metadata,
    Column("upload_id", String, primary_key=True),
    Column("item_id", String, nullable=False, unique=True),
    Column("show_id", String),
    Column("title", Text),
    Column("description", Text),
    Column("language", String(8)),
    Column("audio_path", Text, nullable=False),
    Column("status", String, nullable=False, index=True),
    Column("error", Text),
    Column("audience", JSON),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

# The version of a table whose columnar copy readers may use (coldstart/core/interaction_columns.py):
# ingest writes a new one, in the same transaction, whenever it changes the interactions.
data_versions = Table(
    "data_versions",
    metadata,
    Column("name", String, primary_key=True),
    Column("version", String, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("name", String, primary_key=True),
    Column("path", Text, nullable=False),
    Column("manifest", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# --- work leases ----------------------------------------------------------------

# A batch worker owns an item ("upload:<id>", "transcribe:<item_id>") while this row
# names it and `expires_at` is in the future; a dead worker's rows simply expire.
leases = Table(
    "leases",
    metadata,
    Column("resource", String, primary_key=True),
    Column("owner", String, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("acquired_at", DateTime, nullable=False),
)
