"""The "did you mean" hint of every error about an unknown name (a key, a head kind, an option).

Standard library only, at the bottom layer, so the heads, the config validation and the CLIs all
use this one function.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(word: object, choices: Iterable[str], *, parenthesised: bool = False, prefix: str = "") -> str:
    """The hint for a misspelled ``word``: ``"; did you mean 'x'?"``, or ``""`` if nothing is close.

    Args:
        word: the unknown name (``str()`` of it is compared).
        choices: the known names.
        parenthesised: ``" (did you mean 'x'?)"`` instead.
        prefix: put before the suggested name, e.g. ``"method_kwargs."`` for a nested key.

    Examples:
        >>> did_you_mean("offdig", ["offdiag", "identity"], parenthesised=True)
        " (did you mean 'offdiag'?)"
        >>> did_you_mean("xyz", ["offdiag"])
        ''
    """
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    if not close:
        return ""
    guess = f"did you mean {prefix + close[0]!r}?"
    return f" ({guess})" if parenthesised else f"; {guess}"
