"""Images with object masks, for the zero-shot segmentation protocol (``prompt_seg``).

Three kinds of source carry masks:

- a ``.npz`` with a ``masks`` array (N, H, W) beside its images ``x`` (or ``masks_test`` beside
  ``x_test``, preferred when present: the test images are the ones to score); nonzero = object;
- an image folder with a ``masks/`` twin: ``ROOT/images/...`` and ``ROOT/masks/...`` with the
  same relative paths (any image extension on either side; nonzero pixels = object), the layout
  most segmentation sets ship in. ``--data ROOT`` or ``--data ROOT/images`` both find the twin;
  an image without its mask is skipped and counted;
- ``fashion-mnist`` and ``digits``: one object on a black background, so the object mask is the
  foreground, every pixel above ``FOREGROUND`` of full scale (stated, not tuned), from the test
  images (digits: its stratified 20% holdout is not needed, every image has a mask).

Images are resized (bilinear) and masks (nearest) to the encoder's input size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from .split import DataError

FOREGROUND = 0.1  # fraction of full scale above which a Fashion-MNIST / digits pixel is object
NO_MASKS = ("has no object masks: give a .npz with a masks array, a folder ROOT with images/ and "
            "masks/ twins, fashion-mnist or digits")


@dataclass
class MaskedImages:
    images: torch.Tensor  # uint8 (N, C, S, S)
    masks: torch.Tensor  # bool (N, S, S), True = object
    name: str
    mask_rule: str  # where the masks came from, recorded in eval.json
    skipped: dict[str, int]  # reason -> count of images left out


def resize_pair(images: torch.Tensor, masks: torch.Tensor, channels: int, size: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, C, H, W) and bool-like (N, H, W) -> uint8 (N, channels, size, size) and bool
    (N, size, size): images bilinear (gray <-> RGB converted), masks nearest."""
    from .sources import convert_images  # the one image conversion every source uses

    images = convert_images(images, channels, size)
    if masks.shape[-1] != size:
        masks = F.interpolate(masks[:, None].float(), size=(size, size), mode="nearest")[:, 0]
    return images, masks > 0


def load_masked_images(spec: str, channels: int, size: int, limit: int | None = None
                       ) -> MaskedImages:
    """The images and object masks of ``spec`` at ``channels`` x ``size`` x ``size``, the first
    ``limit`` of them (all when None). A source without masks raises `DataError`."""
    path = Path(spec).expanduser()
    if spec in ("fashion-mnist", "digits"):
        images, masks, rule = _foreground(spec, limit)
        skipped: dict[str, int] = {}
    elif path.is_file() and path.suffix.lower() == ".npz":
        images, masks, rule = _npz(path)
        skipped = {}
    elif path.is_dir():
        images, masks, rule, skipped = _folder(path, channels, size, limit)
    else:
        raise DataError(f"data source '{spec}' not found; prompt_seg {NO_MASKS}")
    if limit is not None:
        images, masks = images[:limit], masks[:limit]
    images, masks = resize_pair(images, masks, channels, size)
    return MaskedImages(images, masks, spec, rule, skipped)


def _foreground(spec: str, limit: int | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    from .sources import load_source

    source = load_source(spec)
    split = source.test if source.test is not None else source.train
    images = split.images[:limit] if limit is not None else split.images  # uint8 (N, C, H, W)
    masks = images.float().amax(1) > FOREGROUND * 255  # (N, H, W)
    return images, masks, f"foreground: pixels above {FOREGROUND:g} of full scale"


def _npz(path: Path) -> tuple[torch.Tensor, torch.Tensor, str]:
    from .npz import images_nchw

    with np.load(path, allow_pickle=False) as arrays:
        keys = set(arrays.files)
        pairs = [(x, m) for x, m in (("x_test", "masks_test"), ("x", "masks")) if {x, m} <= keys]
        if not pairs:
            raise DataError(f"{path} {NO_MASKS} (it has {sorted(keys)})")
        x_key, m_key = pairs[0]
        images = images_nchw(arrays[x_key], path, x_key)
        masks = arrays[m_key]
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.shape != (images.shape[0], *images.shape[2:]):
        raise DataError(f"{path}: {m_key} is shaped {masks.shape}; expected one (H, W) mask per "
                        f"image of {x_key}: {(images.shape[0], *images.shape[2:])}")
    return images, torch.from_numpy(masks != 0), f"{m_key} array, nonzero = object"


def _folder(path: Path, channels: int, size: int, limit: int | None
            ) -> tuple[torch.Tensor, torch.Tensor, str, dict[str, int]]:
    root = path.parent if path.name == "images" and (path.parent / "masks").is_dir() else path
    image_dir, mask_dir = root / "images", root / "masks"
    if not (image_dir.is_dir() and mask_dir.is_dir()):
        raise DataError(f"{path} {NO_MASKS} (no images/ and masks/ folders under {root})")
    masks_by_stem = {m.relative_to(mask_dir).with_suffix(""): m
                     for m in sorted(mask_dir.rglob("*")) if m.is_file()}
    mode = "L" if channels == 1 else "RGB"
    images, masks, skipped = [], [], {"no mask": 0, "unreadable": 0}
    for file in sorted(f for f in image_dir.rglob("*") if f.is_file()):
        if limit is not None and len(images) >= limit:
            break
        mask_file = masks_by_stem.get(file.relative_to(image_dir).with_suffix(""))
        if mask_file is None:
            skipped["no mask"] += 1
            continue
        try:
            with Image.open(file) as im, Image.open(mask_file) as mk:
                image = im.convert(mode).resize((size, size), Image.BILINEAR)
                mask = mk.convert("L").resize((size, size), Image.NEAREST)
        except (OSError, UnidentifiedImageError, ValueError):
            skipped["unreadable"] += 1
            continue
        image = np.asarray(image, dtype=np.uint8)
        images.append(image[None] if image.ndim == 2 else image.transpose(2, 0, 1))
        masks.append(np.asarray(mask) > 0)
    if not images:
        raise DataError(f"{root}: no image under images/ has a readable mask of the same name "
                        f"under masks/ ({skipped['no mask']} without a mask, "
                        f"{skipped['unreadable']} unreadable)")
    return (torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks)),
            "masks/ twin, nonzero = object", {k: v for k, v in skipped.items() if v})
