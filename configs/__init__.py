"""Config schemas (dataclasses registered in Hydra's ConfigStore) and their validation."""

from configs.errors import ConfigError
from configs.schema import CalibrationConfig, ModelConfig, QuantConfig, QuantizeJobConfig

__all__ = ["ConfigError", "CalibrationConfig", "ModelConfig", "QuantConfig", "QuantizeJobConfig"]
