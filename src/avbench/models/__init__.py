"""Models: registry, shared encoders and one module per method.

Every module in this package is imported here, so dropping ``avbench/models/<method>.py`` with a
``@register`` decorator is enough to make the method available (no edit of this file needed).
"""

from __future__ import annotations

import importlib
import pkgutil

from avbench.models.registry import available, create, get_preset, presets, register

_INFRA = {"registry", "encoders"}
for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _mod not in _INFRA and not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")

__all__ = ["available", "create", "get_preset", "presets", "register"]
