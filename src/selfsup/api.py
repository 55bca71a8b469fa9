"""The Python surface: pretrain, load, evaluate, embed (reports: `selfsup.report`)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from torch import nn

from .backbones.io import load_encoder
from .data import DataError, DataSource, load_source, load_source_for
from .data.masks import load_masked_images
from .evaluate import DEFAULT_PROTOCOLS, evaluate_encoder, load_projector, parse_preprocessing
from .evaluate.embed import check_output, embed_source, write_embeddings
from .evaluate.features import remembering
from .evaluate.products import check_protocols, get_product
from .evaluate.prompt_seg import prompt_segmentation
from .evaluate.suite import (
    DEFAULT_TEST_SAMPLES,
    DEFAULT_TRAIN_SAMPLES,
    LABEL_FREE,
    RANKME_SAMPLES,
    has_labels,
    target_task,
)
from .hardware import has_bf16
from .methods import get_method
from .report import write_report
from .rundir import RunDir, atomic_write_text
from .train import ConfigError, PretrainConfig, pretrain_run
from .train.config import BUDGETS, read_config_file
from .train.trackers import log_results

if TYPE_CHECKING:
    import lightning as L

DEFAULT_BUDGET = "10m"
PROMPT_SEG_IMAGES = 1000  # images the prompt_seg protocol scores (a ViT-tiny pass takes ~15 s)


@dataclass
class Run:
    dir: Path
    eval: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    images_per_s: float = 0.0
    is_global_zero: bool = True  # False in the other processes of a DDP run
    # steps, epochs, compute_flops, train_seconds, budget (train/run.py `training_record`)
    training: dict[str, Any] = field(default_factory=dict)


def load(run_dir: str | Path) -> nn.Module:
    """The encoder of a run (eval mode); its preprocessing is ``encoder.preprocessing``."""
    return load_encoder(run_dir)


def evaluate(encoder: nn.Module | str | Path, data: str | None = None,
             protocols: list[str] | tuple[str, ...] = DEFAULT_PROTOCOLS,
             k: int = 200, temperature: float = 0.1,
             preprocessing: str | None = None, eval_data: str | None = None,
             rankme_samples: int = RANKME_SAMPLES,
             train_samples: int | str | None = DEFAULT_TRAIN_SAMPLES,
             test_samples: int | None = DEFAULT_TEST_SAMPLES) -> dict[str, Any]:
    """Evaluate an encoder (or a run directory) on a source; the run's own data by default.

    ``protocols``: any of knn, linear, nb, fewshot, layers, rankme, raw_knn, finetune (the
    default label fractions and budget of `finetune`; a run directory only), prompt_seg
    (zero-shot segmentation by a prompt patch on the first `PROMPT_SEG_IMAGES` images of a
    source with object masks; ViT encoders); for a table encoder mlp, raw_mlp and gbt (an MLP
    on its embeddings, the same MLP and gradient-boosted trees on the raw features, at 100%
    and 10% of the labels: `selfsup.evaluate.table_probes`). A regression target skips the
    class probes and its linear probe is a ridge regression. Features always go
    through the encoder's own preprocessing; ``preprocessing`` overrides it (``"none"`` or
    ``"size=32,mean=0.5,std=0.5"``, see `parse_preprocessing`) to measure what a mismatch costs.
    A source without labels gets RankMe and the collapse check (on ``rankme_samples`` of its
    training images); the protocols that need labels are named under ``skipped``.

    ``train_samples``, ``test_samples``: the probes and the raw-pixel baseline fit on a
    class-stratified, seeded sample of this many training images and are scored on one of this
    many test images (by default "auto": the training images that hold 160M input values, all
    of Fashion-MNIST and CIFAR-10; 10,000 test images; recorded as ``probe_train_samples`` /
    ``probe_test_samples``); None or 0 takes the whole split.

    ``eval_data``: a labelled source the probes run on instead (a run pretrained on unlabelled
    photos, probed on a small labelled folder), converted to the encoder's channels and size;
    the label-free monitors stay on ``data``. Its results go under ``eval_data`` (with its name
    under ``eval_data.data``) beside ``data``'s.

    Given a run directory, results on its own data with its own preprocessing are merged into
    its ``eval.json`` (keys of protocols not run this time are kept); results on other data or
    with an override go to ``eval-<data>[-<override>].json`` beside it.
    """
    check_protocols(protocols)
    run_dir = None
    own_data = None
    if not isinstance(encoder, nn.Module):
        run_dir = Path(encoder)
        encoder = load_encoder(run_dir)
        own_data = yaml.safe_load(RunDir(run_dir).config.read_text())["data"]
        data = data or own_data
    if data is None:
        raise ValueError("give data= to evaluate a bare encoder")
    if "finetune" in protocols and run_dir is None:
        raise ValueError("the finetune protocol takes a run directory (it rebuilds the "
                         "architecture from scratch for its baseline)")
    options = dict(k=k, temperature=temperature, preprocessing=preprocessing, run_dir=run_dir,
                   rankme_samples=rankme_samples, train_samples=train_samples,
                   test_samples=test_samples)
    on_data = [p for p in protocols if p in LABEL_FREE] if eval_data else list(protocols)
    results = evaluate_source(encoder, data, on_data, **options)
    if eval_data is not None:
        probes = [p for p in protocols if p not in LABEL_FREE]
        results["eval_data"] = evaluate_source(encoder, eval_data, probes, labelled=True,
                                               **options)
    if run_dir is not None:
        results["written_to"] = str(record_results(run_dir, results, own=data == own_data
                                                   and not results["preprocessing_overridden"],
                                                   data=data, preprocessing=preprocessing))
    return results


def load_for_encoder(encoder: nn.Module, data: str, preprocessing: str | None = None
                     ) -> tuple[DataSource, Any]:
    """``data`` converted to the encoder's channels and input size (or the override's), and
    the override `Preprocessing` (None without one)."""
    own = encoder.preprocessing
    pre = None
    if own.modality == "table":
        if preprocessing is not None:
            raise ValueError("preprocessing overrides apply to image encoders; a table encoder "
                             "always reads its own columns")
        return load_source_for(data, own), None
    if preprocessing is not None:
        native = load_source(data, channels=own.channels).image_size
        pre = parse_preprocessing(preprocessing, own, native_size=native)
    return load_source(data, channels=own.channels, image_size=(pre or own).input_size), pre


def check_labelled(data: str, source: DataSource | None = None) -> None:
    """Refuse an ``eval_data`` source without labels, before any work is spent on it."""
    if not has_labels(source or load_source(data)):
        raise DataError(f"--eval-data {data} has no labels: give a labelled source (one "
                        "sub-folder per class, a .npz with y, digits, fashion-mnist)")


def evaluate_source(encoder: nn.Module, data: str, protocols: list[str], k: int = 200,
                    temperature: float = 0.1, preprocessing: str | None = None,
                    run_dir: Path | None = None, rankme_samples: int = RANKME_SAMPLES,
                    labelled: bool = False,
                    train_samples: int | str | None = DEFAULT_TRAIN_SAMPLES,
                    test_samples: int | None = DEFAULT_TEST_SAMPLES) -> dict[str, Any]:
    """The ``protocols`` on one source through the encoder's own preprocessing (or the
    override); ``labelled`` refuses a source without labels; ``train_samples`` and
    ``test_samples`` bound the probes' splits (`evaluate_encoder`)."""
    source, pre = load_for_encoder(encoder, data, preprocessing)
    if labelled:
        check_labelled(data, source)
    probes = [p for p in protocols if p not in ("finetune", "prompt_seg")]
    projector = load_projector(run_dir, encoder) if run_dir and "layers" in probes else None
    results = evaluate_encoder(encoder, source, probes, k, temperature, bf16=has_bf16(),
                               preprocessing=pre, projector=projector,
                               rankme_samples=rankme_samples,
                               train_samples=train_samples,
                               test_samples=test_samples) if probes else {
        "data": source.name, "preprocessing_overridden": pre is not None}
    if "finetune" in protocols and target_task(source) == "regression":
        results.setdefault("skipped", {})["finetune"] = "a class head; the target is a " \
            "regression target"
    elif "finetune" in protocols and has_labels(source):
        results["finetune"] = {k2: v for k2, v in finetune(run_dir, data=data).items()
                               if k2 != "written_to"}
    elif "finetune" in protocols:
        results.setdefault("skipped", {})["finetune"] = "no labels"
    if "prompt_seg" in protocols:
        own = encoder.preprocessing
        masked = load_masked_images(data, own.channels, (pre or own).input_size,
                                    limit=PROMPT_SEG_IMAGES)
        results["prompt_seg"] = prompt_segmentation(encoder, masked, bf16=has_bf16(),
                                                    preprocessing=pre)
    return results


