"""`skinfood serve`: the study's web API and a page a phone opens, on one engine.

    HTTP request -> auth -> body (bounded, in memory) -> decode + preprocess
    (a worker thread) -> Batcher (one inference thread, dynamic batches)
    -> make_prediction -> the same record `skinfood predict --format json` prints

Photos are medical data: uploads are read into memory only (multipart is
parsed here rather than by a parser that spools big files to disk), never
logged and never written anywhere. Every error is JSON
`{"error": {"code", "message"}}` with its status; nothing answers a traceback.

FastAPI resolves the routes' annotations at import, so this module imports it
at the top; only `skinfood serve` imports this module.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from skinfood_cli import __version__
from skinfood_cli.errors import ImageError

WEB_DIR = Path(__file__).parent / "web"
IMAGE_STATUS = {"not_image": 415, "too_large": 413, "empty": 400}  # other ImageErrors: 422
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class ServeConfig:
    model: str
    device: str | None = None
    precision: str | None = None
    max_batch_size: int = 16
    batch_timeout_ms: float = 5.0
    max_queue: int = 256
    max_upload_mb: float = 20.0
    request_timeout_s: float = 30.0
    token: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    descriptions: str | None = None
    max_top_k: int = 10


class ApiError(Exception):
    """An error answer: status, a short code for programs, a message for people."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(status: int, code: str, message: str, headers: dict | None = None):
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class State:
    """What the routes share: the engine behind its batcher, descriptions, metrics."""

    def __init__(self, cfg: ServeConfig):
        from skinfood_cli.descriptions import load_descriptions
        from skinfood_cli.serving.metrics import Metrics

        self.cfg = cfg
        self.book = load_descriptions(Path(cfg.descriptions) if cfg.descriptions else None)
        self.metrics = Metrics()
        self.batcher = None
        self.engine = None
        self.ready = False

    def load(self) -> None:
        """Load the model, start the inference thread, and warm it up."""
        from skinfood_cli.serving.batching import Batcher
        from skinfood_cli.engine import Engine, load_model

        self.engine = Engine(load_model(self.cfg.model), device=self.cfg.device, precision=self.cfg.precision,
                             batch_size=self.cfg.max_batch_size)
        self.batcher = Batcher(self.engine, max_batch_size=self.cfg.max_batch_size,
                               batch_timeout_ms=self.cfg.batch_timeout_ms, max_queue=self.cfg.max_queue,
                               on_batch=self.metrics.observe_batch).start()
        self.batcher.call(_warm_up).result()
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        if self.batcher is not None:
            self.batcher.stop()


