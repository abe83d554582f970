"""Argument types of the command line: each refuses what cannot be meant (a negative step count, a
NaN angle, a seed past 2^31) while the arguments are parsed, in one line, before any work."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

MAX_SEED = 2**31 - 1
MAX_MINUTES = 7 * 24 * 60


def seed_number(text: str) -> int:
    """A --seed: a whole number from 0 to MAX_SEED (as the bridge's API takes)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is a whole number from 0 to {MAX_SEED}, not {text[:40]}")
    return value


def degrees(text: str) -> float:
    """A camera angle: a finite number of degrees within +-360."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number of degrees") from None
    if not math.isfinite(value) or abs(value) > 360:
        raise argparse.ArgumentTypeError(f"an angle is a number of degrees within +-360, not {text[:40]}")
    return value


def count(low: int = 1, high: int = 10_000_000) -> Callable[[str], int]:
    """A whole number from `low` to `high` (steps, heads, batch sizes, resolutions)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"give a whole number from {low} to {high}, not {text[:40]}")
        return value

    return parse


def positive(high: float) -> Callable[[str], float]:
    """A finite number above 0 and at most `high` (minutes, a learning rate)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
        if not (math.isfinite(value) and 0 < value <= high):
            raise argparse.ArgumentTypeError(f"give a number above 0 and at most {high:g}, not {text[:40]}")
        return value

    return parse


minutes = positive(MAX_MINUTES)
