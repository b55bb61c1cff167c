"""Where the artifact's data files are: a folder named by ``--artifact DIR``, else the installed
package ``solo_offdiag_artifact`` (the wheel carries ``artifact/claims.yaml`` and
``artifact/configs/*.yaml`` under that name), else the source checkout's ``artifact/`` folder.
Light: standard library only.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__all__ = ["ARTIFACT_FILES", "ARTIFACT_PACKAGE", "REPRO_PRESETS", "ArtifactError", "artifact_dir", "artifact_file",
           "packaged_artifact_dir", "selected_artifact_dir", "use_artifact"]

#: the package name under which pyproject.toml ships artifact/ (its data files only).
ARTIFACT_PACKAGE = "solo_offdiag_artifact"
#: the reproduction's presets: each claim check and the pinned image config have a section per
#: preset (the theory package's own presets are ``theory.experiments.THEORY_PRESETS``).
REPRO_PRESETS = ("smoke", "medium", "full")
#: the files an artifact folder holds (the packaged one, or one given with ``--artifact DIR``).
ARTIFACT_FILES = ("claims.yaml", "configs/image_heads.yaml")
#: artifact/ of the source checkout, used when the package is not installed (a plain checkout, or
#: an editable install made before the package existed).
_SOURCE = Path(__file__).resolve().parents[2] / "artifact"
#: the folder chosen with :func:`use_artifact` (``--artifact DIR``); None: the packaged copy.
_selected: Path | None = None


class ArtifactError(ValueError):
    """An ``--artifact`` folder that is not one; the message names the folder and what it lacks."""


def packaged_artifact_dir() -> Path:
    """The installed package's data folder, or the checkout's ``artifact/``.

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


def artifact_dir() -> Path:
    """The artifact's data folder: the one chosen with :func:`use_artifact`, else the packaged one."""
    return _selected if _selected is not None else packaged_artifact_dir()


def selected_artifact_dir() -> Path | None:
    """The folder chosen with :func:`use_artifact` (``--artifact DIR``), None for the packaged copy
    (what a worker process must select again: :mod:`solo_offdiag.repro.parallel`)."""
    return _selected


def artifact_file(*parts: str) -> Path:
    """A file of the artifact, e.g. ``artifact_file("configs", "image_heads.yaml")``."""
    return artifact_dir().joinpath(*parts)


def use_artifact(folder: str | Path | None) -> Path:
    """Take the artifact's data from ``folder`` (``--artifact DIR``) from now on; ``None``: the
    packaged copy again. Returns the folder in use.

    Raises:
        ArtifactError: ``folder`` is not a folder or lacks one of :data:`ARTIFACT_FILES` (the
            selection is then unchanged). The files' contents are validated by their readers.
    """
    global _selected
    if folder is None:
        _selected = None
        return artifact_dir()
    path = Path(folder).expanduser()
    expected = f"an artifact folder holds {', '.join(ARTIFACT_FILES)} (as {packaged_artifact_dir()} does)"
    if not path.is_dir():
        raise ArtifactError(f"--artifact {str(folder)!r}: not a folder; {expected}")
    missing = [name for name in ARTIFACT_FILES if not (path / name).is_file()]
    if missing:
        raise ArtifactError(f"--artifact {str(folder)!r}: missing {', '.join(missing)}; {expected}")
    _selected = path.resolve()
    return _selected
