"""Methods, one file each, registered by name."""

# Imported for registration.
from . import (  # noqa: F401
    barlow_twins,
    cae,
    dcl,
    dclw,
    groco,
    gsimclr,
    hpm,
    isogclr,
    mae,
    mixed_barlow_twins,
    mixedae,
    mmc,
    mochi,
    moco,
    scatsimclr,
    selfie,
    simclr,
    sit,
    tjepa,
    transitive,
    uni4eye,
)
from .base import Method, Recipe
from .registry import METHODS, MethodInfo, get_method, register

__all__ = ["METHODS", "Method", "MethodInfo", "Recipe", "get_method", "register"]
