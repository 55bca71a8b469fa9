"""Methods are registered by name; the name is the whole interface (as timm does for models)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

METHODS: dict[str, type] = {}


@dataclass(frozen=True)
class MethodInfo:
    name: str
    family: str
    paper: str
    status: str = "ready"


def register(name: str, *, family: str, paper: str, status: str = "ready"
             ) -> Callable[[type], type]:
    """Class decorator: ``@register("simclr", family="contrastive", paper="...")``."""

    def wrap(cls: type) -> type:
        if name in METHODS:
            raise ValueError(f"method {name!r} registered twice")
        cls.info = MethodInfo(name, family, paper, status)
        METHODS[name] = cls
        return cls

    return wrap


def get_method(name: str) -> type:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid: {', '.join(sorted(METHODS))}")
    return METHODS[name]
