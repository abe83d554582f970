"""A training budget of steps or minutes, whichever runs out first, and the cosine learning-rate
schedule that follows it (used by train-prior and train-clip, which promise a wall-clock limit)."""

from __future__ import annotations

import math
import time


class Budget:
    def __init__(self, steps: int, minutes: float | None = None):
        self.steps = steps
        self.minutes = minutes
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def fraction(self, step: int) -> float:
        """How much of the budget is used after `step` steps: the larger of steps and time."""
        by_steps = step / self.steps
        if not self.minutes:
            return by_steps
        return max(by_steps, self.seconds / (60 * self.minutes))

    def exhausted(self, step: int) -> bool:
        return self.fraction(step) >= 1.0


def cosine_factor(fraction: float, final: float = 0.0, warmup_fraction_done: float = 1.0) -> float:
    """Learning-rate factor: from 1 down to `final` along half a cosine over the budget, times a
    linear warm-up factor `warmup_fraction_done` in (0, 1]."""
    cosine = 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0)))
    return warmup_fraction_done * (final + (1 - final) * cosine)
