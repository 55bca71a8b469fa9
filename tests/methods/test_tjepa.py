"""T-JEPA: the feature masks, the loss against a slow per-row reference, the regularization
tokens' positions, the EMA schedule, and a pretraining run end to end on a built-in table."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file

import selfsup
from selfsup.backbones import TablePreprocessing, build_table_backbone
from selfsup.data import load_source
from selfsup.data.batch import as_batch
from selfsup.data.spec import describe
from selfsup.methods import get_method
from selfsup.methods.tjepa import gather_tokens, linear_momentum
from selfsup.objectives.predictive import LatentPredictionMSE
from selfsup.train import ConfigError
from selfsup.views import ViewConfig, build_views
from selfsup.views.feature_masking import (
    feature_mask_ranges,
    sample_feature_masks,
    targets_that_fit,
)


def build(data: str = "wine", reg_tokens: int = 2, **args):
    source = load_source(data)
    pre = TablePreprocessing.fit(source.train.images, source.table)
    torch.manual_seed(0)
    backbone = build_table_backbone("ft_transformer", pre, dim=16, depth=2, heads=2,
                                    reg_tokens=reg_tokens)
    views = build_views(pre, ViewConfig(kind="identity"))
    return get_method("tjepa")(backbone, views, describe(source), **args), source


def test_mask_ranges_follow_the_shares():
    assert feature_mask_ranges(30, (0.136, 0.368), (0.156, 0.622), 4) == ((4, 11), (5, 19))
    assert feature_mask_ranges(8, (0.136, 0.368), (0.156, 0.622), 4) == ((1, 3), (1, 5))
    with pytest.raises(ValueError, match="cannot hold a context of 1 and 4 disjoint targets"):
        feature_mask_ranges(4, (0.1, 0.5), (0.1, 0.5), 4)
    with pytest.raises(ValueError, match="share must be"):
        feature_mask_ranges(10, (0.5, 0.2), (0.1, 0.5), 1)


def test_narrow_tables_get_as_many_targets_as_fit(caplog):
    # shares of 4 features: context and targets at least round(4 x 0.136) = 1 and
    # round(4 x 0.156) = 1, so 1 + 3 x 1 fits and 4 targets do not
    assert targets_that_fit(4, (0.136, 0.368), (0.156, 0.622), 4) == 3
    assert targets_that_fit(30, (0.136, 0.368), (0.156, 0.622), 4) == 4  # (30 - 4) // 5 = 5
    assert targets_that_fit(2, (0.5, 0.5), (0.5, 0.5), 4) == 1
    assert build()[0].num_targets == 4  # wine, 13 features: the paper's 4
    source = load_source("ccpp")  # 4 features
    pre = TablePreprocessing.fit(source.train.images, source.table)
    backbone = build_table_backbone("ft_transformer", pre, dim=16, depth=1, heads=2)
    views = build_views(pre, ViewConfig(kind="identity"))
    with caplog.at_level(logging.INFO, logger="selfsup"):
        method = get_method("tjepa")(backbone, views, describe(source))
    assert method.num_targets == 3 and "4 features hold 3 disjoint targets" in caplog.text
    with pytest.raises(ValueError, match="cannot hold a context of 1 and 4 disjoint targets"):
        get_method("tjepa")(backbone, views, describe(source), num_targets=4)


def test_masks_are_disjoint_in_range_and_reach_every_feature():
    f, m = 30, 4
    ctx_range, tgt_range = feature_mask_ranges(f, (0.136, 0.368), (0.156, 0.622), m)
    gen = torch.Generator().manual_seed(0)
    seen_targets, sizes = set(), set()
    for _ in range(50):
        ctx, tgt = sample_feature_masks(16, f, ctx_range, tgt_range, m, generator=gen)
        n_ctx, n_tgt = ctx.shape[1], tgt.shape[2]
        assert tgt.shape[:2] == (m, 16)
        assert ctx_range[0] <= n_ctx <= ctx_range[1] and tgt_range[0] <= n_tgt <= tgt_range[1]
        assert n_ctx + m * n_tgt <= f
        sizes.add((n_ctx, n_tgt))
        for b in range(16):
            ids = [ctx[b].tolist()] + [tgt[i, b].tolist() for i in range(m)]
            flat = [i for part in ids for i in part]
            assert len(set(flat)) == len(flat)  # context and targets pairwise disjoint
            assert all(0 <= i < f for i in flat)  # feature ids only, never a token beyond
            assert all(part == sorted(part) for part in ids)
            seen_targets.update(flat[n_ctx:])
        assert not torch.equal(ctx[0], ctx[1]) or not torch.equal(tgt[:, 0], tgt[:, 1])
    assert seen_targets == set(range(f))  # the first and the last feature are targets too
    assert len(sizes) > 5


def slow_reference(method, x, ctx, tgt) -> torch.Tensor:
    """The loss row by row and target by target, every index written out by hand."""
    enc, teacher, pred = method.backbone, method.teacher.module, method.predictor
    r = enc.num_prefix_tokens
    total, count = 0.0, 0
    for m in range(tgt.shape[0]):
        for b in range(x.shape[0]):
            row = x[b:b + 1]
            full = teacher.tokens(row)[0]  # (R + T, E)
            target = torch.stack([full[r + int(j)] for j in tgt[m, b]])  # (n, E)
            z = enc.tokens(row, keep=ctx[b:b + 1])[0]  # (R + n_ctx, E)
            positions = list(range(r)) + [r + int(j) for j in ctx[b]]
            seq = [pred.embed(z[i]) + pred.pos_embed[p] for i, p in enumerate(positions)]
            seq += [pred.mask_token[0, 0] + pred.pos_embed[r + int(j)] for j in tgt[m, b]]
            h = torch.stack(seq)[None]
            for block in pred.blocks:
                h = block(h)
            out = pred.proj(pred.norm(h[0, len(positions):]))  # (n, E)
            total = total + ((out - target) ** 2).sum()
            count += target.numel()
    return total / count


def test_loss_matches_the_slow_reference():
    method, source = build("wine", reg_tokens=2)
    method.eval()
    x = method.views(source.train.images[:6])
    ctx, tgt = sample_feature_masks(6, method.num_features, method.context_range,
                                    method.target_range, 3, generator=torch.Generator()
                                    .manual_seed(1))
    with torch.no_grad():
        method.teacher.module.tokenizer.bias.add_(0.1)  # a teacher unlike the student
        predicted, h = method.predict(x, ctx, tgt)
        fast = LatentPredictionMSE()(predicted, h)
        slow = slow_reference(method, x, ctx, tgt)
    assert predicted.shape == h.shape == (3, 6, tgt.shape[2], 16)
    assert torch.allclose(fast, slow, rtol=1e-5, atol=1e-7)


def test_mse_by_hand():
    p = torch.tensor([[[[1.0, 2.0]]], [[[0.0, -1.0]]]])  # (M=2, B=1, n=1, d=2)
    t = torch.tensor([[[[0.0, 0.0]]], [[[1.0, 1.0]]]])
    assert LatentPredictionMSE()(p, t) == pytest.approx((1 + 4 + 1 + 4) / 4)


def test_gather_tokens():
    tokens = torch.arange(2 * 4 * 1.0).view(2, 4, 1)  # (B, N, d)
    ids = torch.tensor([[[3, 0], [1, 2]]])  # (M=1, B=2, n=2)
    assert gather_tokens(tokens, ids)[..., 0].tolist() == [[[3.0, 0.0], [5.0, 6.0]]]


def test_regularization_tokens_are_context_and_never_targets(monkeypatch):
    method, source = build("wine", reg_tokens=3)
    seen = {}
    forward = method.predictor.forward

    def spy(context, context_pos, target_pos):
        seen.update(context=context, context_pos=context_pos, target_pos=target_pos)
        return forward(context, context_pos, target_pos)

    monkeypatch.setattr(method.predictor, "forward", spy)
    method.training_loss(as_batch(source.train.images[:8]))
    pos, tgt = seen["context_pos"], seen["target_pos"]
    assert seen["context"].shape[1] == pos.shape[1]
    assert pos[:, :3].tolist() == [[0, 1, 2]] * 8  # the regularization tokens, always seen
    assert bool((pos[:, 3:] >= 3).all()) and bool((tgt >= 3).all())
    assert int(tgt.max()) < 3 + method.num_features and int(pos.max()) < 3 + method.num_features


def test_ema_is_linear_to_one_and_the_target_encoder_is_exported():
    assert linear_momentum(0.0, 0.996) == 0.996 and linear_momentum(1.0, 0.996) == 1.0
    assert linear_momentum(0.5, 0.996) == pytest.approx(0.998)
    method, _ = build("wine")
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    teacher = method.teacher.module
    before = teacher.reg_tokens.detach().clone()
    method.after_optimizer_step(0.0)
    student = method.backbone.reg_tokens.detach()
    assert torch.allclose(teacher.reg_tokens, 0.996 * before + 0.004 * student)
    method.after_optimizer_step(1.0)  # momentum 1: the teacher stays
    assert torch.allclose(teacher.reg_tokens, 0.996 * before + 0.004 * student)
    assert method.export() is teacher


def test_modalities_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="tjepa trains on table data, not image data like "
                                          "digits; for image data use barlow_twins"):
        selfsup.pretrain("tjepa", "digits", epochs=1, run_dir=str(tmp_path / "a"))
    with pytest.raises(ConfigError, match="simclr trains on image data, not table data like "
                                          "wine; for table data use tjepa"):
        selfsup.pretrain("simclr", "wine", epochs=1, batch_size=32,
                         run_dir=str(tmp_path / "b"))


def test_pretrain_on_a_table_end_to_end(tmp_path):
    run = selfsup.pretrain("tjepa", "wine", epochs=15, batch_size=32, precision="32", seed=0,
                           run_dir=str(tmp_path / "wine"), log_every=1,
                           eval_protocols=["knn", "linear", "rankme", "raw_knn"])
    ev = run.eval
    assert ev["n_test"] == 36 and ev["feature_dim"] == (1 + 13) * 64
    assert ev["linear_top1"] > 0.8  # chance (the largest class) is 0.40
    # wine is separable by an untrained encoder too (linear 1.0, kNN 0.92 at seed 0), so the
    # probes cannot show learning here: the latent prediction loss must fall, its last five
    # steps under 0.8 of its first five (0.56 at seed 0)
    losses = [r["loss"] for r in map(json.loads, (run.dir / "metrics.jsonl").read_text()
                                     .splitlines()) if "loss" in r]
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5]), losses
    assert "raw_features_knn_top1" in ev
    # a table run gets the table probes whatever it asked for (the encoder product's attachment)
    assert set(ev["table_probes"]["rows"]) == {"mlp", "raw_mlp", "gbt"}
    assert not ev["collapse"]["collapsed"], ev["collapse"]["reasons"]
    meta = json.loads((run.dir / "encoder.json").read_text())
    assert meta["preprocessing"]["modality"] == "table"
    encoder = selfsup.load(run.dir)
    assert encoder.preprocessing.columns[0] == "alcohol"
    assert (run.dir / "report.html").is_file()
    # compare shows a table run's own probes beside the image columns
    from selfsup.cli import main

    assert main(["compare", str(run.dir), "--out", str(tmp_path / "runs.md")]) == 0
    header, _, row = (tmp_path / "runs.md").read_text().splitlines()
    assert header.endswith("| MLP on embeddings | GBDT on raw features |")
    mlp, gbt = row.split(" | ")[-2:]
    assert mlp.endswith("%") and gbt.endswith("% |"), row


def test_cli_pretrains_a_table(tmp_path):
    from selfsup.cli import main

    run_dir = tmp_path / "cli"
    assert main(["pretrain", "--data", "wine", "--method", "tjepa", "--epochs", "1",
                 "--batch-size", "32", "--run-dir", str(run_dir), "--no-eval"]) == 0
    assert (run_dir / "encoder.safetensors").is_file()


def test_killed_mid_epoch_then_resumed_equals_uninterrupted(tmp_path, kill_after,
                                                             logged_losses):
    # wine: 178 rows, batch 32: 5 steps an epoch, 15 in all; the masks, the EMA
    # teacher's momentum and the optimizer must all continue from the checkpoint
    options = dict(epochs=3, batch_size=32, precision="32", seed=0, log_every=1,
                   checkpoint_every_s=0, evaluate_after=False, progress=False)
    selfsup.pretrain("tjepa", "wine", run_dir=str(tmp_path / "reference"), **options)
    expected = logged_losses(tmp_path / "reference")
    assert max(expected) == 15

    with pytest.raises(kill_after(7)):  # mid-epoch 1
        selfsup.pretrain("tjepa", "wine", run_dir=str(tmp_path / "run"), **options)
    selfsup.pretrain(resume=str(tmp_path / "run"), evaluate_after=False, progress=False)
    got = logged_losses(tmp_path / "run")
    assert sorted(got) == sorted(expected)
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-5, abs=1e-6), step
    want = load_file(tmp_path / "reference" / "encoder.safetensors")
    have = load_file(tmp_path / "run" / "encoder.safetensors")
    assert want.keys() == have.keys()
    for k in want:  # the exported target encoder: the teacher continued too
        assert torch.allclose(have[k], want[k], rtol=1e-5, atol=1e-6), k
