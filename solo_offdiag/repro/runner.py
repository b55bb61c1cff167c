"""Resumable runs: one folder per run, ``done.json`` written atomically last.

A run folder (``<results>/<preset>/<run key>``) holds:

* ``run.json`` - the run's config, seed, key, attempt number, git SHA/dirty flag, start time;
  rewritten at the start of every attempt;
* ``env.json`` - :func:`solo_offdiag.repro.envinfo.environment` of the attempt;
* whatever the run writes (theory figures and ``summary.json``; a solo-learn run directory and
  ``probe.json``);
* ``done.json`` - written last, atomically: the config fingerprint, the result, the wall time.

:func:`execute` skips a run whose ``done.json`` exists with the same config fingerprint
("finished runs are not recomputed"); a folder without ``done.json`` is an interrupted run: the
run's function is called again in the same folder, and resumes where it can (solo-learn image
runs resume from their last epoch checkpoint; theory runs restart); a ``done.json`` with another
fingerprint (the config changed, or ``force``) makes the run start from scratch: its folder is
emptied first, so no intermediate state of another config (a checkpoint, a pretraining marker) is
reused. The fingerprint covers what determines the result, not where things live: results
folders can be moved or copied and stay valid.

An interruption (``KeyboardInterrupt``: Ctrl-C, or SIGTERM under ``repro run``/``all``) is recorded
in ``error.txt`` and re-raised; the next invocation resumes the run.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solo_offdiag.io import atomic_write_json, atomic_write_text
from solo_offdiag.repro.envinfo import environment, git_state

__all__ = ["DONE", "RunOutcome", "RunSpec", "cached", "config_fingerprint", "execute", "read_done", "read_json_object"]

DONE = "done.json"
RUN = "run.json"
ENV = "env.json"


@dataclass
class RunSpec:
    """A unit of work: ``compute(run_dir)`` does it inside ``run_dir`` and returns its result."""

    key: str
    config: dict[str, Any]
    compute: Callable[[Path], dict[str, Any]]
    seed: int | None = None
    description: str = ""
    tags: dict[str, Any] = field(default_factory=dict)
    #: ``verify(run_dir)``: None when a finished run's outputs are intact, else what is wrong
    #: (e.g. a corrupt ``summary.json``): the run is then recomputed instead of reported cached.
    verify: Callable[[Path], str | None] | None = None


@dataclass
class RunOutcome:
    key: str
    run_dir: Path
    status: str  # "done" (computed now), "cached" (skipped), "failed"
    result: dict[str, Any]
    wall_time_s: float = 0.0
    error: str | None = None


def config_fingerprint(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``config`` (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def read_done(run_dir: Path) -> dict[str, Any] | None:
    """The ``done.json`` of a finished run, or None (missing, unreadable or not a JSON object such
    as ``[]`` = not finished: the run is recomputed)."""
    data = read_json_object(Path(run_dir) / DONE)
    return data if data else None


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; {} when the file is missing, unreadable or holds anything else."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def cached(spec: RunSpec, root: Path, *, force: bool = False,
           log: Callable[[str], None] = print) -> RunOutcome | None:
    """The outcome of ``spec`` if it is finished with the same config and passes its ``verify``
    (then nothing needs to run), else None; a finished run that fails ``verify`` loses its
    ``done.json`` here (it will be recomputed)."""
    run_dir = Path(root) / spec.key
    done = read_done(run_dir)
    if done is None or force or done.get("config_fingerprint") != config_fingerprint(spec.config):
        return None
    problem = spec.verify(run_dir) if spec.verify is not None else None
    if problem is None:
        result = done.get("result")
        return RunOutcome(spec.key, run_dir, "cached", result if isinstance(result, dict) else {},
                          done.get("wall_time_s", 0.0))
    log(f"[repro] {spec.key}: finished, but {problem}; recomputing it")
    (run_dir / DONE).unlink()
    return None


def execute(spec: RunSpec, root: Path, *, force: bool = False, log: Callable[[str], None] = print) -> RunOutcome:
    """Run ``spec`` in ``root / spec.key`` unless it is already finished (see the module doc)."""
    run_dir = Path(root) / spec.key
    fingerprint = config_fingerprint(spec.config)
    hit = cached(spec, root, force=force, log=log)
    if hit is not None:
        return hit
    done = read_done(run_dir)
    previous = read_json_object(run_dir / RUN)
    recorded = (done or {}).get("config_fingerprint") or previous.get("config_fingerprint")
    if run_dir.exists() and (force or (recorded is not None and recorded != fingerprint)):
        why = "--force" if force else "its config changed"
        log(f"[repro] {spec.key}: {why}; starting it from scratch")
        shutil.rmtree(run_dir)
        previous = {}
    if (run_dir / DONE).exists():  # unreadable or not an object (written by something other than us)
        log(f"[repro] {spec.key}: {run_dir / DONE} is unreadable; recomputing the run")
        (run_dir / DONE).unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "error.txt").unlink(missing_ok=True)  # from an earlier attempt
    try:
        attempt = int(previous.get("attempt", 0)) + 1 if previous else 1
    except (TypeError, ValueError):
        attempt = 2
    if attempt > 1:
        log(f"[repro] {spec.key}: resuming an unfinished run (attempt {attempt})")
    atomic_write_json(run_dir / RUN, {
        "key": spec.key, "description": spec.description, "config": spec.config,
        "config_fingerprint": fingerprint, "seed": spec.seed, "attempt": attempt,
        "git": git_state(), "started_utc": _now(), "tags": spec.tags,
    })
    atomic_write_json(run_dir / ENV, environment())
    start = time.perf_counter()
    try:
        result = spec.compute(run_dir)
    except KeyboardInterrupt:
        atomic_write_text(run_dir / "error.txt", "interrupted (KeyboardInterrupt/SIGTERM); "
                          "re-run the same command to resume\n" + traceback.format_exc())
        raise
    except Exception as err:  # recorded and reported; the run stays unfinished (no done.json)
        atomic_write_text(run_dir / "error.txt", traceback.format_exc())
        return RunOutcome(spec.key, run_dir, "failed", {}, time.perf_counter() - start,
                          f"{type(err).__name__}: {err}")
    wall = time.perf_counter() - start
    atomic_write_json(run_dir / DONE, {
        "key": spec.key, "config": spec.config, "config_fingerprint": fingerprint, "seed": spec.seed,
        "result": result, "wall_time_s": wall, "finished_utc": _now(), "git": git_state(),
        "tags": spec.tags,
    })
    return RunOutcome(spec.key, run_dir, "done", result, wall)

