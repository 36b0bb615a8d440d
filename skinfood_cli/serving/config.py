"""`skinfood serve`'s settings: the one source of its defaults and help (no FastAPI here)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class ServeConfig:
    model: str
    device: str | None = None
    precision: str | None = None
    max_batch_size: int = _opt(16, "Most photos the model reads in one go (1: one at a time, no batching).")
    batch_timeout_ms: float = _opt(5.0, "How long a batch waits to fill.")
    max_queue: int = _opt(256, "Photos that may wait; beyond it: 503.")
    max_upload_mb: float = _opt(20.0, "Largest upload accepted (413).")
    request_timeout_s: float = _opt(30.0, "Seconds a request may wait before 504.")
    token: str | None = None
    cors_origins: list[str] = field(default_factory=list)
    descriptions: str | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * (1 << 20))


MAX_TOP_K = 10  # the most alternatives a request may ask for (?top_k=); the API's schema says so


SERVE_FIELDS = {f.name: f for f in fields(ServeConfig)}


def serve_default(name: str) -> Any:
    return SERVE_FIELDS[name].default


def serve_help(name: str) -> str:
    return str(SERVE_FIELDS[name].metadata["help"])
