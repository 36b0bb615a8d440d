"""The server's batching queue, on a fake engine: batches form, calls run alone, the queue is bounded."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from skinfood_cli.serving.batching import Batcher, QueueFull


class FakeEngine:
    """forward(x) returns each image's mean as its 'logit', so rows can be matched to requests."""

    def __init__(self, gate: threading.Event | None = None):
        self.sizes: list[int] = []
        self.gate = gate

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            self.gate.wait(5)
        self.sizes.append(len(batch))
        return batch.mean(dim=(1, 2, 3)).unsqueeze(1)  # (B, 1)

    def forward_scoped(self, batch: torch.Tensor):
        logits = self.forward(batch)
        return logits, -logits[:, 0]  # a "scope score" per image, to check it travels with its row


def image(value: float) -> torch.Tensor:
    return torch.full((3, 4, 4), float(value))


def test_each_request_gets_its_own_row_and_waiting_requests_share_a_forward_pass():
    gate = threading.Event()
    engine = FakeEngine(gate)
    seen: list[int] = []
    batcher = Batcher(engine, max_batch_size=4, batch_timeout_ms=50, on_batch=seen.append).start()
    try:
        first = batcher.submit(image(0))  # taken at once; blocks in forward until the gate opens
        time.sleep(0.1)
        rest = [batcher.submit(image(v)) for v in (1, 2, 3, 4, 5)]
        gate.set()
        answers = [f.result(5) for f in [first, *rest]]  # (logits row, scope score) per request
        values = [float(row[0]) for row, _ in answers]
        assert [scope for _, scope in answers] == [-v for v in values]
    finally:
        batcher.stop()
    assert values == [0, 1, 2, 3, 4, 5]
    assert engine.sizes[0] == 1 and sum(engine.sizes) == 6
    assert max(engine.sizes) == 4  # the five waiting requests went through in two passes, not five
    assert seen == engine.sizes


def test_a_call_runs_alone_on_the_inference_thread():
    engine = FakeEngine()
    batcher = Batcher(engine, max_batch_size=8, batch_timeout_ms=1).start()
    try:
        names = batcher.call(lambda e: (e is engine, threading.current_thread().name)).result(5)
    finally:
        batcher.stop()
    assert names == (True, "skinfood-inference")
    assert engine.sizes == []


def test_a_full_queue_refuses_at_once_and_a_stopped_batcher_refuses_new_work():
    gate = threading.Event()
    batcher = Batcher(FakeEngine(gate), max_batch_size=1, batch_timeout_ms=0, max_queue=2).start()
    try:
        running = batcher.submit(image(1))
        time.sleep(0.1)  # the first is in forward, waiting on the gate
        queued = [batcher.submit(image(2)), batcher.submit(image(3))]
        with pytest.raises(QueueFull):
            batcher.submit(image(4))
        gate.set()
        assert [float(f.result(5)[0][0]) for f in [running, *queued]] == [1, 2, 3]
    finally:
        batcher.stop()
    with pytest.raises(QueueFull):
        batcher.submit(image(5))
    assert not batcher.alive


def test_an_engine_error_reaches_every_request_of_its_batch_and_the_thread_goes_on():
    class Broken(FakeEngine):
        def forward_scoped(self, batch):
            if len(self.sizes) == 0:
                self.sizes.append(len(batch))
                raise RuntimeError("out of memory")
            return super().forward_scoped(batch)

    batcher = Batcher(Broken(), max_batch_size=4, batch_timeout_ms=1).start()
    try:
        with pytest.raises(RuntimeError, match="out of memory"):
            batcher.submit(image(1)).result(5)
        assert float(batcher.submit(image(7)).result(5)[0][0]) == 7
        assert isinstance(batcher.submit(image(1)).result(5)[0], np.ndarray)
    finally:
        batcher.stop()
