"""Benchmark tables: rows per (method, setting), rates in percent, dB and counts untouched, all formats written."""

from __future__ import annotations

import pandas as pd

from avbench.tables import benchmark_table, is_rate, write_table


def _summary(method: str, ciou: float) -> dict:
    return {
        "method": method, "dataset": "synthav",
        "tasks": {
            "localization": {"adaptive": {"ciou_sr@0.5": ciou, "auc": 0.25, "n": 10, "protocol": "x"}},
            "separation": {"test": {"sdr": 3.5, "sdr_mix": 0.1, "n": 4, "n_skipped": 1}},
        },
    }


def test_rates_scaled_to_percent_db_and_counts_kept() -> None:
    assert is_rate("ciou_sr@0.5") and is_rate("auc") and is_rate("a2i_r@1")
    assert not is_rate("sdr") and not is_rate("sdr_mix") and not is_rate("n") and not is_rate("cap_skipped")
    table = benchmark_table("synthav_localization", [_summary("ezvsl", 0.5), _summary("random", 0.125)])
    assert list(table["method"]) == ["ezvsl", "random"]
    assert table["ciou_sr@0.5"].tolist() == [50.0, 12.5]
    assert table["n"].tolist() == [10, 10]
    assert "protocol" not in table.columns
    sep = benchmark_table("synthav_separation", [_summary("oneavm", 0.5)])
    assert sep.loc[0, "sdr"] == 3.5 and sep.loc[0, "n_skipped"] == 1


def test_empty_task_gives_an_empty_table(tmp_path) -> None:
    table = benchmark_table("synthav_segmentation", [_summary("ezvsl", 0.5)])
    assert table.empty
    write_table(table, parquet=tmp_path / "t.parquet", csv=tmp_path / "t.csv", md=tmp_path / "t.md",
                title="synthav_segmentation")
    assert (tmp_path / "t.md").read_text().startswith("# synthav_segmentation")


def test_write_all_formats(tmp_path) -> None:
    table = benchmark_table("synthav_localization", [_summary("ezvsl", 0.5)])
    write_table(table, parquet=tmp_path / "t.parquet", csv=tmp_path / "t.csv", md=tmp_path / "t.md",
                title="synthav_localization")
    assert pd.read_parquet(tmp_path / "t.parquet").equals(table)
    assert pd.read_csv(tmp_path / "t.csv")["ciou_sr@0.5"].tolist() == [50.0]
    md = (tmp_path / "t.md").read_text()
    assert "| ezvsl | adaptive | 50.00 |" in md


def test_extended_table_and_piap_code_column(tmp_path) -> None:
    summary = {
        "method": "ezvsl", "dataset": "synthav",
        "tasks": {
            "extended": {"sslalignment_adaptive": {"ap": 0.5, "ap_exact": 1.0, "max_f1": 0.75, "loc_acc": 0.25,
                                                   "auc_visible": 0.5, "n": 4, "n_all": 8, "n_small": 0,
                                                   "ap_impl": "slavc", "protocol": "sslalignment_adaptive"}},
            "multisource": {"mix_separate": {"class_ciou_sr@0.3": 0.5, "piap": 0.8, "piap_avgn_code": 0.3,
                                             "piap_avgn_code_n": 6, "n": 6}},
        },
    }
    ext = benchmark_table("synthav_extended", [summary])
    assert ext.loc[0, "ap"] == 50.0 and ext.loc[0, "loc_acc"] == 25.0
    assert ext.loc[0, "n_all"] == 8 and ext.loc[0, "n_small"] == 0  # counts are not percentages
    assert list(ext.columns[3:7]) == ["ap", "ap_exact", "max_f1", "loc_acc"]
    write_table(ext, parquet=tmp_path / "e.parquet", csv=tmp_path / "e.csv", md=tmp_path / "e.md",
                title="synthav_extended")
    md = (tmp_path / "e.md").read_text()
    assert "| method | setting | ap | ap_exact | max_f1 | loc_acc | auc_visible | n | n_all |" in md
    assert "| ezvsl | sslalignment_adaptive | 50.00 | 100.00 | 75.00 | 25.00 | 50.00 | 4 | 8 |" in md
    assert "negative" in md  # the note says how the extended set is built
    ms = benchmark_table("synthav_multisource", [summary])
    assert ms.loc[0, "piap_avgn_code"] == 30.0 and ms.loc[0, "piap_avgn_code_n"] == 6
    write_table(ms, parquet=tmp_path / "m.parquet", csv=tmp_path / "m.csv", md=tmp_path / "m.md",
                title="synthav_multisource")
    md = (tmp_path / "m.md").read_text()
    assert "| piap | piap_avgn_code |" in md and "released AVGN code's variant" in md
