"""Rich progress for long jobs: training epochs, pre-scan, downloads, batches.

Everything here draws on stderr, so stdout stays clean for data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skinfood_cli.cli.output import console
from skinfood_cli.training import Reporter

if TYPE_CHECKING:
    from rich.progress import Progress


def _progress(transient: bool = True):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        console=console(stderr=True),
        transient=transient,
    )


class RichTrainReporter(Reporter):
    """Per-epoch bars (loss, accuracy, images/s, ETA) and one summary line per epoch."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.err = console(stderr=True)
        self._bar: Progress | None = None
        self._task = None
        self._scan_task = None
        self._download_task = None

    def _start(self, description: str, total: int | None):
        if not self.err.is_terminal:  # logs and pipes get the per-epoch lines only
            return None
        if self._bar is None:
            self._bar = _progress()
            self._bar.start()
        bar = self._bar
        return bar.add_task(description, total=total, info="")

    def _stop(self):
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def message(self, text: str) -> None:
        from rich.markup import escape

        if not self.quiet:
            self.err.print(escape(text), soft_wrap=True)

    def warning(self, text: str) -> None:
        from skinfood_cli.cli.output import warn

        warn(text)  # even with --quiet

    def download(self, done: int, total: int | None) -> None:
        if self.quiet:
            return
        if self._download_task is None:
            self._download_task = self._start("ImageNet weights", total)
        if self._download_task is None:
            return
        self._bar.update(self._download_task, completed=done, info=f"{done / 1e6:.0f} MB")
        if total is not None and done >= total:
            self._stop()
            self._download_task = None

    def scan(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self._scan_task is None:
            self._scan_task = self._start("checking images", total)
        if self._scan_task is None:
            return
        self._bar.update(self._scan_task, completed=done)
        if done >= total:
            self._stop()
            self._scan_task = None

    def skipped(self, items) -> None:
        from rich.markup import escape

        self.err.print(f"[yellow]warning:[/yellow] {len(items)} file(s) can't be used and are left out:")
        for path, reason in items[:20]:
            self.err.print(f"  {escape(path)}: {escape(reason)}", soft_wrap=True)
        if len(items) > 20:
            self.err.print(f"  ... and {len(items) - 20} more (all listed in the run's skipped.txt)")

    def epoch_start(self, epoch: int, epochs: int | None, steps: int, phase: str) -> None:
        if not self.quiet:
            of = f"/{epochs}" if epochs is not None else ""
            self._task = self._start(f"epoch {epoch + 1}{of} ({phase})", steps)

    def step(self, step: int, steps: int, loss: float, acc: float, images_per_s: float) -> None:
        if self._task is not None:
            self._bar.update(self._task, completed=step, info=f"loss {loss:.3f} acc {acc:.3f} {images_per_s:.1f} img/s")

    def epoch_end(self, row: dict) -> None:
        self._stop()
        self._task = None
        if self.quiet:
            return
        best = " [green]* best[/green]" if row.get("best") else ""
        self.err.print(
            f"epoch {row['epoch']:>3}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f}  "
            f"val loss {row['val_loss']:.3f} acc {row['val_acc']:.3f} macro-F1 {row['val_macro_f1']:.3f}  "
            f"{row['images_per_s']:.1f} img/s  {row['seconds']:.0f}s{best}"
        )

    def close(self) -> None:
        self._stop()


class BatchProgress:
    """A bar over N inputs for predict/evaluate; silent when stderr isn't a terminal."""

    def __init__(self, total: int, description: str, enabled: bool = True):
        self.enabled = enabled and total > 1 and console(stderr=True).is_terminal
        self.bar = _progress() if self.enabled else None
        self.task = self.bar.add_task(description, total=total, info="") if self.bar else None

    def __enter__(self):
        if self.bar:
            self.bar.start()
        return self

    def advance(self, n: int = 1) -> None:
        if self.bar:
            self.bar.advance(self.task, n)

    def __exit__(self, *exc):
        if self.bar:
            self.bar.stop()
        return False
