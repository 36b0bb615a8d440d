"""The server's Prometheus metrics, in the text exposition format, without a client library.

Four series are all a dashboard needs here: requests by endpoint and status, a
latency histogram, a batch-size histogram (is dynamic batching doing anything?)
and the queue depth. ~60 lines beat a dependency.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.total += 1
        self.sum += value
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name: str) -> list[str]:
        out = [f'{name}_bucket{{le="{b}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{le="+Inf"}} {self.total}')
        out += [f"{name}_sum {self.sum:.6f}", f"{name}_count {self.total}"]
        return out


class Metrics:
    """Thread-safe counters: request handlers and the inference thread both write."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Counter = Counter()  # (endpoint, status) -> n
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batch_size = _Histogram(BATCH_BUCKETS)

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1
            self.latency.observe(seconds)

    def observe_batch(self, size: int) -> None:
        with self._lock:
            self.batch_size.observe(size)

    def render(self, queue_depth: int, ready: bool) -> str:
        with self._lock:
            lines = [
                "# HELP skinfood_requests_total HTTP requests by endpoint and status.",
                "# TYPE skinfood_requests_total counter",
            ]
            for (endpoint, status), n in sorted(self.requests.items()):
                lines.append(f'skinfood_requests_total{{endpoint="{endpoint}",status="{status}"}} {n}')
            lines += [
                "# HELP skinfood_request_latency_seconds Time from request to response.",
                "# TYPE skinfood_request_latency_seconds histogram",
                *self.latency.lines("skinfood_request_latency_seconds"),
                "# HELP skinfood_batch_size Images per forward pass.",
                "# TYPE skinfood_batch_size histogram",
                *self.batch_size.lines("skinfood_batch_size"),
            ]
        lines += [
            "# HELP skinfood_queue_depth Images waiting for the inference thread.",
            "# TYPE skinfood_queue_depth gauge",
            f"skinfood_queue_depth {queue_depth}",
            "# HELP skinfood_ready Whether the model is loaded and warm.",
            "# TYPE skinfood_ready gauge",
            f"skinfood_ready {int(ready)}",
        ]
        return "\n".join(lines) + "\n"


class MetricsMiddleware:
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
            endpoint = (
                path if path in _KNOWN else ("/v1/diseases/{name}" if path.startswith("/v1/diseases/") else "other")
            )
            self.metrics.observe_request(endpoint, status["code"], time.perf_counter() - started)


_KNOWN = {"/v1/predict", "/v1/explain", "/v1/diseases", "/v1/model", "/healthz", "/readyz", "/metrics", "/"}
