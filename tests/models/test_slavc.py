"""SLAVC: loss hand case, released-formula parity, gradients, EMA, interfaces, ablations, presets, train loop."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from avbench.models import create, get_preset
from avbench.models.slavc import SLAVC, slavc_loss
from avbench.train import load_trained, train

SMALL = {"dim": 16, "width": 4, "audio_width": 4}


def _batch(b: int = 4, size: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"image": torch.randn(b, 3, size, size, generator=g), "spec": torch.randn(b, 1, 32, 48, generator=g)}


def test_loss_hand_case() -> None:
    # B = 2, D = 2, maps 1x2 (P = 2), tau = 1, targets = online features, both heads identical.
    # Image 0 locations (e0, e1), image 1 (e1, e1); audio 0 = e0, audio 1 = e1.
    # sim[n, m, p]: n=0 -> m=0: (1, 0), m=1: (0, 1); n=1 -> m=0: (0, 0), m=1: (1, 1).
    # softmax over m: n=0, p=0: (e, 1)/(1+e); n=0, p=1: (1, e)/(1+e); n=1, p: (1, e)/(1+e).
    # softmax over p: n=0, m=0: (e, 1)/(1+e); n=0, m=1: (1, e)/(1+e); n=1, m: (1/2, 1/2).
    # i2a[0, 0] = i2a[0, 1] = log((e^2 + 1)/(1+e)^2); i2a[1, 0] = log(1/(1+e)); i2a[1, 1] = log(e/(1+e)).
    # CE row 0 = log 2 (equal logits); CE row 1 = -log(e / (1 + e)) = log(1 + e) - 1; mean over rows.
    # a2i = i2a here (targets = online), so L = 2 * mean = log 2 + log(1 + e) - 1.
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    v = torch.stack([torch.stack([e0, e1], -1), torch.stack([e1, e1], -1)]).unsqueeze(2)  # [2, 2, 1, 2]
    a = torch.stack([e0, e1])
    feats = (v, v, a, a)
    loss, i2a, a2i = slavc_loss(feats, feats, tau=1.0)
    e = math.e
    expected_i2a = torch.tensor([[math.log((e**2 + 1) / (1 + e) ** 2)] * 2, [-math.log(1 + e), 1 - math.log(1 + e)]])
    torch.testing.assert_close(i2a, expected_i2a)
    torch.testing.assert_close(a2i, expected_i2a)
    torch.testing.assert_close(loss, torch.tensor(math.log(2) + math.log(1 + e) - 1))


def test_loss_matches_released_formula() -> None:
    # The released model.py computes log((softmax_m(S1/tau) * softmax_p(S2/tau)).sum(p)); ours uses logsumexp.
    g = torch.Generator().manual_seed(1)
    norm = lambda *s: F.normalize(torch.randn(*s, generator=g), dim=1)  # noqa: E731
    online = (norm(3, 8, 2, 2), norm(3, 8, 2, 2), norm(3, 8), norm(3, 8))
    target = (norm(3, 8, 2, 2), norm(3, 8, 2, 2), norm(3, 8), norm(3, 8))
    tau = 0.1
    loss, _, _ = slavc_loss(online, target, tau)
    v1, v2, a1, a2 = online
    t1, t2, b1, b2 = target
    i2a = torch.log((F.softmax(torch.einsum("nchw,mc->nmhw", v1, b1).flatten(-2) / tau, dim=1)
                     * F.softmax(torch.einsum("nchw,mc->nmhw", v2, b2).flatten(-2) / tau, dim=2)).sum(2))
    a2i = torch.log((F.softmax(torch.einsum("nchw,mc->nmhw", t1, a1).flatten(-2) / tau, dim=1)
                     * F.softmax(torch.einsum("nchw,mc->nmhw", t2, a2).flatten(-2) / tau, dim=2)).sum(2))
    labels = torch.arange(3)
    torch.testing.assert_close(loss, F.cross_entropy(a2i, labels) + F.cross_entropy(i2a, labels))


def test_gradients_reach_every_trained_part_and_ema_update() -> None:
    model = create("slavc", preset="cpu", **SMALL, momentum=0.9)
    model(_batch())["loss"].backward()
    for name, mod in model.online.items():
        grads = [p.grad for p in mod.parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), name
    assert model.momentum is not None
    assert all(p.grad is None and not p.requires_grad for p in model.momentum.parameters())
    # EMA: theta_t <- 0.9 theta_t + 0.1 theta (parameters only).
    with torch.no_grad():
        for p in model.online.parameters():
            p.add_(1.0)
    before = [p.clone() for p in model.momentum.parameters()]
    model.on_step_end(1)
    for p_t, p_old, p in zip(model.momentum.parameters(), before, model.online.parameters(), strict=True):
        torch.testing.assert_close(p_t, 0.9 * p_old + 0.1 * p)


def test_localize_embed_shapes_and_momentum_eval() -> None:
    model = create("slavc", preset="cpu", **SMALL).eval()
    with torch.no_grad():  # make online and momentum nets differ
        for p in model.online.parameters():
            p.mul_(1.5).add_(0.01)
    batch = _batch(2, size=112)
    maps = model.localize(batch["image"], batch["spec"])
    assert maps.shape == (2, 14, 14) and maps.abs().max() <= 1 / model.tau + 1e-3
    v1, v2, a1, a2 = model.features(model.momentum, batch["image"], batch["spec"])  # use_mom_eval
    expected = (torch.einsum("ndhw,nd->nhw", v1, a1) + torch.einsum("ndhw,nd->nhw", v2, a2)) / (2 * model.tau)
    torch.testing.assert_close(maps, expected)
    online_maps = create("slavc", preset="cpu", **SMALL, use_mom_eval=False)
    online_maps.load_state_dict(model.state_dict())
    assert not torch.allclose(online_maps.eval().localize(batch["image"], batch["spec"]), maps)
    # 1x2 side-by-side canvas (448x224 protocol at the cpu scale): fully convolutional.
    wide = model.localize(torch.randn(2, 3, 112, 224), batch["spec"])
    assert wide.shape == (2, 14, 28)
    v, a = model.embed(batch["image"], batch["spec"])
    assert v.shape == a.shape == (2, 16)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(a.norm(dim=1), torch.ones(2))


def test_ablation_switches_change_the_loss() -> None:
    torch.manual_seed(0)
    model = create("slavc", preset="cpu", **SMALL, dropout_img=0.0)
    batch = _batch(3)
    with torch.no_grad():  # one "step" away from the momentum copy
        for p in model.online.parameters():
            p.mul_(1.2)
    no_mom = create("slavc", preset="cpu", **SMALL, dropout_img=0.0, use_momentum=False)
    no_mom.load_state_dict({k: v for k, v in model.state_dict().items() if k.startswith("online.")})
    assert no_mom.momentum is None and not no_mom.use_mom_eval
    # Without momentum the targets are the online features (stop-gradient): L = slavc_loss(f, f).
    feats = no_mom.features(no_mom.online, batch["image"], batch["spec"])
    torch.testing.assert_close(no_mom(batch)["loss"], slavc_loss(feats, feats, no_mom.tau)[0])
    target = model.features(model.momentum, batch["image"], batch["spec"])
    torch.testing.assert_close(model(batch)["loss"], slavc_loss(feats, target, model.tau)[0])
    assert not torch.allclose(model(batch)["loss"], no_mom(batch)["loss"])
    # Visual dropout (train mode) changes the features; 0 makes them deterministic.
    drop = create("slavc", preset="cpu", **SMALL, dropout_img=0.9, use_momentum=False)
    drop.load_state_dict(no_mom.state_dict())
    torch.manual_seed(1)
    assert not torch.allclose(drop(batch)["loss"], no_mom(batch)["loss"])
    torch.testing.assert_close(no_mom(batch)["loss"], no_mom(batch)["loss"])


def test_registry_presets() -> None:
    paper = get_preset("slavc", "paper")
    assert paper["model"]["momentum"] == 0.999 and paper["model"]["dropout_img"] == 0.9
    assert paper["model"]["tau"] == 0.03 and paper["train"] == {"epochs": 20, "batch_size": 128, "lr": 1e-4}
    assert paper["data"]["frontend"] == "stonemo_16k_257x200" and paper["data"]["image_size"] == 224
    cpu = get_preset("slavc", "cpu")
    assert cpu["data"]["image_size"] == 112 and cpu["data"]["frontend"] == "mel64_16k"
    assert cpu["model"]["width"] == 16 and cpu["model"]["last_stride"] == 1  # 3 stages: stride 8, 14x14
    assert cpu["model"]["dropout_img"] == 0.5 and cpu["train"]["lr_schedule"] == "cosine"
    model = create("slavc", preset="paper").eval()
    assert isinstance(model, SLAVC) and model.requires_training and not getattr(model, "uses_knn", False)
    with torch.no_grad():
        maps = model.localize(torch.randn(1, 3, 224, 224), torch.randn(1, 1, 257, 200))
    assert maps.shape == (1, 7, 7)
    assert isinstance(create("slavc", preset="cpu"), SLAVC)


class _TinyClips(Dataset):
    def __init__(self, n: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, 64, 64, generator=g)
        self.specs = torch.randn(n, 1, 64, 100, generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "spec": self.specs[i], "label_idx": i % 4, "clip_id": f"c{i}", "boxes": []}


def test_train_loop_integration(tmp_path: Path) -> None:
    summary = train("slavc", {}, _TinyClips(), tmp_path, preset="cpu", epochs=1, batch_size=8, lr=1e-3,
                    threads=1, device="cpu")
    model = load_trained(summary["final"])
    assert isinstance(model, SLAVC) and model.momentum is not None
    # Two optimizer steps ran, so the EMA copy moved away from the initial weights but not onto the online ones.
    k = "visual_trunk.conv1.weight"
    assert not torch.equal(model.online[k.split(".")[0]].conv1.weight, model.momentum[k.split(".")[0]].conv1.weight)
    assert model.localize(torch.randn(1, 3, 64, 64), torch.randn(1, 1, 64, 100)).shape == (1, 8, 8)
