"""Sources without labels are first-class: pretraining exits 0 with RankMe and the collapse
check, and ``--eval-data`` probes on another, labelled source through the encoder's own
preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import selfsup
from selfsup.cli import EXIT_OK, EXIT_USAGE, main
from selfsup.report import write_report
from selfsup.report.compare import compare_rows

TINY = ["--epochs", "1", "--image-size", "16", "--precision", "32", "--no-progress"]


def flat_folder(root: Path, n: int, side: int = 16) -> Path:
    """``n`` noise PNGs, no class sub-folders: the usual self-supervised case."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
            root / f"{i:03d}.png")
    return root


def labelled_folder(root: Path, per_class: int = 10) -> Path:
    """Two classes a probe can tell apart (dark and bright), gray and larger than the run's
    images: channels and size must be converted to the encoder's own."""
    rng = np.random.default_rng(1)
    for name, base in (("dark", 30), ("bright", 220)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(base + rng.integers(-20, 20, (24, 24)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory):
    """One pretraining on a flat folder of 40 images, through the CLI; (run dir, stdout)."""
    tmp = tmp_path_factory.mktemp("flat")
    photos = flat_folder(tmp / "photos", 40)
    run_dir = tmp / "run"
    code = main(["pretrain", "--data", str(photos), "--batch-size", "8", "--run-dir",
                 str(run_dir), *TINY])
    assert code == EXIT_OK
    return run_dir


def test_pretraining_without_labels_exits_0_with_label_free_results(flat_run):
    ev = json.loads((flat_run / "eval.json").read_text())
    assert ev["split"] == "no labels" and ev["rankme_samples"] == 40
    assert ev["rankme"] > 0 and ev["embedding_std"] > 0
    assert set(ev["collapse"]) == {"collapsed", "reasons"}
    assert ev["skipped"] == {"knn": "no labels", "linear": "no labels", "raw_knn": "no labels"}
    assert "knn_top1" not in ev
    assert (flat_run / "encoder.safetensors").is_file()
    assert (flat_run / "report.html").is_file()


def test_the_cli_says_how_to_probe_with_labels(tmp_path, capsys):
    photos = flat_folder(tmp_path / "photos", 12)
    code = main(["pretrain", "--data", str(photos), "--batch-size", "4", "--run-dir",
                 str(tmp_path / "run"), *TINY])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    hint = [line for line in out.splitlines() if "--eval-data" in line]
    assert hint == [f"no labels in {photos}: RankMe and the collapse check only; probe with "
                    f"labels: selfsup evaluate {tmp_path / 'run'} --eval-data LABELLED_SOURCE"]


def test_report_and_compare_read_a_run_without_labels(flat_run):
    page = write_report(flat_run).read_text()
    assert "--eval-data LABELLED_SOURCE" in page  # where the probe accuracy would be
    row = compare_rows([flat_run])[0]
    assert row["knn"] is None and row["rankme"] is not None


def test_three_images_train_with_a_batch_of_two(tmp_path):
    photos = flat_folder(tmp_path / "three", 3)
    run = selfsup.pretrain(data=str(photos), epochs=1, batch_size=2, precision="32",
                           image_size=16, rankme_samples=3, run_dir=str(tmp_path / "run"))
    assert run.steps == 1 and run.eval["rankme_samples"] == 3


def test_three_images_with_the_default_batch_is_one_clear_line(tmp_path, capsys):
    photos = flat_folder(tmp_path / "three", 3)
    code = main(["pretrain", "--data", str(photos), "--run-dir", str(tmp_path / "run"), *TINY])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "batch size 256 is larger than the 3 training images; use --batch-size 3" in err


def test_eval_data_probes_another_labelled_source(tmp_path, capsys):
    photos = flat_folder(tmp_path / "photos", 16)
    labelled = labelled_folder(tmp_path / "labelled")
    run_dir = tmp_path / "run"
    code = main(["pretrain", "--data", str(photos), "--batch-size", "8", "--run-dir",
                 str(run_dir), "--eval-data", str(labelled), *TINY])
    out = capsys.readouterr().out
    assert code == EXIT_OK and "kNN top-1 on" in out and "--eval-data LAB" not in out
    ev = json.loads((run_dir / "eval.json").read_text())
    probed = ev["eval_data"]
    assert probed["data"] == str(labelled) and probed["split"] == "stratified 20% holdout"
    assert 0 <= probed["knn_top1"] <= 1 and "linear_top1" in probed
    assert "raw_pixels_knn_top1" in probed
    assert probed["preprocessing"] == ev["preprocessing"]  # the encoder's own: 3 x 16 px
    assert probed["preprocessing"]["channels"] == 3 and probed["preprocessing"]["input_size"] == 16
    assert ev["split"] == "no labels" and "rankme" in ev and ev["skipped"] == {}
    assert compare_rows([run_dir])[0]["knn"] == probed["knn_top1"]
    assert "probes on" in write_report(run_dir).read_text()


def test_evaluate_a_run_with_eval_data_merges_into_eval_json(flat_run, tmp_path):
    labelled = labelled_folder(tmp_path / "labelled")
    results = selfsup.evaluate(flat_run, protocols=["knn", "rankme"], eval_data=str(labelled),
                               k=5)
    assert results["written_to"] == str(flat_run / "eval.json")
    ev = json.loads((flat_run / "eval.json").read_text())
    assert ev["eval_data"]["data"] == str(labelled) and "knn_top1" in ev["eval_data"]
    assert ev["rankme_samples"] == 40  # the label-free monitors stay on the run's own data


def test_eval_data_without_labels_is_refused_before_training(tmp_path, capsys):
    photos = flat_folder(tmp_path / "photos", 8)
    code = main(["pretrain", "--data", str(photos), "--batch-size", "4", "--run-dir",
                 str(tmp_path / "run"), "--eval-data", str(photos), *TINY])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and len(err.strip().splitlines()) == 1
    assert f"--eval-data {photos} has no labels" in err
    assert not (tmp_path / "run").exists()


def test_a_bare_encoder_on_unlabelled_data(flat_run, tmp_path):
    encoder = selfsup.load(flat_run)
    photos = flat_folder(tmp_path / "more", 6, side=40)  # resized to the encoder's 16 px
    results = selfsup.evaluate(encoder, data=str(photos), rankme_samples=4)
    assert results["rankme_samples"] == 4 and results["feature_dim"] == encoder.dim
    assert results["skipped"]["linear"] == "no labels"
