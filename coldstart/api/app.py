"""The FastAPI application factory. Models and indexes load once, in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from coldstart.api.hot import OnboardingRoute, invalid_response
from coldstart.api.limits import BodyLimitMiddleware
from coldstart.api.metrics import Metrics, MetricsMiddleware
from coldstart.api.routes import router
from coldstart.api.state import ServingState
from coldstart.batch.uploads import UploadError, UploadNotFound, UploadRefused, UploadTooLarge
from coldstart.core.config import Settings
from coldstart.core.store import Store
from training.threads import pin_process_threads, unpin_process_threads

__all__ = ["ColdstartAPI", "create_app", "app_from_env"]


class ColdstartAPI(FastAPI):
    """FastAPI with the onboarding route's handler (`hot.OnboardingRoute`) in front of
    the whole middleware stack, error middleware included: the one hot route skips
    every layer; the rest of the app is FastAPI's as built."""

    onboarding_front: tuple[int, Metrics] | None = None  # (body cap, metrics) once set

    def build_middleware_stack(self):
        stack = super().build_middleware_stack()
        if self.onboarding_front is None:
            return stack
        limit, metrics = self.onboarding_front
        return OnboardingRoute(stack, limit, metrics)


log = logging.getLogger(__name__)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return invalid_response(exc.errors())

    @app.exception_handler(UploadError)
    async def bad_upload(request: Request, exc: UploadError):
        errors = [
            {"loc": ["body", exc.field], "msg": str(exc).split(": ", 1)[-1], "type": "value_error"}
        ]
        return JSONResponse({"detail": errors, "message": str(exc)}, status_code=422)

    @app.exception_handler(UploadRefused)
    async def refused(request: Request, exc: UploadRefused):
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(UploadTooLarge)
    async def too_large(request: Request, exc: UploadTooLarge):
        return JSONResponse({"detail": str(exc)}, status_code=413, headers={"Connection": "close"})

    @app.exception_handler(UploadNotFound)
    async def not_found(request: Request, exc: UploadNotFound):
        return JSONResponse({"detail": str(exc)}, status_code=404)


def _install_offline_docs(app: FastAPI) -> None:
    """Serve the OpenAPI page with Swagger UI files from `swagger-ui-bundle`, not a CDN:
    the service runs where the internet may not be reachable."""
    app.mount("/docs-static", StaticFiles(directory=swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - API",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon-32x32.png",
        )


def create_app(settings: Settings, store: Store | None = None, preload: bool = False) -> FastAPI:
    """The API for `settings.home`. Loading happens when the server starts (lifespan),
    or here with `preload` (`coldstart.api.workers`: load once, then fork workers)."""
    if settings.api_token is not None and not settings.api_token.get_secret_value().strip():
        raise ValueError(
            "COLDSTART_API_TOKEN is set but empty: refusing to start (it would match an empty header)"
        )
    store = store or Store.from_settings(settings)
    metrics = Metrics(store)

    def load() -> None:
        settings.uploads_path.mkdir(parents=True, exist_ok=True)
        app.state.serving = ServingState(
            settings, store, on_reload=lambda r: metrics.reloads.labels(r).inc()
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Many small requests: no intra-op thread pools. Their idle threads spin-wait
        # (OpenMP) and steal the cores the next requests need. Set once per process:
        # model code's per-call thread settings are no-ops from here on.
        pin_process_threads(1)
        if not preload:  # preloaded: the state loaded before the fork serves
            load()
        watcher = asyncio.create_task(app.state.serving.watch(), name="coldstart-version-check")
        # Search's text encoder loads after the server answers (onboarding never needs it).
        warming = asyncio.create_task(warm_search(app.state.serving), name="coldstart-warm-search")
        try:
            yield
        finally:
            for task in (warming, watcher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            unpin_process_threads()
            gc.unfreeze()  # let the interpreter collect the frozen models at exit

    app = ColdstartAPI(
        title="coldstart",
        version="0.1.0",
        summary="Podcast and audiobook recommendations for new listeners, from their music taste.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    _install_offline_docs(app)
    app.state.settings = settings
    app.state.store = store
    app.state.metrics = metrics
    _install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(BodyLimitMiddleware, limit=settings.serve.max_json_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.onboarding_front = (settings.serve.max_json_bytes, metrics)  # before all of them
    if preload:
        load()
    return app


async def warm_search(serving: ServingState) -> None:
    """Load the search encoder in a worker thread (a query before that loads it itself)."""
    search = serving.current().models.search
    load = getattr(getattr(search, "encoder", None), "load", None)
    if load is None:
        return
    try:
        await asyncio.to_thread(load)
    except Exception:  # the first query raises it again, as an answer
        log.exception("could not load the search encoder")


def app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes: settings from `COLDSTART_*` (home included)."""
    return create_app(Settings())