def record_results(run_dir: Path, results: dict[str, Any], own: bool, data: str | None = None,
                   preprocessing: str | None = None) -> Path:
    """Merge ``results`` into the run's ``eval.json`` (keys of protocols not run this time are
    kept) when they are on its own data with its own preprocessing; else write
    ``eval-<data>[-<override>].json`` beside it.

    The new results also go to the run's trackers (``--logger``), as ``eval/<key>`` (or
    ``eval-<data>[-<override>]/<key>``): here, where every probe result is written, they reach
    the trackers whether they come from ``pretrain``, ``evaluate`` or ``finetune``."""
    run = RunDir(run_dir)
    new = results
    if own:
        path = run.eval
        previous = json.loads(path.read_text()) if path.is_file() else {}
        results = {**previous, **results}
    else:
        tag = "-".join(filter(None, [Path(str(data)).name, preprocessing]))
        path = run.eval_for(re.sub(r"[^A-Za-z0-9._=-]+", "_", tag))
    atomic_write_text(path, json.dumps(results, indent=2))
    log_results(run_dir, new, prefix="eval/" if own else f"{path.stem}/")
    return path


def finetune(run_dir: str | Path, data: str | None = None,
             labels: str | tuple[float, ...] = "1%,10%,100%", seeds: tuple[int, ...] = (0, 1, 2),
             steps: int | None = None, batch_size: int | None = None, lr: float | None = None,
             layer_decay: float | None = None, baseline: bool = True,
             pretrained: bool = True, progress: bool = False) -> dict[str, Any]:
    """End-to-end fine-tuning of a run's encoder with a linear head on class-balanced label
    subsets, beside the same architecture trained from scratch on the same labels and budget
    (`selfsup.evaluate.finetune`; ``baseline=False`` skips that arm, ``pretrained=False`` the
    run's own). Results go to the run's eval.json under ``finetune`` (or to
    ``eval-<data>.json`` for other data), and are returned."""
    from .backbones import backbone_from_config
    from .evaluate import finetune as ft
    from .evaluate.suite import train_test

    run = RunDir(run_dir)
    encoder = load_encoder(run_dir)
    own_data = yaml.safe_load(run.config.read_text())["data"]
    data = data or own_data
    fractions = ft.parse_fractions(labels) if isinstance(labels, str) else tuple(labels)
    pre = encoder.preprocessing
    source = load_source_for(data, pre)
    if source.train.labels is None:
        raise ValueError(f"cannot fine-tune on {data}: it has no labels; give a labelled "
                         "source with --data")
    if target_task(source) == "regression":
        raise ValueError(f"cannot fine-tune on {data}: fine-tuning trains a class head and its "
                         "target is a regression target (see the mlp and linear probes)")
    train, test, split_kind = train_test(source)

    def scratch() -> nn.Module:  # the same architecture, freshly initialized
        return backbone_from_config(encoder.config, pre.to_dict())

    options = {k: v for k, v in (("steps", steps), ("batch_size", batch_size), ("lr", lr))
               if v is not None}
    say = (lambda line: print(line, flush=True)) if progress else None
    result = ft.finetune_protocol(encoder, scratch if baseline else None, train, test,
                                  fractions, seeds,
                                  layer_decay=layer_decay, bf16=has_bf16(), progress=say,
                                  pretrained=pretrained, **options)
    result |= {"data": str(data), "split": split_kind}
    path = record_results(Path(run_dir), {"finetune": result}, own=data == own_data, data=data)
    return {**result, "written_to": str(path)}


