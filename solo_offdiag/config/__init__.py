"""Configuration of our keys: dataclasses hold every default once; validation happens at the entry.

``solo_offdiag.config.validate`` is generic and dependency-free; ``solo_offdiag.config.schema``
composes component configs such as ``solo_offdiag.analysis.config`` (which imports nothing from
this package), so the import graph is acyclic.
"""

from __future__ import annotations

from solo_offdiag.config.schema import OffDiagMethodConfig, PredictorConfig, validate_method_cfg
from solo_offdiag.config.validate import ConfigError, from_mapping, to_mapping

__all__ = [
    "ConfigError",
    "OffDiagMethodConfig",
    "PredictorConfig",
    "from_mapping",
    "to_mapping",
    "validate_method_cfg",
]
