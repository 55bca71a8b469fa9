"""The command line: help with examples, clear one-line errors, and a full run on a bad folder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from selfsup.cli import EXIT_USAGE, main

SELFSUP = [sys.executable, "-m", "selfsup.cli"]


def _run(*args, cwd=None):
    return subprocess.run([*SELFSUP, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", ["pretrain", "evaluate", "methods"])
def test_help_has_an_example(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "example" in capsys.readouterr().out


def test_methods_lists_name_family_paper(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "simclr" in out and "barlow_twins" in out and "Zbontar" in out


def test_unknown_method_and_backbone_list_valid(capsys):
    assert main(["pretrain", "--method", "simclrr"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "simclr" in err and "barlow_twins" in err and len(err.strip().splitlines()) == 1
    assert main(["pretrain", "--backbone", "vgg11"]) == EXIT_USAGE
    assert "resnet18" in capsys.readouterr().err


def test_missing_data_path_is_one_line_no_traceback(tmp_path, capsys):
    err = _one_line_error(capsys, main(["pretrain", "--data", str(tmp_path / "nowhere"),
                                        "--run-dir", str(tmp_path / "r")]))
    assert "nowhere" in err


def _bad_folder(root: Path) -> Path:
    """3 good images, 2 truncated PNGs, 1 zero-byte file, 1 text file named .jpg."""
    root.mkdir()
    for i in range(3):
        Image.new("RGB", (20, 20), (40 * i, 100, 200 - 40 * i)).save(root / f"good{i}.png")
    for i in range(2):
        Image.new("RGB", (20, 20), (10, 20, 30)).save(root / f"trunc{i}.png")
        data = (root / f"trunc{i}.png").read_bytes()
        (root / f"trunc{i}.png").write_bytes(data[: len(data) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.jpg").write_text("not an image")
    return root


def test_bad_folder_trains_on_the_good_three_and_warns(tmp_path):
    folder = _bad_folder(tmp_path / "imgs")
    run_dir = tmp_path / "run"
    # in-process; that the warning reaches a real process's stderr is
    # tests/data/test_bad_inputs.py's subprocess test
    with pytest.warns(UserWarning, match="skipped 4 of 7 files"):
        code = main(["pretrain", "--data", str(folder), "--epochs", "2", "--batch-size", "3",
                     "--image-size", "16", "--run-dir", str(run_dir), "--no-progress",
                     "--no-eval", "--precision", "32"])
    assert code == 0
    assert (run_dir / "encoder.safetensors").is_file()
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ends = [r for r in rows if "epoch_end" in r]
    assert ends[-1]["step"] == 2  # one batch of the 3 good images per epoch


def test_pretrain_then_evaluate_cli(tmp_path, capsys):
    run_dir = tmp_path / "run"
    # the installed entry point, end to end, once; the other commands run in-process
    proc = _run("pretrain", "--data", "digits", "--epochs", "1", "--batch-size", "128",
                "--run-dir", str(run_dir), "--no-progress", "--no-report")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "kNN top-1" in proc.stdout and "raw-pixel kNN" in proc.stdout
    assert not (run_dir / "report.html").exists()  # --no-report
    first = json.loads((run_dir / "eval.json").read_text())
    (run_dir / "eval.json").unlink()
    assert main(["evaluate", str(run_dir), "--protocol", "knn,raw_knn"]) == 0
    again = json.loads((run_dir / "eval.json").read_text())
    assert again["knn_top1"] == pytest.approx(first["knn_top1"], abs=0.01)
    assert "raw_pixels_knn_top1" in again and "linear_top1" not in again
    # a second pretrain into the same directory refuses rather than overwrite the run
    capsys.readouterr()
    err = _one_line_error(capsys, main(["pretrain", "--data", "digits", "--epochs", "1",
                                        "--run-dir", str(run_dir)]))
    assert "--resume" in err


def test_config_file_then_flags(tmp_path):
    from selfsup.cli import _config_from_args, _parser

    cfg = tmp_path / "run.yaml"
    cfg.write_text("method: barlow_twins\ndata: digits\nbatch_size: 64\nmethod_args:\n"
                   "  lambda_: 0.01\n")
    a = _parser().parse_args(["pretrain", "--config", str(cfg), "--batch-size", "32",
                              "--method-arg", "proj_dim=256", "--view", "crop_scale=[0.3,1.0]"])
    opts = _config_from_args(a)
    assert opts["method"] == "barlow_twins" and opts["data"] == "digits"
    assert opts["batch_size"] == 32  # the flag wins over the file
    assert opts["method_args"] == {"lambda_": 0.01, "proj_dim": 256}
    assert opts["views"] == {"crop_scale": [0.3, 1.0]}
    assert "seed" not in opts  # flags not given leave the config's defaults alone


def _pretrain_with_config(tmp_path, text: str, *flags: str) -> tuple[int, str]:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    code = main(["pretrain", "--config", str(cfg), "--run-dir", str(tmp_path / "run"),
                 "--no-progress", *flags])
    return code, cfg


@pytest.mark.parametrize("text, expected", [
    ("data: digits\nepoch: 3\n", "unknown config key(s) ['epoch']"),
    ("data: digits\nepochs: three\n", "config field epochs must be int or none, got 'three'"),
    ("data: digits\nbatch_size: 64.5\n", "config field batch_size must be int, got 64.5"),
    ("data: digits\nsync_batchnorm: 'yes'\n", "config field sync_batchnorm must be bool"),
    ("data: digits\nmethod_args: 3\n", "config field method_args must be dict"),
    ("data: digits\ntime_budget: -30\n", "time budget must be positive, got -30"),
    ("data: digits\nepochs: 0\n", "epochs must be >= 1"),
    ("data: digits\nschedule: step\n", "valid: cosine, linear, infinite, repeated-cosine"),
    ("data: [digits\n", "is not valid YAML (line 2)"),
    ("- digits\n", "must hold a mapping of config fields"),
])
def test_bad_config_file_is_one_line(tmp_path, capsys, text, expected):
    code, _ = _pretrain_with_config(tmp_path, text)
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flags, expected", [
    (["--time-budget=-5m"], "time budget '-5m' not understood"),
    (["--time-budget", "0s"], "time budget must be positive"),
    (["--batch-size", "4096"], "batch size 4096 is larger than the"),
    (["--classes", "3-1"], "runs backwards"),
    (["--classes", "0-12"], "has no class(es) [10, 11, 12]"),
    (["--method-arg", "temperature"], "expected KEY=VALUE"),
    (["--view", "crop_scale=[2,1]"], "view setting crop_scale must be two numbers [low, high] "
                                     "with 0 < low <= high <= 1, got [2, 1]"),
])
def test_bad_flags_are_one_line(tmp_path, capsys, flags, expected):
    code = main(["pretrain", "--data", "digits", "--run-dir", str(tmp_path / "run"),
                 "--no-progress", *flags])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture
def damaged_run(tmp_path):
    """A finished 5-step run on the infinite schedule (so it has checkpoints/constant.ckpt)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(10):
        Image.new("RGB", (16, 16), (20 * i, 100, 200 - 20 * i)).save(folder / f"{i}.png")
    run_dir = tmp_path / "run"
    assert main(["pretrain", "--data", str(folder), "--epochs", "1", "--batch-size", "2",
                 "--image-size", "16", "--precision", "32", "--schedule", "infinite",
                 "--run-dir", str(run_dir), "--no-progress", "--no-eval"]) == 0
    return run_dir


