"""The reproduction, end to end: run experiments, draw figures, write tables, check the claims.

``run_experiments`` executes RunSpecs through :func:`solo_offdiag.repro.runner.execute` (finished
runs are skipped, unfinished ones resumed) with a progress bar; ``run_all`` is
``repro all``: every theory experiment, the image experiment when solo-learn is installed (else
a line saying exactly what was skipped and how to enable it), figures, tables and the check.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solo_offdiag.io import atomic_write_json
from solo_offdiag.repro import experiments as E
from solo_offdiag.repro.envinfo import environment
from solo_offdiag.repro.runner import RunOutcome, RunSpec, execute

__all__ = ["CPU_THREADS", "AllResult", "prepare_data", "run_all", "run_experiments", "torch_threads"]

DEFAULT_RESULTS = Path("results")
#: torch intra-op threads of CPU runs from the CLI. One thread, because the runs are many small
#: ops and OpenMP's barrier per op stalls whenever a second thread is descheduled: measured on
#: the 2-core CPU with other jobs running (load 4-6), one byol_offdiag step (batch 32, 16 px) took
#: ~8-13 s with torch's default of 2 threads and ~1 s with 1 thread (artifact/README.md).
CPU_THREADS = 1


def _print(msg: str) -> None:
    print(msg, flush=True)


class DataUnavailable(RuntimeError):
    """A data set of the preset's grid is neither on disk nor downloadable."""


#: torchvision classes and the splits solo-learn's pretraining and our probe read.
_TORCHVISION = {"cifar10": ("CIFAR10", "train"), "cifar100": ("CIFAR100", "train"), "stl10": ("STL10", "split")}


def ensure_torchvision_dataset(dataset: str, data_dir: Path) -> Path:
    """Find ``dataset`` under ``data_dir`` or download it there (torchvision checks integrity).

    Raises :class:`DataUnavailable` naming the folder, the cause and where the instructions are,
    so that a grid of runs fails once, before training, instead of once per run.
    """
    import torchvision.datasets as tvd

    cls_name, kind = _TORCHVISION[dataset]
    cls = getattr(tvd, cls_name)
    try:
        if kind == "split":
            for split in ("train+unlabeled", "test"):
                cls(str(data_dir), split=split, download=True)
        else:
            for train in (True, False):
                cls(str(data_dir), train=train, download=True)
    except Exception as err:  # URLError, integrity failure, disk full, ...
        raise DataUnavailable(
            f"{dataset}: not found in {str(data_dir)!r} and the download failed "
            f"({type(err).__name__}: {err}). Put the torchvision copy there or pass --data-dir "
            "(artifact/README.md, 'Data')") from err
    return data_dir


def prepare_data(names: Sequence[str], preset: str, results: Path, log: Callable[[str], None] = _print,
                 data_dir: Path | None = None) -> None:
    """Make the preset's image data sets ready before any run: export the embedded digits set,
    find or download CIFAR-10/100 and STL-10 (:func:`ensure_torchvision_dataset`)."""
    if E.IMAGE_EXPERIMENT not in names:
        return
    datasets = {entry["dataset"] for entry in E.image_grid(preset)["grid"]}
    if "digits" in datasets:
        from solo_offdiag.repro.digits import export_digits

        root = export_digits(results / "data" / "digits32", size=32)
        log(f"[repro] digits data set ready: {root}")
    for dataset in sorted(datasets & set(_TORCHVISION)):
        folder = ensure_torchvision_dataset(dataset, Path(data_dir or "datasets").resolve())
        log(f"[repro] {dataset} ready in {folder}")


