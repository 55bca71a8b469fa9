"""Methods, one file each, registered by name."""

# Imported for registration.
from . import barlow_twins, dcl, dclw, groco, gsimclr, isogclr, mochi, moco, simclr  # noqa: F401
from .base import Method, Recipe
from .registry import METHODS, MethodInfo, get_method, register

__all__ = ["METHODS", "Method", "MethodInfo", "Recipe", "get_method", "register"]
