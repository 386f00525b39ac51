"""Senocak et al. 2023: losses by hand, augmentations, kNN conceptual positives, ablations, interfaces, train loop."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from avbench.models import create, get_preset
from avbench.models.senocak import ConceptualPositives, Senocak2023, senocak_loss, simclr_augment, time_shift
from avbench.train import load_trained, train

SMALL = {"dim": 16, "width": 4, "audio_width": 4, "proj_dim": 8}


def _batch(b: int = 4, size: int = 64) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"image": torch.randn(b, 3, size, size, generator=g), "spec": torch.randn(b, 1, 32, 48, generator=g)}


def test_loss_hand_case_single_pair() -> None:
    # B = 2, tau = 1. avg(v_0) = e0, avg(v_1) = e1 / 2 (mean of unit vectors need not be unit); a = (e0, e1).
    # s_L logits = [[1, 0], [0, 0.5]]: row 0 CE = -log(e / (e + 1)) = log(1 + e) - 1,
    # row 1 CE = -log(e^0.5 / (1 + e^0.5)) = log(1 + e^0.5) - 0.5; loss_loc = mean of the rows.
    # s_A with projections z = (e0, e1), w = (e1, e0): logits [[0, 1], [1, 0]] -> both rows CE = log(1 + e) - 0.
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    g = torch.stack([e0, e1 / 2])
    a = torch.stack([e0, e1])
    loss, parts = senocak_loss([(g, torch.stack([e0, e1]))], [(a, torch.stack([e1, e0]))], tau=1.0)
    e = math.e
    loc = ((math.log(1 + e) - 1) + (math.log(1 + math.sqrt(e)) - 0.5)) / 2
    align = math.log(1 + e)
    torch.testing.assert_close(parts["loss_loc"], torch.tensor(loc))
    torch.testing.assert_close(parts["loss_align"], torch.tensor(align))
    torch.testing.assert_close(loss, torch.tensor(loc + align))
    # Eq. 5 sums over every (visual view, audio view) pair: 3 x 3 copies of the same pair -> 9x.
    loss9, _ = senocak_loss([(g, torch.stack([e0, e1]))] * 3, [(a, torch.stack([e1, e0]))] * 3, tau=1.0)
    torch.testing.assert_close(loss9, 9 * loss)
    # Symmetric form adds the column direction: s_L columns: col 0 = -log(e/(e+1)), col 1 = -log(e^.5/(1+e^.5)).
    sym, parts_sym = senocak_loss([(g, None)], [(a, None)], tau=1.0, symmetric=True)
    # Here the logits matrix is symmetric, so the column terms equal the row terms: 2 * loc; no s_A without heads.
    torch.testing.assert_close(sym, torch.tensor(2 * loc))
    torch.testing.assert_close(parts_sym["loss_align"], torch.tensor(0.0))


def test_s_l_is_the_mean_of_the_cosine_map() -> None:
    # Eq. 3: s_L(v, a) = mean_xy cos(v^xy, a); the model uses <avg(v), a> for unit-norm v^xy and a.
    model = create("senocak", preset="cpu", **SMALL, semantic=False).eval()
    batch = _batch(3)
    vmap, aud = model.visual(batch["image"]), model.audio(batch["spec"])
    (g, _), _ = model._global(vmap, aud)
    by_map = torch.einsum("ndhw,md->nmhw", vmap, aud).mean(dim=(-2, -1))
    torch.testing.assert_close(g @ aud.t(), by_map)
    torch.testing.assert_close(model.localize(batch["image"], batch["spec"]).mean(dim=(-2, -1)), by_map.diagonal())


def test_augmentations() -> None:
    x = _batch(4)["image"]
    out1 = simclr_augment(x, torch.Generator().manual_seed(3))
    out2 = simclr_augment(x, torch.Generator().manual_seed(3))
    assert out1.shape == x.shape and out1.dtype == x.dtype and torch.isfinite(out1).all()
    torch.testing.assert_close(out1, out2)  # seeded
    assert not torch.allclose(out1, simclr_augment(x, torch.Generator().manual_seed(4)))
    assert not torch.allclose(out1, x)
    # Pixels stay in the normalised image range ([0, 1] before normalisation).
    lo = (0 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    hi = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert (out1 >= lo.view(1, 3, 1, 1) - 1e-4).all() and (out1 <= hi.view(1, 3, 1, 1) + 1e-4).all()
    # Audio view: per-sample circular time shift (the same draw as torch.randint with the same seed).
    s = torch.randn(3, 1, 4, 10)
    shifted = time_shift(s, 0.5, torch.Generator().manual_seed(0))
    shifts = torch.randint(-5, 6, (3,), generator=torch.Generator().manual_seed(0))
    for i in range(3):
        torch.testing.assert_close(shifted[i], torch.roll(s[i], int(shifts[i]), dims=-1))


def test_gradients_reach_both_encoders_and_projections() -> None:
    model = create("senocak", preset="cpu", **SMALL, semantic=False)
    model(_batch())["loss"].backward()
    for part in (model.visual, model.audio, model.proj_v, model.proj_a):
        grads = [p.grad for p in part.parameters()]
        assert all(gr is not None for gr in grads) and any(gr.abs().sum() > 0 for gr in grads)


def test_ablation_switches_change_the_loss_composition() -> None:
    batch = _batch(3)
    torch.manual_seed(0)
    base = create("senocak", preset="cpu", **SMALL, semantic=False, multiview=False)
    state = base.state_dict()
    one = base(batch)
    # Conceptual positives equal to the anchors: BN statistics of [x; x] equal those of x, so every one of the
    # 2 x 2 pairs reproduces the single pair -> exactly 4x.
    sem = create("senocak", preset="cpu", **SMALL, semantic=True, multiview=False)
    sem.load_state_dict(state)
    conc = dict(batch, image_conc=list(batch["image"]), spec_conc=list(batch["spec"]))
    four = sem(conc)
    torch.testing.assert_close(four["loss_loc"], 4 * one["loss_loc"])
    torch.testing.assert_close(four["loss_align"], 4 * one["loss_align"])
    with pytest.raises(ValueError, match="image_conc"):
        sem(batch)
    # No feature alignment: no projection layers, s_A term is zero.
    noalign = create("senocak", preset="cpu", **SMALL, semantic=False, multiview=False, feature_alignment=False)
    noalign.load_state_dict({k: v for k, v in state.items() if not k.startswith("proj_")})
    out = noalign(batch)
    assert noalign.proj_v is None and float(out["loss_align"]) == 0.0
    torch.testing.assert_close(out["loss"], one["loss_loc"])
    # Multi-view: augmented pairs add terms (4 pairs instead of 1).
    mv = create("senocak", preset="cpu", **SMALL, semantic=False, multiview=True)
    mv.load_state_dict(state)
    assert float(mv(batch)["loss_loc"]) > 2 * float(one["loss_loc"])


def _write_knn(path: Path, ids: list[str], visual: np.ndarray, audio: np.ndarray) -> None:
    np.savez(path, ids=np.asarray(ids, dtype=str), audio=audio.astype(np.int32), visual=visual.astype(np.int32))


class _TinyClips(Dataset):
    def __init__(self, n: int = 8, size: int = 64) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, size, size, generator=g)
        self.specs = torch.randn(n, 1, 32, 48, generator=g)
        self.seed = 5

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "spec": self.specs[i], "label_idx": i % 2, "clip_id": f"c{i}", "boxes": []}


def test_conceptual_positives_dataset(tmp_path: Path) -> None:
    data = _TinyClips(4)
    # The file lists ids in another order and holds an id the dataset lacks ("zz"); c3 is absent from the file.
    ids = ["c2", "zz", "c0", "c1"]  # file rows -> dataset indices 2, -, 0, 1
    visual = np.array([[1, 2, 3], [0, 2, 3], [3, 1, 0], [2, 1, 0]])
    audio = np.array([[3, 2, 1], [0, 2, 3], [1, 3, 0], [1, 1, 1]])
    _write_knn(tmp_path / "nn.npz", ids, visual, audio)
    wrapped = ConceptualPositives(data, tmp_path / "nn.npz", k=2)
    assert wrapped.k == 2 and len(wrapped) == 4 and wrapped.seed == 5 and wrapped.n_missing == 1
    # c0 = row 2: visual top-2 rows (3, 1) -> dataset (1,) ("zz" dropped); audio rows (1, 3) -> (1,)
    assert wrapped.visual[0].tolist() == [1] and wrapped.audio[0].tolist() == [1]
    # c2 = row 0: visual rows (1, 2) -> (0,); audio rows (3, 2) -> (1, 0)
    assert wrapped.visual[2].tolist() == [0] and wrapped.audio[2].tolist() == [1, 0]
    assert wrapped.visual[3].tolist() == [3] and wrapped.audio[3].tolist() == [3]  # absent -> itself
    item = wrapped[0]
    torch.testing.assert_close(item["image_conc"], data[1]["image"])
    torch.testing.assert_close(item["spec_conc"], data[1]["spec"])
    # k is capped at the file's k; the draw is a pure function of (seed, epoch, index).
    assert ConceptualPositives(data, tmp_path / "nn.npz", k=1000).k == 3
    wide = ConceptualPositives(data, tmp_path / "nn.npz", k=3)
    draws = {e: [wide.neighbours(2) for _ in range(3)] for e in range(6) if wide.set_epoch(e) is None}
    assert all(len(set(d)) == 1 for d in draws.values())
    assert len({d[0] for d in draws.values()}) > 1  # epochs redraw
    # The hook: off when semantic=False, clear errors when the file is missing.
    assert Senocak2023.wrap_dataset(data, {"semantic": False}) is data
    with pytest.raises(ValueError, match="knn"):
        Senocak2023.wrap_dataset(data, {"k": 3})
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        Senocak2023.wrap_dataset(data, {"knn_path": str(tmp_path / "missing.npz")})
    assert isinstance(Senocak2023.wrap_dataset(data, {"knn_path": str(tmp_path / "nn.npz")}), ConceptualPositives)


def test_interfaces_and_presets() -> None:
    model = create("senocak", preset="cpu", **SMALL, semantic=False).eval()
    batch = _batch(2, size=112)
    maps = model.localize(batch["image"], batch["spec"])
    assert maps.shape == (2, 7, 7) and maps.abs().max() <= 1 + 1e-5
    assert model.localize(torch.randn(2, 3, 112, 224), batch["spec"]).shape == (2, 7, 14)  # 1x2 side by side
    v, a = model.embed(batch["image"], batch["spec"])
    assert v.shape == a.shape == (2, 8)
    vmap = model.visual(batch["image"])
    torch.testing.assert_close(v, F.normalize(model.proj_v(vmap.mean(dim=(-2, -1))), dim=1))
    torch.testing.assert_close(a.norm(dim=1), torch.ones(2))
    flat = create("senocak", preset="cpu", **SMALL, semantic=False, feature_alignment=False).eval()
    assert flat.embed(batch["image"], batch["spec"])[0].shape == (2, 16)

    paper = get_preset("senocak", "paper")
    assert paper["model"]["tau"] == 0.07 and paper["model"]["k"] == 1000
    assert paper["train"]["epochs"] == 50 and paper["train"]["lr"] == 1e-4
    assert paper["data"]["frontend"] == "lvs_16k_257x299" and paper["data"]["image_size"] == 224
    cpu = get_preset("senocak", "cpu")
    assert cpu["data"] == {"image_size": 112, "frontend": "mel64_16k", "audio_duration_s": 3.0}
    big = create("senocak", preset="paper").eval()
    assert isinstance(big, Senocak2023) and big.uses_knn and big.requires_training
    with torch.no_grad():
        assert big.localize(torch.randn(1, 3, 224, 224), torch.randn(1, 1, 257, 299)).shape == (1, 14, 14)


def test_train_loop_integration_with_knn(tmp_path: Path) -> None:
    n = 8
    rows = np.array([[(i + 1) % n, (i + 2) % n] for i in range(n)])
    _write_knn(tmp_path / "nn.npz", [f"c{i}" for i in range(n)], rows, rows[:, ::-1])
    summary = train("senocak", {**SMALL, "knn_path": str(tmp_path / "nn.npz")}, _TinyClips(n), tmp_path / "out",
                    preset="cpu", epochs=1, batch_size=4, lr=1e-3, threads=1, device="cpu")
    assert math.isfinite(summary["loss"])
    model = load_trained(summary["final"])
    assert isinstance(model, Senocak2023) and model.semantic and model.multiview
    # The preset's semantic=True without the knn stage's file fails early with a message naming it.
    with pytest.raises(ValueError, match="knn"):
        train("senocak", {}, _TinyClips(n), tmp_path / "bad", preset="cpu", epochs=1, batch_size=8, lr=1e-3,
              threads=1, device="cpu")
