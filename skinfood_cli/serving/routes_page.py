"""GET / and /static/{name}: the page a phone opens, three files in web/ (no CDN: it works offline)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from skinfood_cli.serving.requests import ApiError

WEB_DIR = Path(__file__).parent / "web"
STATIC_TYPES = {"app.js": "text/javascript", "style.css": "text/css"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page():
    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/static/{name}")
async def static(name: str):
    if name not in STATIC_TYPES:
        raise ApiError(404, "not_found", "no such file")
    return FileResponse(WEB_DIR / name, media_type=STATIC_TYPES[name], headers={"Cache-Control": "no-cache"})
