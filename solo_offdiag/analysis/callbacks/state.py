"""Step-keyed state shared by every analysis callback: record, resume truncation, npz export.

A callback keeps two kinds of per-logging-point data, both keyed by the global step:

* scalar rows (``step -> {column: value}``), merged by the writer into ``metrics.csv``: see
  :func:`truncate_rows`;
* arrays (a spectrum, per-mode alignment, ...), one per field and step: a :class:`StepSeries`.

Both are part of the callback's checkpointed state; on resume everything recorded after the
checkpoint's step is dropped (:func:`truncate_rows`, :meth:`StepSeries.truncate`), so a step is
never duplicated or lost.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["StepSeries", "as_numpy", "column", "truncate_rows"]


def as_numpy(value: Any) -> np.ndarray:
    """A checkpointed array (a tensor, or anything numpy accepts) as a numpy array."""
    return value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def truncate_rows(rows: Mapping[int, dict[str, float]], step: int) -> dict[int, dict[str, float]]:
    """The rows recorded at steps ``<= step`` (resume from a checkpoint taken at ``step``)."""
    return {int(s): dict(r) for s, r in rows.items() if int(s) <= step}


def column(rows: Mapping[int, Mapping[str, float]], steps: Iterable[int], key: str) -> np.ndarray:
    """``rows[s][key]`` for each of ``steps`` (NaN where absent), as a float64 array."""
    return np.array([rows.get(s, {}).get(key, math.nan) for s in steps], dtype=np.float64)


class StepSeries:
    """Arrays recorded at logging points: ``steps[i]`` and ``values[field][i]`` belong together.

    Args:
        fields: the array names recorded at every point.
        steps_key: the key of the step list in :meth:`state_dict` (fields are stored under their
            own names).

    Examples:
        >>> series = StepSeries(("spectrum",))
        >>> series.record(50, spectrum=np.ones(3)); series.record(100, spectrum=np.zeros(3))
        >>> series.truncate(70); series.steps
        [50]
        >>> series.table("spectrum").shape
        (1, 3)
    """

    def __init__(self, fields: Iterable[str], *, steps_key: str = "steps") -> None:
        self.fields = tuple(fields)
        self.steps_key = steps_key
        if steps_key in self.fields:
            raise ValueError(f"field {steps_key!r} clashes with the steps key")
        self.steps: list[int] = []
        self.values: dict[str, list[np.ndarray]] = {f: [] for f in self.fields}

    def __len__(self) -> int:
        return len(self.steps)

    def record(self, step: int, **arrays: np.ndarray) -> None:
        """Append the arrays of one logging point (every field, no other)."""
        if set(arrays) != set(self.fields):
            raise ValueError(f"record() needs exactly the fields {self.fields}, got {tuple(arrays)}")
        self.steps.append(int(step))
        for name, value in arrays.items():
            self.values[name].append(np.asarray(value))

    def truncate(self, step: int) -> None:
        """Drop the points recorded after ``step`` (resume)."""
        keep = [i for i, s in enumerate(self.steps) if s <= step]
        self.steps = [self.steps[i] for i in keep]
        self.values = {f: [v[i] for i in keep] for f, v in self.values.items()}

    def steps_array(self) -> np.ndarray:
        return np.array(self.steps, dtype=np.int64)

    def table(self, field: str) -> np.ndarray:
        """``[points, width]`` array of ``field``; rows of different lengths are NaN-padded."""
        arrays = self.values[field]
        lengths = {a.shape for a in arrays}
        if len(lengths) <= 1:
            return np.stack(arrays) if arrays else np.zeros((0, 0), dtype=np.float32)
        width = max(a.size for a in arrays)
        dtype = np.result_type(*arrays, np.float32)
        out = np.full((len(arrays), width), np.nan, dtype=dtype)
        for i, a in enumerate(arrays):
            out[i, : a.size] = a.ravel()
        return out

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {self.steps_key: list(self.steps)}
        for name, arrays in self.values.items():
            state[name] = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.steps = [int(s) for s in state.get(self.steps_key, [])]
        self.values = {f: [as_numpy(a) for a in state.get(f, [])] for f in self.fields}
        if any(len(v) != len(self.steps) for v in self.values.values()):
            lengths = {f: len(v) for f, v in self.values.items()}
            raise ValueError(
                f"inconsistent analysis state: {len(self.steps)} steps but arrays {lengths}"
            )
