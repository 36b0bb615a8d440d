"""`skinfood serve`'s application: the study's web API and a page a phone opens, on one engine.

    HTTP request -> auth -> body (bounded, in memory) -> decode + preprocess
    (a worker thread) -> Batcher (one inference thread, dynamic batches)
    -> make_prediction -> the same record `skinfood predict --format json` prints

create_app assembles it: the model's lifespan, CORS, the metrics middleware, the
JSON error answers, and one APIRouter per group of endpoints, in docs/serving.md's order:

    routes_predict.py   POST /v1/predict                        a photo -> the prediction record
    routes_explain.py   POST /v1/explain                        a photo -> Grad-CAM PNG (or JSON)
    routes_diseases.py  GET /v1/diseases, /v1/diseases/{name}   the bundled descriptions
    routes_service.py   GET /v1/model, /healthz, /readyz, /metrics
    routes_page.py      GET /, /static/{name}                   the page a phone opens (web/)
    routes_common.py    what they share: the State dependency, the token check,
                        readiness, the inference queue, query parameters, OpenAPI docs

The routes reach the State (state.py) through the `AppState` dependency.

Photos are medical data: uploads are read into memory only (requests.py), never
logged and never written anywhere. Every error is JSON
`{"error": {"code", "message"}}` with its status; nothing answers a traceback.

FastAPI resolves the routes' annotations at import, so these modules import it
at the top; only `skinfood serve` imports this package. runner.py binds and runs it.
"""

from __future__ import annotations

import contextlib

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from skinfood_cli import __version__
from skinfood_cli.serving import routes_diseases, routes_explain, routes_page, routes_predict, routes_service
from skinfood_cli.serving.config import ServeConfig
from skinfood_cli.serving.metrics import MetricsMiddleware
from skinfood_cli.serving.requests import ApiError, StrictJSONResponse, error_response
from skinfood_cli.serving.routes_page import WEB_DIR
from skinfood_cli.serving.state import State

__all__ = ["WEB_DIR", "ServeConfig", "State", "create_app"]

DESCRIPTION = (
    "Skin-condition photo classifier. **Not a medical device**: answers are hints to "
    "discuss with a doctor, never a diagnosis."
)


def create_app(cfg: ServeConfig, state: State | None = None) -> FastAPI:
    """The FastAPI application; the model loads (and warms up) in its lifespan unless `state` is loaded.

    `state`, when given, is built from the same `cfg` (runner.py loads it before binding).
    """
    app = FastAPI(
        title="skinfood",
        version=__version__,
        lifespan=_lifespan,
        default_response_class=StrictJSONResponse,
        description=DESCRIPTION,
    )
    app.state.skinfood = state = state or State(cfg)
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
        )
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    _add_error_answers(app)
    # In docs/serving.md's order, which is also /docs' and /openapi.json's.
    for routes in (routes_predict, routes_explain, routes_diseases, routes_service, routes_page):
        app.include_router(routes.router)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    state: State = app.state.skinfood
    if not state.ready:
        await run_in_threadpool(state.load)
    try:
        yield
    finally:
        await run_in_threadpool(state.stop)


def _add_error_answers(app: FastAPI) -> None:
    """Every error, ours or FastAPI's, as `{"error": {"code", "message"}}` with its status; never a traceback."""

    @app.exception_handler(ApiError)
    async def _api_error(_request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request, exc):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request, exc):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(400, "bad_request", f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def _internal_error(_request, _exc):
        return error_response(500, "internal", "internal error (the server keeps running)")
