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


def test_class_given_tables_read_the_gt_class_maps_of_class_aware_methods() -> None:
    avgn = _avgn_summary()
    loc = avgn["tasks"]["localization"]
    del loc["avgn"]
    loc["sslalignment_adaptive_gt_class"] = {"pixel_ap": 0.7, "ciou_sr@0.3": 0.7, "auc": 0.7, "n": 431}
    ezvsl = {**_avgn_summary(), "method": "ezvsl"}
    del ezvsl["tasks"]["localization"]["avgn"]  # a class-agnostic method has no GT-class setting
    rows = pt.paper_beside_ours("avgn_table1", [avgn, ezvsl]).set_index("method")
    assert rows.loc["AVGN", _col("VGGSound-Instruments", "AUC", "ours")] == pytest.approx(70.0)
    assert "setting=sslalignment_adaptive_gt_class (paper: avgn)" in rows.loc["AVGN", "setting_diff"]
    assert rows.loc["EZ-VSL", _col("VGGSound-Instruments", "AUC", "ours")] == pytest.approx(90.0)
    # the paper's own protocol given the class wins, and then nothing differs from the paper's setting
    loc["avgn_gt_class"] = {"pixel_ap": 0.6, "ciou_sr@0.3": 0.6, "auc": 0.6, "n": 431}
    loc["avgn"] = {"pixel_ap": 0.5, "ciou_sr@0.3": 0.5, "auc": 0.5, "n": 431}
    row = pt.paper_beside_ours("avgn_table1", [avgn]).set_index("method").loc["AVGN"]
    assert row[_col("VGGSound-Instruments", "AUC", "ours")] == pytest.approx(60.0)
    assert "setting=avgn_gt_class," in row["setting_diff"] and "(paper:" not in row["setting_diff"]
    assert any("ground-truth class" in c for c in pt.caveats_for("avgn_table1"))
    # tables without the flag keep reading the class-agnostic settings
    multi = pt.paper_beside_ours("avgn_table2", [avgn]).set_index("method").loc["AVGN"]
    assert "_gt_class" not in multi["setting_diff"]


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


def _loc_summary(method: str, dataset: str, cious: float, n: int = 249) -> dict:
    return {"method": method, "dataset": dataset, "n_available": n, "primary_protocol": "sslalignment",
            "tasks": {"localization": {"sslalignment": {"ciou_sr@0.5": cious, "auc": 0.5, "n": n}}}}


def test_cross_dataset_cells_take_the_cross_dataset_evaluation(tmp_path: Path) -> None:
    """Senocak T1's Flickr column is the VGGSound-144k model on Flickr (dataset `flickr_from_vggss`), not the
    Flickr-144k model of T2; the setting note says where the models come from and the overlap they saw."""
    report = tmp_path / "leakage.csv"
    pd.DataFrame({"scope": ["published", "configured", "configured"], "dataset": ["", "vggss", "flickr_from_vggss"],
                  "test_frac_in_train": [0.9, 3709 / 5158, 0.0]}).to_csv(report, index=False)
    note = pt.note_with_leakage({"train_list_mode": {"vggss": "original", "flickr_from_vggss": "original"},
                                 "train_from": {"flickr_from_vggss": "vggss"}, "train_lists": {"vggss": "vggss_144k"},
                                 "leakage_report": str(report)})
    assert note["leakage"] == {"vggss": pytest.approx(3709 / 5158), "flickr_from_vggss": 0.0}
    assert "leakage_report" not in note
    own_flickr = _loc_summary("senocak", "flickr", 0.85)
    t1 = pt.paper_beside_ours("senocak_table1", [own_flickr], config_note=note).set_index("method")
    assert math.isnan(t1.loc["Ours", _col("SoundNet-Flickr test", "cIoU@0.5", "ours")])
    summaries = [own_flickr, _loc_summary("senocak", "flickr_from_vggss", 0.79),
                 _loc_summary("senocak", "vggss", 0.40, 5158)]
    t1 = pt.paper_beside_ours("senocak_table1", summaries, config_note=note).set_index("method")
    assert t1.loc["Ours", _col("SoundNet-Flickr test", "cIoU@0.5", "ours")] == pytest.approx(79.0)
    assert t1.loc["Ours", _col("VGG-SS", "cIoU@0.5", "ours")] == pytest.approx(40.0)
    diff = t1.loc["Ours", "setting_diff"]
    assert "SoundNet-Flickr test: N=249" in diff and "models trained on 'vggss' (cross-dataset, train list vggss_144k)" in diff
    assert "VGG-SS: N=5158" in diff and "train list vggss_144k, train_list_mode=original" in diff
    assert "train split holds 72 % of the test clips" in diff
    assert "train_list_mode={" not in diff  # the per-dataset mapping is never printed whole
    t2 = pt.paper_beside_ours("senocak_table2", summaries, config_note=note).set_index("method")
    assert t2.loc["Ours", _col("SoundNet-Flickr test", "cIoU@0.5", "ours")] == pytest.approx(85.0)
    # without the report (not built yet) the note simply has no leakage
    assert "leakage" not in pt.note_with_leakage({"leakage_report": str(tmp_path / "none.csv")})


