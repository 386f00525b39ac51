"""End-to-end: the whole DAG on the tiny SynthAV preset in a temporary directory, then checks of what came out."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from avbench.shards import iter_samples, read_index

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=1500)


@pytest.fixture(scope="module")
def dag_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("e2e")
    config = yaml.safe_load((REPO / "configs" / "synthav_tiny.yaml").read_text())
    config["results_dir"] = "results"
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    proc = _run(workdir)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return workdir / "results"


def test_every_manifest_row_accounted_for(dag_run: Path) -> None:
    manifest = pd.read_parquet(dag_run / "manifests/synthav/clips.parquet")
    download = pd.concat(pd.read_parquet(p) for p in sorted((dag_run / "status/synthav/download").glob("*.parquet")))
    sliced = pd.concat(pd.read_parquet(p) for p in sorted((dag_run / "status/synthav/slice").glob("*.parquet")))
    assert sorted(download["clip_id"]) == sorted(manifest["clip_id"])
    assert sorted(sliced["clip_id"]) == sorted(manifest["clip_id"])
    # the tiny preset has a missing and a corrupt source: they end as rows with reasons, not crashes
    failed_download = download[download["status"] != "ok"]
    assert len(failed_download) >= 1 and (failed_download["reason"].str.len() > 0).all()
    failed_slice = sliced[~sliced["status"].isin(["ok", "too_short"])]
    assert len(failed_slice) >= 2 and (failed_slice["reason"].str.len() > 0).all()
    assert set(failed_download["clip_id"]) <= set(failed_slice["clip_id"])


def test_shards_readable_with_expected_fields(dag_run: Path) -> None:
    manifest = pd.read_parquet(dag_run / "manifests/synthav/clips.parquet")
    sliced = pd.concat(pd.read_parquet(p) for p in (dag_run / "status/synthav/slice").glob("*.parquet"))
    ok = set(sliced.loc[sliced["status"] == "ok", "clip_id"])
    for split in ("train", "test", "duet"):
        shard_dir = dag_run / "shards/synthav" / split
        index = read_index(shard_dir)
        samples = list(iter_samples(shard_dir))
        expected = set(manifest.loc[manifest["split"] == split, "clip_id"]) & ok
        assert {s["meta"]["clip_id"] for s in samples} == expected
        assert index["n_samples"] == len(samples) > 0
        for sample in samples:
            assert "." not in sample["key"]
            assert sample["image"].ndim == 3 and sample["image"].shape[2] == 3
            assert sample["sample_rate"] == 16000 and len(sample["wave"]) == 160000
            meta = sample["meta"]
            assert {"clip_id", "label", "label_idx", "boxes", "sources"} <= set(meta)
            if split in ("test", "duet"):
                assert len(meta["boxes"]) >= 1
            if split == "duet":
                assert len(meta["sources"]) == 2


def test_neighbours_valid_and_not_self(dag_run: Path) -> None:
    data = np.load(dag_run / "knn/synthav/neighbours.npz")
    info = json.loads((dag_run / "knn/synthav/neighbours.json").read_text())
    ids = data["ids"]
    for modality in ("audio", "visual"):
        nbrs = data[modality]
        assert nbrs.dtype == np.int32 and nbrs.shape == (len(ids), info["k"])
        assert (nbrs >= 0).all() and (nbrs < len(ids)).all()
        assert not (nbrs == np.arange(len(ids))[:, None]).any()
    assert info["encoder"]


def test_mixture_boxes_shifted(dag_run: Path) -> None:
    separate = pd.read_parquet(dag_run / "mixtures/synthav/separate.parquet")
    concat = pd.read_parquet(dag_run / "mixtures/synthav/concat_lr.parquet")
    assert list(separate["pair_id"]) == list(concat["pair_id"])
    assert (separate["cls_a"] != separate["cls_b"]).all()
    for (_, s), (_, c) in zip(separate.iterrows(), concat.iterrows(), strict=True):
        for box_s, box_c in zip(json.loads(s["boxes_a"]), json.loads(c["boxes_a"]), strict=True):
            assert box_c == pytest.approx([box_s[0] / 2, box_s[1], box_s[2] / 2, box_s[3]])
        for box_s, box_c in zip(json.loads(s["boxes_b"]), json.loads(c["boxes_b"]), strict=True):
            assert box_c == pytest.approx([(box_s[0] + 1) / 2, box_s[1], (box_s[2] + 1) / 2, box_s[3]])


def test_metrics_in_range_and_tables_written(dag_run: Path) -> None:
    table = pd.read_parquet(dag_run / "tables/synthav_localization.parquet")
    assert {"ezvsl", "slavc", "senocak", "avgn", "m2vsl", "oneavm", "qian", "centre_prior", "random"} <= set(
        table["method"])
    separation = pd.read_parquet(dag_run / "tables/synthav_separation.parquet")
    assert {"oneavm", "qian"} <= set(separation["method"])
    for method in ("oneavm", "qian"):  # both mask conventions reported for mask-based separators
        assert set(separation.loc[separation["method"] == method, "setting"]) == {"test", "test_soft_mask"}
    for column in ("ciou_sr@0.5", "auc", "avg_ciou"):
        assert table[column].between(0, 100).all(), column
    # class-aware methods are also scored on the map of each clip's ground-truth class (the AVGN protocol)
    by_class = table[table["setting"] == "sslalignment_adaptive_gt_class"]
    assert set(by_class["method"]) == {"avgn", "m2vsl", "qian"}
    assert (dag_run / "tables/synthav_localization.csv").exists()
    assert (dag_run / "tables/synthav_localization.md").read_text().startswith("# synthav_localization")
    log = pd.read_csv(dag_run / "models/synthav/ezvsl/train_log.csv")
    assert len(log) == 2 and np.isfinite(log["loss"]).all()


def test_extended_and_multisource_columns(dag_run: Path) -> None:
    extended = pd.read_parquet(dag_run / "tables/synthav_extended.parquet")
    # every localizing method is scored with negatives, baselines included
    assert {"ezvsl", "slavc", "senocak", "avgn", "m2vsl", "oneavm", "qian", "centre_prior", "random"} <= set(
        extended["method"])
    for column in ("ap", "ap_exact", "max_f1", "loc_acc"):
        assert extended[column].between(0, 100).all(), column
    assert (extended["n_all"] == 2 * extended["n"]).all()
    # the centre prior ignores the audio: its negatives are exactly as confident as its positives
    assert extended.set_index("method").loc["centre_prior", "ap_exact"] <= 50.0 + 1e-9
    multisource = pd.read_parquet(dag_run / "tables/synthav_multisource.parquet")
    assert {"piap", "piap_avgn_code"} <= set(multisource.columns)
    assert "piap_avgn_code" in (dag_run / "tables/synthav_multisource.md").read_text()


def test_figures_written(dag_run: Path) -> None:
    for name in ("success_curves", "overlays", "separation"):
        path = dag_run / "plots/synthav" / f"{name}.png"
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert path.stat().st_size > 5000, name
    assert (dag_run / "benchmarks/plots/synthav.tsv").is_file()


def test_single_target_rebuilds_alone(dag_run: Path) -> None:
    workdir = dag_run.parent
    target = dag_run / "tables/synthav_localization.md"
    target.unlink()
    proc = _run(workdir, str(target.relative_to(workdir)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert target.exists()
    ran = {m.group(2) for m in re.finditer(r"^(local)?rule (\w+):", proc.stderr + proc.stdout, re.MULTILINE)}
    assert ran == {"table"}, ran
