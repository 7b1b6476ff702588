"""HTTP routes: onboarding, uploads, content queries, health, metrics, admin reload."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from coldstart.api.auth import require_token
from coldstart.api.hot import onboarding_answer, validation_errors
from coldstart.api.schemas import (
    OnboardingRequest,
    OnboardingResponse,
    SearchHit,
    SearchResponse,
    UploadByPath,
    UploadStatus,
)
from coldstart.batch.uploads import (
    UploadError,
    UploadTooLarge,
    get_upload,
    new_upload_id,
    register_upload,
    resolve_upload_path,
    upload_file_path,
)
from coldstart.content.search import EmptyQueryError, NoContentVectorError, UnknownItemError

__all__ = ["router"]

router = APIRouter()
FORM_OVERHEAD = 64 * 1024  # room for the multipart boundaries and text fields
# An absolute POSIX or Windows path inside a message (quoted or not).
_PATH = re.compile(r"(?:[A-Za-z]:\\|(?<![\w.])/)(?:[^\s'\"/\\:]+[/\\])+[^\s'\",;)]*")
_PATH_KEYS = {"path", "parquet", "audio_path"}


def public(data):
    """`data` with no file-system path left: path-valued keys dropped, paths inside
    messages replaced by `<path>`. Responses describe state, never server layout."""
    if isinstance(data, dict):
        return {k: public(v) for k, v in data.items() if k not in _PATH_KEYS}
    if isinstance(data, list):
        return [public(v) for v in data]
    if isinstance(data, str):
        return _PATH.sub("<path>", data)
    return data


# --- onboarding ----------------------------------------------------------------------------


def _inline_refs(schema: dict) -> dict:
    """A pydantic JSON schema with its `$defs` references inlined (OpenAPI resolves
    `$ref` against the whole document, where `#/$defs/...` does not exist)."""
    defs = schema.get("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(defs[ref.rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


# The request body is documented from the model but parsed by the route itself.
_ONBOARDING_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inline_refs(OnboardingRequest.model_json_schema())}
        },
    }
}


@router.post(
    "/v1/onboarding",
    response_model=OnboardingResponse,
    tags=["recommend"],
    openapi_extra=_ONBOARDING_BODY,
)
async def onboarding(request: Request) -> Response:
    """Shows, episodes and audiobooks for a new listener, from their music history."""
    # The hot route: the body is parsed and validated in one pass by pydantic-core
    # (`model_validate_json`, errors as 422 naming the field, as for every route), the
    # pipeline runs inline on the event loop (a thread hop would cost more than it
    # frees, and the GIL serialises the work anyway), and the answer is serialised by
    # orjson as plain data: `OnboardingResponse` documents it without re-validating.
    # `coldstart.api.hot.OnboardingRoute` answers this route in front of FastAPI's
    # routing; this handler documents it and answers the same way without it.
    try:
        payload = onboarding_answer(
            request.app.state.serving.current().pipeline, await request.body()
        )
    except ValidationError as exc:
        raise _validation_error(exc) from None
    return Response(payload, media_type="application/json")


# --- uploads ---------------------------------------------------------------------------------


async def _capped(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The request body, refused (413) as soon as it passes `limit` bytes."""
    seen = 0
    async for chunk in stream:
        seen += len(chunk)
        if seen > limit:
            raise UploadTooLarge(limit)
        yield chunk


def _validation_error(exc: ValidationError, prefix: str = "body") -> RequestValidationError:
    return RequestValidationError(validation_errors(exc, prefix))


async def _multipart(request: Request, settings, upload_id: str):
    limit = settings.serve.max_upload_bytes
    parser = MultiPartParser(
        request.headers,
        _capped(request.stream(), limit + FORM_OVERHEAD),
        max_files=1,
        max_fields=10,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:  # malformed or abusive form: the client's fault
        raise RequestValidationError(
            [
                {
                    "loc": ("body",),
                    "msg": f"malformed multipart/form-data: {exc.message}",
                    "type": "value_error",
                }
            ]
        ) from None
    audio = form.get("file")
    if not isinstance(audio, UploadFile):
        raise UploadError(
            "file", "a multipart file field named 'file' is required (or send JSON with audio_path)"
        )
    try:
        if audio.size is not None and audio.size > limit:
            raise UploadTooLarge(limit)
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        dest = upload_file_path(settings, upload_id, audio.filename)
        dest.parent.mkdir(parents=True, exist_ok=True)
        await run_in_threadpool(_copy, audio, dest)
    finally:
        await form.close()
    return fields, dest


def _copy(audio: UploadFile, dest) -> None:
    audio.file.seek(0)
    with open(dest, "wb") as out:
        shutil.copyfileobj(audio.file, out, 1024 * 1024)


@router.post(
    "/v1/uploads",
    status_code=201,
    response_model=UploadStatus,
    tags=["uploads"],
    dependencies=[Depends(require_token)],
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["show_id", "title", "file"],
                        "properties": {
                            "show_id": {"type": "string"},
                            "title": {"type": "string"},
                            "description": {"type": "string"},
                            "language": {"type": "string"},
                            "file": {"type": "string", "format": "binary"},
                        },
                    }
                },
                "application/json": {"schema": UploadByPath.model_json_schema()},
            },
            "required": True,
        }
    },
)
async def create_upload(request: Request) -> UploadStatus:
    """Register a new episode: multipart with its audio `file`, or JSON naming an
    `audio_path` inside the uploads directory. Returns the upload (status `pending`)."""
    settings, store = request.app.state.settings, request.app.state.store
    limit = settings.serve.max_upload_bytes
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + FORM_OVERHEAD:
        raise UploadTooLarge(limit)  # refused before reading a byte of the body
    ctype = request.headers.get("content-type", "").lower()
    upload_id = new_upload_id()
    if ctype.startswith("multipart/form-data"):
        fields, dest = await _multipart(request, settings, upload_id)
        try:
            body = UploadByPath.model_validate({**fields, "audio_path": str(dest)})
        except ValidationError as exc:
            dest.unlink(missing_ok=True)
            raise _validation_error(exc) from None
    elif ctype.startswith("application/json"):
        raw = b"".join(
            [chunk async for chunk in _capped(request.stream(), settings.serve.max_json_bytes)]
        )
        try:
            body = UploadByPath.model_validate_json(raw)
        except ValidationError as exc:
            raise _validation_error(exc) from None
        dest = None
    elif ctype.startswith("application/x-www-form-urlencoded"):
        raise UploadError("file", "a form upload needs multipart/form-data with a 'file' field")
    else:
        raise HTTPException(
            415, "send multipart/form-data (with a 'file') or application/json (with 'audio_path')"
        )
    try:
        audio = dest or await run_in_threadpool(resolve_upload_path, settings, body.audio_path)
        record = await run_in_threadpool(
            register_upload,
            store,
            show_id=body.show_id,
            title=body.title,
            description=body.description,
            language=body.language,
            audio_path=audio,
            upload_id=upload_id,
        )
    except BaseException:
        if dest is not None:
            dest.unlink(missing_ok=True)
        raise
    return UploadStatus(**public(record))


