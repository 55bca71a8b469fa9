"""Evaluating a large source: features extracted batch by batch from a streaming loader (never
every image at once), a progress bar while it runs, and a raw-pixel baseline of bounded size."""

from __future__ import annotations

import io

import numpy as np
import torch
from rich.console import Console
from torch import nn
from torch.utils.data import Dataset

from selfsup.backbones import Preprocessing
from selfsup.data import Split, collate_images, load_source
from selfsup.data.split import in_memory_split
from selfsup.evaluate import extract_features, features, suite

BATCH = 8


class CountingImages(Dataset):
    """A folder-like dataset that counts the images decoded so far."""

    def __init__(self, n: int):
        self.n = n
        self.loaded = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        self.loaded += 1
        return torch.full((1, 4, 4), i % 256, dtype=torch.uint8), i % 3


class RecordingEncoder(nn.Module):
    """Notes, at each batch it encodes, how many images the source had decoded by then."""

    def __init__(self, source: CountingImages):
        super().__init__()
        self.source = source
        self.seen: list[int] = []
        self.weight = nn.Parameter(torch.ones(1))
        self.preprocessing = Preprocessing(4, 1, (0.0,), (1.0,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 4, 4) -> (B, 2)
        self.seen.append(self.source.loaded)
        return torch.stack([x.mean(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3))], 1) * self.weight


def test_features_are_extracted_from_a_lazily_consumed_source():
    source = CountingImages(10 * BATCH + 3)  # more batches than any one step needs
    split = Split(source, np.arange(len(source)) % 3)
    assert split.collate_fn is collate_images
    encoder = RecordingEncoder(source)
    x, y = extract_features(encoder, split, batch_size=BATCH)
    assert x.shape == (83, 2) and x.dtype == np.float32 and y.tolist() == [i % 3 for i in
                                                                            range(83)]
    # batch k was encoded when only k + 1 batches had been decoded: never the whole source
    assert encoder.seen == [min(83, (k + 1) * BATCH) for k in range(11)]


def test_a_large_source_shows_progress(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(features, "progress_console",
                        lambda: Console(file=out, force_terminal=True, width=100))
    monkeypatch.setattr(features, "PROGRESS_MIN_IMAGES", 50)
    images = torch.randint(0, 256, (64, 1, 4, 4), dtype=torch.uint8)
    encoder = RecordingEncoder(CountingImages(0))
    extract_features(encoder, in_memory_split(images, None), batch_size=BATCH)
    text = out.getvalue()
    assert "features" in text and "64/64" in text and "images" in text
    out.truncate(0)
    extract_features(encoder, in_memory_split(images[:40], None), batch_size=BATCH)
    assert out.getvalue() == ""  # a small one stays quiet


def test_raw_pixel_baseline_samples_a_large_source(monkeypatch):
    source = load_source("digits")  # 1797 images, 1 x 8 x 8
    encoder = RecordingEncoder(CountingImages(0))
    encoder.preprocessing = Preprocessing(8, 1, (0.0,), (1.0,))
    full = suite.evaluate_encoder(encoder, source, ["raw_knn"])
    assert "raw_knn_samples" not in full
    monkeypatch.setattr(suite, "RAW_KNN_BYTES", 4 * 64 * 400)  # 400 images of 64 floats
    capped = suite.evaluate_encoder(encoder, source, ["raw_knn"])
    assert capped["raw_knn_samples"] == {"train": 400, "test": 100}
    assert capped["n_train"] == full["n_train"]  # the encoder's probes keep every image
    assert capped["raw_pixels_knn_top1"] > 0.5
