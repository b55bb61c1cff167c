"""Our solo-learn methods. The classes subclass solo's, so they load only on first access.

>>> from solo_offdiag.solo_adapter.methods import method_classes  # doctest: +SKIP
>>> method_classes()  # doctest: +SKIP
{'byol_offdiag': <class '...BYOLOffDiag'>, 'simsiam_offdiag': <class '...SimSiamOffDiag'>}
"""

from __future__ import annotations

import importlib

__all__ = ["METHOD_MODULES", "method_classes"]

#: registry name -> (module, class) of each method we add to ``solo.methods.METHODS``.
METHOD_MODULES: dict[str, tuple[str, str]] = {
    "byol_offdiag": ("solo_offdiag.solo_adapter.methods.byol_offdiag", "BYOLOffDiag"),
    "simsiam_offdiag": ("solo_offdiag.solo_adapter.methods.simsiam_offdiag", "SimSiamOffDiag"),
}


def method_classes() -> dict[str, type]:
    """Import solo-learn (with a clear error if it is missing) and return name -> class."""
    from solo_offdiag.solo_adapter.requirements import require_solo

    require_solo()
    return {
        name: getattr(importlib.import_module(module), cls)
        for name, (module, cls) in METHOD_MODULES.items()
    }
