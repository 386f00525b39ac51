"""Paper tables: every transcribed CSV loads; our numbers land beside the paper's with the right scale; writers."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pytest

from avbench import paper_tables as pt


def _paper_results() -> Path:
    env = os.environ.get(pt.ENV_DIR)
    if env:
        path = Path(env)
    else:  # shared/ sits beside the checkout (or inside it on the device machine)
        here = Path(__file__).resolve()
        candidates = [here.parents[1].parent / "shared" / "paper_results",
                      here.parents[2].parent / "shared" / "paper_results",
                      here.parents[1] / "shared" / "paper_results"]
        path = next((c for c in candidates if c.is_dir()), candidates[0])
    if not path.is_dir():
        pytest.fail(f"paper_results not found at {path}; set ${pt.ENV_DIR} to the shared/paper_results folder")
    return path


@pytest.fixture(scope="module")
def results_dir() -> Path:
    return _paper_results()


@pytest.fixture(autouse=True)
def _point_env(results_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pt.ENV_DIR, str(results_dir))


def _csvs() -> list[Path]:
    try:
        return sorted(_paper_results().glob("*.csv"))
    except pytest.fail.Exception:
        return []


@pytest.mark.parametrize("csv_path", _csvs(), ids=lambda p: p.stem)
def test_every_csv_loads_in_long_form(csv_path: Path) -> None:
    frame = pt.load_paper_table(csv_path)
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    assert list(frame.columns) == pt.LONG_COLUMNS
    assert len(frame) == len(raw) > 0
    assert frame["value"].dtype == float and not frame["value"].isna().any()
    # value_text keeps the printed digits (trailing zeros) and agrees with the float
    assert all(math.isclose(float(t), v) for t, v in zip(frame["value_text"], frame["value"], strict=True))
    assert not frame.duplicated(["dataset", "method", "metric"]).any()
    assert frame["table_id"].nunique() == 1


def test_registry_covers_every_csv(results_dir: Path) -> None:
    files = {p.name for p in results_dir.glob("*.csv")}
    assert files, "no CSV in paper_results"
    assert {spec.file for spec in pt.PAPER_TABLES.values()} == files
    assert pt.available_tables() == sorted(pt.PAPER_TABLES)
    for table_id, spec in pt.PAPER_TABLES.items():
        assert pt.table_id_from_path(spec.file) == table_id
        paper = pt.load_spec_table(table_id)
        # every paper dataset and (dataset, metric) has an explicit mapping (possibly "not in avbench")
        assert set(paper["dataset"]) <= set(spec.datasets), table_id
        for ds, metric in zip(paper["dataset"], paper["metric"], strict=True):
            mmap = spec.metric_map(ds, metric)
            assert mmap is not None and mmap.task in pt.TASKS, (table_id, ds, metric)


def test_conditions_are_parsed() -> None:
    t4 = pt.load_spec_table("oneavm_table4")
    assert set(t4["train_set"]) == {"VGGSound-Music", "Kinetics", "Kinetics -> VGGSound-Music"}
    t1 = pt.load_spec_table("senocak_table1")
    assert set(t1["pre_vision"]) == {"yes", "no"}
    assert set(t1["train_set"]) == {"VGGSound-144k"}
    q3 = pt.load_spec_table("qian_table3")
    assert set(q3["train_set"]) == {"solo", "solo+duet"}


def _avgn_summary() -> dict:
    return {
        "method": "avgn", "dataset": "vggsound_instruments", "preset": "paper",
        "primary_protocol": "sslalignment_adaptive", "data": {"frontend": "stonemo_16k_257x200"},
        "n_available": 431,
        "tasks": {
            "localization": {
                "avgn": {"pixel_ap": 0.505, "ciou_sr@0.3": 0.5, "auc": 0.3125, "n": 431},
                "sslalignment_adaptive": {"pixel_ap": 0.9, "ciou_sr@0.3": 0.9, "auc": 0.9, "n": 431},
            },
            "retrieval": {"test": {"ir_acc": 0.1, "n": 431}},
        },
    }


def _col(ds: str, metric: str, kind: str) -> str:
    return f"{ds}{pt.SEP}{metric}{pt.SEP}{kind}"


def test_summary_fills_ours_with_scaling_and_leaves_others_missing() -> None:
    frame = pt.paper_beside_ours("avgn_table1", [_avgn_summary()],
                                 config_note={"leakage": {"vggsound_instruments": 0.0}, "train_list_mode": "clean"})
    assert list(frame["method"]).index("AVGN") == len(frame) - 1  # paper row order kept
    avgn = frame.set_index("method").loc["AVGN"]
    # fractions become percentages, and the paper's protocol (avgn) wins over the primary one
    assert avgn[_col("VGGSound-Instruments", "AP", "ours")] == pytest.approx(50.5)
    assert avgn[_col("VGGSound-Instruments", "IoU@0.3", "ours")] == pytest.approx(50.0)
    assert avgn[_col("VGGSound-Instruments", "AUC", "ours")] == pytest.approx(31.25)
    assert avgn[_col("VGGSound-Instruments", "AUC", "paper")] == pytest.approx(36.7)
    # other datasets of the same method have no summary -> NaN, row partial
    assert math.isnan(avgn[_col("MUSIC-Solo", "AUC", "ours")])
    assert math.isnan(avgn[_col("VGGSound-Single", "IoU@0.5", "ours")])
    assert avgn["status"] == "partial"
    assert avgn["n_ours"] == "431"
    assert "N=431 vs paper 446" in avgn["setting_diff"]
    assert "localization setting=avgn" in avgn["setting_diff"]
    assert "0 % of the test clips" in avgn["setting_diff"] and "train_list_mode=clean" in avgn["setting_diff"]
    assert "no avbench result for dataset 'music'" in avgn["setting_diff"]
    # a method we implement without a summary is missing; one we do not implement is not_implemented
    rows = frame.set_index("method")
    assert rows.loc["EZ-VSL", "status"] == "missing"
    assert rows.loc["EZ-VSL", "our_method"] == "ezvsl"
    assert math.isnan(rows.loc["EZ-VSL", _col("VGGSound-Instruments", "AUC", "ours")])
    assert rows.loc["DSOL", "status"] == "not_implemented"
    assert "not implemented" in rows.loc["DSOL", "setting_diff"]
    assert set(frame["status"]) <= set(pt.STATUSES)
    # a different table with the same summary: nothing of it matches (other task / dataset)
    other = pt.paper_beside_ours("oneavm_table2", [_avgn_summary()])
    ours_cols = [c for c in other.columns if c.endswith(f"{pt.SEP}ours")]
    assert other[ours_cols].isna().all().all()


def test_protocol_fallback_is_reported() -> None:
    summary = _avgn_summary()
    del summary["tasks"]["localization"]["avgn"]
    avgn = pt.paper_beside_ours("avgn_table1", [summary]).set_index("method").loc["AVGN"]
    assert avgn[_col("VGGSound-Instruments", "AUC", "ours")] == pytest.approx(90.0)
    assert "setting=sslalignment_adaptive (paper: avgn)" in avgn["setting_diff"]


def test_db_metrics_are_not_rescaled_and_ogl_variants_match_flags() -> None:
    sep = {"method": "oneavm", "dataset": "music", "n_available": 90,
           "tasks": {"separation": {"test": {"sdr": 6.5, "sar": 7.0, "n": 90}}}}
    row = pt.paper_beside_ours("oneavm_table2", [sep]).set_index("method").loc["OneAVM"]
    assert row[_col("MUSIC", "SDR", "ours")] == pytest.approx(6.5)
    assert row["status"] == "partial"  # VGGSound-Music has no summary
    loc = {"method": "senocak", "dataset": "vggss", "n_available": 4655, "primary_protocol": "sslalignment",
           "tasks": {"localization": {"sslalignment": {"ciou_sr@0.5": 0.4, "auc": 0.41, "n": 4655}}}}
    frame = pt.paper_beside_ours("senocak_table1", [loc]).set_index("method")
    assert frame.loc["Ours", _col("VGG-SS", "cIoU@0.5", "ours")] == pytest.approx(40.0)
    assert math.isnan(frame.loc["Ours (w/ OGL)", _col("VGG-SS", "cIoU@0.5", "ours")])
    assert "no summary with OGL on" in frame.loc["Ours (w/ OGL)", "setting_diff"]


def test_delta_rows_subtract_the_reference_method() -> None:
    def ms(method: str, cap: float) -> dict:
        return {"method": method, "dataset": "vggsound_instruments", "n_available": 446,
                "tasks": {"multisource": {"mix_concat_lr": {"cap": cap, "n": 446}}}}

    row = pt.paper_beside_ours("m2vsl_table2", [ms("m2vsl", 0.30), ms("avgn", 0.25)]).iloc[0]
    assert row[_col("VGGSound-Instruments", "delta CAP", "ours")] == pytest.approx(5.0)


def test_writers_round_trip(tmp_path: Path) -> None:
    frame = pt.paper_beside_ours("avgn_table1", [_avgn_summary()])
    out = {ext: tmp_path / f"avgn_table1.{ext}" for ext in ("parquet", "csv", "md", "tex")}
    pt.write_paper_table(frame, out["parquet"], out["csv"], out["md"], out["tex"], "AVGN Table 1",
                         pt.caveats_for("avgn_table1"))
    back = pd.read_parquet(out["parquet"])
    pd.testing.assert_frame_equal(back, frame.assign(), check_dtype=False)
    csv = pd.read_csv(out["csv"], keep_default_na=False, na_values=[""])
    assert list(csv.columns) == list(frame.columns)
    assert csv.set_index("method").loc["AVGN", _col("VGGSound-Instruments", "AP", "ours")] == pytest.approx(50.5)

    md = out["md"].read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(frame)
    n_cells = {len(line.replace("\\|", "").strip("|").split("|")) for line in table}
    assert n_cells == {len(frame.columns)}
    assert "| AVGN | avgn | 77.2 | – | 58.1 | – | 48.5 | – |" in md  # paper order; missing ours shown as a dash
    assert all(c in md for c in pt.REPRODUCTION_CAVEATS)

    tex = out["tex"].read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert tex.count("\\begin{") == tex.count("\\end{")
    body = tex.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0].strip().splitlines()
    assert len(body) == len(frame)
    n_cols = 2 + len(pt.value_columns(frame)) + 2  # method, our_method, values, N, status
    assert {line.count("&") for line in body} == {n_cols - 1}
    assert "VGG-SS" in tex and "72 \\%" in tex  # caveats printed, escaped
    assert "50.5" in tex


def test_missing_folder_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pt.ENV_DIR, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="paper_results"):
        pt.paper_results_dir()
    assert pt.available_tables() == []
    with pytest.raises(KeyError, match="unknown paper table"):
        pt.paper_beside_ours("no_such_table", [])
