"""Finding solo-learn 1.0.6, or saying clearly how to install it. Imports solo only when asked."""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import warnings
from types import ModuleType

__all__ = [
    "INSTALL_INSTRUCTIONS",
    "SOLO_COMMIT",
    "SOLO_PIN",
    "SOLO_VERSION",
    "SoloLearnNotInstalled",
    "require_solo",
    "solo_available",
]

SOLO_VERSION = "1.0.6"
#: the solo-learn commit we pin (its main branch at 1.0.6): the one definition in the project;
#: artifact/env/solo-learn.pin, the GPU workflow and the docs repeat it (tests/test_workflows.py
#: checks them against this constant).
SOLO_PIN = "9187ea39c2c3f43c455ab06664d2b019a9802954"
#: its short form, as messages, run records (env.json) and the docs write it.
SOLO_COMMIT = SOLO_PIN[:7]

INSTALL_INSTRUCTIONS = f"""\
solo-offdiag needs solo-learn {SOLO_VERSION} (github.com/vturrisi/solo-learn, commit {SOLO_COMMIT}),
installed from source; PyPI's solo-learn 1.0.2 (2021, argparse API, torch 1.9) is obsolete:
    git clone https://github.com/vturrisi/solo-learn && git -C solo-learn checkout {SOLO_COMMIT}
    pip install 'setuptools<81'
    pip install --no-build-isolation ./solo-learn
(solo-learn pins lightning==2.1.2; lightning 2.6.x also works: pip install 'lightning>=2.6,<2.7')"""


class SoloLearnNotInstalled(ImportError):
    """solo-learn 1.0.6 cannot be imported; the message says why and how to install it."""


_checked: ModuleType | None = None


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version("solo-learn")
    except importlib.metadata.PackageNotFoundError:
        return None  # e.g. running inside a solo-learn checkout without installing it


def _version_tuple(version: str) -> tuple[int, ...]:
    out = []
    for part in version.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def require_solo() -> ModuleType:
    """Import solo-learn and check it is the 1.0.6 line (Hydra API, ``METHODS`` registry).

    Returns:
        the ``solo`` package.

    Raises:
        SoloLearnNotInstalled: solo-learn is missing, is the obsolete 1.0.2, or fails to import;
            the message carries the reason and :data:`INSTALL_INSTRUCTIONS`.
    """
    global _checked
    if _checked is not None and sys.modules.get("solo") is _checked:
        return _checked
    version = _installed_version()
    if version is not None and _version_tuple(version) < _version_tuple(SOLO_VERSION):
        raise SoloLearnNotInstalled(
            f"solo-learn {version} is installed, but it is too old (its argparse API predates the "
            f"Hydra configs and the METHODS registry we plug into).\n{INSTALL_INSTRUCTIONS}"
        )
    try:
        with warnings.catch_warnings():
            # solo warns at import about optional extras (DALI, UMAP); not our user's concern.
            warnings.simplefilter("ignore")
            solo = importlib.import_module("solo")
            methods = importlib.import_module("solo.methods")
            pretrain_args = importlib.import_module("solo.args.pretrain")
    except ModuleNotFoundError as err:
        if err.name == "solo":
            raise SoloLearnNotInstalled(f"solo-learn is not installed.\n{INSTALL_INSTRUCTIONS}") from err
        if err.name is not None and err.name.startswith("solo."):
            raise SoloLearnNotInstalled(
                f"the installed solo-learn ({version or 'unknown version'}) has no module "
                f"{err.name!r}: it is not the {SOLO_VERSION} line.\n{INSTALL_INSTRUCTIONS}"
            ) from err
        raise SoloLearnNotInstalled(
            f"solo-learn is installed but fails to import: missing dependency {err.name!r}.\n"
            f"{INSTALL_INSTRUCTIONS}"
        ) from err
    except ImportError as err:
        raise SoloLearnNotInstalled(
            f"solo-learn is installed but fails to import ({err}).\n{INSTALL_INSTRUCTIONS}"
        ) from err
    if not isinstance(getattr(methods, "METHODS", None), dict) or not hasattr(pretrain_args, "parse_cfg"):
        found = version or "an unknown version"
        raise SoloLearnNotInstalled(
            f"the installed solo-learn ({found}) has no solo.methods.METHODS dict or "
            f"solo.args.pretrain.parse_cfg: it is not the {SOLO_VERSION} line.\n{INSTALL_INSTRUCTIONS}"
        )
    _checked = solo
    return solo


def solo_available() -> tuple[bool, str]:
    """``(True, "")`` when :func:`require_solo` succeeds, else ``(False, reason)``."""
    try:
        require_solo()
    except SoloLearnNotInstalled as err:
        return False, str(err)
    return True, ""
