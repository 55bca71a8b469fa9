"""Methods, one file each, registered by name."""

from . import barlow_twins, simclr  # noqa: F401  (registration)
from .base import Method, Recipe
from .registry import METHODS, MethodInfo, get_method, register

__all__ = ["METHODS", "Method", "MethodInfo", "Recipe", "get_method", "register"]
