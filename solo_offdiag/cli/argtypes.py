"""argparse value types that refuse bad input at parse time: exit 2, one line naming the option,
the value and what is allowed, no traceback (argparse's own error path)."""

from __future__ import annotations

import argparse

__all__ = ["device", "non_negative_int", "positive_int"]


def positive_int(text: str) -> int:
    """An integer >= 1 (seeds, threads, counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: an integer >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {value}; allowed: an integer >= 1")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seed offsets)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: an integer >= 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"got {value}; allowed: an integer >= 0")
    return value


def device(text: str) -> str:
    """A torch device string: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()) or (index and kind != "cuda"):
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: cpu, cuda, cuda:N, mps")
    return text
