"""The onboarding route's hot path: `POST /v1/onboarding` answered by a plain ASGI
handler in front of FastAPI's routing.

FastAPI would build a `Request`, solve the route's dependencies and wrap the handler
in its exception and exit-stack middleware for every request; on this route that cost
about as much as the recommendation itself. `OnboardingRoute` sits in front of every
middleware and does their work for this route itself (the body cap, the metrics under
the `/v1/onboarding` route template); it reads the body, validates it in one pass with
pydantic-core into plain dicts (`schemas.ONBOARDING_BODY`, the constraints and errors
of `OnboardingRequest` without a model per music item), runs the pipeline inline
and writes the answer with orjson. Invalid input gets the same 422 body as every other
route (`detail`: pydantic's errors with `loc`, `msg`, `type`; `message`: one line
naming the fields). The FastAPI route stays registered: it documents the route in
OpenAPI and answers the same way (`onboarding_answer`) if this handler is bypassed.
"""

from __future__ import annotations

from time import perf_counter

import orjson
from pydantic import ValidationError
from starlette.responses import JSONResponse

from coldstart.api.schemas import ONBOARDING_BODY, OnboardingRequest
from coldstart.recommend.merge import ScoredItem
from training.data import UserProfile

__all__ = ["PATH", "OnboardingRoute", "onboarding_answer", "validation_errors", "invalid_response"]

PATH = "/v1/onboarding"
_JSON = [(b"content-type", b"application/json")]


def _item(item: ScoredItem) -> dict:
    """One recommended item as `RecommendedItem` data."""
    return {
        "item_id": item.item_id,
        "kind": item.kind,
        "title": item.title,
        "score": round(float(item.score), 6),
        "reasons": item.reasons,
        "language": item.language,
        "genre": item.genre,
        "show_id": item.show_id,
    }


def onboarding_answer(pipeline, body: bytes) -> bytes:
    """The JSON answer to one onboarding body; raises pydantic's `ValidationError`."""
    try:
        request = ONBOARDING_BODY.validate_json(body)
    except ValidationError as exc:
        # Refused: the errors are the documented model's (the same fields and messages;
        # a non-object says `model_type` there), worked out only for a refused body.
        OnboardingRequest.model_validate_json(body)
        raise exc
    music: dict[str, float] = {}
    for entry in request.get("music", ()):
        item_id = entry["item_id"]
        music[item_id] = music.get(item_id, 0.0) + entry.get("weight", 1.0)
    user = UserProfile(
        "anonymous",
        music,
        country=request.get("country"),
        language=request.get("language"),
        age=request.get("age"),
    )
    result = pipeline.recommend(user, request.get("k", 10))
    return orjson.dumps(
        {
            "shows": [_item(i) for i in result.shows],
            "episodes": [_item(i) for i in result.episodes],
            "audiobooks": [_item(i) for i in result.audiobooks],
            "fallback": result.fallback,
            "fallback_lists": result.fallback_lists,
            "unknown_items": result.unknown_items,
        }
    )


def validation_errors(exc: ValidationError, prefix: str = "body") -> list[dict]:
    """pydantic's errors with `loc` under `prefix` and no `ctx` (FastAPI's shape)."""
    errors: list[dict] = []
    for detail in exc.errors(include_url=False):
        err: dict = dict(detail)
        err["loc"] = (prefix, *err.get("loc", ()))
        err.pop("ctx", None)
        errors.append(err)
    return errors


def error_message(errors) -> str:
    parts = []
    for err in errors:
        loc = list(err.get("loc", ()))
        msg = err.get("msg", "invalid")
        if err.get("type") == "json_invalid" and len(loc) == 2:  # loc is (body, character position)
            loc, msg = loc[:1], f"not valid JSON (at character {loc[1]})"
        parts.append(f"{'.'.join(str(p) for p in loc)}: {msg}")
    return "; ".join(parts)


def invalid_response(errors) -> JSONResponse:
    """The 422 every route answers for invalid input."""
    errors = [{k: v for k, v in dict(e).items() if k in ("loc", "msg", "type")} for e in errors]
    return JSONResponse({"detail": errors, "message": error_message(errors)}, status_code=422)


class OnboardingRoute:
    """ASGI front of the whole app answering `POST /v1/onboarding`.

    It sits outside every middleware (`app.ColdstartAPI` puts it there): for the one
    hot route it does their work itself, the body cap (a declared `Content-Length`
    within `limit`) and the request metrics (the route template's counter and latency),
    instead of a coroutine hop and a wrapped `send` per layer. Everything else goes
    through the full stack: other routes, and an onboarding body without a declared
    length, with one over the cap (413 from `BodyLimitMiddleware`) or a multipart one
    (FastAPI's route answers those the same way)."""

    def __init__(self, app, limit: int, metrics) -> None:
        self.app = app
        self.limit = limit
        self.requests = metrics.requests
        self.answered = metrics.requests.labels(PATH, "POST", "200")
        self.latency = metrics.latency.labels(PATH, "POST")

    def _declared_length(self, scope) -> int | None:
        """The body length a JSON onboarding request declares within the cap, else None."""
        length = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type" and value[:19].lower() == b"multipart/form-data":
                return None
        if length is None or not length.isdigit() or int(length) > self.limit:
            return None
        return int(length)

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or self._declared_length(scope) is None
        ):
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # what the metrics count if no answer goes out (a disconnect, a fault)
        try:
            chunks, more = [], True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            try:
                pipeline = scope["app"].state.serving.current().pipeline
                payload = onboarding_answer(pipeline, b"".join(chunks))
            except ValidationError as exc:
                status = 422
                await invalid_response(validation_errors(exc))(scope, receive, send)
                return
            headers = [*_JSON, (b"content-length", str(len(payload)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            status = 200
            await send({"type": "http.response.body", "body": payload})
        finally:
            counter = self.answered if status == 200 else None
            if counter is None:
                counter = self.requests.labels(PATH, "POST", str(status))
            counter.inc()
            self.latency.observe(perf_counter() - started)