def test_damaged_run_files_are_one_line(damaged_run, capsys):
    capsys.readouterr()
    checkpoints = damaged_run / "checkpoints"
    _truncate(checkpoints / "last.ckpt")
    err = _one_line_error(capsys, main(["pretrain", "--resume", str(damaged_run), "--epochs",
                                        "2", "--no-progress"]))
    assert f"cannot resume {damaged_run}: {checkpoints / 'last.ckpt'} is damaged" in err
    assert f"{checkpoints / 'constant.ckpt'} (step 5) is whole: copy it over last.ckpt" in err
    (checkpoints / "constant.ckpt").unlink()
    err = _one_line_error(capsys, main(["pretrain", "--resume", str(damaged_run),
                                        "--no-progress"]))
    assert "no other checkpoint to resume from: start again with another --run-dir" in err
    _truncate(damaged_run / "encoder.safetensors")
    err = _one_line_error(capsys, main(["evaluate", str(damaged_run)]))
    assert f"{damaged_run / 'encoder.safetensors'} is damaged or truncated" in err
    assert "checkpoints" in err


def test_one_budget_per_run_on_the_command_line(tmp_path, capsys):
    err = _one_line_error(capsys, main(["pretrain", "--data", "digits", "--steps", "3",
                                        "--time-budget", "1m", "--run-dir", str(tmp_path / "r"),
                                        "--no-progress"]))
    assert "give one budget, not --steps, --time-budget" in err
    err = _one_line_error(capsys, main(["pretrain", "--data", "digits", "--compute", "lots",
                                        "--run-dir", str(tmp_path / "r"), "--no-progress"]))
    assert "compute budget 'lots' not understood" in err
    err = _one_line_error(capsys, main(["pretrain", "--data", "digits", "--steps", "3",
                                        "--eval-train-samples", "some", "--no-progress"]))
    assert "--eval-*-samples takes a number of images, all or auto" in err
