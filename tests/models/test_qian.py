"""Qian et al. 2020: losses by hand, Grad-CAM, stage switch, gradients, interfaces, presets, train loop."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from avbench import audio
from avbench.models import create, get_preset
from avbench.models.qian import Qian, margin_contrastive, weighted_pool
from avbench.train import train

TINY: dict[str, Any] = {"num_classes": 4, "width": 2, "audio_channels": [4, 8], "gru_hidden": 8,
                        "proj_hidden": 8, "embed_dim": 8, "avc_dim": 8, "avc_hidden": 4, "decoder_base": 2}


def _batch(b: int = 4, n: int = 8000, size: int = 32) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(n) / 16000
    labels = torch.arange(b) % 4
    wave = torch.stack([0.2 * torch.sin(2 * math.pi * 300.0 * (1 + int(k)) * t) for k in labels])
    wave = wave + 0.01 * torch.randn(b, n, generator=g)
    return {"image": torch.randn(b, 3, size, size, generator=g), "wave": wave, "label_idx": labels,
            "spec": audio.spectrogram(wave, 16000, "mel64_16k").unsqueeze(1)}


def _model(stage2: bool = True, **kw: Any) -> Qian:
    torch.manual_seed(0)
    model = create("qian", preset="cpu", **{**TINY, **kw})
    assert isinstance(model, Qian)
    model.on_epoch_start(model.stage2_epoch if stage2 else 0)
    return model


def test_margin_contrastive_by_hand() -> None:
    dist = torch.tensor([[0.5, 2.0], [1.0, 0.2]])
    positive = torch.eye(2, dtype=torch.bool)
    pos, neg = margin_contrastive(dist, positive, margin=1.4)
    # positives: (0.5^2 + 0.2^2) / 2 = 0.145; negatives: (max(1.4 - 2, 0)^2 + (1.4 - 1)^2) / 2 = 0.08
    torch.testing.assert_close(pos, torch.tensor(0.145))
    torch.testing.assert_close(neg, torch.tensor(0.08))
    # only (1, 0) may be pushed apart (e.g. (0, 1) is a same-class pair of two clips): (1.4 - 1)^2 = 0.16
    pos, neg = margin_contrastive(dist, positive, 1.4, negative=torch.tensor([[False, False], [True, False]]))
    torch.testing.assert_close(pos, torch.tensor(0.145))
    torch.testing.assert_close(neg, torch.tensor(0.16))


def test_ava_loss_by_hand() -> None:
    model = _model(margin=1.0, drop_same_class_negatives=False)
    e = torch.eye(2)
    # 2 clips x 2 classes, embeddings [B, C, E]: clip 0 class 0 = e0, clip 1 class 1 = e1 on both modalities.
    ga = torch.stack([torch.stack([e[0], e[1]]), torch.stack([e[0], e[1]])])
    gv = ga.clone()
    valid_a = torch.tensor([[True, False], [False, True]])
    valid_v = torch.tensor([[True, False], [True, True]])
    # audio pairs (0,0)=e0, (1,1)=e1; visual (0,0)=e0, (1,0)=e0, (1,1)=e1. Positives (same clip and class):
    # a(0,0)-v(0,0) D=0 and a(1,1)-v(1,1) D=0 -> mean D^2 = 0. Negatives: a(0,0)-v(1,0) D=0 -> (1-0)^2 = 1,
    # a(0,0)-v(1,1) D=sqrt2 -> 0, a(1,1)-v(0,0) sqrt2 -> 0, a(1,1)-v(1,0) sqrt2 -> 0: mean = 1/4.
    loss = model.ava_loss(ga, gv, valid_a, valid_v)
    torch.testing.assert_close(loss, torch.tensor(0.25), atol=1e-3, rtol=0)
    # Without same-class negatives a(0,0)-v(1,0) (class 0 in two clips) is no negative: the other three give 0.
    model.drop_same_class_negatives = True
    torch.testing.assert_close(model.ava_loss(ga, gv, valid_a, valid_v), torch.tensor(0.0), atol=1e-3, rtol=0)


def test_weighted_pool_by_hand() -> None:
    feat = torch.tensor([[[[1.0, 3.0]], [[2.0, 0.0]]]])  # [1, C=2, 1, 2]
    weights = torch.tensor([[[[1.0, 3.0]]]])  # [1, K=1, 1, 2]
    # Eq. (5): (1*[1,2] + 3*[3,0]) / 4 = [2.5, 0.5]
    torch.testing.assert_close(weighted_pool(feat, weights), torch.tensor([[[2.5, 0.5]]]), atol=1e-5, rtol=0)


def test_visual_cam_is_grad_cam() -> None:
    model = _model()
    fv = torch.rand(2, model.visual.out_channels, 3, 4, requires_grad=True)
    logits = model.cls_v(fv.mean(dim=(-2, -1)))
    (grad,) = torch.autograd.grad(logits[:, 1].sum(), fv)
    gradcam = F.relu((grad.mean(dim=(-2, -1), keepdim=True) * fv).sum(1))  # Grad-CAM by autograd
    torch.testing.assert_close(model.visual_cam(fv)[:, 1] / 12, gradcam.detach())  # CAM / hw


def test_audio_gradcam_matches_autograd() -> None:
    model = _model().eval()
    fa = model.audio.features(_batch()["spec"]).detach()
    maps = model.audio_gradcam(fa, torch.tensor([[0, 2]] * 4))
    x = fa.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.audio.head(x)[:, 2].sum(), x)
    expected = F.relu((grad.mean(dim=(-2, -1), keepdim=True) * x).sum(1))
    assert maps.shape == (4, 2, *fa.shape[-2:]) and not maps.requires_grad
    torch.testing.assert_close(maps[:, 1], expected.detach())


def test_cls_and_avc_losses_by_hand() -> None:
    model = _model(stage2=False, use_sep=False, mixture_cls=False)
    with torch.no_grad():  # zero classifier / AVC output layers -> all logits 0
        for layer in (model.cls_v, model.audio.fc, model.avc.fc[-1]):
            layer.weight.zero_()
            layer.bias.zero_()
    out = model(_batch())
    # Eq. (1): BCE(logit 0) = ln 2 per class, both modalities; Eq. (2): 2-way CE at logits 0 = ln 2 (lambda = 1).
    torch.testing.assert_close(out["loss_cls"], torch.tensor(2 * math.log(2.0)))
    torch.testing.assert_close(out["loss_avc"], torch.tensor(math.log(2.0)))
    assert set(out) == {"loss", "loss_cls", "loss_avc"}


def test_stage_switch_and_state() -> None:
    model = _model(stage2=False, total_epochs=4, stage2_fraction=0.5)
    assert model.stage2_epoch == 2
    batch = _batch()
    assert "loss_ava" not in model(batch) and not bool(model.stage2_active)
    model.on_epoch_start(2)
    assert "loss_ava" in model(batch) and "stage2_active" in model.state_dict()
    assert bool(_model(stage2=False, stage2_fraction=0.0).stage2_active)  # single-stage ablation


@pytest.mark.parametrize(
    ("switches", "keys"),
    [
        ({}, {"loss_cls", "loss_avc", "loss_cls_mix", "loss_ava", "loss_sep"}),
        ({"use_avc": False}, {"loss_cls", "loss_cls_mix", "loss_ava", "loss_sep"}),
        ({"use_align": False}, {"loss_cls", "loss_avc", "loss_cls_mix", "loss_sep"}),
        ({"use_sep": False, "mixture_cls": False}, {"loss_cls", "loss_avc", "loss_ava"}),
    ],
)
def test_ablation_switches_change_loss(switches: dict[str, bool], keys: set[str]) -> None:
    out = _model(**switches)(_batch())
    assert set(out) == keys | {"loss"}
    torch.testing.assert_close(out["loss"], sum(out[k] for k in keys))


def test_gradients_reach_encoders_and_heads() -> None:
    model = _model()
    model(_batch())["loss"].backward()
    for name in ("visual", "audio", "cls_v", "avc", "g_a", "g_v", "g_sep"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name
    groups = _model(backbone_lr_mult=0.1, sep_lr_mult=3.0).param_groups(1e-3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-3, 3e-3])  # backbones / heads / decoder


def test_labels_must_fit_num_classes() -> None:
    batch = _batch()
    batch["label_idx"] = torch.tensor([0, 1, 2, 7])
    with pytest.raises(ValueError, match="num_classes"):
        _model()(batch)


@pytest.mark.parametrize("stage2", [False, True])
def test_interfaces_and_side_by_side(stage2: bool) -> None:
    model = _model(stage2=stage2).eval()
    batch = _batch(b=2, size=112)
    img, spec = batch["image"], batch["spec"]
    canvas = torch.cat([img, img.flip(0)], dim=-1)
    maps = model.localize(img, spec)
    assert maps.shape == (2, 14, 14) and maps.min() >= 0 and maps.max() <= 1 + 1e-5  # stride 8
    assert model.localize(canvas, spec).shape == (2, 14, 28)
    cls_maps = model.localize_class(canvas, spec, torch.tensor([0, 3]))
    assert cls_maps.shape == (2, 14, 28) and cls_maps.abs().max() <= 1 + 1e-5
    v, a = model.embed(img, spec)
    assert v.shape == a.shape == (2, 8)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(2))
    mix = (batch["wave"][0] + batch["wave"][1]).expand(2, -1)
    est = model.separate(mix, canvas, 16000)
    assert est.shape == mix.shape and est.abs().max() <= 1.0


def test_presets_and_registry() -> None:
    for preset in ("paper", "cpu"):
        recipe = get_preset("qian", preset)
        assert recipe["data"]["return_wave"] is True
        assert recipe["data"]["frontend"] == recipe["model"]["frontend"]
        assert recipe["model"]["total_epochs"] == recipe["train"]["epochs"]
    assert get_preset("qian", "cpu")["model"]["num_classes"] == 8
    paper = create("qian", preset="paper")
    assert isinstance(paper, Qian) and paper.num_classes == 11 and paper.stft_cfg.sample_rate == 11025
    assert isinstance(create("qian", preset="cpu"), Qian)
    switched = _model(decoder_freq_coord=True, decoder_freq_prior=8)
    assert switched.g_sep.freq_coord and switched.g_sep.freq_prior == 8


class _Clips(Dataset):
    def __init__(self, n: int = 8) -> None:
        self.batch = _batch(b=n)

    def __len__(self) -> int:
        return len(self.batch["label_idx"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.batch["image"][i], "spec": self.batch["spec"][i], "wave": self.batch["wave"][i],
                "label_idx": int(self.batch["label_idx"][i]), "clip_id": f"c{i}", "boxes": []}


def test_train_loop_cpu_preset(tmp_path: Path) -> None:
    summary = train("qian", {"stage2_fraction": 0.0}, _Clips(), tmp_path, preset="cpu", epochs=1, batch_size=8,
                    lr=1e-3, threads=1, device="cpu")
    assert math.isfinite(summary["loss"]) and Path(summary["final"]).exists()
