"""``--jobs N``: runs in worker processes give the results of a sequential run, really run at the
same time, and a failure, a dead worker or an interruption is reported and resumable.

The specs here are cheap fakes built by a module-level factory (picklable, so the spawned
workers rebuild them, as they rebuild the real ones with ``experiments.specs_for``).
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from solo_offdiag.repro.parallel import log_path, run_parallel
from solo_offdiag.repro.runner import RunSpec, execute


def _compute(run_dir: Path, seed: int, mode: str, rendezvous: str, hold: str) -> dict[str, Any]:
    import torch

    if mode == "fail":
        raise RuntimeError(f"run with seed {seed} failed on purpose")
    if mode == "die":
        os._exit(3)
    if mode == "loader":  # as solo-learn's dataset_with_index: a dataset class local to a function
        return {"seed": seed, "batches": _iterate_local_dataset_with_a_worker()}
    if rendezvous:  # wait until the other run has started too: they run at the same time
        Path(rendezvous, f"started-{seed}").touch()
        deadline = time.monotonic() + 60
        while len(list(Path(rendezvous).glob("started-*"))) < 2:
            if time.monotonic() > deadline:
                raise TimeoutError("the other run never started: the runs were not concurrent")
            time.sleep(0.05)
    if hold:  # block until released (or interrupted)
        Path(hold, f"pid-{os.getpid()}").touch()
        deadline = time.monotonic() + 60
        while not Path(hold, "release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=g)
    print(f"computing seed {seed}")  # goes to the worker's log file
    return {"seed": seed, "value": float((x @ x.T).trace()), "pid": os.getpid(),
            "threads": torch.get_num_threads(), "start_method": multiprocessing.get_start_method()}


def _iterate_local_dataset_with_a_worker() -> list[list[int]]:
    import torch
    from torch.utils.data import DataLoader, Dataset

    class Local(Dataset):  # not picklable: a DataLoader worker started with "spawn" fails
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> torch.Tensor:
            return torch.tensor(i)

    return [b.tolist() for b in DataLoader(Local(), batch_size=2, num_workers=1)]


def fake_specs(seeds: tuple[int, ...], modes: dict[int, str] | None = None, rendezvous: str = "",
               hold: str = "") -> list[RunSpec]:
    """One cheap run per seed; ``modes[seed]``: "fail" raises, "die" kills the worker."""
    modes = modes or {}
    return [RunSpec(key=f"fake/seed{s}", config={"seed": s, **({"mode": modes[s]} if s in modes else {})}, seed=s,
                    compute=functools.partial(_compute, seed=s, mode=modes.get(s, "ok"), rendezvous=rendezvous,
                                              hold=hold))
            for s in seeds]


def _result(out: Any) -> dict[str, Any]:
    # the process and its thread count differ by design (the sequential run is this process)
    return {k: v for k, v in out.result.items() if k not in ("pid", "threads")}


def test_parallel_results_equal_sequential_and_runs_are_concurrent(tmp_path):
    factory = functools.partial(fake_specs, (0, 1), rendezvous=str(tmp_path / "meet"))
    (tmp_path / "meet").mkdir()
    outs = run_parallel(factory(), factory, 2, tmp_path / "par", threads=1, log=lambda m: None)
    assert [o.status for o in outs] == ["done", "done"]
    assert outs[0].result["pid"] != outs[1].result["pid"] != os.getpid()
    assert all(o.result["threads"] == 1 for o in outs)
    seq_factory = functools.partial(fake_specs, (0, 1))
    seq = [execute(s, tmp_path / "seq", log=lambda m: None) for s in seq_factory()]
    assert [_result(o) for o in outs] == [_result(o) for o in seq]
    assert outs[0].result["start_method"] == multiprocessing.get_start_method()  # not "spawn"
    # the same folder layout and done.json as a sequential run: a re-run is cached
    again = [execute(s, tmp_path / "par", log=lambda m: None) for s in factory()]
    assert [o.status for o in again] == ["cached", "cached"]
    # and a parallel re-run reports them cached without starting a worker for each
    lines: list[str] = []
    rerun = run_parallel(factory(), factory, 2, tmp_path / "par", threads=1, log=lines.append)
    assert [o.status for o in rerun] == ["cached", "cached"] and not any("started" in m for m in lines)
    assert "computing seed 0" in log_path(tmp_path / "par", "fake/seed0").read_text()


@pytest.mark.slow
def test_a_failing_and_a_dead_worker_are_reported_and_the_others_finish(tmp_path):
    factory = functools.partial(fake_specs, (0, 1, 2), {1: "fail", 2: "die"})
    seen: list[str] = []
    outs = run_parallel(factory(), factory, 2, tmp_path, log=lambda m: None, on_done=lambda o: seen.append(o.key))
    by_key = {o.key: o for o in outs}
    assert by_key["fake/seed0"].status == "done"
    assert by_key["fake/seed1"].status == "failed" and "failed on purpose" in by_key["fake/seed1"].error
    assert by_key["fake/seed2"].status == "failed" and "exited with code 3" in by_key["fake/seed2"].error
    assert sorted(seen) == sorted(by_key)
    assert (tmp_path / "fake/seed1" / "error.txt").is_file() and not (tmp_path / "fake/seed1" / "done.json").exists()


def test_jobs_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="jobs: got 0"):
        run_parallel([], fake_specs, 0, tmp_path)


@pytest.mark.slow
def test_sigterm_stops_the_workers_and_the_rerun_resumes(tmp_path):
    """A real process tree: SIGTERM to the parent stops both workers (none is left running), no
    run is finished, and the same call afterwards resumes and finishes both."""
    hold = tmp_path / "hold"
    hold.mkdir()
    script = textwrap.dedent(f"""
        import functools, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_parallel import fake_specs
        from solo_offdiag.repro.parallel import run_parallel
        from solo_offdiag.repro.pipeline import interrupt_on_signals
        factory = functools.partial(fake_specs, (0, 1), hold={str(hold)!r})
        with interrupt_on_signals():
            try:
                outs = run_parallel(factory(), factory, 2, Path({str(tmp_path / "res")!r}), log=print)
            except KeyboardInterrupt:
                print("INTERRUPTED", flush=True)
                sys.exit(130)
        print("STATUSES", [o.status for o in outs], flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while len(list(hold.glob("pid-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [int(p.name.split("-")[1]) for p in hold.glob("pid-*")]
    assert len(workers) == 2, "the two workers never started"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "INTERRUPTED" in out, out
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not list((tmp_path / "res").glob("fake/*/done.json"))
    assert all("interrupted" in (tmp_path / "res" / f"fake/seed{s}" / "error.txt").read_text() for s in (0, 1))
    (hold / "release").touch()
    rerun = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "STATUSES ['done', 'done']" in rerun.stdout, rerun.stdout + rerun.stderr
    run = json.loads((tmp_path / "res" / "fake/seed0" / "run.json").read_text())
    assert run["attempt"] == 2  # resumed in place, not started from scratch


@pytest.mark.slow
def test_repro_run_jobs_2_gives_the_sequential_theory_results(tmp_path):
    """Through the CLI with the real specs (experiments.specs_for as the factory): two theory
    experiments in two workers give the summaries of a --jobs 1 run, and the output is logged."""
    from solo_offdiag.cli.main import main

    common = ["repro", "run", "c_no_bn", "f_wide_head", "--seeds", "1", "--no-progress"]
    assert main([*common, "--results", str(tmp_path / "seq")]) == 0
    assert main([*common, "--results", str(tmp_path / "par"), "--jobs", "2"]) == 0
    for name in ("c_no_bn", "f_wide_head"):
        seq = json.loads((tmp_path / "seq" / "smoke" / "theory" / name / "done.json").read_text())
        par = json.loads((tmp_path / "par" / "smoke" / "theory" / name / "done.json").read_text())
        assert par["config_fingerprint"] == seq["config_fingerprint"]
        par["result"].pop("wall_time_s", None)
        seq["result"].pop("wall_time_s", None)
        assert par["result"] == seq["result"]
        assert log_path(tmp_path / "par" / "smoke", f"theory/{name}").is_file()


def test_a_worker_runs_dataloader_workers_as_the_parent_would(tmp_path):
    # the spawned worker must not pass "spawn" on to the run's DataLoader: solo-learn's datasets
    # are local classes, which only a forked DataLoader worker can use (the --jobs 2 image runs
    # of the smoke preset failed this way)
    factory = functools.partial(fake_specs, (0,), modes={0: "loader"})
    (out,) = run_parallel(factory(), factory, 1, tmp_path, threads=1, log=lambda m: None)
    assert out.status == "done", out.error
    assert out.result["batches"] == [[0, 1], [2, 3]]
