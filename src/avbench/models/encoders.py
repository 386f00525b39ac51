"""Shared encoders: a ResNet-18 family trunk, the visual (map) and audio (global) encoders (PROTOCOLS 2.2).

``ResNet18Trunk(width=64, in_channels=3, last_stride=2)`` has exactly torchvision ``resnet18``'s parameter
and buffer names (minus ``fc``), so ImageNet weights load from a local file with ``load_torchvision_weights``.
``width`` scales every stage (64 = standard); ``last_stride=1`` makes layer4 keep resolution (overall
stride 16: 7x7 maps from 112 px input in the CPU preset).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, padding_mode: str = "zeros") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False, padding_mode=padding_mode)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False, padding_mode=padding_mode)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Trunk(nn.Module):
    """ResNet-18 without avgpool/fc; returns the layer4 feature map ``[B, 8*width, H/s, W/s]``.

    ``padding_mode`` other than ``zeros`` (e.g. ``replicate``) removes the frame-border cue that zero padding
    gives deep features: a visual trunk trained from scratch otherwise learns to fire on the image border
    (seen on SynthAV with the max-pooled MIL loss). It changes no parameter, so torchvision weights still load.
    """

    def __init__(self, width: int = 64, in_channels: int = 3, last_stride: int = 2,
                 padding_mode: str = "zeros", n_stages: int = 4) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
        if n_stages not in (3, 4):
            raise ValueError(f"n_stages must be 3 or 4, got {n_stages}")
        self.padding_mode = padding_mode
        self.width = width
        self.in_channels = in_channels
        # n_stages=3 stops after layer3 (4*width channels): a smaller receptive field for small inputs trained
        # from scratch; torchvision weights need all four stages. ``last_stride`` is the stride of the last stage
        # kept, so 3 stages give stride 8 * last_stride (14x14 maps at 112 px with last_stride=1).
        self.n_stages = n_stages
        self.out_channels = 8 * width if n_stages == 4 else 4 * width
        self.stride = 8 * last_stride * (2 if n_stages == 4 else 1)
        self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False, padding_mode=padding_mode)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._stage(width, width, 1)
        self.layer2 = self._stage(width, 2 * width, 2)
        self.layer3 = self._stage(2 * width, 4 * width, 2 if n_stages == 4 else last_stride)
        self.layer4 = self._stage(4 * width, 8 * width, last_stride) if n_stages == 4 else nn.Identity()
        self._init_weights()

    def _stage(self, inplanes: int, planes: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(inplanes, planes, stride, self.padding_mode),
                             BasicBlock(planes, planes, 1, self.padding_mode))

    def _init_weights(self) -> None:
        # torchvision's ResNet initialisation (kaiming fan_out for convs, unit BN).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def load_torchvision_weights(trunk: ResNet18Trunk, path: str | os.PathLike) -> None:
    """Load a torchvision ``resnet18`` state_dict (local file) into ``trunk``; ``fc.*`` is dropped.

    Strict: every trunk key must be present with the same shape; otherwise raise naming ``path``.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {p} (ImageNet ResNet-18 state_dict expected)")
    state = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
    own = trunk.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or bad:
        raise ValueError(
            f"{p}: incompatible ResNet-18 weights for width={trunk.width}, in_channels={trunk.in_channels}; "
            f"missing={missing[:5]} unexpected={unexpected[:5]} shape_mismatch={bad[:5]}"
        )
    trunk.load_state_dict(state, strict=True)


class VisualEncoder(nn.Module):
    """Image ``[B, 3, S, S]`` -> unit-norm local features ``[B, D, h, w]`` (trunk -> 1x1 conv -> L2 over C)."""

    def __init__(
        self,
        dim: int = 512,
        width: int = 64,
        last_stride: int = 2,
        pretrained_path: str | os.PathLike | None = None,
        padding_mode: str = "zeros",
        n_stages: int = 4,
    ) -> None:
        super().__init__()
        self.trunk = ResNet18Trunk(width=width, in_channels=3, last_stride=last_stride, padding_mode=padding_mode,
                                   n_stages=n_stages)
        if pretrained_path:
            load_torchvision_weights(self.trunk, pretrained_path)
        self.proj = nn.Conv2d(self.trunk.out_channels, dim, kernel_size=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.trunk(images)), dim=1)


class AudioEncoder(nn.Module):
    """Spectrogram ``[B, 1, F, T]`` -> unit-norm ``[B, D]`` (trunk from scratch -> global max-pool -> linear)."""

    def __init__(self, dim: int = 512, width: int = 64, in_channels: int = 1, last_stride: int = 2) -> None:
        super().__init__()
        self.trunk = ResNet18Trunk(width=width, in_channels=in_channels, last_stride=last_stride)
        self.proj = nn.Linear(self.trunk.out_channels, dim)

    def feature_map(self, specs: torch.Tensor) -> torch.Tensor:
        return self.trunk(specs)

    def forward(self, specs: torch.Tensor) -> torch.Tensor:
        pooled = torch.amax(self.trunk(specs), dim=(-2, -1))  # global max-pool (EZ-VSL)
        return F.normalize(self.proj(pooled), dim=1)


__all__ = ["AudioEncoder", "BasicBlock", "ResNet18Trunk", "VisualEncoder", "load_torchvision_weights"]