def pretrain(method: str | None = None, data: str | None = None, *,
             config: str | Path | None = None, resume: str | None = None,
             progress: bool = False, evaluate_after: bool = True, eval_data: str | None = None,
             report: bool = True, callbacks: Sequence[L.Callback] = (), **options: Any) -> Run:
    """Pretrain and (by default) evaluate; returns the run. Options are `PretrainConfig` fields.

    ``config`` is a YAML file of config fields (a run's own ``config.yaml`` reruns it);
    ``method``, ``data`` and ``options`` given here override it. ``resume=RUN_DIR`` continues
    that run from its last checkpoint with its saved config. ``eval_data``: a labelled source
    the probes run on after pretraining (see `evaluate`); checked before training starts.
    A source without labels is evaluated with RankMe and the collapse check only.
    ``report=False`` skips report.html after the evaluation (`selfsup report RUN_DIR` writes it
    later from the run directory). ``callbacks``: the user's own Lightning callbacks, run
    after selfsup's (snapshots, extra monitors); they must not write the run's own files.
    """
    if eval_data is not None:
        if not evaluate_after:
            raise ConfigError("--eval-data names the data the evaluation probes; it cannot "
                              "go with --no-eval")
        check_labelled(eval_data)
    given = {k: v for k, v in (("method", method), ("data", data)) if v is not None}
    if resume is not None:
        config_path = RunDir(resume).config
        if not config_path.is_file():
            raise ConfigError(f"nothing to resume: {config_path} does not exist")
        if config is not None or given:
            raise ConfigError("a resumed run keeps its config; give only its budget "
                              "(--epochs, --steps, --time-budget or --compute) to extend it")
        config = PretrainConfig.from_file(config_path)
        config.run_dir = str(resume)
        extend_budget(config, options)
    else:
        from_file = read_config_file(config) if config is not None else {}
        config = PretrainConfig.from_dict({**from_file, **given, **options})
        if all(getattr(config, b) is None for b in BUDGETS):
            config.time_budget = DEFAULT_BUDGET
    result = pretrain_run(config, resume=resume is not None, progress=progress,
                          callbacks=callbacks)
    run = Run(result.dir, steps=result.steps, seconds=result.seconds,
              images_per_s=result.images_per_s, is_global_zero=result.is_global_zero,
              training=result.training or {})
    if run.is_global_zero:  # with or without the probes, eval.json says what was trained
        record_results(run.dir, {"training": run.training}, own=True)
    if evaluate_after and run.is_global_zero:
        with remembering():  # the report samples the features the evaluation computes
            evaluate_and_report(run, config, eval_data, report)
    return run


