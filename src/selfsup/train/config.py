"""The pretraining config: one dataclass, validated at the edge, saved as config.yaml."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

OPTIMIZERS = ("lars", "sgd", "adamw")
PRECISIONS = ("auto", "bf16", "32")
BATCH_SAMPLERS = ("random", "guided")
# experiment trackers, through Lightning's loggers (train/trackers.py)
LOGGERS = ("csv", "tensorboard", "mlflow", "wandb")


class ConfigError(ValueError):
    """A config value is invalid; the message says which and what is allowed."""


def parse_duration(text: str | float | int) -> float:
    """'10m', '90s', '1h30m', '1.5h' or a number of seconds -> seconds."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        s = str(text).strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", s):
            seconds = float(s)
        else:
            parts = re.findall(r"(\d+(?:\.\d+)?)\s*([hms])", s)
            if not parts or "".join(f"{n}{u}" for n, u in parts) != s.replace(" ", ""):
                raise ConfigError(f"time budget {text!r} not understood; use e.g. 10m, 90s, 1h30m")
            seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"time budget must be positive, got {text!r}")
    return seconds


FLOP_UNITS = {"": 1.0, "flop": 1.0, "kflop": 1e3, "mflop": 1e6, "gflop": 1e9, "tflop": 1e12,
              "pflop": 1e15, "eflop": 1e18}
# the fields that bound a run; exactly one per run (api.pretrain sets the default time budget)
BUDGETS = ("epochs", "steps", "time_budget", "compute")


def parse_compute(text: str | float | int) -> float:
    """'100tflop', '2.5pflop', '3e15' or a number -> training FLOPs."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        flops = float(text)
    else:
        m = re.fullmatch(r"(\d+(?:\.\d*)?(?:e[+-]?\d+)?)\s*([a-z]*)", str(text).strip().lower())
        if not m or m.group(2) not in FLOP_UNITS:
            raise ConfigError(f"compute budget {text!r} not understood; use e.g. 100tflop, "
                              "2.5pflop or a number of FLOPs")
        flops = float(m.group(1)) * FLOP_UNITS[m.group(2)]
    if flops <= 0:
        raise ConfigError(f"compute budget must be positive, got {text!r}")
    return flops


def budget_words(config: dict[str, Any]) -> str | None:
    """A config's budget in words ('10m', '3 epochs', '500 steps', '100tflop'): of a
    `PretrainConfig` or of a run's config.yaml read back."""
    for key, unit in (("epochs", " epochs"), ("steps", " steps"), ("time_budget", ""),
                      ("compute", "")):
        if config.get(key) is not None:
            return f"{config[key]}{unit}"
    return None