@router.get(
    "/v1/uploads/{upload_id}",
    response_model=UploadStatus,
    tags=["uploads"],
    dependencies=[Depends(require_token)],
)
def upload_status(upload_id: str, request: Request) -> UploadStatus:
    """An upload's status; its predicted audience (listener ids with probabilities)
    once `scored`. Audience data is personal: the token is required."""
    return UploadStatus(**public(get_upload(request.app.state.store, upload_id)))


# --- content queries -----------------------------------------------------------------------


def _search_service(request: Request):
    snapshot = request.app.state.serving.current()
    if snapshot.models.search is None:
        reason = snapshot.models.errors.get("search", "no search index loaded")
        raise HTTPException(503, f"content search is unavailable: {reason}")
    return snapshot.models.search


@router.get("/v1/search", response_model=SearchResponse, tags=["content"])
def search(
    request: Request,
    q: str = Query(..., min_length=1, max_length=500, description="Natural-language query."),
    k: int = Query(10, ge=1, le=100),
    kind: str | None = Query(None, pattern="^(show|episode|audiobook)$"),
    language: str | None = Query(None, pattern="^[a-z]{2}$"),
    genre: str | None = Query(None, max_length=100),
    mode: str | None = Query(None, pattern="^(dense|lexical|hybrid|intent|fused|gated)$"),
) -> SearchResponse:
    service = _search_service(request)
    try:
        hits = service.search(q, k=k, kind=kind, language=language, genre=genre, mode=mode)
    except EmptyQueryError as exc:
        raise RequestValidationError(
            [{"loc": ("query", "q"), "msg": str(exc), "type": "value_error"}]
        ) from None
    return SearchResponse(query=q, results=[SearchHit(**h.to_dict()) for h in hits])


@router.get("/v1/search/passages", response_model=SearchResponse, tags=["content"])
def search_passages(
    request: Request,
    q: str = Query(..., min_length=1, max_length=500, description="Natural-language query."),
    k: int = Query(10, ge=1, le=100),
    language: str | None = Query(None, pattern="^[a-z]{2}$"),
    genre: str | None = Query(None, max_length=100),
) -> SearchResponse:
    """Transcript passages that answer the query: episode, passage text, start and end (s)."""
    service = _search_service(request)
    try:
        hits = service.search_passages(q, k=k, language=language, genre=genre)
    except EmptyQueryError as exc:
        raise RequestValidationError(
            [{"loc": ("query", "q"), "msg": str(exc), "type": "value_error"}]
        ) from None
    return SearchResponse(query=q, results=[SearchHit(**h.to_dict()) for h in hits])


@router.get("/v1/items/{item_id}/similar", response_model=SearchResponse, tags=["content"])
def similar(
    item_id: str,
    request: Request,
    k: int = Query(10, ge=1, le=100),
    kind: str | None = Query(None, pattern="^(show|episode|audiobook|any)$"),
) -> SearchResponse:
    service = _search_service(request)
    try:
        hits = service.similar(item_id, k=k, kind=kind)
    except (UnknownItemError, NoContentVectorError) as exc:
        raise HTTPException(404, str(exc).strip("'\"")) from None
    return SearchResponse(item_id=item_id, results=[SearchHit(**h.to_dict()) for h in hits])


# --- operations --------------------------------------------------------------------------


@router.get("/healthz", tags=["operations"])
def healthz(request: Request) -> dict:
    snapshot = request.app.state.serving.current()
    return public({"status": "ok", "loaded_at": snapshot.loaded_at, **snapshot.models.describe()})


@router.get("/metrics", tags=["operations"])
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.post("/v1/admin/reload", tags=["operations"], dependencies=[Depends(require_token)])
def reload(request: Request) -> dict:
    """Load models, indexes and the catalog again now (the server also does this by
    itself within `serve.reload_check_seconds` of a change)."""
    snapshot = request.app.state.serving.reload()
    return public(
        {"status": "reloaded", "loaded_at": snapshot.loaded_at, **snapshot.models.describe()}
    )
