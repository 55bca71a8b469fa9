"""Progressive resizing in a real run: the trainer hands the views the progress of each step."""

import lightning as L

import selfsup


class CropSides(L.Callback):
    def __init__(self):
        self.sides = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.sides.append(pl_module.method.views.crop.size)  # the side this step trained on


def test_the_crops_grow_along_the_ramp_step_by_step(tmp_path):
    sides = CropSides()
    run = selfsup.pretrain("simclr", "digits", epochs=3, batch_size=256, precision="32",
                           run_dir=str(tmp_path / "run"), evaluate_after=False,
                           views={"min_crop_ratio": 0.5, "resolution_ramp": [0.2, 0.6]},
                           callbacks=[sides])
    assert selfsup.load(tmp_path / "run").preprocessing.input_size == 8  # evaluated at 8 px
    assert run.steps == 3 * (1797 // 256)  # 21
    # digits are 8 px: crops from 0.5 x 8 = 4 px to SimCLR's 0.72 x 8 = 6 px. By hand, step s
    # trains at round(4 + 5 (s / 21 - 0.2)) px: s = 6 gives 4.43 -> 4, s = 7 gives 4.67 -> 5,
    # s = 10 gives 5.38 -> 5, s = 11 gives 5.62 -> 6
    assert sides.sides == [4] * 7 + [5] * 4 + [6] * 10
