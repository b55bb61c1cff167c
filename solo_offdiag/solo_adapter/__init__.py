"""The solo-learn adapter: the only part of solo-offdiag that imports ``solo`` (lazily).

* :func:`require_solo` / :class:`SoloLearnNotInstalled`: find solo-learn 1.0.6 or explain how to
  install it;
* :func:`register`: add ``byol_offdiag`` and ``simsiam_offdiag`` to ``solo.methods.METHODS``;
* :func:`pretrain` / :func:`run_pretrain`: our own Hydra pretraining entry point;
* :func:`run_script`: run a solo-learn script with our methods registered.

Importing this package does not import solo-learn; each function does, when called.
"""

from __future__ import annotations

import importlib
from typing import Any

from solo_offdiag.solo_adapter.requirements import (
    INSTALL_INSTRUCTIONS,
    SOLO_COMMIT,
    SOLO_VERSION,
    SoloLearnNotInstalled,
    require_solo,
    solo_available,
)

__all__ = [
    "INSTALL_INSTRUCTIONS",
    "METHOD_NAMES",
    "SOLO_COMMIT",
    "SOLO_VERSION",
    "RegistrationError",
    "SoloLearnNotInstalled",
    "pretrain",
    "register",
    "require_solo",
    "run_pretrain",
    "run_script",
    "solo_available",
]

#: the names we register in solo.methods.METHODS.
METHOD_NAMES: tuple[str, ...] = ("byol_offdiag", "simsiam_offdiag")

_LAZY = {
    "register": "solo_offdiag.solo_adapter.registration",
    "RegistrationError": "solo_offdiag.solo_adapter.registration",
    "pretrain": "solo_offdiag.solo_adapter.pretraining",
    "run_pretrain": "solo_offdiag.solo_adapter.pretraining",
    "run_script": "solo_offdiag.solo_adapter.launcher",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'solo_offdiag.solo_adapter' has no attribute {name!r}")
