"""`skinfood serve`'s application: the study's web API and a page a phone opens, on one engine.

    HTTP request -> auth -> body (bounded, in memory) -> decode + preprocess
    (a worker thread) -> Batcher (one inference thread, dynamic batches)
    -> make_prediction -> the same record `skinfood predict --format json` prints

Photos are medical data: uploads are read into memory only (requests.py), never
logged and never written anywhere. Every error is JSON
`{"error": {"code", "message"}}` with its status; nothing answers a traceback.

FastAPI resolves the routes' annotations at import, so this module imports it
at the top; only `skinfood serve` imports this package. runner.py binds and runs it.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from skinfood_cli import __version__
from skinfood_cli.descriptions import LANGUAGES, load_descriptions
from skinfood_cli.engine import Engine, load_model
from skinfood_cli.explanation import explain_image
from skinfood_cli.prediction import make_prediction
from skinfood_cli.serving.batching import Batcher, QueueFull
from skinfood_cli.serving.config import ServeConfig
from skinfood_cli.serving.metrics import Metrics, MetricsMiddleware
from skinfood_cli.serving.requests import ApiError, StrictJSONResponse, decode, error_response, read_photo

LANG_PATTERN = f"^({'|'.join(LANGUAGES)})$"

WEB_DIR = Path(__file__).parent / "web"


class State:
    """What the routes share: the engine behind its batcher, descriptions, metrics."""

    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        self.book = load_descriptions(Path(cfg.descriptions) if cfg.descriptions else None)
        self.metrics = Metrics()
        # Set by load(); the routes use them only after require_ready(), and stop() checks for None.
        self.batcher: Batcher = None  # type: ignore[assignment]
        self.engine: Engine = None  # type: ignore[assignment]
        self.ready = False

    def load(self) -> None:
        """Load the model, start the inference thread, and warm it up."""
        self.engine = Engine(
            load_model(self.cfg.model),
            device=self.cfg.device,
            precision=self.cfg.precision,
            batch_size=self.cfg.max_batch_size,
        )
        self.batcher = Batcher(
            self.engine,
            max_batch_size=self.cfg.max_batch_size,
            batch_timeout_ms=self.cfg.batch_timeout_ms,
            max_queue=self.cfg.max_queue,
            on_batch=self.metrics.observe_batch,
        ).start()
        self.batcher.call(_warm_up).result()
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        if self.batcher is not None:
            self.batcher.stop()


def _warm_up(engine) -> None:
    """First passes pick kernels and allocate; do them before the first user waits."""
    for n in sorted({1, 2, max(1, engine.batch_size // 2), engine.batch_size}):
        engine.forward(engine.example_input(n))


# --- the app -------------------------------------------------------------------------


def create_app(cfg: ServeConfig, state: State | None = None):
    """The FastAPI application; the model loads (and warms up) in its lifespan unless `state` is loaded."""
    import contextlib

    state = state or State(cfg)
    limit = int(cfg.max_upload_mb * (1 << 20))

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        if not state.ready:
            await run_in_threadpool(state.load)
        try:
            yield
        finally:
            await run_in_threadpool(state.stop)

    app = FastAPI(
        title="skinfood",
        version=__version__,
        lifespan=lifespan,
        default_response_class=StrictJSONResponse,
        description="Skin-condition photo classifier. **Not a medical device**: answers are hints to "
        "discuss with a doctor, never a diagnosis.",
    )
    app.state.skinfood = state
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept"],
        )
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)

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

    def authorize(request: Request) -> None:
        if cfg.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), cfg.token.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong token: send 'Authorization: Bearer <token>'",
                {"WWW-Authenticate": "Bearer"},
            )

    def require_ready() -> None:
        if not state.ready:
            raise ApiError(503, "not_ready", "the model is still loading", {"Retry-After": "1"})

    async def await_job(submit, *args):
        """Queue a job on the inference thread and wait for it; 503 when full, 504 when too slow."""

        try:
            future = submit(*args)
        except QueueFull:
            raise ApiError(503, "busy", "the server is busy: try again shortly", {"Retry-After": "1"}) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), cfg.request_timeout_s)
        except asyncio.TimeoutError:
            future.cancel()
            raise ApiError(504, "timeout", f"no answer within {cfg.request_timeout_s:g} s: try again") from None

    photo_body = {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                },
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
    error_doc: dict[int | str, dict[str, Any]] = {
        s: {"description": d, "content": {"application/json": {"example": {"error": {"code": c, "message": "..."}}}}}
        for s, d, c in (
            (400, "Malformed request", "bad_request"),
            (401, "Missing or wrong token", "unauthorized"),
            (413, "Upload or image too large", "too_large"),
            (415, "Not an image", "not_an_image"),
            (422, "An image that does not decode", "undecodable_image"),
            (503, "Busy or loading", "busy"),
            (504, "Timed out in the queue", "timeout"),
        )
    }

    @app.post("/v1/predict", openapi_extra=photo_body, responses=error_doc, tags=["classify"])
    async def predict(
        request: Request, lang: str = Query("en", pattern=LANG_PATTERN), top_k: int = Query(3, ge=1, le=cfg.max_top_k)
    ):
        """Classify one photo: the same record as `skinfood predict --format json`, plus model and latency."""

        started = time.perf_counter()
        authorize(request)
        require_ready()
        name, data = await read_photo(request, limit)
        tensor, _, quality = await run_in_threadpool(decode, data, state.engine)
        logits, scope = await await_job(state.batcher.submit, tensor)
        record = make_prediction(
            name,
            state.engine.probabilities(logits),
            state.engine.classes,
            state.book,
            lang=lang,
            top_k=top_k,
            threshold=state.engine.model.threshold,
            scope_score=scope,
            qhat=state.engine.model.qhat,
            set_rule=state.engine.model.set_rule,
            quality=quality,
        ).to_dict()
        return {
            **record,
            "model": state.engine.model.run_name,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        }

    @app.post(
        "/v1/explain",
        openapi_extra=photo_body,
        responses={
            **error_doc,
            200: {
                "content": {"image/png": {}, "application/json": {}},
                "description": "The Grad-CAM picture, or the record",
            },
        },
        tags=["classify"],
    )
    async def explain(
        request: Request, lang: str = Query("en", pattern=LANG_PATTERN), top_k: int = Query(3, ge=1, le=cfg.max_top_k)
    ):
        """Where the model looked (Grad-CAM): a PNG, or JSON with it base64-encoded (Accept: application/json)."""

        started = time.perf_counter()
        authorize(request)
        require_ready()
        if not state.engine.supports_gradients:
            raise ApiError(
                501,
                "not_supported",
                f"explain needs a PyTorch checkpoint: this server runs an exported {state.engine.model.kind} file",
            )
        name, data = await read_photo(request, limit)
        _, image, quality = await run_in_threadpool(decode, data, state.engine, keep_image=True)

        def run(engine):
            return explain_image(
                engine,
                image,
                state.book,
                name,
                lang=lang,
                top_k=top_k,
                target=None,
                threshold=engine.model.threshold,
                quality=quality,
            )

        record, _cam, picture = await await_job(state.batcher.call, run)
        png = io.BytesIO()
        await run_in_threadpool(picture.save, png, "PNG")
        if "application/json" in request.headers.get("accept", ""):
            return {
                **record,
                "model": state.engine.model.run_name,
                "image_png_base64": base64.b64encode(png.getvalue()).decode(),
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            }
        return Response(
            png.getvalue(),
            media_type="image/png",
            headers={
                "X-Skinfood-Label": record["label"],
                "Cache-Control": "no-store",
                "X-Skinfood-In-Scope": "true" if record["in_scope"] else "false",
            },
        )

    @app.get("/v1/diseases", tags=["descriptions"])
    async def diseases(request: Request, lang: str = Query("en", pattern=LANG_PATTERN)):
        """The bundled descriptions: key, name and urgency of each."""
        authorize(request)
        return state.book.summaries(lang)

    @app.get(
        "/v1/diseases/{name}",
        tags=["descriptions"],
        responses={404: error_doc[400] | {"description": "No such condition"}},
    )
    async def disease(request: Request, name: str, lang: str = Query("en", pattern=LANG_PATTERN)):
        """One condition's full description, by key, alias or class name."""
        authorize(request)
        entry = state.book.get(name, lang)
        if entry is None:
            raise ApiError(404, "not_found", f"no description for {name!r}: see GET /v1/diseases")
        return entry.to_dict()

    @app.get("/v1/model", tags=["service"])
    async def model_info(request: Request):
        """The model being served and how the server batches."""
        authorize(request)
        require_ready()
        e = state.engine
        return {
            "run": e.model.run_name,
            "file": e.model.path.name,
            "backend": e.model.kind,
            "arch": e.model.arch.name,
            "classes": e.classes,
            "image_size": e.model.image_size,
            "temperature": e.model.temperature,
            "threshold": e.model.threshold,
            "metrics": e.model.meta.get("metrics") or {},
            "scope_check": e.has_scope_check,
            "prediction_sets": (e.model.trust or {}).get("conformal"),
            "device": str(e.device),
            "precision": e.precision.name,
            "batching": {
                "max_batch_size": cfg.max_batch_size,
                "batch_timeout_ms": cfg.batch_timeout_ms,
                "max_queue": cfg.max_queue,
            },
            "max_upload_mb": cfg.max_upload_mb,
            "skinfood_version": __version__,
        }

    @app.get("/healthz", tags=["service"])
    async def healthz():
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"])
    async def readyz():
        """Ready: the model is loaded, warm, and its thread is running."""
        if not (state.ready and state.batcher is not None and state.batcher.alive):
            return error_response(503, "not_ready", "the model is not ready", {"Retry-After": "1"})
        return {"status": "ready"}

    @app.get("/metrics", tags=["service"], response_class=PlainTextResponse)
    async def metrics(request: Request):
        """Prometheus text: requests by status, latency, batch sizes, queue depth."""
        authorize(request)
        depth = state.batcher.depth() if state.batcher is not None else 0
        return PlainTextResponse(state.metrics.render(depth, state.ready), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        types = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in types:
            raise ApiError(404, "not_found", "no such file")
        return FileResponse(WEB_DIR / name, media_type=types[name], headers={"Cache-Control": "no-cache"})

    return app
