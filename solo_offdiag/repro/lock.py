"""One writer per results folder: ``<results>/.repro.lock``, held with ``flock`` for the whole command.

The kernel drops an ``flock`` when its process dies (even on SIGKILL), so a lock left by a dead
process is taken over by the next command without any clean-up; the holder's PID, host, start
time and command are written into the file, so a refused command can say who holds the folder.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["LOCK_NAME", "ResultsLocked", "holder", "results_lock"]

LOCK_NAME = ".repro.lock"


class ResultsLocked(RuntimeError):
    """Another process holds the results folder; the message names its PID."""


def holder(folder: Path) -> dict[str, Any]:
    """What the lock file of ``folder`` says about its holder ({} if nothing readable)."""
    try:
        data = json.loads((Path(folder) / LOCK_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(info: dict[str, Any]) -> str:
    if not info:
        return "another process"
    return (f"PID {info.get('pid')} on {info.get('host')}, since {info.get('started_utc')}: "
            f"{info.get('command')}")


@contextlib.contextmanager
def results_lock(folder: Path, *, wait: bool = False, poll_s: float = 1.0,
                 log: Callable[[str], None] = print) -> Iterator[Path]:
    """Hold ``folder``'s lock inside the block.

    Raises:
        ResultsLocked: the folder is held by another process and ``wait`` is false.
    """
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                info = holder(folder)
                if not wait:
                    raise ResultsLocked(
                        f"{folder} is in use by another `solo-offdiag repro` ({_describe(info)}); "
                        "one writer per results folder: wait for it to finish, pass --wait, or use "
                        "another --results folder") from None
                if not said:
                    log(f"[repro] waiting for {folder} ({_describe(info)}) ...")
                    said = True
                time.sleep(poll_s)
        previous = holder(folder)
        if previous and previous.get("pid") != os.getpid():
            log(f"[repro] taking over {path} from a process that is gone (PID {previous.get('pid')})")
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # released: nobody holds it (the file stays, flock is the lock)
    finally:
        os.close(fd)  # closing releases the flock
