from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
import torch.distributed as dist


@pytest.fixture
def one_rank_group(tmp_path) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A context manager that runs its body inside a real one-process gloo group."""

    @contextlib.contextmanager
    def group() -> Iterator[None]:
        dist.init_process_group(
            "gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1
        )
        try:
            yield
        finally:
            dist.destroy_process_group()

    return group