def _warm_up(engine) -> None:
    """First passes pick kernels and allocate; do them before the first user waits."""
    import torch

    from skinfood_cli.backends.onnx import UINT8_NHWC

    s = engine.model.image_size
    pixels = engine.model.backend == "onnx" and engine.module.input_kind == UINT8_NHWC
    for n in sorted({1, 2, max(1, engine.batch_size // 2), engine.batch_size}):
        engine.forward(torch.zeros(n, 3, s, s, dtype=torch.uint8 if pixels else torch.float32))


# --- request bodies ------------------------------------------------------------------


async def read_body(request, limit: int) -> bytes:
    """The whole body, refusing more than `limit` bytes whether or not it says its length."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise ApiError(413, "too_large", f"upload is over the {limit / (1 << 20):g} MB limit")
        except ValueError:
            raise ApiError(400, "bad_request", "invalid Content-Length") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"upload is over the {limit / (1 << 20):g} MB limit")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """multipart/form-data -> {field name: (filename, bytes)}, all in memory."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "bad_request", "multipart body without a boundary")
    parts: dict[str, tuple[str | None, bytes]] = {}
    current = {"headers": {}, "field": b"", "value": b"", "data": []}

    def on_header_field(data, start, end):
        current["field"] += data[start:end]

    def on_header_value(data, start, end):
        current["value"] += data[start:end]

    def on_header_end():
        current["headers"][current["field"].lower()] = current["value"]
        current["field"], current["value"] = b"", b""

    def on_part_data(data, start, end):
        current["data"].append(bytes(data[start:end]))

    def on_part_end():
        _, disp = parse_options_header(current["headers"].get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        filename = disp.get(b"filename")
        parts.setdefault(name, (filename.decode("utf-8", "replace") if filename is not None else None,
                                b"".join(current["data"])))
        current.update(headers={}, data=[])

    parser = MultipartParser(boundary, {"on_header_field": on_header_field, "on_header_value": on_header_value,
                                        "on_header_end": on_header_end, "on_part_data": on_part_data,
                                        "on_part_end": on_part_end})
    try:
        parser.write(body)
        parser.finalize()
    except Exception:  # noqa: BLE001 - the parser raises its own error types on malformed input
        raise ApiError(400, "bad_request", "malformed multipart body") from None
    return parts


async def read_photo(request, limit: int) -> tuple[str, bytes]:
    """(name, bytes) of the one photo in a request: multipart field `file`, or raw image/* bytes."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";")[0].strip().lower()
    if request.headers.get("content-length") == "0":
        raise ApiError(400, "empty", "empty body: send a photo as multipart field 'file' or raw image/* bytes")
    if media == "multipart/form-data":
        parts = parse_multipart(await read_body(request, limit), ctype)
        if "file" not in parts:
            raise ApiError(400, "bad_request", "multipart body has no field named 'file'")
        name, data = parts["file"]
        name = Path(name).name if name else "upload"
    elif media.startswith("image/") or media == "application/octet-stream":
        name, data = "upload", await read_body(request, limit)
    else:
        raise ApiError(415, "unsupported_media_type",
                       "send the photo as multipart/form-data field 'file' or as raw bytes with an image/* "
                       f"content type, not {media or 'no content type'}")
    if not data:
        raise ApiError(400, "empty", "the photo is empty (0 bytes)")
    return name, data


def decode(data: bytes, engine, *, keep_image: bool = False):
    """bytes -> (preprocessed tensor (3, S, S), PIL image or None); bad photos -> ApiError."""
    from skinfood_cli.data.images import load_image

    try:
        # The explain picture is at most 1024 px wide, so a big JPEG decodes at a
        # reduced scale (>= 512 px) instead of at full size into memory.
        image = load_image(data, draft_size=512 if keep_image else engine.model.image_size)
    except ImageError as exc:
        status = IMAGE_STATUS.get(exc.reason, 422)
        code = {415: "not_an_image", 413: "too_large", 400: "empty"}.get(status, "undecodable_image")
        raise ApiError(status, code, str(exc)) from None
    return engine.transform(image), (image if keep_image else None)


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

    app = FastAPI(title="skinfood", version=__version__, lifespan=lifespan,
                  description="Skin-condition photo classifier. **Not a medical device**: answers are hints to "
                              "discuss with a doctor, never a diagnosis.")
    app.state.skinfood = state
    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=cfg.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Accept"])
    app.add_middleware(_MetricsMiddleware, metrics=state.metrics)

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
            raise ApiError(401, "unauthorized", "missing or wrong token: send 'Authorization: Bearer <token>'",
                           {"WWW-Authenticate": "Bearer"})

    def require_ready() -> None:
        if not state.ready:
            raise ApiError(503, "not_ready", "the model is still loading", {"Retry-After": "1"})

    async def await_job(submit, *args):
        """Queue a job on the inference thread and wait for it; 503 when full, 504 when too slow."""
        from skinfood_cli.serving.batching import QueueFull

        try:
            future = submit(*args)
        except QueueFull:
            raise ApiError(503, "busy", "the server is busy: try again shortly", {"Retry-After": "1"}) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), cfg.request_timeout_s)
        except asyncio.TimeoutError:
            future.cancel()
            raise ApiError(504, "timeout", f"no answer within {cfg.request_timeout_s:g} s: try again") from None

    photo_body = {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}}}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}}}}}
    error_doc = {s: {"description": d, "content": {"application/json": {"example": {
        "error": {"code": c, "message": "..."}}}}} for s, d, c in (
        (400, "Malformed request", "bad_request"), (401, "Missing or wrong token", "unauthorized"),
        (413, "Upload or image too large", "too_large"), (415, "Not an image", "not_an_image"),
        (422, "An image that does not decode", "undecodable_image"), (503, "Busy or loading", "busy"),
        (504, "Timed out in the queue", "timeout"))}

    @app.post("/v1/predict", openapi_extra=photo_body, responses=error_doc, tags=["classify"])
    async def predict(request: Request, lang: str = Query("en", pattern="^(en|ko)$"),
                      top_k: int = Query(3, ge=1, le=cfg.max_top_k)):
        """Classify one photo: the same record as `skinfood predict --format json`, plus model and latency."""
        from skinfood_cli.prediction import make_prediction

        started = time.perf_counter()
        authorize(request)
        require_ready()
        name, data = await read_photo(request, limit)
        tensor, _ = await run_in_threadpool(decode, data, state.engine)
        logits, scope = await await_job(state.batcher.submit, tensor)
        record = make_prediction(name, state.engine.probabilities(logits), state.engine.classes, state.book,
                                 lang=lang, top_k=top_k, threshold=state.engine.model.threshold,
                                 scope_score=scope, qhat=state.engine.model.qhat).to_dict()
        return {**record, "model": state.engine.model.run_name,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2)}

    @app.post("/v1/explain", openapi_extra=photo_body, responses={**error_doc, 200: {"content": {
        "image/png": {}, "application/json": {}}, "description": "The Grad-CAM picture, or the record"}},
        tags=["classify"])
    async def explain(request: Request, lang: str = Query("en", pattern="^(en|ko)$"),
                      top_k: int = Query(3, ge=1, le=cfg.max_top_k)):
        """Where the model looked (Grad-CAM): a PNG, or JSON with it base64-encoded (Accept: application/json)."""
        from skinfood_cli.explanation import explain_image

        started = time.perf_counter()
        authorize(request)
        require_ready()
        if state.engine.model.backend != "torch":
            raise ApiError(501, "not_supported", "explain needs a PyTorch checkpoint: this server runs an "
                                                 f"exported {state.engine.model.backend} file")
        name, data = await read_photo(request, limit)
        _, image = await run_in_threadpool(decode, data, state.engine, keep_image=True)

        def run(engine):
            return explain_image(engine, image, state.book, name, lang=lang, top_k=top_k, target=None,
                                 threshold=engine.model.threshold)

        record, _cam, picture = await await_job(state.batcher.call, run)
        png = io.BytesIO()
        await run_in_threadpool(picture.save, png, "PNG")
        if "application/json" in request.headers.get("accept", ""):
            return {**record, "model": state.engine.model.run_name, "image_png_base64":
                    base64.b64encode(png.getvalue()).decode(), "latency_ms":
                    round((time.perf_counter() - started) * 1000, 2)}
        return Response(png.getvalue(), media_type="image/png",
                        headers={"X-Skinfood-Label": record["label"], "Cache-Control": "no-store",
                                 "X-Skinfood-In-Scope": "true" if record["in_scope"] else "false"})

    @app.get("/v1/diseases", tags=["descriptions"])
    async def diseases(request: Request, lang: str = Query("en", pattern="^(en|ko)$")):
        """The bundled descriptions: key, name and urgency of each."""
        authorize(request)
        return state.book.summaries(lang)

    @app.get("/v1/diseases/{name}", tags=["descriptions"], responses={404: error_doc[400] | {
        "description": "No such condition"}})
    async def disease(request: Request, name: str, lang: str = Query("en", pattern="^(en|ko)$")):
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
        return {"run": e.model.run_name, "file": e.model.path.name, "backend": e.model.backend,
                "classes": e.classes, "image_size": e.model.image_size, "temperature": e.model.temperature,
                "threshold": e.model.threshold, "metrics": e.model.meta.get("metrics") or {},
                "scope_check": e.has_scope_check, "prediction_sets": (e.model.trust or {}).get("conformal"),
                "device": str(e.device), "precision": e.precision.name,
                "batching": {"max_batch_size": cfg.max_batch_size, "batch_timeout_ms": cfg.batch_timeout_ms,
                             "max_queue": cfg.max_queue}, "max_upload_mb": cfg.max_upload_mb,
                "skinfood_version": __version__}

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
        return PlainTextResponse(state.metrics.render(depth, state.ready),
                                 media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(WEB_DIR / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        types = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in types:
            raise ApiError(404, "not_found", "no such file")
        return FileResponse(WEB_DIR / name, media_type=types[name], headers={"Cache-Control": "no-cache"})

    return app


class _MetricsMiddleware:
    """Counts every request by route and status and times it (pure ASGI: no body buffering)."""

    def __init__(self, app, metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            endpoint = path if path in _KNOWN else ("/v1/diseases/{name}" if path.startswith("/v1/diseases/")
                                                    else "other")
            self.metrics.observe_request(endpoint, status["code"], time.perf_counter() - started)


_KNOWN = {"/v1/predict", "/v1/explain", "/v1/diseases", "/v1/model", "/healthz", "/readyz", "/metrics", "/"}


# --- running it ----------------------------------------------------------------------


def lan_address() -> str | None:
    """This machine's address on the local network (no packet is sent)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
            return probe.getsockname()[0]
        except OSError:
            return None


def bind(host: str, port: int):
    """A listening socket, so a taken port is our clear error, not the server's traceback."""
    import socket

    from skinfood_cli.errors import UsageError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (pick another --port)") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_server(cfg: ServeConfig, host: str, port: int, announce, *, access_log: bool = True) -> None:
    """Load and warm the model, bind, serve until Ctrl-C or SIGTERM, drain, return.

    `announce(state, sock)` is called once the socket accepts connections.
    """
    import logging
    import signal

    import uvicorn

    state = State(cfg)
    state.load()  # a bad model fails here, as one clear line, before anything listens
    sock = bind(host, port)
    app = create_app(cfg, state)

    class Server(uvicorn.Server):
        # uvicorn re-raises the signal that stopped it once it has shut down, so the
        # process would die of SIGTERM (exit 143) after a clean drain. A graceful
        # stop is a success: remember the signal, don't re-raise it.
        def handle_exit(self, sig, frame):
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    config = uvicorn.Config(app, log_level="warning", access_log=access_log, timeout_graceful_shutdown=None,
                            lifespan="on", server_header=False)
    # uvicorn's own start-up chatter stays quiet; the access log (method, path,
    # status: never a photo) is on unless --no-access-log.
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if access_log else logging.WARNING)
    server = Server(config)

    async def main():
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started:
            announce(state, sock)
        await task

    try:
        asyncio.run(main())
    finally:
        state.stop()
        sock.close()
