"""Put our methods into solo-learn's ``solo.methods.METHODS`` (no change to solo-learn itself).

solo-learn's scripts look methods up in that plain dict (``METHODS[cfg.method](cfg)``), so adding
our classes to it in the same process, before the script's ``main()`` runs, is all registration
takes. The Hydra plugin, ``solo-offdiag run`` and ``solo-offdiag pretrain`` all call
:func:`register`.
"""

from __future__ import annotations

__all__ = ["RegistrationError", "register", "registered"]


class RegistrationError(RuntimeError):
    """A name of ours is already taken in ``solo.methods.METHODS`` by a different class."""


def register() -> dict[str, type]:
    """Register ``byol_offdiag`` and ``simsiam_offdiag`` in ``solo.methods.METHODS``; idempotent.

    Returns:
        name -> class of our methods.

    Raises:
        SoloLearnNotInstalled: solo-learn 1.0.6 cannot be imported (with install instructions).
        RegistrationError: a name is already registered to a different class; nothing is changed.
    """
    from solo_offdiag.solo_adapter.methods import method_classes

    classes = method_classes()  # require_solo() happens here
    from solo.methods import METHODS

    for name, cls in classes.items():
        existing = METHODS.get(name)
        if existing is not None and existing is not cls:
            raise RegistrationError(
                f"solo.methods.METHODS[{name!r}] is already {existing.__module__}."
                f"{existing.__qualname__}; refusing to replace it with {cls.__module__}."
                f"{cls.__qualname__}"
            )
    METHODS.update(classes)
    return classes


def registered() -> bool:
    """Whether our methods are in ``solo.methods.METHODS`` already (never imports solo)."""
    import sys

    methods = sys.modules.get("solo.methods")
    table = getattr(methods, "METHODS", None)
    if not isinstance(table, dict):
        return False
    from solo_offdiag.solo_adapter.methods import METHOD_MODULES

    return all(name in table for name in METHOD_MODULES)