def format_flops(flops: float) -> str:
    """1.234e14 -> '123.4 TFLOP'."""
    for unit, scale in (("EFLOP", 1e18), ("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if flops >= scale:
            return f"{flops / scale:.4g} {unit}"
    return f"{flops:.4g} FLOP"


def check_types(config: PretrainConfig) -> None:
    """Raise ``ConfigError`` for a field whose value has the wrong type (a YAML typo, usually)."""
    hints = get_type_hints(type(config))
    for f in fields(config):
        value, hint = getattr(config, f.name), hints[f.name]
        allowed = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
        if not any(_is_instance(value, t) for t in allowed):
            names = " or ".join("none" if t is type(None) else
                                getattr(get_origin(t) or t, "__name__", str(t)) for t in allowed)
            raise ConfigError(f"config field {f.name} must be {names}, got {value!r}")


def _is_instance(value: Any, hint: Any) -> bool:
    base = get_origin(hint) or hint
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, base)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The config fields a YAML file holds; a run's ``resolved`` section is dropped."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"{path} is not valid YAML{line}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of config fields")
    loaded.pop("resolved", None)
    return loaded


@dataclass
class PretrainConfig:
    """Everything needed to rerun a pretraining. ``None`` means "the method's recipe decides"."""

    method: str = "simclr"
    data: str = "fashion-mnist"
    backbone: str = "default"
    # the run's budget, exactly one of: epochs, optimizer steps, wall-clock time, training FLOPs
    epochs: int | None = None
    steps: int | None = None
    time_budget: str | float | None = None  # "10m", "90s", or seconds
    compute: str | float | None = None  # "100tflop", "2.5pflop", or FLOPs (train/compute.py)
    batch_size: int = 256  # global batch, split over devices x nodes
    optimizer: str | None = None
    lr: float | None = None  # for a batch of 256, scaled linearly with batch size
    weight_decay: float | None = None
    warmup_fraction: float | None = None
    grad_clip: float | None = None  # max gradient norm; 0: no clipping; None: the recipe's
    method_args: dict[str, Any] = field(default_factory=dict)
    backbone_args: dict[str, Any] = field(default_factory=dict)  # e.g. {"depth": 6, "pool": "mean"}
    views: dict[str, Any] = field(default_factory=dict)
    image_size: int | None = None
    channels: int | None = None
    precision: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    seed: int = 0
    run_dir: str | None = None
    num_workers: int | None = None
    eval_protocols: list[str] = field(default_factory=lambda: ["knn", "linear", "rankme"])
    # the evaluation after pretraining probes stratified samples of the splits (0: all;
    # "auto": the training images that hold 160M input values; evaluate/suite.py)
    eval_train_samples: int | str = "auto"
    eval_test_samples: int = 10_000
    log_every: int = 10
    checkpoint_every_s: float = 120.0
    schedule: str = "cosine"  # cosine | linear | infinite | repeated-cosine (train/schedule.py)
    schedule_constant: float = 0.5  # infinite: the constant phase's lr, a fraction of the peak
    cooldown_fraction: float = 0.2  # infinite: steps of the cosine from the peak to the constant
    anneal_fraction: float = 0.1  # infinite: the last steps, annealed linearly to 0
    init_from: str | None = None  # a run directory whose weights this run starts from
    classes: str | None = None  # keep only these labels of the source, e.g. "0-4" or "1,3,5"
    target: str | None = None  # a table's label column (CSV/Parquet); None: unlabelled
    categorical: list[str] = field(default_factory=list)  # table columns forced categorical
    task: str | None = None  # a table target's: classification | regression (None: inferred)
    sync_batchnorm: bool = False  # batch statistics over all processes instead of per process
    rankme_samples: int = 2048  # fixed training images RankMe is measured on (0: no monitor)
    rankme_every: int = 0  # also measure RankMe every this many steps (0: at epoch ends only)
    select_by: str | None = None  # "rankme": export the encoder of the highest-RankMe checkpoint
    ema: float = 0.0  # > 0: export an EMA of the encoder's weights with this decay per step
    # torch.compile the training step's forward (views, model, loss); inductor's compiled
    # kernels are kept per machine under $SELFSUP_CACHE/inductor, so a later run pays less
    compile: bool = False
    batch_sampler: str | None = None  # random | guided (G-SimCLR); None: the method's recipe
    loggers: list[str] = field(default_factory=list)  # csv, tensorboard, mlflow, wandb

    def validate(self) -> PretrainConfig:
        from ..backbones import BACKBONES
        from ..methods import get_method
        from ..views import ViewConfig
        from .schedule import SCHEDULES
        from .trackers import check_trackers

        check_types(self)
        if not all(isinstance(n, str) for n in self.loggers):
            raise ConfigError(f"loggers must be names; valid: {', '.join(LOGGERS)}")
        check_trackers(self.loggers)  # unknown names and missing packages, before any work
        if self.batch_sampler not in (None, *BATCH_SAMPLERS):
            raise ConfigError(f"unknown batch sampler {self.batch_sampler!r}; "
                              f"valid: {', '.join(BATCH_SAMPLERS)}")
        if self.task not in (None, "classification", "regression"):
            raise ConfigError(f"unknown task {self.task!r}; valid: classification, regression")
        if self.select_by not in (None, "last", "rankme"):
            raise ConfigError(f"unknown select_by {self.select_by!r}; valid: last, rankme")
        if not (isinstance(self.ema, (int, float)) and 0.0 <= self.ema < 1.0):
            raise ConfigError(f"ema is a decay per step in [0, 1) (0: off), got {self.ema!r}")
        if self.ema and self.select_by == "rankme":
            raise ConfigError("ema and select_by rankme both choose the exported encoder; "
                              "give one")
        if self.select_by == "rankme" and self.rankme_samples < 2:
            raise ConfigError("select_by rankme needs the RankMe monitor: rankme_samples >= 2")
        if self.eval_train_samples != "auto" and not (
                isinstance(self.eval_train_samples, int) and self.eval_train_samples >= 0):
            raise ConfigError(f"eval_train_samples is a number of images (0: all) or auto, got "
                              f"{self.eval_train_samples!r}")
        if self.eval_test_samples < 0:
            raise ConfigError(f"eval_test_samples must be >= 0 (0: all), got "
                              f"{self.eval_test_samples}")
        if self.rankme_samples < 0 or self.rankme_every < 0:
            raise ConfigError("rankme_samples and rankme_every must be >= 0")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        for name in ("schedule_constant", "cooldown_fraction", "anneal_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        try:
            cls = get_method(self.method)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.backbone != "default" and self.backbone not in BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; valid: "
                              f"{', '.join([*sorted(BACKBONES), 'default'])}")
        given = [b for b in BUDGETS if getattr(self, b) is not None]
        if len(given) > 1:
            flags = ", ".join("--" + b.replace("_", "-") for b in given)
            raise ConfigError(f"give one budget, not {flags}: each bounds the run on its own")
        for name in ("epochs", "steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.time_budget is not None:
            parse_duration(self.time_budget)
        if self.compute is not None:
            parse_compute(self.compute)
        if self.batch_size < 2:
            raise ConfigError(f"batch size must be >= 2, got {self.batch_size}")
        world = self.devices * self.num_nodes
        if self.devices < 1 or self.num_nodes < 1:
            raise ConfigError("devices and num_nodes must be >= 1")
        if self.batch_size % world:
            raise ConfigError(f"batch size {self.batch_size} is not divisible by "
                              f"devices x nodes = {world}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; "
                              f"valid: {', '.join(OPTIMIZERS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; "
                              f"valid: {', '.join(PRECISIONS)}")
        for name in ("lr", "weight_decay", "warmup_fraction", "grad_clip"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ConfigError(f"{name} must be >= 0, got {v}")
        known = cls.hparams()
        unknown = sorted(set(self.method_args) - set(known))
        if unknown:
            raise ConfigError(f"unknown argument(s) {unknown} for method {self.method!r}; "
                              f"valid: {', '.join(sorted(known)) or 'none'}")
        try:
            ViewConfig.from_dict({**cls.recipe.views.to_dict(), **self.views})
        except (TypeError, ValueError) as e:
            raise ConfigError(str(e)) from None
        return self

    @property
    def budget_seconds(self) -> float | None:
        return parse_duration(self.time_budget) if self.time_budget is not None else None

    @property
    def budget_flops(self) -> float | None:
        return parse_compute(self.compute) if self.compute is not None else None

    @property
    def budget(self) -> str | None:
        """The run's budget in words: '10m', '3 epochs', '500 steps', '100tflop'."""
        return budget_words(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> PretrainConfig:
        """A config YAML file (a run's ``config.yaml`` too), with ``overrides`` on top."""
        return cls.from_dict({**read_config_file(path), **overrides})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PretrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; valid: {', '.join(sorted(names))}")
        return cls(**d)
