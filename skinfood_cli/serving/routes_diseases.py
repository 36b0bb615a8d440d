"""GET /v1/diseases and /v1/diseases/{name}: the bundled descriptions, in English or Korean."""

from __future__ import annotations

from fastapi import APIRouter, Request

from skinfood_cli.serving.requests import ApiError
from skinfood_cli.serving.routes_common import ERROR_DOC, AppState, Lang, authorize

router = APIRouter(tags=["descriptions"])


@router.get("/v1/diseases")
async def diseases(request: Request, state: AppState, lang: Lang = "en"):
    """The bundled descriptions: key, name and urgency of each."""
    authorize(request, state)
    return state.book.summaries(lang)


@router.get("/v1/diseases/{name}", responses={404: ERROR_DOC[400] | {"description": "No such condition"}})
async def disease(request: Request, state: AppState, name: str, lang: Lang = "en"):
    """One condition's full description, by key, alias or class name."""
    authorize(request, state)
    entry = state.book.get(name, lang)
    if entry is None:
        raise ApiError(404, "not_found", f"no description for {name!r}: see GET /v1/diseases")
    return entry.to_dict()
