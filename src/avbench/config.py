"""Configuration loading and validation against workflow/schemas/config.schema.yaml.

Snakemake validates with its own ``snakemake.utils.validate`` in the Snakefile; this module applies the same
schema for code that runs without Snakemake (tests, notebooks) and gives errors that name the bad key.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = REPO_ROOT / "config.yaml"


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key path."""


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _fill_defaults(instance: Any, schema: dict[str, Any]) -> None:
    """Insert schema defaults into missing object properties, recursively (like Snakemake's validate)."""
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(value, extra)


def validate_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a validated copy of ``config`` with defaults filled in; raise ConfigError naming the key."""
    schema = schema or load_schema()
    result = copy.deepcopy(config)
    _fill_defaults(result, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(result), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for error in errors:
            key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
            lines.append(f"config key '{key}': {error.message}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    check_dataset_references(result)
    return result


def check_dataset_references(config: dict[str, Any]) -> None:
    """Cross-references the schema cannot express: ``datasets.<d>.train_from`` must name another configured
    dataset that trains itself (no chains). Raises ConfigError naming the key."""
    datasets = config.get("datasets") or {}
    for name, entry in datasets.items():
        source = (entry or {}).get("train_from")
        if source is None:
            continue
        key = f"config key 'datasets.{name}.train_from'"
        if source not in datasets:
            raise ConfigError(f"{key}: names unknown dataset {source!r} (configured: {sorted(datasets)})")
        if source == name:
            raise ConfigError(f"{key}: a dataset cannot be trained from itself; drop the key to train on {name!r}")
        if (datasets[source] or {}).get("train_from"):
            raise ConfigError(f"{key}: {source!r} is itself evaluated with models of "
                              f"{datasets[source]['train_from']!r}; name the dataset that is trained")


def deep_update(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (Snakemake's --configfile semantics)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(*paths: str | Path, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load config files in order (later ones win), apply overrides, validate."""
    config: dict[str, Any] = {}
    for path in paths or (DEFAULT_CONFIG,):
        with open(path, encoding="utf-8") as handle:
            config = deep_update(config, yaml.safe_load(handle) or {})
    if overrides:
        config = deep_update(config, overrides)
    return validate_config(config)