def run_experiments(
    names: Sequence[str], *, preset: str, device: str = "cpu", seeds: int | None = None,
    results: Path = DEFAULT_RESULTS, data_dir: Path | None = None, progress: bool = True,
    force: bool = False, threads: int | None = None, log: Callable[[str], None] = _print, seed_offset: int | None = None,
    jobs: int = 1,
) -> list[RunOutcome]:
    """Run (or resume, or skip when finished) every run of the named experiments.

    ``threads``: torch's intra-op thread count while the runs execute (restored afterwards);
    None leaves torch's default. See :data:`CPU_THREADS` for why the CLI uses 1 on CPU.
    ``jobs``: how many runs execute at once, each in its own process
    (:mod:`solo_offdiag.repro.parallel`; 1: one after the other in this process).
    ``seed_offset``: the first seed of every experiment (None: the defaults, see
    :func:`solo_offdiag.repro.experiments.specs_for`).
    """
    with torch_threads(threads):
        return _run_experiments(names, preset=preset, device=device, seeds=seeds, results=results,
                                data_dir=data_dir, progress=progress, force=force, log=log, seed_offset=seed_offset,
                                jobs=jobs, threads=threads)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Set ``torch.set_num_threads(threads)`` inside the block (None: unchanged)."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"threads: got {threads}; allowed: a positive integer")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_experiments(
    names: Sequence[str], *, preset: str, device: str, seeds: int | None, results: Path,
    data_dir: Path | None, progress: bool, force: bool, log: Callable[[str], None], seed_offset: int | None = None,
    jobs: int = 1, threads: int | None = None,
) -> list[RunOutcome]:
    from tqdm.auto import tqdm

    results = Path(results)
    preset_dir = results / preset
    prepare_data(names, preset, results, log, data_dir)
    factory = functools.partial(E.specs_for, names, preset, device, seeds, results / "data", data_dir, progress,
                                seed_offset)
    specs = factory()
    preset_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(preset_dir / "env.json", environment())
    if jobs > 1:
        return _run_parallel(specs, factory, jobs, preset_dir, force=force, threads=threads, progress=progress,
                             log=log, preset=preset)
    outcomes = []
    bar = tqdm(specs, desc=f"repro {preset}", unit="run", disable=not progress)
    if progress:
        log = bar.write  # keep the bar below the log lines
    with interrupt_on_signals() as interrupted:
        for spec in bar:
            bar.set_postfix_str(spec.key)
            log(f"[repro] {spec.key}: {spec.description}")
            try:
                out = execute(spec, preset_dir, force=force, log=log)
            except KeyboardInterrupt:
                interrupted.append(spec.key)
                out = RunOutcome(spec.key, preset_dir / spec.key, "failed", {}, 0.0, "interrupted")
            outcomes.append(out)
            _report_outcome(out, log)
            if interrupted:  # Lightning swallows the interrupt and returns: stop here all the same
                bar.close()
                log(f"[repro] interrupted during {spec.key}; finished runs are kept: re-run the same "
                    "command to resume")
                raise KeyboardInterrupt(" ".join(s for s in interrupted if s.startswith("SIG")))
    return outcomes


def _run_parallel(specs: list[RunSpec], factory: Callable[[], list[RunSpec]], jobs: int, preset_dir: Path, *,
                  force: bool, threads: int | None, progress: bool, log: Callable[[str], None],
                  preset: str) -> list[RunOutcome]:
    """``--jobs N`` (N > 1): the runs in N worker processes, the longest first (image runs take
    minutes, theory runs seconds), so that the last run to start does not end long after the
    others."""
    from tqdm.auto import tqdm

    from solo_offdiag.repro.parallel import run_parallel

    ordered = sorted(specs, key=lambda s: s.tags.get("kind") != "image")
    bar = tqdm(total=len(specs), desc=f"repro {preset} ({jobs} jobs)", unit="run", disable=not progress)
    if progress:
        log = bar.write

    def done(out: RunOutcome) -> None:
        bar.update(1)
        _report_outcome(out, log)

    with interrupt_on_signals():
        try:
            outcomes = run_parallel(ordered, factory, jobs, preset_dir, force=force, threads=threads, log=log,
                                    on_done=done)
        except KeyboardInterrupt as err:
            bar.close()
            log("[repro] interrupted: the running runs were stopped (each saved what it could); finished "
                "runs are kept: re-run the same command to resume")
            raise KeyboardInterrupt(str(err)) from None
    bar.close()
    if any(o.error == "interrupted" for o in outcomes):  # a worker got the signal first (Ctrl-C in a terminal)
        log("[repro] interrupted; finished runs are kept: re-run the same command to resume")
        raise KeyboardInterrupt("SIGINT")
    by_key = {o.key: o for o in outcomes}
    return [by_key[s.key] for s in specs if s.key in by_key]


