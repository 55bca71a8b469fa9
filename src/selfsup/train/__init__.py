"""Training: one Lightning module for every method, schedules, callbacks, atomic checkpoints."""

from .config import ConfigError, PretrainConfig, parse_duration
from .run import PretrainResult, pretrain_run

__all__ = ["ConfigError", "PretrainConfig", "PretrainResult", "parse_duration", "pretrain_run"]
