"""OneAVM: CL / MVA / MAS losses by hand, gradients, interfaces, ablation switches, presets, train loop."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from avbench import audio
from avbench.models import create, get_preset
from avbench.models import separation as sep
from avbench.models.oneavm import OneAVM
from avbench.train import train

TINY: dict[str, Any] = {"dim": 16, "width": 2, "audio_width": 2, "decoder_base": 2}


def _batch(b: int = 4, n: int = 8000, size: int = 32) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(n) / 16000
    labels = torch.arange(b) % 3
    wave = torch.stack([0.2 * torch.sin(2 * math.pi * 300.0 * (1 + int(k)) * t) for k in labels])
    wave = wave + 0.01 * torch.randn(b, n, generator=g)
    return {"image": torch.randn(b, 3, size, size, generator=g), "wave": wave, "label_idx": labels,
            "spec": audio.spectrogram(wave, 16000, "mel64_16k").unsqueeze(1)}


def _model(**kw: Any) -> OneAVM:
    torch.manual_seed(0)
    model = create("oneavm", preset="cpu", **{**TINY, **kw})
    assert isinstance(model, OneAVM)
    return model


def test_cl_loss_by_hand() -> None:
    model = _model(tau=1.0)
    e = torch.eye(2)
    # B = 2, D = 2, 1x1 maps: a^glb = v^glb = a^loc = v^loc = e_i -> s = I + I = 2I (Eq. 1).
    h = {"a_glb": e, "v_glb": e, "a_loc": e, "v_loc": e[:, :, None, None]}
    torch.testing.assert_close(model.scores(h), 2 * e)
    # Eq. (2), tau = 1: each direction -log(e^2 / (e^2 + e^0)) = log(1 + e^-2); both directions summed.
    torch.testing.assert_close(model.cl_loss(h), torch.tensor(2 * math.log(1 + math.exp(-2.0))))


def test_mva_loss_by_hand() -> None:
    alpha = 0.3
    # 3-stage visual trunk -> 4 * 2 = 8 channels; audio 8 * 1 = 8 channels; dim 8: identity heads
    model = _model(tau=1.0, alpha=alpha, dim=8, audio_width=1, visual_stages=3)
    with torch.no_grad():
        model.g_v_mva.weight.copy_(torch.eye(8)[:, :, None, None])
        model.g_v_mva.bias.zero_()
        model.g_a_mva.weight.copy_(torch.eye(8))
        model.g_a_mva.bias.zero_()
    e = torch.eye(8)[:2]
    mixed = e[:, :, None, None]  # mixed frame n has the single location e_n
    partner = torch.tensor([1, 0])
    # L_CL(V_m, a_i): logits = I / tau -> 2 log(1 + e^-1). L_CL(V_m, a_j) with a_j = a[partner]: the positive
    # logit is 0 and the negative 1 -> 2 log(1 + e). Eq. (5): alpha * first + (1 - alpha) * second.
    expected = alpha * 2 * math.log(1 + math.exp(-1.0)) + (1 - alpha) * 2 * math.log(1 + math.e)
    torch.testing.assert_close(model.mva_loss(mixed, e, partner), torch.tensor(expected))


@pytest.mark.parametrize("weighting", ["none", "sop"])
def test_mas_loss_by_hand(weighting: str) -> None:
    model = _model(mas_weighting=weighting)
    with torch.no_grad():  # zero output head -> mask logits 0 -> BCE = ln 2 in every bin (Eq. 4)
        model.g_sep.head.weight.zero_()
        model.g_sep.head.bias.zero_()
    batch = _batch()
    partner = sep.partner_permutation(batch["label_idx"])
    loss = model.mas_loss(batch["wave"], model.visual(batch["image"]), partner)
    if weighting == "none":
        expected = torch.tensor(math.log(2.0))
    else:  # SoP weights: mean over bins of clamp(log1p|X_i + X_j|, 1e-3, 10) times ln 2
        x = sep.stft(batch["wave"], model.stft_cfg, 16000)
        expected = sep.bin_weights((x + x[partner]).abs()).mean() * math.log(2.0)
    torch.testing.assert_close(loss, expected)


def test_gradients_reach_encoders_and_heads() -> None:
    model = _model()
    out = model(_batch())
    assert set(out) == {"loss", "loss_cl", "loss_mas", "loss_mva"}
    torch.testing.assert_close(out["loss"], out["loss_cl"] + out["loss_mas"] + out["loss_mva"])  # Eq. (6)
    out["loss"].backward()
    for name in ("visual", "audio", "g_v_glb", "g_a_glb", "g_v_loc", "g_a_loc", "g_v_mva", "g_a_mva", "g_sep"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name
    groups = _model(sep_lr_mult=3.0).param_groups(1e-3)  # the decoder (and its condition norm) at 3x lr
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 3e-3])


@pytest.mark.parametrize(
    ("switches", "keys"),
    [
        ({"use_mas": False}, {"loss_cl", "loss_mva"}),
        ({"use_mva": False}, {"loss_cl", "loss_mas"}),
        ({"use_cl": False}, {"loss_mas", "loss_mva"}),
        ({"use_cl": False, "use_mva": False}, {"loss_mas"}),
    ],
)
def test_ablation_switches_change_loss(switches: dict[str, bool], keys: set[str]) -> None:
    out = _model(**switches)(_batch())
    assert set(out) == keys | {"loss"}
    torch.testing.assert_close(out["loss"], sum(out[k] for k in keys))


def test_switch_values_change_losses() -> None:
    batch = _batch()
    base = _model()(batch)
    assert not torch.allclose(_model(alpha=0.9)(batch)["loss_mva"], base["loss_mva"])
    assert not torch.allclose(_model(mas_target="as_printed")(batch)["loss_mas"], base["loss_mas"])
    deep = _model(decoder_depth=8)
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in deep.g_sep.modules()) == 8
    with pytest.raises(ValueError):
        _model(use_cl=False, use_mas=False, use_mva=False)
    with pytest.raises(KeyError, match="return_wave"):
        _model()({k: v for k, v in batch.items() if k != "wave"})


def test_interfaces_and_side_by_side() -> None:
    model = _model().eval()
    batch = _batch(b=2, size=112)
    img, spec = batch["image"], batch["spec"]
    maps = model.localize(img, spec)
    assert maps.shape == (2, 14, 14) and maps.abs().max() <= 1 + 1e-5
    canvas = torch.cat([img, img.flip(0)], dim=-1)  # 1x2 side-by-side 112x224
    assert model.localize(canvas, spec).shape == (2, 14, 28)  # stride 8
    v, a = model.embed(img, spec)
    assert v.shape == a.shape == (2, 16)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(a.norm(dim=1), torch.ones(2))
    mix = batch["wave"][0:1] + batch["wave"][1:2]
    est = model.separate(mix.expand(2, -1), canvas, 16000)
    assert est.shape == (2, mix.shape[-1]) and est.abs().max() <= 1.0
    assert model.separate(mix, img[:1], 8000).shape == (1, mix.shape[-1])  # other input rates resampled


def test_presets_and_registry() -> None:
    for preset in ("paper", "cpu"):
        recipe = get_preset("oneavm", preset)
        assert recipe["data"]["return_wave"] is True
        assert recipe["data"]["frontend"] == recipe["model"]["frontend"]
        assert {"epochs", "batch_size", "lr"} <= set(recipe["train"])
    assert get_preset("oneavm", "paper")["model"]["decoder_depth"] == 8
    assert get_preset("oneavm", "cpu")["data"]["image_size"] == 112
    paper = create("oneavm", preset="paper")
    assert isinstance(paper, OneAVM) and paper.visual.out_channels == 512 and paper.stft_cfg.sample_rate == 8000
    cpu = create("oneavm", preset="cpu")
    assert isinstance(cpu, OneAVM)
    # the cpu decoder knows absolute frequency; the paper's does not
    assert cpu.g_sep.freq_coord and cpu.g_sep.freq_prior == 64
    assert not paper.g_sep.freq_coord and paper.g_sep.freq_prior == 0


class _Clips(Dataset):
    def __init__(self, n: int = 8) -> None:
        self.batch = _batch(b=n)

    def __len__(self) -> int:
        return len(self.batch["label_idx"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.batch["image"][i], "spec": self.batch["spec"][i], "wave": self.batch["wave"][i],
                "label_idx": int(self.batch["label_idx"][i]), "clip_id": f"c{i}", "boxes": []}


def test_train_loop_cpu_preset(tmp_path: Path) -> None:
    summary = train("oneavm", {}, _Clips(), tmp_path, preset="cpu", epochs=1, batch_size=8, lr=1e-3, threads=1,
                    device="cpu")
    assert math.isfinite(summary["loss"]) and Path(summary["final"]).exists()


def test_localized_condition_is_the_trunk_feature_where_the_mixture_localizes() -> None:
    model = _model(sep_condition="localized", tau=1e-6).eval()  # tiny tau: the softmax map is one-hot
    b = _batch()
    with torch.no_grad():
        vmap = model.visual(b["image"])
        afeat = model._audio_feat(b["spec"])
        got = model.visual_condition(vmap, afeat)
        h = model._heads(vmap, afeat)
        where = torch.einsum("ndhw,nd->nhw", h["v_loc"], h["a_loc"]).flatten(1).argmax(1)
    expected = vmap.flatten(2)[torch.arange(len(where)), :, where]
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, vmap.amax(dim=(-2, -1)))  # not the max-pooled map of the "max" condition
    with pytest.raises(ValueError, match="sep_condition"):
        _model(sep_condition="mean")


@pytest.mark.parametrize("detach", [False, True])
def test_sep_detach_stops_mas_gradients_at_the_condition(detach: bool) -> None:
    model = _model(use_cl=False, use_mva=False, sep_detach=detach, sep_condition="localized")
    for film in model.g_sep.modules():  # sep.FiLM starts as the identity (zero weights): give the condition a say
        if isinstance(film, sep.FiLM):
            torch.nn.init.normal_(film.proj.weight, std=0.1)
    out = model(_batch())
    out["loss_mas"].backward()
    trunk = [p.grad for p in model.visual.parameters()] + [p.grad for p in model.audio.parameters()]
    reached = any(g is not None and g.abs().sum() > 0 for g in trunk)
    assert reached is not detach
    assert all(p.grad is not None for p in model.g_sep.parameters())  # the decoder trains either way


def test_separate_mask_conventions_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model().eval()
    batch = _batch(b=2, size=112)
    mix = batch["wave"][0:1] + batch["wave"][1:2]
    # logits 0 everywhere: sigmoid 0.5, so the soft mask halves the mixture and the binarised mask (p > 0.5) is 0
    monkeypatch.setattr(model, "mask_logits", lambda x_mix, vmap, spec: torch.zeros(x_mix.shape))
    soft = model.separate(mix, batch["image"][:1], 16000, binarize=False)
    hard = model.separate(mix, batch["image"][:1], 16000)
    torch.testing.assert_close(soft, 0.5 * mix, atol=1e-4, rtol=0)
    assert hard.abs().max() == 0
