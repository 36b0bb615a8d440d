"""The learning-rate schedule: warmup + cosine per phase, restarted when the backbone unfreezes.

A phase is laid out over optimizer steps (`--epochs`) or, for the last phase, over a
wall-clock budget (`--minutes`), or both (whichever ends first). `Schedule.multiplier`
is a pure function of the optimizer step and the run's seconds, so a resumed run
needs nothing but those two (kept in the trainer's state) and `state_dict`.
"""

from __future__ import annotations

import math

MIN_LR_RATIO = 0.01  # cosine decays to 1% of the peak, not to zero
WARMUP_SHARE = 0.1  # of each phase
# Progressive resizing: (share of the schedule done, share of --image-size) steps.
PROGRESSIVE_SIZES = ((0.4, 0.75), (0.75, 0.875), (1.0, 1.0))


def get_lr_multiplier(step: int, phases: list[tuple[int, int]]) -> float:
    """Multiplier of the peak learning rate at optimizer step `step`.

    `phases` are (first_step, num_steps): the frozen-head phase and the full
    fine-tuning phase each get their own schedule, as fastai's fine_tune does.
    Within a phase:
      1) linear warmup over its first 10% of steps (at least 1),
      2) cosine decay from 1 to MIN_LR_RATIO over the rest.
    """
    for first, length in reversed(phases):
        if step >= first and length > 0:
            local = step - first
            warmup = max(1, int(length * WARMUP_SHARE))
            if local < warmup:
                return (local + 1) / warmup
            return _cosine((local - warmup) / max(1, length - warmup))
    return 1.0


def _cosine(progress: float) -> float:
    progress = min(1.0, max(0.0, progress))
    return MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress))


def timed_multiplier(progress: float) -> float:
    """The same warmup + cosine over a share `progress` in [0, 1] of a phase's time."""
    if progress < WARMUP_SHARE:
        return max(progress, 1e-3) / WARMUP_SHARE
    return _cosine((progress - WARMUP_SHARE) / (1 - WARMUP_SHARE))


def progressive_size(size: int, progress: float) -> int:
    """The side of the training images at `progress` (share of the schedule done, 0..1).

    Three quarters of `size` for the first 40%, seven eighths until 75%, then full size,
    so the weights end tuned to the size they are used at (fastai's progressive resizing;
    FixRes on why the last stretch must be at full size). Multiples of 8, at least 32.
    """
    share = next((s for until, s in PROGRESSIVE_SIZES if progress < until), 1.0)
    return max(32, min(size, round(size * share / 8) * 8))


class Schedule:
    """Phases of (first_step, num_steps): the frozen-head phase, then full fine-tuning.

    With `seconds` (a budget for the whole run), the last phase is laid out over the
    time left when it starts (`origin`, set by `start_timed_phase`) and ends when the
    budget does; its `num_steps` is 0 when only the budget bounds it.
    """

    def __init__(self, phases: list[tuple[int, int]], seconds: float | None = None, origin: float | None = None):
        self.phases = [(int(a), int(b)) for a, b in phases]
        self.seconds = seconds
        self.origin = origin

    @classmethod
    def for_epochs(
        cls, epochs: int | None, frozen_epochs: int, steps_per_epoch: int, seconds: float | None = None
    ) -> Schedule:
        frozen = min(frozen_epochs, epochs) if epochs is not None else frozen_epochs
        first = frozen * steps_per_epoch
        full = (epochs - frozen) * steps_per_epoch if epochs is not None else 0
        return cls([(0, first), (first, full)], seconds=seconds, origin=0.0 if seconds and not first else None)

    @property
    def total_steps(self) -> int:
        return sum(n for _, n in self.phases)

    @property
    def timed(self) -> bool:
        return self.seconds is not None

    def start_timed_phase(self, step: int, elapsed: float) -> None:
        """Record when the timed last phase began (called before each step; acts once)."""
        if self.timed and self.origin is None and step >= self.phases[-1][0]:
            self.origin = elapsed

    def multiplier(self, step: int, elapsed: float = 0.0) -> float:
        first, length = self.phases[-1]
        if not self.timed or step < first:
            return get_lr_multiplier(step, self.phases)
        return timed_multiplier(self.progress(step, elapsed))

    def progress(self, step: int, elapsed: float) -> float:
        """Share of the last phase done: by steps, by time, whichever is further along."""
        first, length = self.phases[-1]
        by_steps = (step - first) / length if length else 0.0
        if not self.timed:
            return by_steps
        origin = self.origin if self.origin is not None else elapsed
        assert self.seconds is not None
        by_time = (elapsed - origin) / max(self.seconds - origin, 1e-9)
        return max(by_steps, by_time)

    def done(self, step: int, elapsed: float) -> bool:
        """Whether the schedule has run out, by steps or by time."""
        if self.timed:
            assert self.seconds is not None
            if elapsed >= self.seconds:
                return True
        return self.phases[-1][1] > 0 and step >= self.total_steps

    def state_dict(self) -> dict:
        return {"phases": [list(p) for p in self.phases], "seconds": self.seconds, "origin": self.origin}

    def load_state_dict(self, state: dict) -> None:
        self.phases = [(int(a), int(b)) for a, b in state["phases"]]
        self.seconds = state.get("seconds")
        self.origin = state.get("origin")
