"""Shared fixtures: one tiny spec per session and a few rendered clips (rendering the whole set is slow)."""

from __future__ import annotations

import pytest

from avbench.synthav import SynthSpec, make_spec, render_clip

from ._media import pick


@pytest.fixture(scope="session")
def tiny_spec() -> SynthSpec:
    return make_spec("tiny", 0)


@pytest.fixture(scope="session")
def rendered(tiny_spec: SynthSpec, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """A train single (start_s > 0), a test single, a duet, the missing and the corrupt clip."""
    out = tmp_path_factory.mktemp("synthav_videos")
    spec = tiny_spec
    picks = {
        "train": pick(spec, kind="single", split="train", missing=False, corrupt=False),
        "test": pick(spec, kind="single", split="test"),
        "duet": pick(spec, kind="duet"),
        "missing": pick(spec, missing=True),
        "corrupt": pick(spec, corrupt=True),
    }
    # a clip with a non-zero start so the pre-roll / cut logic is exercised
    nz = spec.clips[(spec.clips["start_s"] > 0) & (spec.clips["kind"] == "single") & ~spec.clips["missing"]]
    nz = nz[~nz["corrupt"] & (nz["split"] == "train")]
    picks["train"] = int(nz["clip_index"].iloc[0])
    return {name: {"index": i, **render_clip(spec, i, out)} for name, i in picks.items()}
