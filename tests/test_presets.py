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


def dry_run_jobs(output: str) -> list[dict]:
    """Jobs of a dry run: ``{"rule", "input": [...], "output": [...], "wildcards": {...}}`` per printed block."""
    jobs: list[dict] = []
    for line in output.splitlines():
        match = re.match(r"^(?:local)?rule (\w+):$", line)
        if match:
            jobs.append({"rule": match[1], "input": [], "output": [], "wildcards": {}})
            continue
        field = re.match(r"^\s+(input|output|wildcards): (.*)$", line)
        if field and jobs:
            if field[1] == "wildcards":
                jobs[-1]["wildcards"] = dict(kv.split("=", 1) for kv in field[2].split(", "))
            else:
                jobs[-1][field[1]] = field[2].split(", ")
    return jobs


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
    assert not {"synthav_spec", "synthav_render"} & set(counts)
    config = yaml.safe_load((REPO / "configs" / f"{preset}.yaml").read_text())
    assert counts["leakage_report"] == 1
    assert counts["table"] <= len(config["benchmarks"])
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    # seeded mixtures only where a separation benchmark has no published pair set (MUSIC)
    mixed = {j["wildcards"]["dataset"] for j in jobs if j["rule"] == "mixtures"}
    assert mixed <= {"music"}, mixed
    # every evaluation of a trained method reads the model of the dataset it is trained on, which is
    # `train_from` for a cross-dataset entry; such an entry has no train / knn job of its own
    eval_only = {d for d, c in config["datasets"].items() if c.get("train_from")}
    trained = {j["wildcards"]["dataset"] for j in jobs if j["rule"] in ("train", "knn")}
    assert not trained & eval_only, trained & eval_only
    # only the preset's own methods are built, not the demo's cpu entries merged in from config.yaml
    trained_methods = {j["wildcards"]["method"] for j in jobs if j["rule"] == "train"}
    assert trained_methods == set(config["use_methods"]) == set(config["methods"]), trained_methods
    for job in jobs:
        if job["rule"] != "evaluate" or job["wildcards"]["method"] not in config["methods"]:
            continue
        dataset, method = job["wildcards"]["dataset"], job["wildcards"]["method"]
        source = config["datasets"][dataset].get("train_from") or dataset
        models = [i for i in job["input"] if i.endswith("final.pt")]
        assert models == [f"results/models/{source}/{method}/final.pt"], (dataset, method, models)


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


