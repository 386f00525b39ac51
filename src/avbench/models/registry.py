"""timm-style model registry: ``@register(name)`` on a class or factory, ``create(name, **cfg)``.

A registered method may declare named hyper-parameter presets (e.g. ``paper`` and ``cpu``): each preset is a
dict with ``model`` (constructor kwargs), ``data`` (loader kwargs: image size, front end, ...) and ``train``
(epochs, batch size, lr) sections. ``create(name, preset=..., **cfg)`` merges ``preset['model']`` with ``cfg``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

_T = TypeVar("_T", bound=Callable[..., nn.Module])
_MODELS: dict[str, Callable[..., nn.Module]] = {}
_PRESETS: dict[str, dict[str, dict[str, Any]]] = {}


def register(name: str, presets: dict[str, dict[str, Any]] | None = None) -> Callable[[_T], _T]:
    """Decorator registering a model class/factory under ``name`` (with optional hyper-parameter presets)."""

    def wrap(factory: _T) -> _T:
        if name in _MODELS and _MODELS[name] is not factory:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = factory
        _PRESETS[name] = dict(presets or {})
        return factory

    return wrap


def _ensure_builtin() -> None:
    # Importing the package registers the built-in methods; done lazily to avoid import cycles.
    import avbench.models  # noqa: F401


def available() -> list[str]:
    _ensure_builtin()
    return sorted(_MODELS)


def presets(name: str) -> list[str]:
    _ensure_builtin()
    _check(name)
    return sorted(_PRESETS[name])


def get_preset(name: str, preset: str) -> dict[str, Any]:
    """A deep copy of ``{'model': ..., 'data': ..., 'train': ...}`` for ``name``/``preset``."""
    _ensure_builtin()
    _check(name)
    if preset not in _PRESETS[name]:
        raise KeyError(f"model {name!r} has no preset {preset!r}; available: {sorted(_PRESETS[name])}")
    return copy.deepcopy(_PRESETS[name][preset])


def create(name: str, preset: str | None = None, **cfg: Any) -> nn.Module:
    """Instantiate model ``name``; ``preset`` supplies default kwargs that ``cfg`` overrides."""
    _ensure_builtin()
    _check(name)
    kwargs = get_preset(name, preset).get("model", {}) if preset else {}
    kwargs.update(cfg)
    return _MODELS[name](**kwargs)


def model_class(name: str) -> Callable[..., nn.Module]:
    """The registered class/factory of ``name`` (to read class attributes such as ``uses_knn``)."""
    _ensure_builtin()
    _check(name)
    return _MODELS[name]


def _check(name: str) -> None:
    if name not in _MODELS:
        raise KeyError(f"unknown model {name!r}; available: {sorted(_MODELS)}")
