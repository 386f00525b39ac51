"""Training-free reference "methods" with the localization interface: centre prior and random maps."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from avbench.models.registry import register


class _TrainingFree(nn.Module):
    requires_training = False

    def __init__(self) -> None:
        super().__init__()
        # A buffer so .to(device) works and state_dict is non-empty (checkpoints stay uniform).
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"loss": torch.zeros((), device=self._anchor.device)}

    def embed(self, images: torch.Tensor, specs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} has no embeddings (localization-only baseline)")


@register("centre_prior", presets={"paper": {"model": {}}, "cpu": {"model": {}}})
class CentrePrior(_TrainingFree):
    """Isotropic Gaussian centred on the image; ``sigma`` is relative to the map side."""

    def __init__(self, sigma: float = 0.25, map_size: int = 224) -> None:
        super().__init__()
        self.config = {"sigma": sigma, "map_size": map_size}
        coords = (torch.arange(map_size, dtype=torch.float32) + 0.5) / map_size - 0.5
        d2 = coords.view(-1, 1).square() + coords.view(1, -1).square()
        self.register_buffer("prior", torch.exp(-d2 / (2 * sigma**2)), persistent=False)

    @torch.no_grad()
    def localize(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        return self.prior.unsqueeze(0).expand(images.shape[0], -1, -1).clone()


@register("random", presets={"paper": {"model": {}}, "cpu": {"model": {}}})
class RandomMap(_TrainingFree):
    """Uniform noise maps from a seeded generator (the stream advances per call: order-deterministic)."""

    def __init__(self, seed: int = 0, map_size: int = 7) -> None:
        super().__init__()
        self.config = {"seed": seed, "map_size": map_size}
        self.map_size = map_size
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def localize(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        maps = torch.rand((images.shape[0], self.map_size, self.map_size), generator=self.generator)
        return maps.to(images.device)
