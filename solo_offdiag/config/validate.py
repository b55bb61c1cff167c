"""Build dataclasses from plain mappings with errors that name the key, the value and what is allowed.

A field may carry ``metadata={"check": predicate, "allowed": "description"}`` for a value
constraint beyond its type. Unknown keys are rejected with the closest known key suggested, so a
misspelled option never silently falls back to its default.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from solo_offdiag.suggest import did_you_mean

__all__ = [
    "ConfigError",
    "describe_type",
    "from_mapping",
    "non_negative",
    "plain",
    "positive",
    "to_mapping",
    "unit_interval",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is invalid. The message names the key, the value and what is allowed."""


def positive(value: Any) -> bool:
    return value > 0


def non_negative(value: Any) -> bool:
    return value >= 0


def unit_interval(value: Any) -> bool:
    return 0 <= value <= 1


def describe_type(tp: Any) -> str:
    """What a value of annotation ``tp`` must be, in words (errors, the README's key table)."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe_type(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin in (tuple, list):
        (inner, *_) = typing.get_args(tp) or (Any,)
        return f"a list of {describe_type(inner)}"
    if origin in (dict, Mapping):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (int accepted for float); return the value."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
    elif origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
    elif tp is type(None):
        if value is None:
            return None
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, Mapping):
            return from_mapping(tp, value, prefix=key)
        if isinstance(value, tp):
            return value
    elif origin in (tuple, list) or tp in (tuple, list):
        if isinstance(value, (list, tuple)):
            args = typing.get_args(tp)
            inner = args[0] if args else Any
            items = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
            return tuple(items) if (origin or tp) is tuple else items
    elif origin in (dict, Mapping) or tp in (dict, Mapping):
        if isinstance(value, Mapping):
            return dict(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isnan(float(value)):
                raise ConfigError(f"{key}: got NaN; expected a number")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{key}: got {value!r} ({type(value).__name__}); expected {describe_type(tp)}")


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, *, prefix: str = "") -> T:
    """Instantiate dataclass ``cls`` from ``data``; missing keys take the dataclass defaults.

    Raises:
        ConfigError: an unknown key (with the closest known key suggested), a value of the wrong
            type, or a value failing a field's ``check``.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'}: got {data!r}; expected a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            hint = did_you_mean(key, fields, prefix=f"{prefix}." if prefix else "")
            raise ConfigError(
                f"unknown key {full!r}{hint} (known under {prefix or 'the root'}: "
                f"{', '.join(sorted(fields))})"
            )
        field = fields[key]
        coerced = _coerce(value, hints[key], full)
        check = field.metadata.get("check")
        if check is not None and coerced is not None and not check(coerced):
            raise ConfigError(
                f"{full}: got {value!r}; allowed: {field.metadata.get('allowed', 'see the docs')}"
            )
        kwargs[key] = coerced
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # __post_init__ cross-field checks
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{prefix or 'config'}: {err}") from err


def plain(obj: Any) -> Any:
    """An OmegaConf container as plain dicts/lists (interpolations resolved); anything else as is.

    Does not import omegaconf: an OmegaConf object exists only once omegaconf has been imported.
    """
    omegaconf = sys.modules.get("omegaconf")
    if omegaconf is not None and isinstance(obj, omegaconf.Container):
        return omegaconf.OmegaConf.to_container(obj, resolve=True)
    return obj


def to_mapping(obj: Any) -> Any:
    """A dataclass (recursively) as plain dicts/lists, suitable for YAML/JSON and OmegaConf."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj
