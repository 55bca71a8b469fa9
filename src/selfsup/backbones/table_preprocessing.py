"""The preprocessing a table encoder expects, fitted on the training split and saved in
``encoder.json`` like an image encoder's size and mean/std.

Raw rows (data/table.py: numeric values with NaN for missing, category codes with NaN for
missing and -1 for unseen) become the encoder's input (B, T), T = n_numeric + n_indicators +
n_categorical, in that order:

- numeric: ``(x - mean) / std`` with the training split's mean and std; a missing value is
  mean-imputed, i.e. 0 after standardization;
- one missing indicator (0/1) per numeric column that had missing values in training;
- categorical: a vocabulary index, 0 for missing or unseen, ``code + 1`` for the training
  split's categories; the tokenizer embeds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

KINDS = ("numeric", "categorical")


@dataclass(frozen=True)
class TablePreprocessing:
    """Column names and kinds (in the raw rows' order), per numeric column its mean, std and
    whether it gets a missing indicator, per categorical column its categories, and the target
    column the encoder was trained without (None: an unlabelled table) with its task
    (classification or regression), so that evaluation reads the labels as training did."""

    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    mean: tuple[float, ...]  # per numeric column
    std: tuple[float, ...]
    indicators: tuple[bool, ...]  # per numeric column
    categories: tuple[tuple[str, ...], ...]  # per categorical column
    target: str | None = None
    task: str | None = None
    modality: ClassVar[str] = "table"

    def __post_init__(self) -> None:
        if len(self.kinds) != len(self.columns) or set(self.kinds) - set(KINDS):
            raise ValueError(f"one kind per column, each one of {KINDS}")
        n_num = self.kinds.count("numeric")
        if not len(self.mean) == len(self.std) == len(self.indicators) == n_num:
            raise ValueError("mean, std and indicators need one value per numeric column")
        if len(self.categories) != self.kinds.count("categorical"):
            raise ValueError("categories need one list per categorical column")

    @property
    def num_numeric(self) -> int:
        """Inputs with an affine token each: the numeric columns, then their indicators."""
        return len(self.mean) + sum(self.indicators)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Vocabulary size per categorical column, index 0 (missing or unseen) included."""
        return tuple(len(c) + 1 for c in self.categories)

    @property
    def num_tokens(self) -> int:
        return self.num_numeric + len(self.categories)

    @property
    def input_dim(self) -> int:
        """The raw-feature width (`one_hot`): numeric values, indicators, one-hot categories."""
        return self.num_numeric + sum(self.cardinalities)

    @classmethod
    def fit(cls, rows: torch.Tensor, schema: Any) -> TablePreprocessing:
        """Fitted on the training split's raw rows (N, F) of a `data.table.TableSchema`."""
        numeric = [j for j, k in enumerate(schema.kinds) if k == "numeric"]
        x = rows[:, numeric].double()  # (N, n_num)
        present = ~x.isnan()
        count = present.sum(0).clamp(min=1)
        mean = torch.where(present, x, 0).sum(0) / count
        var = (torch.where(present, x - mean, 0) ** 2).sum(0) / (count - 1).clamp(min=1)
        std = var.sqrt().clamp(min=1e-6)
        return cls(tuple(schema.columns), tuple(schema.kinds),
                   tuple(float(v) for v in mean), tuple(float(v) for v in std),
                   tuple(bool(v) for v in (~present).any(0)),
                   tuple(c for c, k in zip(schema.categories, schema.kinds, strict=True)
                         if k == "categorical"), schema.target, schema.task)

    def to_dict(self) -> dict:
        return {"modality": self.modality, "columns": list(self.columns),
                "kinds": list(self.kinds), "mean": list(self.mean), "std": list(self.std),
                "indicators": list(self.indicators),
                "categories": [list(c) for c in self.categories], "target": self.target,
                "task": self.task}

    @classmethod
    def from_dict(cls, d: dict) -> TablePreprocessing:
        return cls(tuple(d["columns"]), tuple(d["kinds"]), tuple(float(v) for v in d["mean"]),
                   tuple(float(v) for v in d["std"]), tuple(bool(v) for v in d["indicators"]),
                   tuple(tuple(c) for c in d["categories"]), d.get("target"), d.get("task"))

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        """Raw rows float (B, F) -> encoder input float (B, T), described in the module doc."""
        if rows.ndim != 2 or rows.shape[1] != len(self.columns):
            raise ValueError(f"expected raw table rows (B, {len(self.columns)}), got "
                             f"{tuple(rows.shape)}")
        rows = rows.float()
        kinds = torch.tensor([k == "numeric" for k in self.kinds], dtype=torch.bool,
                             device=rows.device)
        x = rows[:, kinds]  # (B, n_num)
        missing = x.isnan()
        mean = torch.tensor(self.mean, device=rows.device)
        std = torch.tensor(self.std, device=rows.device)
        x = torch.where(missing, 0.0, (x - mean) / std)
        flags = torch.tensor(self.indicators, dtype=torch.bool, device=rows.device)
        codes = rows[:, ~kinds]  # (B, n_cat)
        index = torch.where(codes.isnan() | (codes < 0), 0.0, codes + 1)
        return torch.cat([x, missing[:, flags].float(), index], dim=1)  # (B, T)

    def one_hot(self, rows: torch.Tensor) -> torch.Tensor:
        """The raw-feature baseline's input (B, num_numeric + sum(cardinalities)): standardized
        numeric values and indicators, then one-hot categories."""
        x = self(rows)
        n = self.num_numeric
        hots = [torch.nn.functional.one_hot(x[:, n + j].long(), card).float()
                for j, card in enumerate(self.cardinalities)]
        return torch.cat([x[:, :n], *hots], dim=1)
