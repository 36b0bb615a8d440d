"""What a request carries: the error answer, and the photo read from its body (in memory only).

Photos are medical data: uploads are read into memory only (multipart is parsed
here rather than by a parser that spools big files to disk), never logged and
never written anywhere.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import JSONResponse

from skinfood_cli.data.images import load_image_file
from skinfood_cli.data.quality import photo_quality
from skinfood_cli.errors import ImageError
from skinfood_cli.jsonio import dumps

IMAGE_STATUS = {"not_image": 415, "too_large": 413, "empty": 400}  # other ImageErrors: 422


class ApiError(Exception):
    """An error answer: status, a short code for programs, a message for people."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class StrictJSONResponse(JSONResponse):
    """Every JSON answer: NaN and infinities (a figure small data leaves undefined) as null.

    Starlette's encoder refuses them with a 500; a browser's JSON.parse would refuse
    them anyway. The record beside such a null says why in words (`reason`).
    """

    def render(self, content) -> bytes:
        return dumps(content, separators=(",", ":")).encode("utf-8")


def error_response(status: int, code: str, message: str, headers: dict | None = None):
    return StrictJSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


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
        parts.setdefault(
            name, (filename.decode("utf-8", "replace") if filename is not None else None, b"".join(current["data"]))
        )
        current.update(headers={}, data=[])

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception:
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
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the photo as multipart/form-data field 'file' or as raw bytes with an image/* "
            f"content type, not {media or 'no content type'}",
        )
    if not data:
        raise ApiError(400, "empty", "the photo is empty (0 bytes)")
    return name, data


def decode(data: bytes, engine, *, keep_image: bool = False):
    """bytes -> (preprocessed tensor (3, S, S), PIL image or None, quality hints); bad photos -> ApiError."""
    try:
        # The explain picture is at most 1024 px wide, so a big JPEG decodes at a
        # reduced scale (>= 512 px) instead of at full size into memory.
        loaded = load_image_file(data, draft_size=512 if keep_image else engine.model.image_size)
    except ImageError as exc:
        status = IMAGE_STATUS.get(exc.reason, 422)
        code = {415: "not_an_image", 413: "too_large", 400: "empty"}.get(status, "undecodable_image")
        raise ApiError(status, code, str(exc)) from None
    image = loaded.image
    return engine.transform(image), (image if keep_image else None), photo_quality(loaded)
