"""Where our Hydra configs live (light: no torch, no solo; the Hydra plugin imports this)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["CONFIGS_PACKAGE", "configs_dir", "configs_search_path"]

#: the packaged configs (the repository's ``configs/``), for ``pkg://solo_offdiag_configs``.
CONFIGS_PACKAGE = "solo_offdiag_configs"


def configs_dir() -> Path:
    """Directory of our configs: the installed ``solo_offdiag_configs`` or the source tree's."""
    spec = importlib.util.find_spec(CONFIGS_PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    source = Path(__file__).resolve().parents[2] / "configs"
    if (source / "__init__.py").is_file():
        return source
    raise FileNotFoundError(
        f"solo-offdiag's configs are missing: neither the package {CONFIGS_PACKAGE!r} nor "
        f"{source} exists; reinstall solo-offdiag"
    )


def configs_search_path() -> str:
    """Hydra search-path entry: ``pkg://solo_offdiag_configs`` when installed, else ``file://``."""
    if importlib.util.find_spec(CONFIGS_PACKAGE) is not None:
        return f"pkg://{CONFIGS_PACKAGE}"
    return f"file://{configs_dir()}"
