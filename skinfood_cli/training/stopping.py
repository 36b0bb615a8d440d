"""Ctrl-C during training: stop at the next step boundary, never inside a checkpoint write."""

from __future__ import annotations

import contextlib
import signal
import threading


class StopFlag:
    """Ctrl-C sets a flag; training stops at the next step boundary and saves.

    A second Ctrl-C raises KeyboardInterrupt at once. Stopping between steps,
    never inside optimizer.step(), is what makes the saved state consistent.
    """

    def __init__(self):
        self.set = False
        self._previous = None
        self._saving = False
        self._pending = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if not self.set:
            self.set = True
        elif self._saving:
            self._pending = True  # never tear a checkpoint in half: stop right after it
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def saving(self):
        """A section a second Ctrl-C waits for (writing checkpoints and metrics)."""
        self._saving = True
        try:
            yield
        finally:
            self._saving = False
        if self._pending:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
