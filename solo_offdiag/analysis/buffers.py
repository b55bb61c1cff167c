"""Device-side buffers of the analysis callbacks and their DDP gathering (torch only).

Nothing here synchronises host and device: sizes are tracked as Python ints from tensor shapes,
and copies stay on the embeddings' device until a logging point gathers them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["EmbeddingQueue", "gather_rows", "gather_sum"]

AllGather = Callable[[torch.Tensor], torch.Tensor]


class EmbeddingQueue:
    """Bounded FIFO ring buffer of embedding rows, allocated on first use on the rows' device.

    ``push`` writes into a preallocated ``[capacity, D]`` float32 tensor (no reallocation, no
    host-device sync); once full, the oldest rows are overwritten. ``values()`` returns the stored
    rows (in buffer order, which no spectrum metric depends on).

    Examples:
        >>> q = EmbeddingQueue(3)
        >>> q.push(torch.ones(2, 4)); q.push(torch.zeros(2, 4))
        >>> q.values().shape, len(q)
        (torch.Size([3, 4]), 3)
    """

    def __init__(self, capacity: int, *, generator: torch.Generator | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.buffer: torch.Tensor | None = None
        self._pos = 0
        self._count = 0
        self._generator = generator

    def __len__(self) -> int:
        return self._count

    @property
    def dim(self) -> int | None:
        return None if self.buffer is None else self.buffer.shape[1]

    @property
    def full(self) -> bool:
        return self._count == self.capacity

    def reset(self) -> None:
        self._pos = 0
        self._count = 0

    def push(self, rows: torch.Tensor) -> None:
        rows = rows.detach()
        if rows.ndim != 2:
            rows = rows.flatten(1)
        if self.buffer is None:
            self.buffer = torch.empty(
                self.capacity, rows.shape[1], dtype=torch.float32, device=rows.device
            )
        elif rows.shape[1] != self.buffer.shape[1]:
            raise ValueError(
                f"embedding width changed from {self.buffer.shape[1]} to {rows.shape[1]}"
            )
        n = rows.shape[0]
        if n > self.capacity:  # a batch larger than the queue: keep a random subset of its rows
            index = torch.randperm(n, generator=self._generator)[: self.capacity]
            rows, n = rows[index.to(rows.device)], self.capacity
        first = min(n, self.capacity - self._pos)
        self.buffer[self._pos : self._pos + first].copy_(rows[:first])
        if first < n:
            self.buffer[: n - first].copy_(rows[first:])
        self._pos = (self._pos + n) % self.capacity
        self._count = min(self._count + n, self.capacity)

    def values(self) -> torch.Tensor | None:
        if self.buffer is None:
            return None
        return self.buffer[: self._count]


def gather_rows(rows: torch.Tensor, all_gather: AllGather, world_size: int) -> torch.Tensor:
    """Concatenate ``[n_r, D]`` row blocks of every rank (``n_r`` may differ between ranks).

    ``all_gather`` is a collective returning a ``[world_size, ...]`` stack (e.g.
    ``LightningModule.all_gather``); every rank must call this function. Blocks are padded to the
    largest ``n_r`` for the collective and trimmed afterwards. With one process, ``rows`` is
    returned as is.
    """
    if world_size <= 1:
        return rows
    count = torch.tensor([rows.shape[0]], device=rows.device, dtype=torch.long)
    counts = all_gather(count).reshape(world_size)
    longest = int(counts.max())
    padded = rows.new_zeros((longest, rows.shape[1]))
    padded[: rows.shape[0]] = rows
    stacked = all_gather(padded).reshape(world_size, longest, rows.shape[1])
    return torch.cat([stacked[r, : int(counts[r])] for r in range(world_size)])


def gather_sum(value: torch.Tensor, all_gather: AllGather, world_size: int) -> torch.Tensor:
    """Sum of ``value`` over ranks (every rank must call this)."""
    if world_size <= 1:
        return value
    return all_gather(value).reshape(world_size, *value.shape).sum(dim=0)
