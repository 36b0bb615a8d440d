"""The learning-rate schedule: warmup + cosine per phase, restarted when the backbone unfreezes.

`Schedule.multiplier(step)` is a pure function of the optimizer step, so a resumed run
needs nothing but the step count (kept in the trainer's state) and the phases, which
`state_dict` records so a resume can check it is continuing the same schedule.
"""

from __future__ import annotations

import math

MIN_LR_RATIO = 0.01  # cosine decays to 1% of the peak, not to zero


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
            warmup = max(1, length // 10)
            if local < warmup:
                return (local + 1) / warmup
            progress = min(1.0, (local - warmup) / max(1, length - warmup))
            return MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


class Schedule:
    """Phases of (first_step, num_steps): the frozen-head phase, then full fine-tuning."""

    def __init__(self, phases: list[tuple[int, int]]):
        self.phases = [(int(a), int(b)) for a, b in phases]

    @classmethod
    def for_epochs(cls, epochs: int, frozen_epochs: int, steps_per_epoch: int) -> Schedule:
        frozen = min(frozen_epochs, epochs)
        return cls([(0, frozen * steps_per_epoch), (frozen * steps_per_epoch, (epochs - frozen) * steps_per_epoch)])

    @property
    def total_steps(self) -> int:
        return sum(n for _, n in self.phases)

    def multiplier(self, step: int) -> float:
        return get_lr_multiplier(step, self.phases)

    def state_dict(self) -> dict:
        return {"phases": [list(p) for p in self.phases]}

    def load_state_dict(self, state: dict) -> None:
        self.phases = [(int(a), int(b)) for a, b in state["phases"]]
