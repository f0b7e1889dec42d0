"""Argument types for graphapp's commands: numbers within a range, said in ``--help``.

An argparse ``type=`` that refuses a value makes the parser answer with a
one-line error naming the option, before the command touches anything.
"""

import argparse
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Whole:
    """A whole number from ``low`` to ``high``."""

    low: int
    high: int

    def __call__(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # also for more digits than Python converts
            value = None
        if value is None or not self.low <= value <= self.high:
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {self}, not {text[:40]!r}"
            )
        return value

    def __str__(self) -> str:
        return f"{self.low:,} to {self.high:,}"


@dataclass(frozen=True)
class Number:
    """A finite number from ``low`` (excluded when ``above``) to ``high``."""

    low: float
    high: float
    above: bool = False

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        low_ok = value > self.low if self.above else value >= self.low
        if not (low_ok and value <= self.high):  # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"must be a number {self}, not {text[:40]!r}")
        return value

    def __str__(self) -> str:
        if self.above:
            return f"above {self.low:g} and at most {self.high:g}"
        return f"from {self.low:g} to {self.high:g}"
