"""Fixtures for the metadata-reader tests: the real files of shared/metadata (never skipped)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DEFAULT_METADATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "metadata"


@pytest.fixture(scope="session")
def metadata_dir() -> Path:
    path = Path(os.environ.get("AVBENCH_METADATA_DIR", DEFAULT_METADATA_DIR))
    if not path.is_dir():
        pytest.fail(
            f"real metadata directory not found: {path} (expected shared/metadata beside the repo; "
            "set AVBENCH_METADATA_DIR to its location)"
        )
    return path


@pytest.fixture(scope="session")
def vggss(metadata_dir: Path):
    from avbench.sources.vggss import read_vggss_json

    return read_vggss_json(metadata_dir / "vggss/vggss.json")


@pytest.fixture(scope="session")
def vggsound_test(metadata_dir: Path):
    from avbench.sources.vggsound import read_vggsound_test

    return read_vggsound_test(metadata_dir / "vggsound/test.csv")
