"""Training batches: inputs, labels when the source has them, and each sample's index."""

from __future__ import annotations

import torch
from PIL import Image
from torch.utils.data import DataLoader

from selfsup.data import load_source
from selfsup.data.batch import Batch, WithIndices, as_batch, collate_batch


def test_in_memory_batches_carry_their_indices():
    split = load_source("digits").train
    loader = DataLoader(WithIndices(split.dataset), batch_size=16, shuffle=True, drop_last=True,
                        collate_fn=collate_batch,
                        generator=torch.Generator().manual_seed(0))
    for images, labels, indices in loader:
        assert indices.dtype == torch.long and len(indices) == len(images) == 16
        assert torch.equal(images, split.images[indices])
        assert torch.equal(labels, torch.from_numpy(split.labels)[indices])


def test_folder_batches_drop_bad_files_with_their_indices(tmp_path):
    for i in range(4):
        Image.new("L", (8, 8), color=40 * i).save(tmp_path / f"{i}.png")
    source = load_source(str(tmp_path), channels=1, image_size=8)
    dataset = source.train.dataset
    items = WithIndices(dataset).__getitems__([0, 1, 2, 3])
    items[1] = None  # a file that failed to decode in the worker
    images, labels, indices = collate_batch(items)
    assert indices.tolist() == [0, 2, 3]
    for image, i in zip(images, indices, strict=True):
        assert torch.equal(image, dataset[int(i)][0])
    assert WithIndices(dataset)[2][2] == 2


def test_a_batch_of_unlabeled_samples_has_no_labels():
    x = torch.zeros(3, 1, 4, 4, dtype=torch.uint8)
    batch = as_batch(x, torch.full((3,), -1))
    assert isinstance(batch, Batch) and batch.labels is None
    assert batch.indices.tolist() == [0, 1, 2]
    assert as_batch(x, torch.tensor([0, 1, -1])).labels.tolist() == [0, 1, -1]
