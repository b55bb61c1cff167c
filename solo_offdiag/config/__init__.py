"""Configuration of our keys: dataclasses hold every default once; validation happens at the entry.

``solo_offdiag.config.validate`` (generic, dependency-free) is imported by component configs such as
``solo_offdiag.analysis.config``; ``solo_offdiag.config.schema`` composes those components, so it is
resolved lazily here to keep the import graph acyclic.
"""

from __future__ import annotations

from typing import Any

from solo_offdiag.config.validate import ConfigError, from_mapping, to_mapping

__all__ = [
    "ConfigError",
    "OffDiagMethodConfig",
    "PredictorConfig",
    "from_mapping",
    "to_mapping",
    "validate_method_cfg",
]

_SCHEMA_NAMES = ("OffDiagMethodConfig", "PredictorConfig", "validate_method_cfg")


def __getattr__(name: str) -> Any:
    if name in _SCHEMA_NAMES:
        from solo_offdiag.config import schema

        return getattr(schema, name)
    raise AttributeError(f"module 'solo_offdiag.config' has no attribute {name!r}")
