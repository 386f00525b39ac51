"""avbench.train: a short run, per-epoch checkpoint/log, exact resume after a kill, shard-backed run."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import Dataset

from avbench.models.ezvsl import EZVSL
from avbench.train import load_trained, train

TINY = {"dim": 16, "width": 4, "audio_width": 4, "last_stride": 1}


class RandomClips(Dataset):
    """Paired random tensors with a learnable link: the spectrogram encodes the image's mean colour."""

    def __init__(self, n: int = 24, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        colour = torch.randn(n, 3, generator=g)
        self.images = colour[:, :, None, None] + 0.5 * torch.randn(n, 3, 32, 32, generator=g)
        bands = colour.repeat_interleave(8, dim=1)  # [n, 24]: 8 frequency rows per colour channel
        self.specs = bands[:, None, :, None].expand(n, 1, 24, 24) + 0.1 * torch.randn(n, 1, 24, 24, generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "spec": self.specs[i], "label_idx": 0, "clip_id": f"c{i}", "boxes": []}


def _run(out: Path, epochs: int, **kw: Any) -> dict[str, Any]:
    return train("ezvsl", TINY, RandomClips(), out, epochs=epochs, batch_size=8, lr=1e-3, seed=7,
                 device="cpu", threads=1, **kw)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


def test_train_writes_checkpoints_and_log(tmp_path: Path) -> None:
    summary = _run(tmp_path / "run", epochs=2)
    assert Path(summary["final"]).exists() and Path(summary["last"]).exists()
    log = pd.read_csv(summary["log"])
    assert list(log.columns) == ["epoch", "loss", "seconds", "samples_per_s", "lr"]
    assert log["epoch"].tolist() == [1, 2] and np.isfinite(log["loss"]).all()
    model = load_trained(summary["final"])
    assert isinstance(model, EZVSL) and not model.training
    # Training again with resume=True is a no-op that keeps the weights.
    before = _weights(Path(summary["final"]))
    assert _run(tmp_path / "run", epochs=2)["resumed_from"] == 2
    after = _weights(Path(summary["final"]))
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_resume_after_kill_matches_uninterrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    straight = _weights(Path(_run(tmp_path / "straight", epochs=2)["final"]))

    calls = {"n": 0}
    original = EZVSL.forward

    def dying_forward(self: EZVSL, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        calls["n"] += 1
        if calls["n"] == 5:  # 3 steps per epoch: die in the middle of epoch 2
            raise KeyboardInterrupt("simulated kill")
        return original(self, batch)

    monkeypatch.setattr(EZVSL, "forward", dying_forward)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "killed", epochs=2)
    monkeypatch.setattr(EZVSL, "forward", original)
    assert torch.load(tmp_path / "killed" / "last.pt", weights_only=False)["epoch"] == 1
    assert not (tmp_path / "killed" / "final.pt").exists()

    summary = _run(tmp_path / "killed", epochs=2)
    assert summary["resumed_from"] == 1
    resumed = _weights(Path(summary["final"]))
    assert straight.keys() == resumed.keys()
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k
    assert pd.read_csv(summary["log"])["epoch"].tolist() == [1, 2]


def test_cosine_schedule_decays_and_resumes_on_the_same_curve(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    straight = _run(tmp_path / "straight", epochs=3, lr_schedule="cosine")
    lrs = pd.read_csv(straight["log"])["lr"].to_numpy()
    # 3 steps per epoch, 9 in all: the lr of each epoch's last step is 1e-3 * (1 + cos(pi * s / 9)) / 2.
    expected = [1e-3 * 0.5 * (1 + np.cos(np.pi * s / 9)) for s in (2, 5, 8)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-9)

    calls = {"n": 0}
    original = EZVSL.forward

    def dying_forward(self: EZVSL, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("simulated kill")
        return original(self, batch)

    monkeypatch.setattr(EZVSL, "forward", dying_forward)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "killed", epochs=3, lr_schedule="cosine")
    monkeypatch.setattr(EZVSL, "forward", original)
    resumed = _run(tmp_path / "killed", epochs=3, lr_schedule="cosine")
    a, b = _weights(Path(straight["final"])), _weights(Path(resumed["final"]))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="lr_schedule"):
        _run(tmp_path / "bad", epochs=1, lr_schedule="step")


def test_loss_decreases_on_learnable_data(tmp_path: Path) -> None:
    summary = train("ezvsl", TINY, RandomClips(n=32), tmp_path, epochs=8, batch_size=8, lr=3e-3, seed=0,
                    device="cpu", threads=1)
    log = pd.read_csv(summary["log"])
    assert log["loss"].iloc[-1] < log["loss"].iloc[0]


def _tiny_shards(root: Path, n: int = 8) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    with wds.TarWriter(str(root / "t-train-000000.tar")) as writer:
        for i in range(n):
            img, wav = io.BytesIO(), io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(img, format="JPEG")
            sf.write(wav, (rng.uniform(-0.3, 0.3, 32000) * 32767).astype(np.int16), 16000, format="WAV",
                     subtype="PCM_16")
            meta = {"clip_id": f"v{i}_000000", "label_idx": i % 2, "boxes": [[0.1, 0.1, 0.5, 0.5]]}
            writer.write({"__key__": f"v{i}_000000", "jpg": img.getvalue(), "wav": wav.getvalue(),
                          "json": json.dumps(meta).encode()})


def test_train_from_shards_with_cpu_preset(tmp_path: Path) -> None:
    _tiny_shards(tmp_path / "shards")
    summary = train("ezvsl", {**TINY}, tmp_path / "shards", tmp_path / "out", epochs=1, batch_size=4, lr=1e-3,
                    seed=0, device="cpu", preset="cpu", data_cfg={"image_size": 32}, max_steps_per_epoch=1)
    ckpt = torch.load(summary["final"], weights_only=False)
    assert ckpt["config"]["data_cfg"]["frontend"] == "mel64_16k" and ckpt["config"]["model_cfg"]["width"] == 4
    assert pd.read_csv(summary["log"])["epoch"].tolist() == [1]


def test_train_from_config_ties_qian_stage_switch_to_the_configured_epochs(monkeypatch: pytest.MonkeyPatch,
                                                                         tmp_path: Path) -> None:
    import avbench.train as train_mod

    seen: dict[str, Any] = {}
    monkeypatch.setattr(train_mod, "train", lambda method, model_cfg, *a, **kw: seen.update(model_cfg, **kw))
    common = {"train_shards": tmp_path, "out_dir": tmp_path, "seed": 0, "threads": 1, "log_path": tmp_path / "l"}
    train_mod.train_from_config("qian", {"preset": "cpu", "epochs": 8}, **common)
    # the preset's schedule (cosine since session 3) reaches the loop
    assert seen["total_epochs"] == 8 and seen["epochs"] == 8 and seen["lr_schedule"] == "cosine"
    # An explicit model setting wins; methods without the argument never receive it.
    train_mod.train_from_config("qian", {"preset": "cpu", "epochs": 8, "model": {"total_epochs": 20}}, **common)
    assert seen["total_epochs"] == 20
    seen.clear()
    train_mod.train_from_config("ezvsl", {"preset": "cpu", "lr_schedule": "cosine"}, **common)
    assert "total_epochs" not in seen and seen["lr_schedule"] == "cosine"