def test_row_specific_training_set_reads_its_own_evaluation() -> None:
    """OneAVM T4: the "[train: Kinetics]" row is the Kinetics-400 model on VGGSound-Music
    (`vggsound_music_from_k400`), the "[train: VGGSound-Music]" row the VGGSound-Music model."""
    def rec(dataset: str, ir: float) -> dict:
        return {"method": "oneavm", "dataset": dataset, "n_available": 1201,
                "tasks": {"retrieval": {"test": {"ir_acc": ir, "xnn_acc": ir, "wnn_acc": ir, "n": 1201}}}}

    t4 = pt.paper_beside_ours("oneavm_table4", [rec("vggsound_music", 0.5)]).set_index("method")
    assert t4.loc["OneAVM [train: VGGSound-Music]", _col("VGGSound-Music", "IR-Acc", "ours")] == pytest.approx(50.0)
    assert math.isnan(t4.loc["OneAVM [train: Kinetics]", _col("VGGSound-Music", "IR-Acc", "ours")])
    assert t4.loc["OneAVM [train: Kinetics]", "status"] == "missing"
    t4 = pt.paper_beside_ours("oneavm_table4", [rec("vggsound_music", 0.5), rec("vggsound_music_from_k400", 0.1)])
    t4 = t4.set_index("method")
    assert t4.loc["OneAVM [train: Kinetics]", _col("VGGSound-Music", "IR-Acc", "ours")] == pytest.approx(10.0)
    assert t4.loc["OneAVM [train: VGGSound-Music]", _col("VGGSound-Music", "IR-Acc", "ours")] == pytest.approx(50.0)
    assert t4.loc["OneAVM [train: Kinetics -> VGGSound-Music]", "status"] == "not_implemented"


PRESETS = ("oneavm", "avgn", "senocak", "qian", "m2vsl")


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_tables_map_to_configured_datasets(preset: str) -> None:
    """Every dataset key a preset's paper tables read is configured in that preset (else its cells could never
    fill), and cross-dataset cells read datasets whose `train_from` is set."""
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / f"{preset}.yaml").read_text())
    configured = set(config["datasets"])
    for table_id in config["paper_tables"]:
        spec = pt.PAPER_TABLES[table_id]
        keys = {d.dataset for d in spec.datasets.values()} | {
            k for row in spec.methods.values() for k in row.datasets.values()}
        keys.discard(None)
        assert keys <= configured, (table_id, keys - configured)
    datasets = config["datasets"]
    if preset == "senocak":
        assert datasets["flickr_from_vggss"]["train_from"] == datasets["avsbench_s4_from_vggss"]["train_from"] == "vggss"
        assert "train_from" not in datasets["flickr"]
    if preset == "oneavm":
        assert datasets["vggsound_music_from_k400"]["train_from"] == "kinetics400"


def test_oneavm_f1_is_the_positives_only_max_f1() -> None:
    """OneAVM's F1 (SLAVC's definition on test sets without negatives) is our max-F1 over the sounding samples
    (``maxf1_visible@0.5``), not ``max_f1``, which also counts the non-sounding negatives of the extended set."""
    summary = {"method": "oneavm", "dataset": "vggsound_instruments", "n_available": 446,
               "primary_protocol": "ezvsl_test",
               "tasks": {"extended": {"ezvsl_test": {"max_f1": 0.25, "maxf1_all@0.5": 0.25,
                                                     "maxf1_visible@0.5": 0.625, "n": 446}}}}
    row = pt.paper_beside_ours("oneavm_table1", [summary]).set_index("method").loc["OneAVM"]
    assert row[_col("VGGSound-Instruments", "F1", "ours")] == pytest.approx(62.5)
    for table_id in ("oneavm_table1", "oneavm_table4", "oneavm_table5"):
        assert pt.PAPER_TABLES[table_id].metric_map("VGGSound-Music", "F1").key == "maxf1_visible@0.5"
