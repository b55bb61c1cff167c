"""Configuration of our keys: dataclasses hold every default once; validation happens at the entry."""

from solo_offdiag.config.schema import (
    OffDiagMethodConfig,
    PredictorConfig,
    validate_method_cfg,
)
from solo_offdiag.config.validate import ConfigError, from_mapping, to_mapping

__all__ = [
    "ConfigError",
    "OffDiagMethodConfig",
    "PredictorConfig",
    "from_mapping",
    "to_mapping",
    "validate_method_cfg",
]
