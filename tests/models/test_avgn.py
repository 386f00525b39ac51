"""AVGN: loss composition (Eq. 9-11), gradients, maps (class-aware, side-by-side), ablations, presets, train."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from avbench.losses import mil_contrastive_loss, symmetric_ce
from avbench.models import create, get_preset
from avbench.models.class_tokens import mix_batch, multi_hot
from avbench.train import train

TINY: dict[str, Any] = {"num_classes": 4, "dim": 16, "width": 4, "audio_width": 4, "last_stride": 1, "heads": 2,
                        "mlp_ratio": 2.0, "drop_path": 0.0, "mix_prob": 0.5, "frontend": "mel64_16k"}


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

def test_loss_is_loc_plus_group_plus_token() -> None:
    torch.manual_seed(0)
    model = create("avgn", **TINY)
    batch = _batch()
    out = model(batch)
    # Eq. 11: L = L_loc + L_group with L_group = token CE + BCE_a + BCE_v.
    torch.testing.assert_close(out["loss"].detach(), out["loc"] + out["group_a"] + out["group_v"] + out["token"])
    # Recompute every term from the encoder outputs of the same (mixed) batch; mix_prob 0.5 -> items 0, 1 mixed
    # with partners 1 (class 1) and 3 (class 3): y_a = {0,1}, {1,3}, {1}, {3}; y_v = one-hot of the labels.
    specs, partner = mix_batch(batch, 2, "mel64_16k")
    assert partner[:2].tolist() == [1, 3]
    # Same train-mode pass (BatchNorm batch statistics; drop_path 0 so nothing is random) on the mixed batch.
    enc = model.encode(batch["image"], specs)
    labels = batch["label_idx"]
    y_a = multi_hot(labels, 4, partner, 2)
    assert y_a.tolist() == [[1, 1, 0, 0], [0, 1, 0, 1], [0, 1, 0, 0], [0, 0, 0, 1]]
    bce_a = F.binary_cross_entropy_with_logits(model.heads.fc_a(enc["ga"]).squeeze(-1), y_a)
    torch.testing.assert_close(bce_a, out["group_a"], atol=1e-5, rtol=1e-5)
    # Eq. 10 by brute force: sim(b, m) = max_p cos(g^a_{b,n_b}, f^v_{m,p} * g^v_{m,n_b}) / tau.
    sim = torch.empty(4, 4)
    for b in range(4):
        n = int(labels[b])
        for m in range(4):
            sim[b, m] = F.cosine_similarity(enc["ga"][b, n][None], enc["fv"][m] * enc["gv"][m, n][None], dim=-1).max()
    torch.testing.assert_close(symmetric_ce(sim / model.tau), out["loc"], atol=1e-4, rtol=1e-4)


def test_gradients_reach_encoders_and_heads() -> None:
    torch.manual_seed(0)
    model = create("avgn", **TINY)
    model(_batch())["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # Every module gets a non-zero gradient; the audio grouping's q/k are the exception by construction: with one
    # audio token the assignment cancels in Eq. 8 (g^a_i = c^a_i + W_o W_v f^a), so their gradient is ~0.
    modules = [model.visual, model.audio, model.heads.phi_a, model.heads.phi_v, model.heads.group_v,
               model.heads.group_a.v, model.heads.group_a.o, model.heads.fc_cls, model.heads.fc_a, model.heads.fc_v]
    for mod in modules:
        assert any(p.grad.abs().sum() > 0 for p in mod.parameters()), mod
    assert model.class_tokens.grad.abs().sum() > 0


def test_ablation_switches_change_loss_composition() -> None:
    torch.manual_seed(0)
    batch = _batch()
    full = create("avgn", **TINY)
    assert {"loc", "group_a", "group_v", "token"} <= set(full(batch))
    no_avct = create("avgn", **TINY, use_avct=False)
    out = no_avct(batch)
    assert "token" not in out and not hasattr(no_avct.heads, "phi_a")
    torch.testing.assert_close(out["loss"].detach(), out["loc"] + out["group_a"] + out["group_v"])
    no_avg = create("avgn", **TINY, use_avg=False)
    assert not hasattr(no_avg.heads, "group_a") and "token" in no_avg(batch)
    # Both off = the EZ-VSL baseline: the MIL contrastive loss on the (mixture) audio, nothing else.
    base = create("avgn", **TINY, use_avct=False, use_avg=False)
    out = base(batch)
    assert set(out) == {"loss", "loc", "logits"}
    specs, _ = mix_batch(batch, 2, "mel64_16k")
    expected, _ = mil_contrastive_loss(base.visual(batch["image"]), base.audio(specs), base.tau)
    torch.testing.assert_close(out["loss"], expected, atol=1e-5, rtol=1e-5)


def test_maps_embeddings_and_side_by_side() -> None:
    torch.manual_seed(0)
    model = create("avgn", **TINY).eval()
    batch = _batch()
    maps = model.localize(batch["image"], batch["spec"])
    assert maps.shape == (4, 4, 4) and maps.abs().max() <= 1 + 1e-5
    a = model.localize_class(batch["image"], batch["spec"], torch.tensor([0, 0, 0, 0]))
    b = model.localize_class(batch["image"], batch["spec"], torch.tensor([2, 2, 2, 2]))
    assert a.shape == (4, 4, 4) and not torch.allclose(a, b)  # class-specific
    # Class-agnostic map = max over the selected class maps (the top audio class at least).
    top = model.class_probs(batch["image"], batch["spec"]).argmax(1)
    assert (maps >= model.localize_class(batch["image"], batch["spec"], top) - 1e-6).all()
    # Three sources: one call per class.
    per_class = torch.stack([model.localize_class(batch["image"][:1], batch["spec"][:1], torch.tensor([c]))
                             for c in (0, 1, 3)], 1)
    assert per_class.shape == (1, 3, 4, 4)
    canvas = torch.cat([batch["image"], batch["image"]], dim=-1)  # 1x2 side-by-side
    assert model.localize(canvas, batch["spec"]).shape == (4, 4, 8)
    assert model.localize_class(canvas, batch["spec"], torch.tensor([0, 1, 2, 3])).shape == (4, 4, 8)
    v, au = model.embed(batch["image"], batch["spec"])
    assert v.shape == au.shape == (4, 16)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(au.norm(dim=1), torch.ones(4))


def test_presets_create() -> None:
    paper = get_preset("avgn", "paper")
    assert paper["model"]["dim"] == 512 and paper["model"]["depth"] == 3 and paper["train"]["lr"] == 1e-4
    assert paper["data"]["frontend"] == "paper_22k_257x300" and paper["data"]["image_size"] == 224
    model = create("avgn", preset="paper", num_classes=37).eval()
    with torch.no_grad():
        maps = model.localize_class(torch.randn(1, 3, 224, 224), torch.randn(1, 1, 257, 300), torch.tensor([5]))
    assert maps.shape == (1, 7, 7)
    cpu = create("avgn", preset="cpu").eval()
    with torch.no_grad():
        assert cpu.localize(torch.randn(1, 3, 112, 112), torch.randn(1, 1, 64, 100)).shape == (1, 7, 7)
    assert get_preset("avgn", "cpu")["data"] == {"image_size": 112, "frontend": "mel64_16k", "audio_duration_s": 3.0}


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
    summary = train("avgn", small, _Clips(), tmp_path, preset="cpu", epochs=1, batch_size=8, lr=1e-3, threads=1,
                    device="cpu")
    log = pd.read_csv(summary["log"])
    assert log["epoch"].tolist() == [1] and log["loss"].notna().all()


def test_symmetric_ce_drops_same_class_negatives_by_hand() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 1.0]])
    same = torch.tensor([[True, True, False], [True, True, False], [False, False, True]])  # items 0 and 1 share a class
    # Rows / columns without the (0, 1) and (1, 0) pairs: item 2 keeps all three terms.
    by_hand = (
        -(2.0 - torch.logsumexp(torch.tensor([2.0, 0.0]), 0))  # row 0: {0, 2}
        - (3.0 - torch.logsumexp(torch.tensor([3.0, 0.5]), 0))  # row 1: {1, 2}
        - (1.0 - torch.logsumexp(torch.tensor([0.0, 0.5, 1.0]), 0))  # row 2
    ) / 3 + (
        -(2.0 - torch.logsumexp(torch.tensor([2.0, 0.0]), 0))  # column 0: {0, 2}
        - (3.0 - torch.logsumexp(torch.tensor([3.0, 0.5]), 0))  # column 1: {1, 2}
        - (1.0 - torch.logsumexp(torch.tensor([0.0, 0.5, 1.0]), 0))  # column 2
    ) / 3
    torch.testing.assert_close(symmetric_ce(logits, same), by_hand)
    assert symmetric_ce(logits, same) < symmetric_ce(logits)  # a pushed-apart false negative no longer counts
    torch.testing.assert_close(symmetric_ce(logits, torch.eye(3, dtype=torch.bool)), symmetric_ce(logits))


def test_drop_same_class_negatives_switch() -> None:
    batch = _batch()  # labels 0, 1, 1, 3: items 1 and 2 share class 1
    losses = {}
    for drop in (False, True):
        torch.manual_seed(0)
        model = create("avgn", **TINY, drop_same_class_negatives=drop)
        losses[drop] = model(batch)["loc"]
    torch.manual_seed(0)
    model = create("avgn", **TINY, drop_same_class_negatives=True)
    out = model(batch)
    specs, _ = mix_batch(batch, 2, "mel64_16k")
    enc = model.encode(batch["image"], specs)
    labels = batch["label_idx"]
    sim = torch.empty(4, 4)
    for b in range(4):
        n = int(labels[b])
        for m in range(4):
            sim[b, m] = F.cosine_similarity(enc["ga"][b, n][None], enc["fv"][m] * enc["gv"][m, n][None], dim=-1).max()
    same = labels[:, None] == labels[None]
    torch.testing.assert_close(symmetric_ce(sim / model.tau, same), out["loc"], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(losses[False], losses[True])
