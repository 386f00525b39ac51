"""Result tables: ``results/tables/<benchmark>.{parquet,csv,md}`` from per-method evaluation summaries."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from avbench import io

# Column order for known metric keys; anything else follows alphabetically.
PREFERRED_ORDER = [
    "ciou_sr@0.5", "auc", "avg_ciou", "pixel_ap", "oracle_sr@0.5",
    "class_ciou_sr@0.3", "class_auc", "cap", "piap", "piap_avgn_code",
    "ap", "ap_exact", "max_f1", "loc_acc",
    "sdr", "sir", "sar", "sdr_mix",
    "ir_acc", "xnn_acc", "wnn_acc", "a2i_r@1", "a2i_r@5", "a2i_r@10", "i2a_r@1", "i2a_r@5", "i2a_r@10",
    "miou", "fscore", "n",
]


# The Markdown view keeps the headline columns of each task; Parquet and CSV keep every column.
MD_COLUMNS = {
    "localization": ["ciou_sr@0.5", "auc", "avg_ciou", "pixel_ap", "oracle_sr@0.5", "n"],
    "multisource": ["class_ciou_sr@0.3", "class_auc", "cap", "piap", "piap_avgn_code", "agnostic_ciou_sr@0.3", "n"],
    "extended": ["ap", "ap_exact", "max_f1", "loc_acc", "auc_visible", "n", "n_all"],
    "retrieval": ["ir_acc", "xnn_acc", "wnn_acc", "a2i_r@1", "a2i_r@5", "a2i_r@10", "i2a_r@1", "i2a_r@5",
                  "i2a_r@10", "n"],
    "separation": ["sdr", "sir", "sar", "sdr_mix", "n", "n_skipped"],
    "segmentation": ["miou", "fscore", "n"],
}
# Localization settings scored on each clip's ground-truth-class map end with this (written by avbench.evaluate).
GT_CLASS_SUFFIX = "_gt_class"
TASK_NOTES = {
    "localization": "cIoU success rates, AUC, mean cIoU and pixel AP in %; oracle_sr@0.5 is the ceiling of "
                    "cIoU@0.5 that a perfect ranking reaches under the same thresholding protocol (setting). "
                    "Settings ending in _gt_class score class-aware methods on the map of each clip's ground-truth "
                    "class (AVGN's single-source protocol); the others use each method's class-agnostic map.",
    "multisource": "class-aware cIoU (mean over sounding sources) success rate and AUC, CAP and PIAP in %. "
                   "piap is the paper definition (best source-to-map assignment of pixel APs); piap_avgn_code is "
                   "the released AVGN code's variant (AP with y_true = binarised map and y_score = GT, map k "
                   "scored against GT k, no permutation; PROTOCOLS 4.8), for parity only.",
    "extended": "SLAVC extended-set metrics in % (PROTOCOLS 4.5): every test clip scored with its own audio "
                "(positive) and with the audio of a seeded different-class test clip (negative, no GT). "
                "Confidence = mean of the top 25 % of the map's raw scores; positives binarised with the "
                "setting's protocol. ap = SLAVC calc_ap at IoU 0.5 (as that code computes it: starts at the "
                "second-highest confidence), ap_exact = all-points AP; max_f1 and loc_acc at IoU 0.5; "
                "n = test clips, n_all = positives + negatives.",
    "retrieval": "IR-Acc, xNN-Acc, wNN-Acc and Recall@k (audio->image a2i, image->audio i2a) in %.",
    "separation": "SDR / SIR / SAR in dB (BSS-Eval v3); sdr_mix scores the unprocessed mixture.",
    "segmentation": "mIoU and F-score (beta^2 = 0.3) in %, AVSBench conventions.",
}


def benchmark_task(benchmark: str) -> str:
    """The task a benchmark table reports: the suffix after the dataset name (``synthav_localization``)."""
    return benchmark.rsplit("_", 1)[-1]


def is_rate(key: str) -> bool:
    """Metrics that are fractions in [0, 1] (reported in percent, as the papers do); dB and counts are not."""
    unscaled = ("sdr", "sir", "sar")
    if key == "n" or key.startswith("n_") or key.endswith(("_n", "_skipped")) or key.startswith("n_batches"):
        return False
    return not any(part in key for part in unscaled)


def summary_rows(summary: dict[str, Any], task: str) -> list[dict[str, Any]]:
    """Flatten one method's summary for one task into rows (one per protocol / evaluation set).

    Rates become percentages; strings (e.g. the protocol name) and nested values are left out of the columns.
    """
    rows = []
    for setting, metrics in summary.get("tasks", {}).get(task, {}).items():
        row = {"method": summary["method"], "setting": setting, "dataset": summary["dataset"]}
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            row[key] = 100.0 * value if is_rate(key) and isinstance(value, float) else value
        rows.append(row)
    return rows


def benchmark_table(benchmark: str, summaries: list[dict[str, Any]]) -> pd.DataFrame:
    task = benchmark_task(benchmark)
    rows = [row for summary in summaries for row in summary_rows(summary, task)]
    if not rows:
        return pd.DataFrame({"method": [], "setting": [], "note": []})
    frame = pd.DataFrame(rows)
    metric_cols = [c for c in frame.columns if c not in ("method", "setting", "dataset")]
    ordered = [c for c in PREFERRED_ORDER if c in metric_cols]
    ordered += sorted(c for c in metric_cols if c not in ordered)
    frame = frame[["method", "setting", "dataset", *ordered]]
    return frame.sort_values(["setting", "method"], kind="stable").reset_index(drop=True)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def to_markdown(frame: pd.DataFrame, title: str, notes: list[str] | None = None) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- {note}" for note in notes or []]
    if notes:
        lines.append("")
    header = list(frame.columns)
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" if c in ("method", "setting", "dataset") else "---:" for c in header) + "|")
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c]) for c in header) + " |")
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, *, parquet: str | Path, csv: str | Path, md: str | Path, title: str,
                notes: list[str] | None = None) -> None:
    io.write_parquet(parquet, frame)
    io.write_csv(csv, frame)
    task = benchmark_task(title)
    keep = [c for c in ("method", "setting", *MD_COLUMNS.get(task, [])) if c in frame.columns]
    view = frame[keep] if len(keep) > 2 else frame
    io.write_text(md, to_markdown(view, title, [TASK_NOTES[task], *(notes or [])] if task in TASK_NOTES else notes))
