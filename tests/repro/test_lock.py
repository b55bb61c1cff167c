"""One writer per results folder: a second repro command exits 2 naming the holder's PID, or waits
with --wait; a lock left by a killed process is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from solo_offdiag.cli.main import main
from solo_offdiag.repro.lock import ResultsLocked, holder, results_lock

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from solo_offdiag.repro.lock import results_lock
    with results_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _holder_process(folder: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_holder_is_refused_with_the_pid(tmp_path):
    proc = _holder_process(tmp_path, 60)
    try:
        with pytest.raises(ResultsLocked, match=f"PID {proc.pid}"), results_lock(tmp_path):
            pass
        assert holder(tmp_path)["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    proc = _holder_process(tmp_path, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    messages: list[str] = []
    with results_lock(tmp_path, log=messages.append):
        assert holder(tmp_path)["pid"] == os.getpid()
    assert any(f"PID {proc.pid}" in m and "taking over" in m for m in messages)


def test_wait_waits_for_the_holder(tmp_path):
    proc = _holder_process(tmp_path, 1.5)
    start = time.monotonic()
    messages: list[str] = []
    with results_lock(tmp_path, wait=True, poll_s=0.1, log=messages.append):
        waited = time.monotonic() - start
    proc.wait()
    assert waited > 0.5 and any("waiting" in m for m in messages)


def test_repro_cli_exits_2_at_once_when_the_folder_is_held(tmp_path, capsys):
    proc = _holder_process(tmp_path, 60)
    try:
        start = time.monotonic()
        code = main(["repro", "check", "--results", str(tmp_path)])
        out = capsys.readouterr().out
        assert code == 2 and f"PID {proc.pid}" in out and "--wait" in out
        assert time.monotonic() - start < 30
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_two_concurrent_repro_runs_on_one_folder_compute_each_run_once(tmp_path):
    """Two real ``repro run`` processes started together on one results folder: with ``--wait`` the
    second waits for the first, then finds the run finished (cached); without it, it exits 2 at
    once. Either way the run is computed once (attempt 1, one "done" line in all)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def start(*extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "solo_offdiag", "repro", "run", "a_trainable_head",
                                 "--seeds", "1", "--results", str(tmp_path), "--no-progress", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

    first, second, third = start("--wait"), start("--wait"), None
    try:
        # the third starts while one of the two holds the lock (the holder writes run.json first)
        run_json = tmp_path / "smoke" / "theory" / "a_trainable_head" / "run.json"
        deadline = time.monotonic() + 300
        while not run_json.exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.1)
        third = start()
        third_out, _ = third.communicate(timeout=300)
        outs = [p.communicate(timeout=600)[0] for p in (first, second)]
    finally:
        for p in (first, second, third):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert first.returncode == 0 and second.returncode == 0, outs
    assert third.returncode == 2 and "--wait" in third_out and "PID" in third_out, third_out
    text = "\n".join(outs)
    assert text.count("theory/a_trainable_head: done") == 1, text
    assert text.count("theory/a_trainable_head: cached") == 1, text
    assert "waiting" in text and "Traceback" not in text + third_out
    assert json.loads(run_json.read_text())["attempt"] == 1