def test_cross_dataset_entries_with_placed_media_take_the_other_models(tmp_path: Path) -> None:
    """Senocak T1 Flickr column and T5 zero-shot S4: with their media placed, the eval jobs read the VGGSound-144k
    models, only test media are ingested, and the paper tables wait for those summaries."""
    config = yaml.safe_load((REPO / "configs" / "senocak.yaml").read_text())
    for name in ("flickr", "flickr_from_vggss", "avsbench_s4_from_vggss"):
        config["datasets"][name]["root"] = str(tmp_path / "placed" / name)
    config["metadata_dir"] = str(shared_metadata())
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config))
    proc = dry_run(tmp_path, "--configfile", str(tmp_path / "cfg.yaml"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    evals = {(j["wildcards"]["dataset"], j["wildcards"]["method"]): j for j in jobs if j["rule"] == "evaluate"}
    for dataset in ("flickr_from_vggss", "avsbench_s4_from_vggss"):
        for method in ("senocak", "ezvsl", "slavc"):
            assert f"results/models/vggss/{method}/final.pt" in evals[(dataset, method)]["input"]
        assert not any(f"results/models/{dataset}/" in o for j in jobs for o in j["output"])
        assert f"results/shards/{dataset}/test" in {o for j in jobs if j["rule"] == "shards" for o in j["output"]}
        assert f"results/shards/{dataset}/train" not in {o for j in jobs for o in j["output"]}
    # T2 keeps its own Flickr-144k models
    assert "results/models/flickr/senocak/final.pt" in evals[("flickr", "senocak")]["input"]
    tables = [j for j in jobs if j["rule"] == "paper_table"]
    assert tables and all("results/eval/flickr_from_vggss/senocak/summary.json" in j["input"] for j in tables)
    assert all("results/reports/leakage.csv" in j["input"] for j in tables)
    leakage = next(j for j in jobs if j["rule"] == "leakage_report")
    manifests = {i for i in leakage["input"] if i.endswith("clips.parquet")}
    assert {"results/manifests/vggss/clips.parquet", "results/manifests/flickr_from_vggss/clips.parquet",
            "results/manifests/avsbench_s4_from_vggss/clips.parquet"} <= manifests


def test_multisource_and_separation_read_official_pairs_and_duets(preset_runs) -> None:
    """Real multi-source / separation evaluation reads the published pair sets (VGGSound-Duet, VGGSound-Music
    eval_ss) in both layouts, AVGN's MUSIC-Duet frames as duet shards, and seeded pairs only for MUSIC separation."""
    def eval_inputs(preset: str, dataset: str) -> list[str]:
        jobs = dry_run_jobs(preset_runs[preset].stdout + preset_runs[preset].stderr)
        return next(j["input"] for j in jobs if j["rule"] == "evaluate" and j["wildcards"]["dataset"] == dataset)

    avgn_single = eval_inputs("avgn", "vggsound_single")
    assert {"results/pairs/vggsound_single/separate.parquet",
            "results/pairs/vggsound_single/concat_lr.parquet"} <= set(avgn_single)
    assert "results/shards/music/duet" in eval_inputs("avgn", "music")
    music = eval_inputs("oneavm", "vggsound_music")
    assert "results/pairs/vggsound_music/separate.parquet" in music
    assert "results/mixtures/music/separate.parquet" in eval_inputs("oneavm", "music")
    # a localization-only benchmark scores no pairs
    assert not [i for i in eval_inputs("oneavm", "vggsound_single") if "/pairs/" in i or "/mixtures/" in i]


def test_use_methods_selects_entries_and_names_unknown_ones() -> None:
    methods = {"ezvsl": {"preset": "cpu"}, "avgn": {"preset": "cpu"}}
    assert WorkflowPaths({"methods": methods}).trained_methods() == ["avgn", "ezvsl"]
    assert WorkflowPaths({"methods": methods, "use_methods": ["ezvsl"]}).trained_methods() == ["ezvsl"]
    with pytest.raises(ValueError, match=r"use_methods.*\['slavc'\]"):
        WorkflowPaths({"methods": methods, "use_methods": ["slavc"]}).trained_methods()


def test_priority_orders_training_but_stays_out_of_the_job_params() -> None:
    paths = WorkflowPaths(yaml.safe_load((REPO / "config.yaml").read_text()))
    # the demo's two longest trainings start first; the others keep Snakemake's default priority
    assert paths.train_priority("qian") == paths.train_priority("oneavm") == 1
    assert paths.train_priority("ezvsl") == 0
    assert paths.method_cfg("qian") == {"preset": "cpu"}  # no rerun when only the priority changes
    assert paths.method_cfg("not_configured") == {}


def test_train_from_paths_and_errors() -> None:
    from avbench.config import ConfigError

    config = {"results_dir": "R", "n_chunks": 2, "benchmarks": ["b_localization", "a_localization"],
              "datasets": {"a": {"source": "vggss"}, "b": {"source": "flickr", "train_from": "a", "root": "/x"}}}
    paths = WorkflowPaths(config)
    assert paths.eval_model("b", "ezvsl") == "R/models/a/ezvsl/final.pt"
    assert paths.eval_model("a", "ezvsl") == "R/models/a/ezvsl/final.pt"
    # `a` evaluates the full VGG-SS test list, so it also has Extended VGG-SS's off-screen clips as a split
    assert paths.shard_splits("b") == ("test",)
    assert paths.shard_splits("a") == ("train", "test", "extended_offscreen")
    with pytest.raises(ValueError, match="'b' has train_from: 'a'"):
        paths.train_shards("b")
    assert set(paths.leakage_manifests()) == {"a", "b"}
    note = paths.paper_table_note()
    assert note["train_from"] == {"b": "a"} and note["train_list_mode"] == {"a": "original", "b": "original"}
    for bad, match in (("nope", "names unknown dataset 'nope'"), ("b", "a dataset cannot be trained from itself")):
        wrong = {**config, "datasets": {**config["datasets"], "b": {**config["datasets"]["b"], "train_from": bad}}}
        with pytest.raises(ConfigError, match=f"'datasets.b.train_from': {match}"):
            WorkflowPaths(wrong)
    chained = {**config, "datasets": {**config["datasets"], "c": {"source": "vggss", "train_from": "b"}}}
    with pytest.raises(ConfigError, match="'datasets.c.train_from'.*'b' is itself evaluated"):
        WorkflowPaths(chained)


def test_default_figures_and_extended_benchmark() -> None:
    paths = WorkflowPaths(yaml.safe_load((REPO / "config.yaml").read_text()))
    assert "synthav_extended" in paths.benchmarks()
    assert paths.plot_targets() == [f"results/plots/synthav/{name}.png"
                                    for name in ("success_curves", "overlays", "separation")]


def test_senocak_extended_vggss_scores_the_offscreen_split(preset_runs) -> None:
    """Senocak T7 (Extended VGG-SS): the full-VGG-SS dataset's manifest reads the extended list, its off-screen
    clips get a shard set of their own (downloaded and sliced inside the dataset's chunk jobs), and only its
    evaluation jobs read those shards; the heard / unheard subsets have no such split."""
    jobs = dry_run_jobs(preset_runs["senocak"].stdout + preset_runs["senocak"].stderr)
    offscreen = "results/shards/vggss/extended_offscreen"
    shards = [j for j in jobs if j["rule"] == "shards" and j["output"] == [offscreen]]
    assert len(shards) == 1 and shards[0]["wildcards"] == {"dataset": "vggss", "split": "extended_offscreen"}
    assert {f"results/status/vggss/slice/chunk{c:03d}.parquet" for c in range(32)} <= set(shards[0]["input"])
    manifest = next(j for j in jobs if j["rule"] == "manifest" and j["wildcards"]["dataset"] == "vggss")
    assert any(i.endswith("vggss_extended/vggss_test_plus_silent.csv") for i in manifest["input"])
    evals = [j for j in jobs if j["rule"] == "evaluate"]
    readers = {j["wildcards"]["dataset"] for j in evals if offscreen in j["input"]}
    assert readers == {"vggss"}
    assert all(offscreen in j["input"] for j in evals if j["wildcards"]["dataset"] == "vggss")
    assert not [o for j in jobs for o in j["output"] if "extended_offscreen" in o and "/vggss_" in o]
