"""M2VSL: MMC loss (Eq. 2-4), MMT class-aware terms, gradients, maps (multi-scale, side-by-side), ablations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from avbench.losses import mil_contrastive_loss, symmetric_ce
from avbench.models import create, get_preset
from avbench.models.class_tokens import mix_batch
from avbench.train import train

TINY: dict[str, Any] = {"num_classes": 4, "dim": 16, "width": 4, "audio_width": 4, "last_stride": 1, "heads": 2,
                        "mlp_ratio": 2.0, "drop_path": 0.0, "mix_prob": 0.5, "pool_size": 3,
                        "frontend": "mel64_16k"}


def _batch(b: int = 4, size: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"image": torch.randn(b, 3, size, size, generator=g), "spec": torch.randn(b, 1, 64, 100, generator=g) - 1,
            "label_idx": torch.tensor([0, 1, 1, 3])[:b]}



@pytest.fixture(autouse=True)
def _one_thread() -> object:
    # Tiny tensors: one intra-op thread avoids OpenMP spin-waits on a busy 2-core runner (restored after).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

def test_mmc_hand_case() -> None:
    # Eq. 4 for S = 2 scales, B = 2: scale 1 maps image n's best location onto audio n exactly (logits
    # diag 1/tau, off-diag 0); scale 2 is orthogonal everywhere (all logits 0). Per scale the symmetric CE is
    # 2 * -log(e^{1/tau} / (e^{1/tau} + 1)) and 2 * log 2 respectively; M2VSL sums the scales.
    e0, e1 = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    aud = torch.stack([e0, e1])
    v1 = torch.stack([e0, e1]).view(2, 3, 1, 1)
    v2 = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(2, 3, 1, 1)
    tau = 0.5
    total = sum(mil_contrastive_loss(v, aud, tau)[0] for v in (v1, v2))
    s = 1 / tau
    expected = 2 * -math.log(math.exp(s) / (math.exp(s) + 1)) + 2 * math.log(2)
    torch.testing.assert_close(total, torch.tensor(expected))


def test_forward_terms_match_definitions() -> None:
    torch.manual_seed(0)
    model = create("m2vsl", **TINY, visual_gate=True)
    batch = _batch()
    out = model(batch)
    torch.testing.assert_close(out["loss"].detach(),
                               out["mmc"] + out["cmmc"] + out["token"] + out["cls_a"] + out["cls_v"])
    specs, _ = mix_batch(batch, 2, "mel64_16k")
    enc = model.encode(batch["image"], specs)  # train mode, drop_path 0: the same pass as forward
    assert len(enc["vs"]) == 4 and enc["vs"][0].shape == (4, 16, 3, 3)
    mmc = sum(mil_contrastive_loss(v, enc["aud"], model.tau)[0] for v in enc["vs"])
    torch.testing.assert_close(mmc.detach(), out["mmc"], atol=1e-4, rtol=1e-4)
    # Class-aware MIL per scale: sim_s(b, m) = max_p cos(c^a_{b,n_b}, V-hat^s_{m,p} * c^v_{m,n_b}) / tau.
    labels = batch["label_idx"]
    cmmc = 0.0
    for s in range(4):
        sim = torch.empty(4, 4)
        for b in range(4):
            n = int(labels[b])
            for m in range(4):
                sim[b, m] = F.cosine_similarity(enc["ca"][b, n][None], enc["vhat"][m, s] * enc["cv"][m, n][None],
                                                dim=-1).max()
        cmmc = cmmc + symmetric_ce(sim / model.tau)
    torch.testing.assert_close(cmmc.detach(), out["cmmc"], atol=1e-3, rtol=1e-4)
    # Ungated (default): sim_s(b, m) = max_p cos(c^a_{b,n_b}, V-hat^s_{m,p}) / tau.
    ungated = create("m2vsl", **TINY)
    ungated.load_state_dict(model.state_dict())
    out = ungated(batch)
    cmmc = 0.0
    for s in range(4):
        sim = torch.stack([torch.stack([F.cosine_similarity(enc["ca"][b, int(labels[b])][None], enc["vhat"][m, s],
                                                            dim=-1).max() for m in range(4)]) for b in range(4)])
        cmmc = cmmc + symmetric_ce(sim / model.tau)
    torch.testing.assert_close(cmmc.detach(), out["cmmc"], atol=1e-3, rtol=1e-4)
    # drop_same_class_negatives: the same similarities, same-class pairs left out of the softmax
    dropping = create("m2vsl", **TINY, drop_same_class_negatives=True)
    dropping.load_state_dict(model.state_dict())
    out = dropping(batch)
    same = labels[:, None] == labels[None]
    assert same.sum() > len(labels)  # the batch has a same-class pair, so the switch changes the loss
    cmmc = 0.0
    for s in range(4):
        sim = torch.stack([torch.stack([F.cosine_similarity(enc["ca"][b, int(labels[b])][None], enc["vhat"][m, s],
                                                            dim=-1).max() for m in range(4)]) for b in range(4)])
        cmmc = cmmc + symmetric_ce(sim / model.tau, same)
    torch.testing.assert_close(cmmc.detach(), out["cmmc"], atol=1e-3, rtol=1e-4)


def test_gradients_reach_encoders_and_heads() -> None:
    torch.manual_seed(0)
    model = create("m2vsl", **TINY)
    model(_batch())["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("n_scales", [1, 2, 4])
def test_scales_and_mmt_switches(n_scales: int) -> None:
    torch.manual_seed(0)
    batch = _batch()
    model = create("m2vsl", **TINY, n_scales=n_scales)
    assert len(model.proj) == n_scales and model.stages == list(range(4 - n_scales, 4))
    assert {"mmc", "cmmc", "token", "cls_a", "cls_v"} <= set(model(batch))
    plain = create("m2vsl", **TINY, n_scales=n_scales, use_mmt=False)
    out = plain(batch)
    assert set(out) == {"loss", "mmc"} and not hasattr(plain, "heads")
    specs, _ = mix_batch(batch, 2, "mel64_16k")
    vs = plain.visual_scales(batch["image"])
    expected = sum(mil_contrastive_loss(v, plain.audio(specs), plain.tau)[0] for v in vs)
    torch.testing.assert_close(out["loss"], expected, atol=1e-4, rtol=1e-4)


def test_maps_segmentation_embeddings_and_side_by_side() -> None:
    torch.manual_seed(0)
    model = create("m2vsl", **TINY).eval()
    batch = _batch()
    maps = model.localize(batch["image"], batch["spec"])
    assert maps.shape == (4, 3, 3) and maps.abs().max() <= 1 + 1e-5
    a = model.localize_class(batch["image"], batch["spec"], torch.tensor([0, 0, 0, 0]))
    b = model.localize_class(batch["image"], batch["spec"], torch.tensor([2, 2, 2, 2]))
    assert a.shape == (4, 3, 3) and not torch.allclose(a, b)
    canvas = torch.cat([batch["image"], batch["image"]], dim=-1)  # 1x2 side-by-side keeps its aspect: 3x6
    assert model.localize(canvas, batch["spec"]).shape == (4, 3, 6)
    assert model.localize_class(canvas, batch["spec"], torch.tensor([0, 1, 2, 3])).shape == (4, 3, 6)
    masks = model.segment(batch["image"], batch["spec"], torch.tensor([0, 1, 2, 3]))
    assert masks.shape == (4, 64, 64) and masks.dtype == torch.bool and masks.any()
    v, au = model.embed(batch["image"], batch["spec"])
    assert v.shape == au.shape == (4, 16)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(4))
    # Without MMT the map is the mean over scales of cos(A, V^s), for every class.
    plain = create("m2vsl", **TINY, use_mmt=False).eval()
    enc = plain.encode(batch["image"], batch["spec"])
    expected = torch.stack([(v * enc["aud"][:, :, None, None]).sum(1) for v in enc["vs"]]).mean(0)
    torch.testing.assert_close(plain.localize(batch["image"], batch["spec"]), expected)
    torch.testing.assert_close(plain.localize_class(batch["image"], batch["spec"], torch.tensor([0, 1, 2, 3])),
                               expected)


def test_presets_create() -> None:
    paper = get_preset("m2vsl", "paper")
    assert paper["model"]["n_scales"] == 4 and paper["model"]["pool_size"] == 5 and paper["train"]["lr"] == 1e-4
    model = create("m2vsl", preset="paper", num_classes=37).eval()
    with torch.no_grad():
        maps = model.localize_class(torch.randn(1, 3, 224, 224), torch.randn(1, 1, 257, 300), torch.tensor([5]))
    assert maps.shape == (1, 5, 5)
    cpu = create("m2vsl", preset="cpu").eval()
    with torch.no_grad():
        assert cpu.localize(torch.randn(1, 3, 112, 112), torch.randn(1, 1, 64, 100)).shape == (1, 5, 5)
    with pytest.raises(ValueError, match="n_scales"):
        create("m2vsl", **TINY, n_scales=5)


class _Clips(Dataset):
    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, 64, 64, generator=g)
        self.specs = torch.randn(n, 1, 64, 100, generator=g) - 1

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "spec": self.specs[i], "label_idx": i % 4, "clip_id": f"c{i}", "boxes": []}


def test_integrated_train_one_epoch(tmp_path: Path) -> None:
    small = {k: v for k, v in TINY.items() if k != "mix_prob"}
    summary = train("m2vsl", small, _Clips(), tmp_path, preset="cpu", epochs=1, batch_size=8, lr=1e-3, threads=1,
                    device="cpu")
    log = pd.read_csv(summary["log"])
    assert log["epoch"].tolist() == [1] and log["loss"].notna().all()
