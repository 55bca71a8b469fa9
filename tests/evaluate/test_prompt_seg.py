"""Zero-shot segmentation by a prompt patch: the prompt choice, the scores by hand, a
perfect and a blind encoder, and the protocol from the API and the command line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

import selfsup
from selfsup.backbones import Preprocessing, build_backbone
from selfsup.cli import EXIT_USAGE, main
from selfsup.data.masks import MaskedImages
from selfsup.evaluate.prompt_seg import (
    auroc,
    choose_prompt,
    patch_coverage,
    prompt_segmentation,
    score_image,
)


def test_coverage_and_prompt_by_hand():
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, :2, :3] = True  # 2x2 patches: top-left full, top-right half, bottom empty
    cov = patch_coverage(mask, 2)
    torch.testing.assert_close(cov, torch.tensor([[1.0, 0.5, 0.0, 0.0]]))
    assert choose_prompt(cov, 2).tolist() == [0]
    # a tie between two full patches goes to the one nearest the centroid
    cov = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])  # top row of a 3x3
    assert choose_prompt(cov, 3).tolist() == [1]


def test_auroc_matches_sklearn_with_ties():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (40,), generator=gen).float()
    positive = torch.rand(40, generator=gen) > 0.5
    assert auroc(scores, positive) == pytest.approx(roc_auc_score(positive, scores))


def test_score_image_by_hand():
    sim = torch.tensor([1.0, 0.9, 0.1, 0.0])  # 2x2 patches, the top row is the object
    coverage = torch.tensor([1.0, 1.0, 0.0, 0.0])
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:2] = True
    out = score_image(sim, coverage, 0, mask, 2, "mean")  # threshold 0.5: the top row
    assert out == pytest.approx({"iou": 1.0, "intra": 0.9, "inter": 0.05, "auroc": 1.0})
    # a fixed threshold of 0.95 keeps only the prompt's patch: 4 of 8 object pixels
    assert score_image(sim, coverage, 0, mask, 2, 0.95)["iou"] == pytest.approx(0.5)


class PatchMeanEncoder(torch.nn.Module):
    """tokens = (patch mean, 1 - patch mean): object and background patches point apart."""

    def __init__(self, size=16, patch=4, blind=False):
        super().__init__()
        self.preprocessing = Preprocessing(size, 1, (0.0,), (1.0,))
        self.patch_size, self.grid_size, self.blind = patch, size // patch, blind
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = {"name": "patch_mean"}

    def tokens(self, x):
        m = torch.nn.functional.avg_pool2d(x, self.patch_size).flatten(1)  # (B, L)
        t = torch.stack([m, 1 - m], -1) if not self.blind else torch.ones(*m.shape, 2)
        return torch.cat([torch.zeros(len(x), 1, 2), t], 1)


def squares(n=6, size=16):
    gen = torch.Generator().manual_seed(0)
    images = torch.zeros(n, 1, size, size, dtype=torch.uint8)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(n):
        r, c = (int(v) * 4 for v in torch.randint(0, 2, (2,), generator=gen))
        masks[i, r:r + 8, c:c + 8] = True
    images[:, 0][masks] = 255
    return images, masks


def test_a_perfect_encoder_segments_and_a_blind_one_cannot():
    images, masks = squares()
    masks[0] = False  # nothing to prompt: counted, not scored
    data = MaskedImages(images, masks, "squares", "test", {})
    perfect = prompt_segmentation(PatchMeanEncoder(), data)
    assert perfect["miou"] == pytest.approx(1.0) and perfect["auroc"] == pytest.approx(1.0)
    assert perfect["similarity_gap"] == pytest.approx(1.0)
    assert perfect["n_images"] == 5
    assert perfect["skipped"] == {"no patch half inside the object": 1}
    blind = prompt_segmentation(PatchMeanEncoder(blind=True), data)
    assert blind["auroc"] == pytest.approx(0.5) and blind["similarity_gap"] == pytest.approx(0)
    assert blind["miou"] == pytest.approx(0.25)  # every patch predicted, the object is 1/4


def test_api_on_an_npz_with_masks_and_clear_errors(tmp_path):
    images, masks = squares(8)
    path = tmp_path / "squares.npz"
    np.savez(path, x=images[:, 0].numpy(), masks=masks.numpy())
    vit = build_backbone("vit_tiny", channels=1, input_size=16, mean=(0.5,), std=(0.5,),
                         depth=1)
    out = selfsup.evaluate(vit, data=str(path), protocols=["prompt_seg"])["prompt_seg"]
    assert out["n_images"] == 8 and 0 <= out["miou"] <= 1 and 0 <= out["auroc"] <= 1
    resnet = build_backbone("resnet10w32", channels=1, input_size=16, mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="patch-token backbone"):
        selfsup.evaluate(resnet, data=str(path), protocols=["prompt_seg"])


def test_cli_prompt_seg_on_digits_and_a_folder_without_masks(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(8):
        Image.new("L", (16, 16), 30 * i).save(folder / f"{i}.png")
    run = tmp_path / "run"
    assert main(["pretrain", "--data", str(folder), "--epochs", "1", "--batch-size", "4",
                 "--image-size", "16", "--precision", "32", "--backbone", "vit_tiny",
                 "--backbone-arg", "depth=1", "--channels", "1", "--run-dir", str(run),
                 "--no-progress", "--no-eval"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--protocol", "prompt_seg", "--data", "digits"]) == 0
    assert "prompt_seg mIoU" in capsys.readouterr().out
    code = main(["evaluate", str(run), "--protocol", "prompt_seg", "--data", str(folder)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "has no object masks" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
