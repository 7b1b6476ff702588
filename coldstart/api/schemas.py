"""Request and response bodies (pydantic). Unknown fields in requests are refused."""

from __future__ import annotations

from typing import Annotated, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict

__all__ = [
    "MusicItem",
    "OnboardingRequest",
    "OnboardingBody",
    "ONBOARDING_BODY",
    "RecommendedItem",
    "OnboardingResponse",
    "UploadByPath",
    "UploadStatus",
    "SearchHit",
    "SearchResponse",
]

LANGUAGE = r"^[a-z]{2}$"  # ISO 639-1, as in the data contract


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MusicItem(_Strict):
    item_id: str = Field(
        min_length=1, max_length=200, description="An artist or track id of the catalog."
    )
    weight: float = Field(1.0, ge=0, le=1e9, description="Plays (or any non-negative strength).")


class OnboardingRequest(_Strict):
    music: list[MusicItem] = Field(default_factory=list, max_length=10_000)
    country: str | None = Field(None, min_length=2, max_length=8, examples=["US"])
    language: str | None = Field(None, pattern=LANGUAGE, examples=["en"])
    age: float | None = Field(None, ge=0, le=130)
    k: int = Field(10, ge=1, le=100)


# The same request as plain dicts: what the hot route validates (`api.hot`). pydantic-
# core checks the same constraints and reports the same errors (`loc`, `msg`, `type`)
# without making a model instance per music item; absent fields are absent (the
# defaults above apply: weight 1.0, k 10, None otherwise). OnboardingRequest documents
# the route; tests/test_api_validation.py holds the two to the same answers.
class MusicEntry(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    item_id: Annotated[str, Field(min_length=1, max_length=200)]
    weight: NotRequired[Annotated[float, Field(ge=0, le=1e9)]]


class OnboardingBody(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    music: NotRequired[Annotated[list[MusicEntry], Field(max_length=10_000)]]
    country: NotRequired[Annotated[str | None, Field(min_length=2, max_length=8)]]
    language: NotRequired[Annotated[str | None, Field(pattern=LANGUAGE)]]
    age: NotRequired[Annotated[float | None, Field(ge=0, le=130)]]
    k: NotRequired[Annotated[int, Field(ge=1, le=100)]]


ONBOARDING_BODY: TypeAdapter[OnboardingBody] = TypeAdapter(OnboardingBody)


class RecommendedItem(BaseModel):
    item_id: str
    kind: str
    title: str | None
    score: float
    reasons: list[str]
    language: str | None = None
    genre: str | None = None
    show_id: str | None = None


class OnboardingResponse(BaseModel):
    shows: list[RecommendedItem]
    episodes: list[RecommendedItem]
    audiobooks: list[RecommendedItem]
    fallback: bool = Field(
        description="True when a list fell back to popularity (no usable music history)."
    )
    fallback_lists: list[str] = Field(default_factory=list)
    unknown_items: list[str] = Field(
        default_factory=list, description="Music item ids that were ignored."
    )


class UploadByPath(_Strict):
    show_id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=500)
    description: str | None = Field(None, max_length=20_000)
    language: str | None = Field(None, pattern=LANGUAGE)
    audio_path: str = Field(
        min_length=1, max_length=4096, description="Relative to (or inside) the uploads directory."
    )


class UploadStatus(BaseModel):
    upload_id: str
    item_id: str
    show_id: str | None
    title: str | None
    language: str | None
    status: str
    error: str | None = None
    audience: dict | None = Field(None, description="Predicted audience, once scored.")
    created_at: str
    updated_at: str


class SearchHit(BaseModel):
    item_id: str
    kind: str
    title: str
    score: float
    snippet: str | None = None
    start: float | None = None  # seconds into the episode where the snippet starts
    end: float | None = None  # ... and ends (transcript passages)
    passage: int | None = None  # the transcript passage's number (/v1/search/passages)
    language: str | None = None
    genre: str | None = None


class SearchResponse(BaseModel):
    query: str | None = None
    item_id: str | None = None
    results: list[SearchHit]
