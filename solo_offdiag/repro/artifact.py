"""Where the artifact's data files are: the installed package ``solo_offdiag_artifact`` (the wheel
carries ``artifact/claims.yaml`` and ``artifact/configs/*.yaml`` under that name), else the source
checkout's ``artifact/`` folder. Light: standard library only.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__all__ = ["ARTIFACT_PACKAGE", "artifact_dir", "artifact_file"]

#: the package name under which pyproject.toml ships artifact/ (its data files only).
ARTIFACT_PACKAGE = "solo_offdiag_artifact"
#: artifact/ of the source checkout, used when the package is not installed (a plain checkout, or
#: an editable install made before the package existed).
_SOURCE = Path(__file__).resolve().parents[2] / "artifact"


def artifact_dir() -> Path:
    """The artifact's data folder: the installed package's, or the checkout's ``artifact/``.

    Never raises: when neither holds ``claims.yaml``, the checkout's path is returned and the
    reader of a file reports it missing (e.g. ``ClaimsFileError: claims file not found``).
    """
    try:
        root = importlib.resources.files(ARTIFACT_PACKAGE)
    except ModuleNotFoundError:
        root = None
    if root is not None and root.joinpath("claims.yaml").is_file():
        return Path(str(root))
    return _SOURCE


def artifact_file(*parts: str) -> Path:
    """A file of the artifact, e.g. ``artifact_file("configs", "image_heads.yaml")``."""
    return artifact_dir().joinpath(*parts)
