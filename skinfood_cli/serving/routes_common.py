"""What the routes share: the app's State, the token check, readiness, the inference queue, the
query parameters and the OpenAPI description of a photo upload and of the error answers."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from skinfood_cli.descriptions import LANGUAGES
from skinfood_cli.serving.batching import QueueFull
from skinfood_cli.serving.config import MAX_TOP_K
from skinfood_cli.serving.requests import ApiError
from skinfood_cli.serving.state import State

LANG_PATTERN = f"^({'|'.join(LANGUAGES)})$"


async def app_state(request: Request) -> State:
    # async, so FastAPI calls it on the event loop rather than in a worker thread
    return request.app.state.skinfood


AppState = Annotated[State, Depends(app_state)]
"""A route's `state: AppState` parameter: the State create_app put on the app."""

Lang = Annotated[str, Query(pattern=LANG_PATTERN)]
TopK = Annotated[int, Query(ge=1, le=MAX_TOP_K)]


def authorize(request: Request, state: State) -> None:
    """401 unless the request carries the server's token (when it has one), compared in constant time.

    Routes call it first thing, after FastAPI has checked the query: a bad `?lang=`
    answers 400 whether or not the token is right (a Depends would run before that check).
    """
    token = state.cfg.token
    if token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "missing or wrong token: send 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": "Bearer"},
        )


def require_ready(state: State) -> None:
    if not state.ready:
        raise ApiError(503, "not_ready", "the model is still loading", {"Retry-After": "1"})


async def await_job(state: State, submit, *args):
    """Queue a job on the inference thread and wait for it; 503 when full, 504 when too slow."""
    timeout = state.cfg.request_timeout_s
    try:
        future = submit(*args)
    except QueueFull:
        raise ApiError(503, "busy", "the server is busy: try again shortly", {"Retry-After": "1"}) from None
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
    except asyncio.TimeoutError:
        future.cancel()
        raise ApiError(504, "timeout", f"no answer within {timeout:g} s: try again") from None


# --- OpenAPI: how /docs describes an upload and the error answers ----------------------

PHOTO_BODY = {
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

ERROR_DOC: dict[int | str, dict[str, Any]] = {
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
