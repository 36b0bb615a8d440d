"""Dynamic batching for the server: many requests, one inference thread.

    request threads: bytes -> PIL -> tensor (3, S, S) --submit--> bounded queue
    inference thread: first job, then up to `max_batch_size - 1` more arriving
                      within `batch_timeout_ms` -> engine.forward (B, 3, S, S)
                      -> each job's future gets its own logits row

A CPU or GPU runs a batch of 8 in much less than 8 times one image's time, so
under load requests share forward passes; alone, a request waits at most the
timeout. Only this thread touches the model, so a Grad-CAM hook can never catch
another request's activations: explain jobs run here too, one at a time.
Decoding happens before `submit`, so a bad photo fails its own request and
never reaches a batch.
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable


class QueueFull(Exception):
    """The bounded queue has no room: the caller should answer 503 + Retry-After."""


@dataclass
class _Job:
    kind: str  # "predict": payload is a tensor (3, S, S); "call": payload is a function of the engine
    payload: Any
    future: Future = field(default_factory=Future)


class Batcher:
    """Owns the engine on one thread; `submit` from any thread, results as futures."""

    def __init__(
        self,
        engine,
        *,
        max_batch_size: int = 16,
        batch_timeout_ms: float = 5.0,
        max_queue: int = 256,
        on_batch: Callable[[int], None] | None = None,
    ):
        self.engine = engine
        self.max_batch_size = max(1, int(max_batch_size))
        self.batch_timeout = max(0.0, batch_timeout_ms) / 1000.0
        self.max_queue = max(1, int(max_queue))
        self.on_batch = on_batch or (lambda _size: None)
        self._jobs: collections.deque[_Job] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="skinfood-inference", daemon=True)

    # --- the request side ---------------------------------------------------------

    def start(self) -> Batcher:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def depth(self) -> int:
        return len(self._jobs)

    def submit(self, tensor) -> Future:
        """Queue one preprocessed image; the future resolves to its logits (K,) numpy row."""
        return self._put(_Job("predict", tensor))

    def call(self, fn: Callable[[Any], Any]) -> Future:
        """Run `fn(engine)` on the inference thread, alone (Grad-CAM, warm-up)."""
        return self._put(_Job("call", fn))

    def _put(self, job: _Job) -> Future:
        with self._cond:
            if self._stopping:
                raise QueueFull("shutting down")
            if len(self._jobs) >= self.max_queue:
                raise QueueFull(f"{len(self._jobs)} requests already waiting")
            self._jobs.append(job)
            self._cond.notify()
        return job.future

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # --- the inference thread -----------------------------------------------------

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if batch[0].kind == "call":
                self._run_call(batch[0])
            else:
                self._run_batch(batch)

    def _next_batch(self) -> list[_Job] | None:
        """Block for a first job, then gather predict jobs until full or the deadline."""
        with self._cond:
            while not self._jobs:
                if self._stopping:
                    return None
                self._cond.wait()
            first = self._jobs.popleft()
            if first.kind == "call":
                return [first]
            batch = [first]
            deadline = time.monotonic() + self.batch_timeout
            while len(batch) < self.max_batch_size:
                if self._jobs:
                    if self._jobs[0].kind != "predict":
                        break  # a call runs alone, after this batch
                    batch.append(self._jobs.popleft())
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._stopping:
                    break
                self._cond.wait(left)
            return batch

    def _run_batch(self, jobs: list[_Job]) -> None:
        import torch

        # A job whose client gave up (504) is dropped before it costs a forward pass.
        jobs = [j for j in jobs if j.future.set_running_or_notify_cancel()]
        if not jobs:
            return
        try:
            logits, scope = self.engine.forward_scoped(torch.stack([j.payload for j in jobs]))  # (B, K), (B,)
        except BaseException as exc:
            for j in jobs:
                j.future.set_exception(exc)
            return
        self.on_batch(len(jobs))
        scope = [None] * len(jobs) if scope is None else [float(v) for v in scope]
        for j, row, sc in zip(jobs, logits.numpy(), scope):
            j.future.set_result((row, sc))  # logits (K,), scope score or None

    def _run_call(self, job: _Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(job.payload(self.engine))
        except BaseException as exc:
            job.future.set_exception(exc)
