"""Run several RunSpecs at once, each in its own process (``repro run/all --jobs N``).

A :class:`RunSpec` holds a closure, which cannot be sent to another process, so a worker receives
the *factory* that made the specs (a picklable callable, e.g. a ``functools.partial`` of
:func:`solo_offdiag.repro.experiments.specs_for`) and the key of its run, rebuilds the specs and
executes that one with :func:`solo_offdiag.repro.runner.execute`: the same code path, folder
layout, fingerprint and resume rules as a sequential run. Workers are fresh interpreters
(``spawn``: no forked torch or OpenMP state), set their own torch thread count, use the parent's
artifact folder and multiprocessing start method, and write their output to
``<preset>/logs/<key>.log``.

Each run is one process, so a run's result never depends on what ran next to it: ``--jobs 2``
gives the same ``done.json`` results as ``--jobs 1`` (tested). On an interruption (Ctrl-C,
SIGTERM) the parent sends SIGTERM to every worker; a worker inside solo-learn pretraining saves
a resumable checkpoint first (as a sequential run does), and the next invocation resumes.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from solo_offdiag.repro.runner import RunOutcome, RunSpec, cached

__all__ = ["JOIN_TIMEOUT_S", "log_path", "run_parallel"]

#: how long an interrupted worker may take to save its checkpoint before it is killed.
JOIN_TIMEOUT_S = 120.0


def log_path(preset_dir: Path, key: str) -> Path:
    """Where a worker writes the output of run ``key`` (outside the run folder, which a
    ``--force`` or a changed config empties)."""
    return Path(preset_dir) / "logs" / (key.replace("/", "__") + ".log")


@dataclass
class _Job:
    key: str
    process: Any  # multiprocessing.Process (spawn context)
    conn: Connection
    start: float


def _worker(factory: Callable[[], Sequence[RunSpec]], key: str, preset_dir: str, force: bool,
            threads: int | None, artifact: str | None, start_method: str, log_file: str,
            conn: Connection) -> None:
    """A worker process: rebuild the specs, execute run ``key``, send back its RunOutcome."""
    # A spawned child inherits "spawn" as its default start method; the run's DataLoader workers
    # must start as in a sequential run (Linux: fork), or datasets that cannot be pickled (solo's
    # dataset_with_index makes a local class) fail in DataLoader.__iter__.
    mp.set_start_method(start_method, force=True)
    from solo_offdiag.repro.pipeline import interrupt_on_signals, torch_threads
    from solo_offdiag.repro.runner import execute

    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    out_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(out_fd, 1)  # C-level output (Lightning, torch warnings) too, not only Python's
    os.dup2(out_fd, 2)
    os.close(out_fd)

    def log(msg: str) -> None:
        print(msg, flush=True)

    try:
        if artifact is not None:
            from solo_offdiag.repro.artifact import use_artifact

            use_artifact(artifact)
        spec = next(s for s in factory() if s.key == key)
        with torch_threads(threads), interrupt_on_signals() as seen:
            try:
                out = execute(spec, Path(preset_dir), force=force, log=log)
            except KeyboardInterrupt:
                seen.append("interrupted")
        if seen:  # Lightning may have swallowed it and returned: the run is unfinished all the same
            out = RunOutcome(key, Path(preset_dir) / key, "failed", {}, 0.0, "interrupted")
    except BaseException as err:  # noqa: BLE001 - reported to the parent, which decides
        out = RunOutcome(key, Path(preset_dir) / key, "failed", {}, 0.0, f"{type(err).__name__}: {err}")
    conn.send(out)
    conn.close()


def run_parallel(specs: Sequence[RunSpec], factory: Callable[[], Sequence[RunSpec]], jobs: int,
                 preset_dir: Path, *, force: bool = False, threads: int | None = None,
                 log: Callable[[str], None] = print, on_done: Callable[[RunOutcome], None] | None = None,
                 ) -> list[RunOutcome]:
    """Execute ``specs`` with at most ``jobs`` worker processes; outcomes in the order of ``specs``.

    ``factory()`` must rebuild the same specs (same keys) in a fresh process. ``on_done`` is
    called in the parent as each run ends (progress bars, reports). A KeyboardInterrupt in the
    parent (the caller's signal handler raises it) stops every worker with SIGTERM, waits for
    them (at most :data:`JOIN_TIMEOUT_S` each) and is re-raised.
    """
    if jobs < 1:
        raise ValueError(f"jobs: got {jobs}; allowed: a positive integer")
    from solo_offdiag.repro.artifact import selected_artifact_dir

    ctx = mp.get_context("spawn")
    start_method = mp.get_start_method()  # the parent's (the platform default unless set)
    pending = list(specs)
    running: dict[Connection, _Job] = {}
    results: dict[str, RunOutcome] = {}
    selected = selected_artifact_dir()
    artifact = str(selected) if selected is not None else None
    try:
        while pending or running:
            while pending and len(running) < jobs:
                spec = pending.pop(0)
                hit = cached(spec, preset_dir, force=force, log=log)
                if hit is not None:  # finished already: no process to start
                    results[spec.key] = hit
                    if on_done is not None:
                        on_done(hit)
                    continue
                receive, send = ctx.Pipe(duplex=False)
                logfile = log_path(preset_dir, spec.key)
                proc = ctx.Process(target=_worker, name=f"repro:{spec.key}", daemon=False,
                                   args=(factory, spec.key, str(preset_dir), force, threads, artifact,
                                         start_method, str(logfile), send))
                proc.start()
                send.close()  # the parent only receives; EOF then means the worker is gone
                running[receive] = _Job(spec.key, proc, receive, time.perf_counter())
                log(f"[repro] {spec.key}: started in process {proc.pid} (output: {logfile})")
            for conn in (wait(list(running)) if running else ()):  # none running: every pending run was cached
                job = running.pop(conn)  # type: ignore[arg-type]
                try:
                    out = conn.recv()
                except EOFError:  # the worker died without a word (killed, out of memory)
                    job.process.join()
                    out = RunOutcome(job.key, Path(preset_dir) / job.key, "failed", {},
                                     time.perf_counter() - job.start,
                                     f"worker process exited with code {job.process.exitcode} "
                                     f"(output: {log_path(preset_dir, job.key)})")
                job.process.join()
                conn.close()
                results[job.key] = out
                if on_done is not None:
                    on_done(out)
    except KeyboardInterrupt:
        _stop(list(running.values()))
        raise
    return [results[s.key] for s in specs if s.key in results]


def _stop(jobs: list[_Job]) -> None:
    """SIGTERM every worker, then wait for each (a pretraining worker saves a checkpoint first)."""
    for job in jobs:
        if job.process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(job.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    for job in jobs:
        job.process.join(max(0.0, deadline - time.monotonic()))
        if job.process.is_alive():
            job.process.kill()
            job.process.join()
