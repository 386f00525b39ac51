"""Config schema: defaults filled, errors name the bad key; the default config and every preset validate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from avbench.config import ConfigError, deep_update, load_config, validate_config

REPO = Path(__file__).resolve().parents[1]


def test_default_config_validates_and_fills_defaults() -> None:
    config = load_config(REPO / "config.yaml")
    assert config["datasets"]["synthav"]["preset"] == "demo"
    assert config["slice"]["sample_rate"] == 16000
    assert config["download"]["retries"] == 3


def test_missing_section_gets_schema_defaults() -> None:
    config = validate_config({"datasets": {"synthav": {"source": "synthav"}}})
    assert config["shards"]["max_samples_per_shard"] == 256
    assert config["knn"]["encoder"] == "handcrafted"


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"slice": {"sample_rate": "sixteen"}}, "slice.sample_rate"),
        ({"datasets": {"bad": {"source": "youtube"}}}, "datasets.bad.source"),
        ({"knn": {"k": 0}}, "knn.k"),
        ({"shards": {"unknown_option": 1}}, "shards"),
        ({"datasets": {"x": {"source": "vggss", "train_from": "nowhere"}}}, "datasets.x.train_from"),
        ({"datasets": {"x": {"source": "vggss", "train_from": "Bad Name"}}}, "datasets.x.train_from"),
    ],
)
def test_errors_name_the_bad_key(override: dict, key: str) -> None:
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    with pytest.raises(ConfigError, match=f"'{key}'"):
        validate_config(deep_update(base, override))


def test_deep_update_merges_nested_dicts_and_replaces_lists() -> None:
    merged = deep_update({"a": {"b": 1, "c": [1, 2]}}, {"a": {"c": [3]}, "d": 4})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 4}


def test_tiny_preset_validates() -> None:
    config = load_config(REPO / "config.yaml", REPO / "configs" / "synthav_tiny.yaml")
    assert config["datasets"]["synthav"]["preset"] == "tiny"
