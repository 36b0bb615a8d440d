"""POST /v1/explain: where the model looked (Grad-CAM), as a PNG or, with Accept: application/json, the record."""

from __future__ import annotations

import base64
import io
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from skinfood_cli.explanation import explain_image
from skinfood_cli.serving.requests import ApiError, decode, read_photo
from skinfood_cli.serving.routes_common import (
    ERROR_DOC,
    PHOTO_BODY,
    AppState,
    Lang,
    TopK,
    authorize,
    await_job,
    require_ready,
)

router = APIRouter(tags=["classify"])

ANSWERS = {
    **ERROR_DOC,
    200: {"content": {"image/png": {}, "application/json": {}}, "description": "The Grad-CAM picture, or the record"},
}


@router.post("/v1/explain", openapi_extra=PHOTO_BODY, responses=ANSWERS)
async def explain(request: Request, state: AppState, lang: Lang = "en", top_k: TopK = 3):
    """Where the model looked (Grad-CAM): a PNG, or JSON with it base64-encoded (Accept: application/json)."""

    started = time.perf_counter()
    authorize(request, state)
    require_ready(state)
    if not state.engine.supports_gradients:
        raise ApiError(
            501,
            "not_supported",
            f"explain needs a PyTorch checkpoint: this server runs an exported {state.engine.model.kind} file",
        )
    name, data = await read_photo(request, state.cfg.max_upload_bytes)
    _, image, quality = await run_in_threadpool(decode, data, state.engine, keep_image=True)

    def run(engine):  # on the inference thread, the only one that touches the model
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

    record, _cam, picture = await await_job(state, state.batcher.call, run)
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
