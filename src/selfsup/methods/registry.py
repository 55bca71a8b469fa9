"""Methods are registered by name; the name is the whole interface (as timm does for models)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

METHODS: dict[str, type] = {}


# what the learning guard (selfsup/guard.py) measured at its pinned budget: ready (beats its
# untrained encoder), collapses (the collapse monitor fired), experimental (trains, but does not
# beat its untrained encoder); tests/methods/test_methods.py holds each method to its word
STATUSES = ("ready", "collapses", "experimental")


@dataclass(frozen=True)
class MethodInfo:
    name: str
    family: str
    paper: str
    status: str = "ready"


def register(name: str, *, family: str, paper: str, status: str = "ready"
             ) -> Callable[[type], type]:
    """Class decorator: ``@register("simclr", family="contrastive", paper="...")``."""
    if status not in STATUSES:
        raise ValueError(f"status {status!r} of method {name!r}; valid: {', '.join(STATUSES)}")

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
