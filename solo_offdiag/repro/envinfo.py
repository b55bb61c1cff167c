"""The environment dump written into every run (``env.json``): versions, hardware, git state.

Nothing here imports solo-learn unless it is importable (its version is read from the installed
distribution's metadata, so a missing solo-learn costs nothing). Every field is best effort: a
value that cannot be found is ``None``, never an exception.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "REPO_ROOT", "environment", "git_state"]

#: the repository root (where .git lives for a source checkout).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: distributions whose versions are recorded.
PACKAGES = ("torch", "torchvision", "lightning", "solo-learn", "numpy", "hydra-core", "omegaconf",
            "scikit-learn", "matplotlib", "timm", "torchmetrics", "solo-offdiag")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """``{"sha", "dirty", "branch"}`` of the checkout at ``root`` (all None outside a checkout)."""
    sha = _git("rev-parse", "HEAD", cwd=root)
    if sha is None:
        return {"sha": None, "dirty": None, "branch": None}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=root)
    return {"sha": sha, "dirty": bool(status), "branch": _git("rev-parse", "--abbrev-ref", "HEAD", cwd=root)}


def _accelerator() -> dict[str, Any]:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return {"cuda_available": False}
    info: dict[str, Any] = {
        "cuda_available": bool(torch.cuda.is_available()),
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "num_threads": torch.get_num_threads(),
    }
    if info["cuda_available"]:
        info["gpus"] = [
            {"name": torch.cuda.get_device_name(i),
             "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
             "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
            for i in range(torch.cuda.device_count())
        ]
    return info


def environment(root: Path = REPO_ROOT) -> dict[str, Any]:
    """The dump: python, platform, package versions, CUDA/GPUs, CPU count, git, host, UTC date."""
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "hostname": socket.gethostname(),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "packages": {name: _version(name) for name in PACKAGES},
        "accelerator": _accelerator(),
        "git": git_state(root),
        "solo_learn_pin": _solo_pin(),
    }


def _solo_pin() -> str | None:
    try:
        from solo_offdiag.solo_adapter.requirements import SOLO_COMMIT
    except ImportError:  # pragma: no cover
        return None
    return SOLO_COMMIT
