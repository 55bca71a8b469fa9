import json
import sys

import numpy as np
import pytest
from PIL import Image

import selfsup
from selfsup.cli import main


def test_npy_embeddings_with_labels(digits_run, tmp_path):
    written = selfsup.embed(digits_run.dir, tmp_path / "emb.npy")
    assert [p.name for p in written] == ["emb.npy", "emb.labels.npy", "emb.json"]
    emb, labels = np.load(tmp_path / "emb.npy"), np.load(tmp_path / "emb.labels.npy")
    assert emb.shape == (1797, 256) and emb.dtype == np.float32  # digits has no test split
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert sorted(set(labels.tolist())) == list(range(10))
    meta = json.loads((tmp_path / "emb.json").read_text())
    assert meta["rows"] == {"train": [0, 1797]} and meta["dim"] == 256
    assert meta["preprocessing"]["input_size"] == 8
    # the rows are the encoder's features of the images, in order
    from selfsup.data import load_source
    from selfsup.evaluate import extract_features
    from selfsup.hardware import has_bf16

    # embed uses bf16 autocast where the CPU/GPU has it, as evaluation does
    own, _ = extract_features(selfsup.load(digits_run.dir), load_source("digits").train,
                              bf16=has_bf16())
    np.testing.assert_allclose(emb, own, rtol=1e-5, atol=1e-6)


def _folder(root, per_class=3):
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", 2)):
        for cls in ("cat", "dog"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(
                    d / f"{i}.png")
    return root


def test_folder_embeddings_carry_paths(digits_run, tmp_path):
    folder = _folder(tmp_path / "images")
    written = selfsup.embed(digits_run.dir, tmp_path / "out" / "f.npy", data=str(folder))
    assert (tmp_path / "out" / "f.paths.txt") in written
    paths = (tmp_path / "out" / "f.paths.txt").read_text().splitlines()
    emb = np.load(tmp_path / "out" / "f.npy")
    assert emb.shape == (10, 256) and len(paths) == 10  # 6 train then 4 test
    assert all(p.endswith(".png") for p in paths) and "/train/" in paths[0]
    meta = json.loads((tmp_path / "out" / "f.json").read_text())
    assert meta["rows"] == {"train": [0, 6], "test": [6, 10]}
    labels = np.load(tmp_path / "out" / "f.labels.npy")
    assert [("dog" in p) for p in paths] == [bool(v) for v in labels]


def test_parquet_embeddings(digits_run, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    folder = _folder(tmp_path / "images")
    selfsup.embed(digits_run.dir, tmp_path / "f.parquet", data=str(folder), split="test")
    table = pq.read_table(tmp_path / "f.parquet")
    assert table.column_names == ["split", "label", "path", "embedding"]
    assert table.num_rows == 4 and set(table["split"].to_pylist()) == {"test"}
    emb = np.stack(table["embedding"].to_numpy(zero_copy_only=False))
    assert emb.shape == (4, 256)
    assert json.loads(table.schema.metadata[b"selfsup"])["data"] == str(folder)


def test_embed_errors(digits_run, tmp_path, monkeypatch, capsys):
    assert main(["embed", str(digits_run.dir), "--out", str(tmp_path / "e.csv")]) == 2
    assert "valid: .npy, .parquet" in capsys.readouterr().err
    assert main(["embed", str(digits_run.dir), "--out", str(tmp_path / "e.npy"),
                 "--split", "test"]) == 2  # digits has no test split
    assert "no 'test' split" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if pyarrow were not installed
    assert main(["embed", str(digits_run.dir), "--out", str(tmp_path / "e.parquet")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'selfsup[parquet]'" in err and "Traceback" not in err
