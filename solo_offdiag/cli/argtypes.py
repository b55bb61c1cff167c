"""argparse value types that refuse bad input at parse time: exit 2, one line naming the option,
the value and what is allowed, no traceback (argparse's own error path)."""

from __future__ import annotations

import argparse

__all__ = ["device", "non_negative_int", "positive_int"]


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: an integer >= {low}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"got {value}; allowed: an integer >= {low}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (seeds, threads, counts)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (seed offsets)."""
    return _int_at_least(text, 0)


def device(text: str) -> str:
    """A torch device string: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and not index.isdigit()) or (index and kind != "cuda"):
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: cpu, cuda, cuda:N, mps")
    return text
