"""What the routes share: the engine behind its batcher, the descriptions, the metrics.

create_app puts one State on `app.state.skinfood`; the routes reach it through
the `AppState` dependency (routes_common.py). The model loads in the app's
lifespan, or before, in runner.py, so that a bad model fails before anything listens.
"""

from __future__ import annotations

from pathlib import Path

from skinfood_cli.descriptions import load_descriptions
from skinfood_cli.engine import Engine, load_model
from skinfood_cli.serving.batching import Batcher
from skinfood_cli.serving.config import ServeConfig
from skinfood_cli.serving.metrics import Metrics


class State:
    """The served model's lifecycle and what every request reads: cfg, book, metrics, engine, batcher."""

    def __init__(self, cfg: ServeConfig):
        self.cfg = cfg
        self.book = load_descriptions(Path(cfg.descriptions) if cfg.descriptions else None)
        self.metrics = Metrics()
        # Set by load(); the routes use them only after require_ready(), and stop() checks for None.
        self.batcher: Batcher = None  # type: ignore[assignment]
        self.engine: Engine = None  # type: ignore[assignment]
        self.ready = False

    def load(self) -> None:
        """Load the model, start the inference thread, and warm it up."""
        self.engine = Engine(
            load_model(self.cfg.model),
            device=self.cfg.device,
            precision=self.cfg.precision,
            batch_size=self.cfg.max_batch_size,
        )
        self.batcher = Batcher(
            self.engine,
            max_batch_size=self.cfg.max_batch_size,
            batch_timeout_ms=self.cfg.batch_timeout_ms,
            max_queue=self.cfg.max_queue,
            on_batch=self.metrics.observe_batch,
        ).start()
        self.batcher.call(_warm_up).result()
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        if self.batcher is not None:
            self.batcher.stop()


def _warm_up(engine) -> None:
    """First passes pick kernels and allocate; do them before the first user waits."""
    for n in sorted({1, 2, max(1, engine.batch_size // 2), engine.batch_size}):
        engine.forward(engine.example_input(n))
