"""One background worker for the analysis callbacks: linear algebra off the training thread.

At a logging point the training thread does only what must happen there (DDP collectives,
device-side snapshots of the tensors the computation reads, kernel launches that do not
synchronise) and hands the rest to :class:`AnalysisExecutor`: a job is a pair ``compute`` (run by
one worker thread: host transfers, float64 eigenproblems; returns plain values) and ``apply`` (run
later on the training thread with ``compute``'s result: rows, loggers, warnings, stop requests).

Results are applied **in submission order**, by :meth:`AnalysisExecutor.poll` (non-blocking, from
the callbacks' hooks) or :meth:`AnalysisExecutor.drain` (blocking: before a checkpoint's state is
taken, at the end of training, on an exception). An exception raised by ``compute`` is re-raised
on the training thread as :class:`AnalysisWorkerError` naming the job, never swallowed.

With ``background=False`` :meth:`AnalysisExecutor.submit` runs ``compute`` and ``apply`` inline
(the synchronous path), so both paths share one code path and give identical results.

Examples:
    >>> executor = AnalysisExecutor()
    >>> out = []
    >>> executor.submit(lambda: 6 * 7, out.append, what="the answer", background=True)
    >>> executor.drain(); executor.shutdown()
    >>> out
    [42]
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["AnalysisExecutor", "AnalysisWorkerError"]

log = logging.getLogger(__name__)

#: name prefix of the worker thread.
WORKER_NAME = "solo-offdiag-analysis"


class AnalysisWorkerError(RuntimeError):
    """A computation of the analysis worker failed (the original exception is the ``__cause__``)."""


@dataclass
class _Job:
    future: Future[tuple[Any, float]]
    apply: Callable[[Any], None]
    what: str


class AnalysisExecutor:
    """A FIFO of analysis jobs run by at most one worker thread, applied on the caller's thread.

    One executor is shared by the analysis callbacks of a run; the worker thread starts at the
    first background job and stops at :meth:`shutdown` (end of training).

    Attributes:
        jobs: jobs whose result was applied.
        compute_seconds: total wall time spent in ``compute`` (in the worker, or inline).
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[_Job] = deque()
        self.jobs = 0
        self.compute_seconds = 0.0

    @property
    def pending(self) -> int:
        """Jobs submitted whose result has not been applied yet."""
        return len(self._pending)

    def submit(
        self,
        compute: Callable[[], Any],
        apply: Callable[[Any], None],
        *,
        what: str,
        background: bool,
        device: torch.device | None = None,
    ) -> None:
        """Run ``compute()`` and ``apply(result)``: inline, or ``compute`` in the worker and
        ``apply`` here at a later :meth:`poll`/:meth:`drain` (``background``).

        ``what`` names the job in an :class:`AnalysisWorkerError`. ``device``: where ``compute``'s input tensors live; for CUDA the worker runs on the
        submitting thread's current stream, so its reads are ordered after the kernels that wrote
        those tensors, and the caching allocator reuses their memory safely afterwards.
        """
        if not background:
            result, seconds = _timed(compute)
            self._finish(apply, result, seconds)
            return
        stream = (
            torch.cuda.current_stream(device)
            if device is not None and device.type == "cuda"
            else None
        )
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=WORKER_NAME)
        future = self._pool.submit(_run_on_stream, compute, stream)
        self._pending.append(_Job(future, apply, what))

    def poll(self) -> int:
        """Apply the finished jobs at the head of the queue without waiting; returns how many."""
        applied = 0
        while self._pending and self._pending[0].future.done():
            self._apply_next()
            applied += 1
        return applied

    def drain(self, *, raise_errors: bool = True) -> None:
        """Wait for every pending job and apply them in order.

        With ``raise_errors=False`` (used while another exception propagates) a failing job is
        logged and skipped instead of raised.
        """
        while self._pending:
            try:
                self._apply_next()
            except AnalysisWorkerError:
                if raise_errors:
                    raise
                log.exception("analysis worker job failed while handling another exception")

    def shutdown(self) -> None:
        """Stop the worker thread (after the running job); a later :meth:`submit` starts a new one."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _apply_next(self) -> None:
        job = self._pending.popleft()
        try:
            result, seconds = job.future.result()
        except Exception as err:  # re-raised on the training thread, with what it was doing
            raise AnalysisWorkerError(
                f"analysis background worker failed computing {job.what}: "
                f"{type(err).__name__}: {err}"
            ) from err
        self._finish(job.apply, result, seconds)

    def _finish(self, apply: Callable[[Any], None], result: Any, seconds: float) -> None:
        self.jobs += 1
        self.compute_seconds += seconds
        apply(result)


def _timed(compute: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    with torch.no_grad():
        result = compute()
    return result, time.perf_counter() - start


def _run_on_stream(compute: Callable[[], Any], stream: Any) -> tuple[Any, float]:
    with _stream(stream):
        return _timed(compute)


@contextlib.contextmanager
def _stream(stream: Any) -> Iterator[None]:
    if stream is None:
        yield
    else:
        with torch.cuda.stream(stream):
            yield
