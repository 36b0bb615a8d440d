"""POST /v1/predict: one photo -> the record `skinfood predict --format json` prints, plus model and latency."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from skinfood_cli.prediction import make_prediction
from skinfood_cli.serving.requests import decode, read_photo
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


@router.post("/v1/predict", openapi_extra=PHOTO_BODY, responses=ERROR_DOC)
async def predict(request: Request, state: AppState, lang: Lang = "en", top_k: TopK = 3):
    """Classify one photo: the same record as `skinfood predict --format json`, plus model and latency."""

    started = time.perf_counter()
    authorize(request, state)
    require_ready(state)
    name, data = await read_photo(request, state.cfg.max_upload_bytes)
    tensor, _, quality = await run_in_threadpool(decode, data, state.engine)
    logits, scope = await await_job(state, state.batcher.submit, tensor)
    engine = state.engine
    record = make_prediction(
        name,
        engine.probabilities(logits),
        engine.classes,
        state.book,
        lang=lang,
        top_k=top_k,
        threshold=engine.model.threshold,
        scope_score=scope,
        qhat=engine.model.qhat,
        set_rule=engine.model.set_rule,
        quality=quality,
    ).to_dict()
    return {
        **record,
        "model": engine.model.run_name,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }
