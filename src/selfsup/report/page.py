"""``report.html``: one self-contained page per run (every figure embedded as a PNG data URI)."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from ..backbones.io import load_encoder
from ..data import Split, load_source_for
from ..data.split import in_memory_split
from ..evaluate.features import extract_features, remembered
from ..evaluate.suite import (
    DEFAULT_TEST_SAMPLES,
    DEFAULT_TRAIN_SAMPLES,
    has_labels,
    probe_samples,
    train_test,
)
from ..evaluate.table_probes import PROBE_NAMES, format_score
from ..hardware import has_bf16
from ..methods.saved import saved_method
from ..rundir import RunDir, atomic_write_text
from ..train.config import budget_words
from . import plots
from .compare import format_cell

MAPS = ("pca", "tsne")
MAP_POINTS = 2000  # test images drawn in the embedding map
NEIGHBOUR_POOL = 10_000  # training images searched for nearest neighbours
QUERIES, NEIGHBOURS = 8, 8


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = RunDir(run_dir).metrics
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill; the rest of the log still reads
    return rows


def sample_indices(split: Split, n: int, seed: int) -> torch.Tensor:
    """A fixed random subset of a split's items (n,)."""
    return torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n]


def sample_images(split: Split, n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """A fixed random subset of a split: uint8 images (n, C, H, W) and labels (n,)."""
    idx = sample_indices(split, n, seed)
    if split.images is not None:
        return split.images[idx], split.labels[idx.numpy()]
    if hasattr(split.dataset, "subset"):  # a stream (tar shards): one pass, in index order
        items = [it for it in split.dataset.subset(idx.sort().values.numpy()) if it is not None]
    else:
        items = [it for it in (split.dataset[int(i)] for i in idx) if it is not None]
    return (torch.stack([im for im, _ in items]),
            np.array([label for _, label in items], dtype=np.int64))


def images_at(split: Split, idx: np.ndarray) -> np.ndarray:
    """uint8 images (n, C, H, W) of the split's items ``idx``; a file that no longer decodes
    shows as a black tile."""
    if split.images is not None:
        return split.images[torch.as_tensor(idx)].numpy()
    items = [split.dataset[int(i)] for i in idx]
    shape = next(it[0].shape for it in items if it is not None)
    return np.stack([it[0].numpy() if it is not None else np.zeros(shape, np.uint8)
                     for it in items])


def embedding_figures(run_dir: Path, data: str | None, how: str,
                      labelled: str | None = None) -> dict[str, str]:
    """The embedding map and the nearest-neighbour grid, from the run's encoder and data, or
    from ``labelled`` (the run's --eval-data) when that data has no labels; {} without any."""
    encoder = load_encoder(run_dir)
    pre = encoder.preprocessing
    cfg = yaml.safe_load(RunDir(run_dir).config.read_text())
    source = load_source_for(data or cfg["data"], pre)
    if not has_labels(source) and labelled:
        source = load_source_for(labelled, pre)
    if not has_labels(source):
        return {}
    train, test, _ = train_test(source)
    if test.labels is None:
        return {}
    # the parts of the splits the evaluation embedded (its default bounds), so that after
    # `selfsup.pretrain` the figures sample its features instead of embedding images again
    train, test, _ = probe_samples(train, test, DEFAULT_TRAIN_SAMPLES, DEFAULT_TEST_SAMPLES,
                                   pre.input_dim)
    bf16 = has_bf16()  # as the evaluation embedded them
    known = remembered(encoder, test, bf16=bf16), remembered(encoder, train, bf16=bf16)
    if None in known:  # embed a sample of each split
        q_img, q_y = sample_images(test, MAP_POINTS, seed=0)
        t_img, t_y = sample_images(train, NEIGHBOUR_POOL, seed=0)
        q_x, _ = extract_features(encoder, in_memory_split(q_img, q_y), bf16=bf16)  # (n, D)
        t_x, _ = extract_features(encoder, in_memory_split(t_img, t_y), bf16=bf16)

        def pictures(split: Split, rows: np.ndarray) -> np.ndarray:
            return (q_img if split is test else t_img).numpy()[rows]
    else:  # the evaluation just embedded both splits (`selfsup.pretrain`): sample its rows
        q_idx = sample_indices(test, MAP_POINTS, 0).numpy()
        t_idx = sample_indices(train, NEIGHBOUR_POOL, 0).numpy()
        (te_x, te_y), (tr_x, tr_y) = known
        q_x, q_y, t_x, t_y = te_x[q_idx], te_y[q_idx], tr_x[t_idx], tr_y[t_idx]

        def pictures(split: Split, rows: np.ndarray) -> np.ndarray:
            # only the pictures the grid shows are decoded
            picked = (q_idx if split is test else t_idx)[rows]
            images = images_at(split, picked.reshape(-1))  # (n, C, H, W)
            return images.reshape(*picked.shape, *images.shape[1:])
    if how == "tsne":
        points = TSNE(2, init="pca", perplexity=min(30.0, (len(q_x) - 1) / 3),
                      random_state=0).fit_transform(q_x)
    else:
        points = PCA(2, random_state=0).fit_transform(q_x)
    how_label = "t-SNE" if how == "tsne" else "PCA"
    figs = {"map": plots.to_png(plots.embedding_map(points, q_y, how_label, source.classes))}
    if pre.modality == "table":  # table rows have no picture for the neighbour grid
        return figs
    sim = F.normalize(torch.from_numpy(q_x[:QUERIES]), dim=1) @ F.normalize(
        torch.from_numpy(t_x), dim=1).T  # (QUERIES, pool)
    nn_idx = sim.topk(min(NEIGHBOURS, len(t_x)), dim=1).indices.numpy()  # (QUERIES, k)
    figs["neighbours"] = plots.to_png(plots.neighbour_grid(
        pictures(test, np.arange(len(nn_idx))), q_y[:QUERIES], pictures(train, nn_idx),
        t_y[nn_idx]))
    return figs


RECONSTRUCTIONS = 8  # test images shown masked and reconstructed


def reconstruction_figure(run_dir: Path, data: str | None) -> str | None:
    """For a masked-image-modelling run (a method with ``reconstruction_examples``): a few test
    images, their masked input and the reconstruction, from the method its checkpoint holds."""
    encoder = load_encoder(run_dir)
    method = saved_method(str(run_dir), encoder)
    if method is None or not hasattr(method, "reconstruction_examples"):
        return None
    pre = encoder.preprocessing
    cfg = yaml.safe_load(RunDir(run_dir).config.read_text())
    source = load_source_for(data or cfg["data"], pre)
    # without labels there is no held-out split: the training images show the reconstruction
    test = train_test(source)[1] if has_labels(source) else source.train
    images, _ = sample_images(test, RECONSTRUCTIONS, seed=0)
    torch.manual_seed(0)  # the same masks on every rewrite of the page
    with torch.no_grad():
        rows = method.reconstruction_examples(images)
    return plots.to_png(plots.reconstruction_grid({k: v.float().cpu().numpy()
                                                   for k, v in rows.items()}))


def _section(title: str, png: str | None, note: str = "") -> str:
    body = (f'<img src="data:image/png;base64,{png}" alt="{html.escape(title)}">' if png
            else "")
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f"<section><h2>{html.escape(title)}</h2>{body}{note_html}</section>"


def probe_results(ev: dict) -> dict:
    """The probe results to show: eval.json's own, else those on its ``eval_data``."""
    if any(k in ev for k, _ in plots.PROBES) or "eval_data" not in ev:
        return ev
    return ev["eval_data"]


def _summary(cfg: dict, meta: dict, ev: dict) -> str:
    rows = [("method", cfg.get("method")), ("data", cfg.get("data")),
            ("backbone", meta.get("backbone", {}).get("name", cfg.get("backbone"))),
            ("budget", budget_words(cfg)), ("steps", meta.get("steps"))]
    trained = ev.get("training", meta.get("training", {}))
    rows += [(label, format_cell(key, trained[field])) for label, key, field in (
        ("epochs", "epochs", "epochs"), ("training compute", "compute", "compute_flops"),
        ("training time (min)", "train_s", "train_seconds")) if trained.get(field) is not None]
    if ev.get("eval_seconds") is not None:
        rows.append(("evaluation time (min)", format_cell("eval_s", ev["eval_seconds"])))
    if meta.get("selected_by"):
        rows.append(("encoder", f"selected by {meta['selected_by']} at step {meta.get('step')}"))
    probed = probe_results(ev)
    if probed is not ev:
        rows.append(("probes on", probed.get("data")))
    for key, label in plots.PROBES:
        if key in probed:
            rows.append((f"{label} top-1", f"{100 * probed[key]:.2f}%"))
    if "linear" in probed and "C" in probed["linear"]:
        rows.append(("linear probe C", probed["linear"]["C"]))
    if "linear_rmse" in probed:
        rows.append(("linear (ridge) RMSE", f"{probed['linear_rmse']:.4g} (R² "
                     f"{probed['linear_r2']:.3f}, alpha {probed['linear']['alpha']:g})"))
    table = probed.get("table_probes", {})
    for probe, probe_rows in table.get("rows", {}).items():
        for r in probe_rows:
            rows.append((f"{PROBE_NAMES[probe]}, {100 * r['fraction']:g}% of labels",
                         format_score(r, table["task"])))
    if "rankme" in ev:
        on = "training images" if ev.get("split") == "no labels" else "test features"
        rows.append((f"RankMe ({on})", f"{ev['rankme']:.1f} of {ev.get('feature_dim')}"))
    if "collapse" in ev:
        rows.append(("collapsed", "; ".join(ev["collapse"]["reasons"]) or "no"))
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
section{display:inline-block;vertical-align:top;margin:0 1.5em 1.5em 0}
h2{font-size:1.05em;margin:.2em 0}img{max-width:100%}table{border-collapse:collapse}
th,td{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}.note{color:#777}"""


def write_report(run_dir: str | Path, data: str | None = None, embedding_map: str = "pca"
                 ) -> Path:
    """Write ``RUN_DIR/report.html``: training curves (loss, learning rate, RankMe), probe
    accuracies, the few-shot curve and layer study when eval.json holds them, an embedding map
    and a nearest-neighbour grid. Returns the path."""
    if embedding_map not in MAPS:
        raise ValueError(f"unknown embedding map {embedding_map!r}; valid: {', '.join(MAPS)}")
    run_dir = Path(run_dir)
    files = RunDir(run_dir)
    if not files.config.is_file():
        raise FileNotFoundError(f"{files.config} not found: is {run_dir} a selfsup run?")
    cfg = yaml.safe_load(files.config.read_text())
    meta = json.loads(files.meta.read_text()) if files.meta.is_file() else {}
    full_ev = json.loads(files.eval.read_text()) if files.eval.is_file() else {}
    ev = probe_results(full_ev)
    rows = read_metrics(run_dir)
    steps = [r for r in rows if r.get("loss") is not None]
    ranks = [r for r in rows if "rankme" in r]
    run = f"selfsup evaluate {run_dir}"
    sections = [
        _section("Loss", plots.to_png(plots.curve(steps, "loss", "Loss", "training loss"))
                 if steps else None, "" if steps else "no steps logged"),
        _section("Learning rate", plots.to_png(plots.curve(steps, "lr", "Learning rate", "lr"))
                 if steps else None, "" if steps else "no steps logged"),
        _section("RankMe", plots.to_png(plots.curve(ranks, "rankme", "RankMe",
                                                    "effective rank (probe subset)"))
                 if ranks else None, "" if ranks else "RankMe was not monitored in this run"),
    ]
    if any(k in ev for k, _ in plots.PROBES):
        sections.append(_section("Probe accuracy", plots.to_png(plots.probe_bars(ev))))
    elif full_ev.get("skipped"):
        sections.append(_section("Probe accuracy", None, f"no labels in {full_ev.get('data')}: "
                                 f"{run} --eval-data LABELLED_SOURCE"))
    else:
        sections.append(_section("Probe accuracy", None, f"no eval.json yet: {run}"))
    if "fewshot" in ev:
        sections.append(_section("Few-shot accuracy", plots.to_png(
            plots.fewshot_plot(ev["fewshot"]))))
    else:
        sections.append(_section("Few-shot accuracy", None,
                                 f"not evaluated: {run} --protocol fewshot"))
    if "layers" in ev:
        sections.append(_section("Probe accuracy by layer",
                                 plots.to_png(plots.layer_bars(ev["layers"]))))
    if "finetune" in ev:
        b = ev["finetune"]["budget"]
        sections.append(_section("Fine-tuning", plots.to_png(plots.finetune_plot(ev["finetune"])),
                                 f"end to end, {b['steps']} steps of batch {b['batch_size']} per "
                                 "run, mean ± std over seeds"))
    if meta:
        png = reconstruction_figure(run_dir, data)
        if png is not None:
            sections.append(_section("Masked reconstructions", png,
                                     f"{RECONSTRUCTIONS} test images: original, masked input "
                                     "(masked patches grey), reconstruction"))
    if meta:
        figs = embedding_figures(run_dir, data, embedding_map,
                                 labelled=full_ev.get("eval_data", {}).get("data"))
        how = "t-SNE" if embedding_map == "tsne" else "PCA"
        sections.append(_section("Embedding map", figs.get("map"),
                                 f"{how} of up to {MAP_POINTS} test images, coloured by label"))
        sections.append(_section("Nearest neighbours", figs.get("neighbours"),
                                 f"{QUERIES} test queries and their nearest training images "
                                 "(cosine); green: same label, red: another"))
    title = f"selfsup report: {run_dir.name}"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{_summary(cfg, meta, full_ev)}{''.join(sections)}<p class='note'>written "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p></body></html>")
    atomic_write_text(files.report, page)  # readable by all: a web server may serve it
    return files.report
