"""One registry of prediction-head kinds (timm-style: a decorator fills a name -> class dict)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from solo_offdiag.heads.base import PredictionHead
from solo_offdiag.suggest import did_you_mean

__all__ = ["HEADS", "UnknownHeadError", "build_head", "head_options", "list_heads", "register_head"]

#: name -> head class. Fill it with :func:`register_head`, never by hand.
HEADS: dict[str, type[PredictionHead]] = {}

H = TypeVar("H", bound=type[PredictionHead])


class UnknownHeadError(ValueError):
    """Raised for a head kind that is not registered; the message lists the known kinds."""


def register_head(name: str) -> Callable[[H], H]:
    """Class decorator registering a :class:`PredictionHead` subclass under ``name``.

    Registering the same class twice is a no-op; a different class under a taken name is an error.
    """

    def decorator(cls: H) -> H:
        if not (isinstance(cls, type) and issubclass(cls, PredictionHead)):
            raise TypeError(f"{cls!r} is not a PredictionHead subclass")
        existing = HEADS.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"head kind {name!r} is already registered to {existing.__module__}."
                f"{existing.__qualname__}; refusing to replace it with {cls.__qualname__}"
            )
        cls.kind = name
        HEADS[name] = cls
        return cls

    return decorator


def list_heads(*, linear: bool | None = None) -> list[str]:
    """The registered head kinds, sorted; ``linear=True``/``False``: only those whose ``matrix()``
    is (is not) their effective matrix (:attr:`PredictionHead.is_linear`)."""
    return sorted(kind for kind, cls in HEADS.items() if linear is None or cls.is_linear == linear)


def _resolve(kind: str) -> type[PredictionHead]:
    try:
        return HEADS[kind]
    except (KeyError, TypeError):
        hint = did_you_mean(kind, list_heads(), parenthesised=True)
        raise UnknownHeadError(
            f"unknown head {kind!r}{hint}; known: {', '.join(list_heads())}"
        ) from None


def head_options(kind: str) -> dict[str, Any]:
    """The keyword options of a head kind with their defaults (``dim`` excluded)."""
    signature = inspect.signature(_resolve(kind).__init__)
    return {
        name: param.default
        for name, param in signature.parameters.items()
        if name not in ("self", "dim") and param.kind is param.KEYWORD_ONLY
    }


def build_head(kind: str, dim: int, **options: Any) -> PredictionHead:
    """Build a head of ``kind`` for ``dim``-dimensional embeddings.

    Raises:
        UnknownHeadError: ``kind`` is not registered (the message lists the known kinds).
        ValueError: an option is not accepted by that kind (the message lists the allowed ones).

    Examples:
        >>> head = build_head("offdiag", 64)
        >>> sorted(name for name, _ in head.named_parameters())
        ['offdiag']
    """
    cls = _resolve(kind)
    allowed = head_options(kind)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        bad = unknown[0]
        hint = did_you_mean(bad, allowed, parenthesised=True)
        raise ValueError(
            f"head {kind!r} has no option {bad!r}{hint}; allowed: "
            f"{', '.join(sorted(allowed)) or '(none)'}"
        )
    return cls(dim, **options)
