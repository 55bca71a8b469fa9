"""WebDataset tar shards: written from a folder, read back as a source, streamed to training
split across ranks and workers without overlap, resumable mid-epoch, bad members counted."""

from __future__ import annotations

import io
import json
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from selfsup.cli import EXIT_OK, EXIT_USAGE, main
from selfsup.data import DataError, load_source, stratified_holdout
from selfsup.data.batch import collate_batch
from selfsup.data.digits import load_digits_source
from selfsup.data.shard_stream import ShardBatches
from selfsup.data.shards import ShardSamples

pytest.importorskip("webdataset")


def digits_folder(root: Path, n: int = 120) -> Path:
    """The first ``n`` digits as PNGs in one sub-folder per class."""
    digits = load_digits_source()
    for i in range(n):
        label = int(digits.train.labels[i])
        path = root / f"class{label}" / f"{i:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(digits.train.images[i, 0].numpy()).save(path)
    return root


def quiet_load(spec, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clean shards load without warnings
        return load_source(str(spec), **kwargs)


def decoded(split) -> list[tuple[bytes, int]]:
    """Every (pixels, label) of a split, as sortable bytes (order is not compared)."""
    items = [split.dataset[i] for i in range(len(split))] if not isinstance(
        split.dataset, ShardSamples) else list(split.dataset)
    return sorted((image.numpy().tobytes(), label) for image, label in items)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """120 labelled digits in 12 shards of 10."""
    root = tmp_path_factory.mktemp("shards")
    folder = digits_folder(root / "folder")
    assert main(["shard", str(folder), "--out", str(root / "out"), "--shard-size", "10"]) == 0
    return root


def test_folder_round_trips_through_shards(shards, capsys):
    folder = quiet_load(shards / "folder", channels=1, image_size=8)
    source = quiet_load(shards / "out/train-{000000..000011}.tar", channels=1, image_size=8)
    assert len(source.train) == 120 and source.skipped == 0 and source.test is None
    assert source.classes == folder.classes
    assert decoded(source.train) == decoded(folder.train)  # same pixels, same labels
    # labels known up front (index.json), in index order
    assert sorted(source.train.labels.tolist()) == sorted(folder.train.labels.tolist())
    # the folder form reads index.json; a tar without it is scanned, to the same result
    assert decoded(quiet_load(shards / "out", channels=1, image_size=8).train) == decoded(
        source.train)
    index = json.loads((shards / "out/index.json").read_text())
    assert [e["samples"] for e in index["shards"]] == [10] * 12
    # each shard mixes the classes: written in a shuffled order
    assert len(set(index["shards"][0]["labels"])) > 3


def test_unindexed_shards_are_scanned(shards, tmp_path):
    for name in ("train-000000.tar", "train-000001.tar"):
        (tmp_path / name).write_bytes((shards / "out" / name).read_bytes())
    source = quiet_load(tmp_path / "train-{000000..000001}.tar", channels=1, image_size=8)
    indexed = quiet_load(shards / "out/train-{000000..000001}.tar", channels=1, image_size=8)
    assert source.train.labels.tolist() == indexed.train.labels.tolist()
    assert source.classes is None  # names live in index.json; the labels are the numbers


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def png(value: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (8, 8), value).save(out, format="PNG")
    return out.getvalue()


def test_bad_member_is_skipped_and_counted(tmp_path):
    good = [(f"{i:03d}.png", png(10 * i)) for i in range(5)]
    write_tar(tmp_path / "a-0.tar", [*good[:2], ("002.png", b"not a png"), *good[3:],
                                     ("005.cls", b"3")])  # 005 has a label but no image
    with pytest.warns(UserWarning, match=r"skipped 2 of 6 samples .*a-0.tar:002, a-0.tar:005"):
        source = load_source(str(tmp_path / "a-0.tar"), channels=1, image_size=8)
    assert source.skipped == 2 and len(source.train) == 6
    items = list(source.train.dataset)
    assert [it is None for it in items] == [False, False, True, False, False, True]
    # in training batches the bad ones are dropped (by position, so batches keep their place)
    stream = ShardBatches(source.train.dataset, per_rank_batch=3)
    batches = [collate_batch(b) for b in stream]
    assert [b.indices.tolist() for b in batches] != [] and sum(len(b.indices) for b in
                                                                batches) == 4
    assert sorted(i for b in batches for i in b.indices.tolist()) == [0, 1, 3, 4]


def test_member_damaged_after_indexing_is_counted_while_streaming(shards, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    index = json.loads((shards / "out/index.json").read_text())
    index["shards"] = index["shards"][:1]
    (out / "index.json").write_text(json.dumps(index))
    data = bytearray((shards / "out/train-000000.tar").read_bytes())
    start = data.index(b"\x89PNG")  # the first image's bytes: no longer a PNG, same size
    data[start:start + 8] = b"garbage!"
    (out / "train-000000.tar").write_bytes(bytes(data))
    source = quiet_load(out, channels=1, image_size=8)  # index.json: no scan, nothing seen
    stream = ShardBatches(source.train.dataset, per_rank_batch=5)
    with pytest.warns(UserWarning, match="skipped 1 bad member"):
        batches = [collate_batch(b) for b in stream]
    assert sum(len(b.indices) for b in batches) == 9


def test_missing_and_empty_shards_are_one_line(tmp_path, capsys):
    code = main(["pretrain", "--data", str(tmp_path / "x-{0..2}.tar"), "--run-dir",
                 str(tmp_path / "r"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "x-0.tar not found (3 of the 3" in err
    assert len(err.strip().splitlines()) == 1
    write_tar(tmp_path / "e.tar", [("a.txt", b"hello")])
    with pytest.raises(DataError, match="no readable images"):
        load_source(str(tmp_path / "e.tar"))
    assert main(["shard", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == EXIT_USAGE
    assert "is not a folder" in capsys.readouterr().err


def test_shard_refuses_a_folder_that_holds_shards(shards, capsys):
    code = main(["shard", str(shards / "folder"), "--out", str(shards / "out")])
    assert code == EXIT_USAGE and "already holds shards" in capsys.readouterr().err


def slot_indices(stream: ShardBatches, world: int, rank: int, worker: int) -> list[list[int]]:
    return [[it[2] for it in b] for b in stream.batches(world, rank, worker)]


def test_ranks_and_workers_split_without_overlap(shards):
    source = quiet_load(shards / "out", channels=1, image_size=8)
    stream = ShardBatches(source.train.dataset, per_rank_batch=6, workers=2, seed=1)
    assert stream.steps_per_epoch(world=2) == 2 * (120 // 4 // 6)  # 30 samples a slot: 5 batches
    slots = {(r, w): slot_indices(stream, 2, r, w) for r in (0, 1) for w in (0, 1)}
    assert all(len(b) == 5 and all(len(x) == 6 for x in b) for b in slots.values())
    seen = [i for b in slots.values() for batch in b for i in batch]
    assert len(seen) == len(set(seen)) == 120  # disjoint, and 30 x 4 covers all
    stream.set_epoch(1)
    again = [i for r in (0, 1) for w in (0, 1) for b in slot_indices(stream, 2, r, w) for i in b]
    assert sorted(again) == sorted(seen) and again != seen  # a new order each epoch
    # a real DataLoader with 2 workers takes the workers' batches in turn
    stream.set_epoch(0)
    loader = DataLoader(stream, batch_size=None, num_workers=2, collate_fn=collate_batch)
    got = [b.indices.tolist() for b in loader]
    mine = [slot_indices(stream, 1, 0, w) for w in (0, 1)]  # one rank: 60 samples a slot
    assert got == [mine[k % 2][k // 2] for k in range(len(got))] and len(got) == 20


def test_resume_mid_epoch_replays_the_same_batches(shards):
    source = quiet_load(shards / "out", channels=1, image_size=8)
    stream = ShardBatches(source.train.dataset, per_rank_batch=4, workers=2, seed=0,
                          buffer=16)
    stream.set_epoch(3)
    loader = DataLoader(stream, batch_size=None, num_workers=2, collate_fn=collate_batch)
    full = [(b.indices.tolist(), b.inputs.sum().item()) for b in loader]
    stream.skip = (3, 7)  # as DataOrder sets it from a checkpoint after 7 batches of epoch 3
    resumed = [(b.indices.tolist(), b.inputs.sum().item()) for b in loader]
    assert resumed == full[7:]
    stream.skip = (2, 7)  # a skip for another epoch does not apply
    assert [(b.indices.tolist(), b.inputs.sum().item()) for b in loader] == full


def test_holdout_and_subsets_stay_streamed(shards):
    source = quiet_load(shards / "out", channels=1, image_size=8)
    train, test = stratified_holdout(source.train, 0.2)
    assert isinstance(test.dataset, ShardSamples) and len(test) == 24
    items = list(test.dataset)
    assert [label for _, label in items] == test.labels.tolist()


def test_pretrain_end_to_end_on_shards(shards, tmp_path):
    run_dir = tmp_path / "run"
    import selfsup

    run = selfsup.pretrain("simclr", str(shards / "out/train-{000000..000011}.tar"), epochs=2,
                           batch_size=32, precision="32", image_size=16, channels=1,
                           run_dir=str(run_dir), progress=False, num_workers=2)
    # 120 samples, 2 workers: 60 a slot, 1 batch of 32 each: 2 steps an epoch
    assert run.steps == 4
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
    assert run.eval["knn_top1"] > 0.1 and run.eval["n_test"] == 24
    assert (run_dir / "encoder.safetensors").is_file() and (run_dir / "report.html").is_file()
    assert torch.isfinite(torch.tensor(run.eval["rankme"]))
    assert source_item_is_indexable(str(shards / "out"))


def source_item_is_indexable(spec: str) -> bool:
    """``dataset[i]`` works on a stream too (slowly: it reads the shard up to i)."""
    source = quiet_load(spec, channels=1, image_size=8)
    items = list(source.train.dataset)
    return all(torch.equal(source.train.dataset[i][0], items[i][0]) for i in (0, 57, 119))


def test_shard_command_prints_the_pattern(shards, capsys):
    assert main(["shard", str(shards / "folder"), "--out", str(shards / "again"),
                 "--shard-size", "50"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "train: 120 images in 3 shard(s)" in out and "train-{000000..000002}.tar" in out


def test_killed_mid_epoch_then_resumed_equals_uninterrupted(shards, tmp_path, kill_after,
                                                             logged_losses):
    import selfsup

    data = str(shards / "out")
    # 120 samples, 2 workers, batch 8: 7 batches a slot, 14 steps an epoch, 28 in all
    options = dict(epochs=2, batch_size=8, precision="32", image_size=16, channels=1, seed=0,
                   num_workers=2, log_every=1, checkpoint_every_s=0, evaluate_after=False,
                   progress=False)
    selfsup.pretrain("simclr", data, run_dir=str(tmp_path / "reference"), **options)
    expected = logged_losses(tmp_path / "reference")
    assert max(expected) == 28

    killed = kill_after(19)  # epoch 1, batch 5: an odd worker's turn is next
    with pytest.raises(killed):
        selfsup.pretrain("simclr", data, run_dir=str(tmp_path / "run"), **options)
    selfsup.pretrain(resume=str(tmp_path / "run"), evaluate_after=False, progress=False)
    got = logged_losses(tmp_path / "run")
    assert sorted(got) == sorted(expected)
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-5, abs=1e-6), step


def test_damaged_shards_and_missing_library_are_one_line(shards, tmp_path, monkeypatch, capsys):
    data = (shards / "out/train-000000.tar").read_bytes()
    (tmp_path / "cut-0.tar").write_bytes(data[: len(data) // 2])  # truncated mid-member
    with pytest.warns(UserWarning, match=r"skipped 1 of \d samples in .*cut-0.tar: unreadable"):
        source = load_source(str(tmp_path / "cut-0.tar"), channels=1, image_size=8)
    assert 0 < len(source.train) < 10 and source.skipped == 1  # the member cut in two
    # a folder of tars without index.json is no image folder: say how to read it
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a-0.tar").write_bytes(data)
    with pytest.raises(DataError, match=r"--data 'DIR/train-\{000000..000009\}.tar'"):
        load_source(str(plain))
    monkeypatch.setitem(__import__("sys").modules, "webdataset", None)
    code = main(["pretrain", "--data", str(shards / "out"), "--run-dir", str(tmp_path / "r"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "pip install 'selfsup[shards]'" in err
    assert len(err.strip().splitlines()) == 1
