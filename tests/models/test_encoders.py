"""Shared encoders: shapes, strides, torchvision key compatibility."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from avbench.models.encoders import AudioEncoder, ResNet18Trunk, VisualEncoder, load_torchvision_weights


def test_trunk_shapes_and_strides() -> None:
    with torch.no_grad():
        assert ResNet18Trunk(64).eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 512, 7, 7)
        assert ResNet18Trunk(16, last_stride=1).eval()(torch.zeros(1, 3, 112, 112)).shape == (1, 128, 7, 7)
        assert ResNet18Trunk(8, in_channels=1).eval()(torch.zeros(1, 1, 257, 200)).shape == (1, 64, 9, 7)
        # Three stages: last_stride is layer3's stride (stride 8 -> 14x14 maps at 112 px, 16 -> 7x7).
        three = ResNet18Trunk(16, last_stride=1, n_stages=3).eval()
        assert three(torch.zeros(1, 3, 112, 112)).shape == (1, 64, 14, 14) and three.stride == 8
        three = ResNet18Trunk(16, last_stride=2, n_stages=3).eval()
        assert three(torch.zeros(1, 3, 112, 112)).shape == (1, 64, 7, 7) and three.stride == 16
        assert ResNet18Trunk(16, last_stride=1).stride == 16 and ResNet18Trunk(64).stride == 32


def test_visual_and_audio_encoders_are_unit_norm() -> None:
    vis, aud = VisualEncoder(dim=32, width=8, last_stride=1).eval(), AudioEncoder(dim=32, width=8).eval()
    with torch.no_grad():
        v = vis(torch.randn(2, 3, 112, 112))
        a = aud(torch.randn(2, 1, 64, 100))
    assert v.shape == (2, 32, 7, 7) and a.shape == (2, 32)
    torch.testing.assert_close(v.norm(dim=1), torch.ones(2, 7, 7))
    torch.testing.assert_close(a.norm(dim=1), torch.ones(2))


def test_torchvision_resnet18_weights_load(tmp_path: Path) -> None:
    tv = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(tv.state_dict(), path)
    enc = VisualEncoder(dim=16, width=64, pretrained_path=path).eval()
    ours = enc.trunk.state_dict()
    for k, v in tv.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(ours[k], v), k
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = torch.nn.Sequential(*list(tv.children())[:-2])(x)
        torch.testing.assert_close(enc.trunk(x), ref)


def test_weight_errors_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        VisualEncoder(width=64, pretrained_path=missing)
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="r18.pth"):
        load_torchvision_weights(ResNet18Trunk(width=32), path)
