"""GET /v1/model (what is served, how it batches), /healthz, /readyz (probes: no token) and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from skinfood_cli import __version__
from skinfood_cli.serving.requests import error_response
from skinfood_cli.serving.routes_common import AppState, authorize, require_ready

router = APIRouter(tags=["service"])


@router.get("/v1/model")
async def model_info(request: Request, state: AppState):
    """The model being served and how the server batches."""
    authorize(request, state)
    require_ready(state)
    e, cfg = state.engine, state.cfg
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


@router.get("/healthz")
async def healthz():
    """Alive: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(state: AppState):
    """Ready: the model is loaded, warm, and its thread is running."""
    if not (state.ready and state.batcher is not None and state.batcher.alive):
        return error_response(503, "not_ready", "the model is not ready", {"Retry-After": "1"})
    return {"status": "ready"}


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request, state: AppState):
    """Prometheus text: requests by status, latency, batch sizes, queue depth."""
    authorize(request, state)
    depth = state.batcher.depth() if state.batcher is not None else 0
    return PlainTextResponse(state.metrics.render(depth, state.ready), media_type="text/plain; version=0.0.4")
