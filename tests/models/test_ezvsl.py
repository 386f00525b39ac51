"""EZ-VSL loss, gradients, interfaces; shared losses; registry; baselines."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avbench.losses import info_nce, mil_contrastive_loss
from avbench.models import available, create, get_preset


def test_mil_loss_hand_case() -> None:
    # B = 2, D = 2, 1x2 maps. Image 0 locations: e0 and e1; image 1: e1 and -e1. Audio 0 = e0, audio 1 = e1.
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    vmap = torch.stack([torch.stack([e0, e1], -1), torch.stack([e1, -e1], -1)]).unsqueeze(2)  # [2, 2, 1, 2]
    aud = torch.stack([e0, e1])
    tau = 0.5
    loss, logits = mil_contrastive_loss(vmap, aud, tau)
    # logits[n, m] = max_loc <v_n, a_m> / tau: [[1, 1], [0, 1]] / tau
    expected_logits = torch.tensor([[1.0, 1.0], [0.0, 1.0]]) / tau
    torch.testing.assert_close(logits, expected_logits)
    s = 1 / tau
    row = -math.log(math.exp(s) / (2 * math.exp(s))) - math.log(math.exp(s) / (1 + math.exp(s)))
    col = -math.log(math.exp(s) / (math.exp(s) + 1)) - math.log(math.exp(s) / (2 * math.exp(s)))
    torch.testing.assert_close(loss, torch.tensor((row + col) / 2))


def test_info_nce_matches_cross_entropy() -> None:
    x, y = F.normalize(torch.randn(4, 8), dim=1), F.normalize(torch.randn(4, 8), dim=1)
    loss, logits = info_nce(x, y, tau=0.1)
    labels = torch.arange(4)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
    one_way, _ = info_nce(x, y, tau=0.1, symmetric=False)
    torch.testing.assert_close(one_way, F.cross_entropy(logits, labels))


def _tiny_batch(b: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"image": torch.randn(b, 3, 112, 112, generator=g), "spec": torch.randn(b, 1, 64, 100, generator=g)}


def test_ezvsl_forward_gradients_and_interfaces() -> None:
    model = create("ezvsl", preset="cpu", width=8, audio_width=8, dim=32)
    batch = _tiny_batch()
    out = model(batch)
    assert out["logits"].shape == (4, 4) and out["loss"].ndim == 0
    out["loss"].backward()
    for enc in (model.visual, model.audio):
        grads = [p.grad for p in enc.parameters() if p.requires_grad]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    model.eval()
    maps = model.localize(batch["image"], batch["spec"])
    assert maps.shape == (4, 14, 14) and maps.abs().max() <= 1 + 1e-5  # cpu preset: stride 8 at 112 px
    v, a = model.embed(batch["image"], batch["spec"])
    assert v.shape == a.shape == (4, 32)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(4))
    # The map is the diagonal of the MIL similarity (S[n, n] * tau).
    vmap, aud = model.encode(batch["image"], batch["spec"])
    torch.testing.assert_close(maps[1], (vmap[1] * aud[1][:, None, None]).sum(0))


def test_paper_preset_shapes() -> None:
    cfg = get_preset("ezvsl", "paper")
    assert cfg["model"]["dim"] == 512 and cfg["model"]["tau"] == 0.03 and cfg["train"]["lr"] == 1e-4
    model = create("ezvsl", preset="paper").eval()
    with torch.no_grad():
        maps = model.localize(torch.randn(1, 3, 224, 224), torch.randn(1, 1, 257, 200))
    assert maps.shape == (1, 7, 7)


def test_registry_errors_name_available_models() -> None:
    assert {"ezvsl", "centre_prior", "random"} <= set(available())
    with pytest.raises(KeyError, match="ezvsl"):
        create("no_such_method")
    with pytest.raises(KeyError, match="cpu"):
        get_preset("ezvsl", "huge")


def test_baselines() -> None:
    images, specs = torch.zeros(2, 3, 32, 32), torch.zeros(2, 1, 8, 8)
    prior = create("centre_prior", sigma=0.2, map_size=9)
    maps = prior.localize(images, specs)
    assert maps.shape == (2, 9, 9) and maps[0].argmax().item() == 40 and not prior.requires_training
    torch.testing.assert_close(maps[0], maps[0].t())
    r1, r2 = create("random", seed=3), create("random", seed=3)
    assert torch.equal(r1.localize(images, specs), r2.localize(images, specs))
    assert r1.localize(images, specs).shape == (2, 7, 7)
    assert float(prior({"image": images})["loss"]) == 0.0