def extend_budget(config: PretrainConfig, options: dict[str, Any]) -> None:
    """A resumed run keeps its config but may extend the budget it has (a larger number of
    the same kind: a 500-step run to 800 steps); another kind of budget would be a second one."""
    changed = sorted(k for k in options if k not in BUDGETS)
    if changed:
        raise ConfigError(f"a resumed run keeps its config; only its budget can change (got "
                          f"{changed})")
    has = next((b for b in BUDGETS if getattr(config, b) is not None), None)
    other = sorted(k for k, v in options.items() if v is not None and k != has)
    if other:
        flag = "--" + has.replace("_", "-") if has else "no budget"
        raise ConfigError(f"{config.run_dir} was trained with {flag}; extend that one, not "
                          f"{', '.join('--' + k.replace('_', '-') for k in other)}")
    for k, v in options.items():
        setattr(config, k, v)


def evaluate_and_report(run: Run, config: PretrainConfig, eval_data: str | None,
                        report: bool) -> None:
    """After pretraining: the probes into eval.json and ``run.eval``, then report.html."""
    # what the user asked for, then what the method's product attaches to every run (on the
    # modality it was trained on)
    product = get_product(get_method(config.method).product)
    pre = json.loads(RunDir(run.dir).meta.read_text())["preprocessing"]
    attached = product.attached_for(pre.get("modality", "image"))
    protocols = list(dict.fromkeys([*config.eval_protocols, *attached]))
    run.eval = evaluate(run.dir, data=config.data, protocols=protocols, eval_data=eval_data,
                        rankme_samples=config.rankme_samples or RANKME_SAMPLES,
                        train_samples=config.eval_train_samples,
                        test_samples=config.eval_test_samples)
    online = RunDir(run.dir).online
    if config.ema and online.is_dir() and "knn_top1" in run.eval:
        # the exported encoder is the average: score the online weights beside it
        scores = evaluate(load_encoder(online), data=config.data, protocols=["knn", "linear"])
        run.eval["online_encoder"] = {k: scores[k] for k in ("knn_top1", "linear_top1")}
        record_results(run.dir, {"online_encoder": run.eval["online_encoder"]}, own=True)
    try:
        if report:
            write_report(run.dir)
    except Exception as e:  # the run and its scores are saved; a plot must not lose them
        logging.getLogger("selfsup").warning(
            "selfsup: report.html not written (%s); retry with `selfsup report %s`",
            e, run.dir)


def embed(run_dir: str | Path, out: str | Path, data: str | None = None,
          split: str = "all") -> list[Path]:
    """Embed a source (the run's own data by default) with the run's encoder, through its own
    preprocessing, and write ``out`` (``.npy`` + sidecars, or ``.parquet``); returns the files.
    ``split``: all (train then test), train or test."""
    check_output(out)
    run_dir = Path(run_dir)
    encoder = load_encoder(run_dir)
    data = data or yaml.safe_load(RunDir(run_dir).config.read_text())["data"]
    pre = encoder.preprocessing
    source = load_source_for(data, pre)
    table = embed_source(encoder, source, split, bf16=has_bf16())
    meta = {"run": str(run_dir), "data": str(data), "preprocessing": pre.to_dict()}
    return write_embeddings(table, out, meta)
