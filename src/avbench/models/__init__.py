"""Models: registry, shared encoders and one module per method (importing registers them)."""

from avbench.models import baselines, ezvsl  # noqa: F401  (registration side effects)
from avbench.models.registry import available, create, get_preset, presets, register

__all__ = ["available", "create", "get_preset", "presets", "register"]
