"""argparse value types shared by the suite command lines (``suites.run``, ``suites.tune``)."""

from __future__ import annotations

import argparse


def positive_float(text: str) -> float:
    """A number > 0, or an argparse error quoting the text."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An int >= 1, or an argparse error quoting the text."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return value
