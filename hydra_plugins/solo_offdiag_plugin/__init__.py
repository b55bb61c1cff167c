"""Hydra plugin of solo-offdiag: our configs on Hydra's search path, our methods in solo-learn.

Hydra imports every module under the namespace package ``hydra_plugins`` at start-up, so in any
Hydra app (solo-learn's ``main_pretrain.py``, ``main_linear.py``):

* :class:`SoloOffDiagSearchPathPlugin` appends ``pkg://solo_offdiag_configs``, so
  ``--config-name byol_offdiag`` and our groups (``hardware=cpu``, ``logging=csv``...) work with no
  ``--config-path``;
* our methods are registered in ``solo.methods.METHODS`` when the app has imported solo-learn
  (solo's scripts do so at the top, before ``@hydra.main`` runs), so ``method=byol_offdiag``
  works. Apps that never imported solo pay nothing: solo (~6 s to import) is not imported here.

Nothing here may crash Hydra: problems become one clear warning.
"""

from __future__ import annotations

import sys
import warnings

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

__all__ = ["SoloOffDiagSearchPathPlugin", "register_if_solo_loaded"]

_warned = False


def _configs_path() -> str:
    try:
        from solo_offdiag.solo_adapter.configs import configs_search_path

        return configs_search_path()
    except Exception:  # noqa: BLE001 - never break Hydra's start-up
        return "pkg://solo_offdiag_configs"


class SoloOffDiagSearchPathPlugin(SearchPathPlugin):
    """Appends solo-offdiag's configs after the app's own (the app's configs win on a clash)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="solo-offdiag", path=_configs_path())


def register_if_solo_loaded() -> bool:
    """Register our methods if the running program has imported solo-learn; warn once on failure."""
    global _warned
    if "solo.methods" not in sys.modules and "solo" not in sys.modules:
        return False
    try:
        from solo_offdiag.solo_adapter.registration import register

        register()
        return True
    except Exception as err:  # noqa: BLE001 - a plugin must not crash Hydra
        if not _warned:
            _warned = True
            warnings.warn(
                f"solo-offdiag could not register byol_offdiag/simsiam_offdiag in solo-learn, so "
                f"method=byol_offdiag will fail: {err}",
                RuntimeWarning,
                stacklevel=2,
            )
        return False


register_if_solo_loaded()
