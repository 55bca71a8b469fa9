"""Data sources: raw uint8 images and optional labels, in memory or indexed from a folder.

No augmentation here; that happens batched, on the model's device, in ``selfsup.views``.
"""

from .sources import load_source, load_source_for
from .split import (
    DataError,
    DataSource,
    Split,
    collate_batched,
    collate_images,
    sample_split,
    stratified_holdout,
    stratified_sample,
)

__all__ = ["DataError", "DataSource", "Split", "collate_batched", "collate_images",
           "load_source", "load_source_for", "sample_split", "stratified_holdout",
           "stratified_sample"]