def _report_outcome(out: RunOutcome, log: Callable[[str], None]) -> None:
    if out.status == "failed":
        log(f"[repro] {out.key}: FAILED after {out.wall_time_s:.0f} s: {out.error} "
            f"(traceback: {out.run_dir / 'error.txt'}); re-run to resume")
    else:
        log(f"[repro] {out.key}: {out.status} ({out.wall_time_s:.0f} s)")


@contextlib.contextmanager
def interrupt_on_signals() -> Iterator[list[str]]:
    """SIGINT and SIGTERM raise KeyboardInterrupt and are remembered in the yielded list.

    A SIGTERM during solo-learn pretraining does not raise here: Lightning's handler (which calls
    this one) stops the fit after the current batch, our checkpointer saves a resumable
    checkpoint, and pretraining raises ``Preempted`` (a KeyboardInterrupt) itself.

    Lightning catches KeyboardInterrupt inside ``Trainer.fit`` and returns normally, so the list
    is how the loop learns that it must stop. Outside the main thread this does nothing.
    """
    import signal
    import threading

    seen: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def handler(signum: int, frame: Any) -> None:
        seen.append(signal.Signals(signum).name)
        if signum == signal.SIGTERM and _fit_in_progress():
            return  # Lightning stops after the current batch and our checkpointer saves first
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield seen
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _fit_in_progress() -> bool:
    import sys

    pretraining = sys.modules.get("solo_offdiag.solo_adapter.pretraining")
    return bool(getattr(pretraining, "FIT_IN_PROGRESS", False))


@dataclass
class AllResult:
    outcomes: list[RunOutcome]
    report: Any
    skipped: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def exit_code(self) -> int:
        failed_runs = any(o.status == "failed" for o in self.outcomes)
        return 1 if failed_runs or self.report.exit_code else 0


def run_all(
    *, preset: str, device: str = "cpu", seeds: int | None = None, results: Path = DEFAULT_RESULTS,
    data_dir: Path | None = None, progress: bool = True, force: bool = False, strict: bool = False,
    threads: int | None = None, log: Callable[[str], None] = _print, seed_offset: int | None = None, jobs: int = 1,
) -> AllResult:
    """``repro all``: experiments, figures, tables, check; writes ``all.json`` with wall times."""
    from solo_offdiag.repro.check import evaluate, write_report
    from solo_offdiag.repro.figures import write_figures
    from solo_offdiag.repro.tables import write_tables

    start = time.perf_counter()
    results = Path(results)
    names = E.theory_experiments()
    skipped: dict[str, str] = {}
    reason = E.image_unavailable()
    if reason is None:
        names.append(E.IMAGE_EXPERIMENT)
    else:
        first = reason.splitlines()[0]
        skipped[E.IMAGE_EXPERIMENT] = reason
        log(f"[repro] SKIPPED {E.IMAGE_EXPERIMENT} (claims C1, C2 and the image side of C3): {first}")
        log("[repro] to enable the image experiments, install solo-learn 1.0.6:\n"
            + "\n".join(f"    {line}" for line in reason.splitlines()[1:]))
    outcomes = run_experiments(names, preset=preset, device=device, seeds=seeds, results=results,
                               data_dir=data_dir, progress=progress, force=force, threads=threads, log=log,
                               seed_offset=seed_offset, jobs=jobs)
    preset_dir = results / preset
    try:
        figures = write_figures(preset_dir, preset)
    except Exception as err:  # a figure must not cost the claim check; reported instead
        figures = []
        log(f"[repro] figures failed ({type(err).__name__}: {err}); re-run `solo-offdiag repro figures`")
    image_reason = None
    if reason is not None:
        image_reason = f"needs solo-learn 1.0.6: {reason.splitlines()[0]} To enable: {E.SOLO_INSTALL_HINT}"
    report = evaluate(results, preset, strict=strict, image_skip_reason=image_reason)
    write_report(report, preset_dir)
    tables = write_tables(preset_dir, report)
    wall = time.perf_counter() - start
    atomic_write_json(preset_dir / "all.json", {
        "preset": preset, "device": device, "wall_time_s": wall, "skipped": skipped,
        "runs": [{"key": o.key, "status": o.status, "wall_time_s": o.wall_time_s, "error": o.error}
                 for o in outcomes],
        "figures": [str(p) for p in figures], "tables": [str(p) for p in tables],
        "check_exit_code": report.exit_code,
    })
    return AllResult(outcomes, report, skipped, wall)
