"""Paper presets: `snakemake -n --configfile configs/<paper>.yaml` on the real metadata builds each paper's DAG."""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from avbench.workflow_helpers import WorkflowPaths

REPO = Path(__file__).resolve().parents[1]
PRESETS = ("oneavm", "avgn", "senocak", "qian", "m2vsl")
EXPECTED_RULES = {"manifest", "download", "slice", "shards", "train", "evaluate", "table", "leakage_report"}


def shared_metadata() -> Path:
    shared = Path(os.environ.get("AVBENCH_SHARED") or REPO.parent / "shared")
    metadata = shared / "metadata"
    if not (metadata / "vggss" / "vggss.json").is_file():
        pytest.fail(f"shared metadata not found at {metadata} (set AVBENCH_SHARED to the shared/ folder)")
    return metadata.resolve()


def dry_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=300)


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count from the dry run's "Job stats" table."""
    counts: dict[str, int] = {}
    block = output.split("Job stats:", 1)[-1]
    for line in block.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match or match[1] == "total":
            break
        counts[match[1]] = int(match[2])
    return counts


@pytest.fixture(scope="module")
def preset_runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    metadata = shared_metadata()

    def run(name: str) -> subprocess.CompletedProcess:
        workdir = tmp_path_factory.mktemp(name)
        return dry_run(workdir, "--configfile", str(REPO / "configs" / f"{name}.yaml"),
                       "--config", f"metadata_dir={metadata}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(PRESETS)) as pool:  # each run is I/O + startup
        return dict(zip(PRESETS, pool.map(run, PRESETS), strict=True))


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_dry_run_builds_paper_dag(preset: str, preset_runs) -> None:
    proc = preset_runs[preset]
    assert proc.returncode == 0, proc.stderr[-4000:]
    counts = job_counts(proc.stdout + proc.stderr)
    assert set(counts) >= EXPECTED_RULES, f"{preset}: missing rules {EXPECTED_RULES - set(counts)} in {counts}"
    # the merged-in SynthAV default dataset must not be built by a paper preset
    assert not {"synthav_spec", "synthav_render", "mixtures"} & set(counts)
    config = yaml.safe_load((REPO / "configs" / f"{preset}.yaml").read_text())
    assert counts["leakage_report"] == 1
    assert counts["table"] <= len(config["benchmarks"])


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_config_is_valid_and_consistent(preset: str) -> None:
    from avbench.config import validate_config

    merged = yaml.safe_load((REPO / "config.yaml").read_text())
    preset_cfg = yaml.safe_load((REPO / "configs" / f"{preset}.yaml").read_text())
    for key, value in preset_cfg.items():  # Snakemake's recursive merge, one level deep is enough here
        merged[key] = {**merged[key], **value} if isinstance(value, dict) and key in merged else value
    config = validate_config(merged)
    paths = WorkflowPaths(config)
    for benchmark in config["benchmarks"]:
        dataset = paths.benchmark_dataset(benchmark)
        assert paths.is_real(dataset), benchmark
        assert benchmark.rsplit("_", 1)[-1] in {"localization", "multisource", "retrieval", "separation",
                                                "segmentation"}
    for name, method in preset_cfg["methods"].items():
        assert method["preset"] == "paper", name


def test_default_config_dag_unchanged(tmp_path: Path) -> None:
    proc = dry_run(tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    counts = job_counts(proc.stdout + proc.stderr)
    paths = WorkflowPaths(yaml.safe_load((REPO / "config.yaml").read_text()))
    assert counts.get("synthav_spec") == 1 and counts.get("table") == len(paths.benchmarks())
    assert not {"leakage_report", "fetch_metadata", "check_placed", "ingest_placed", "official_pairs"} & set(counts)


def test_default_targets_have_no_real_outputs() -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    paths = WorkflowPaths(config)
    assert paths.real_targets() == [] and paths.skipped_benchmarks() == []
    assert paths.all_targets() == [paths.table(b, ext) for b in paths.benchmarks() for ext in ("parquet", "csv", "md")]
