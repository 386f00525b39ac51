"""Paper tables: every transcribed table of the five target papers, with our number beside the paper's.

The papers' numbers live in ``shared/paper_results/*.csv`` (one file per paper table, long format
``paper,table,task,dataset,method,metric,value,notes``; see its README and PROTOCOLS 7). This module

- loads any of those files into a normalised long frame (:func:`load_paper_table`);
- knows, for every table (:data:`PAPER_TABLES`), which avbench result each paper cell corresponds to: our dataset
  key, task, setting (localization protocol preset / multi-source set / split), metric key, scale and method name;
- builds the comparison (:func:`paper_beside_ours`) from evaluation summaries (``avbench.evaluate``) and writes
  it as Parquet / CSV / Markdown / LaTeX with the reproduction caveats underneath (:func:`write_paper_table`).

Every "ours" cell carries an explicit status; nothing is silently dropped or guessed. Where the mapping of a
paper metric to ours is our reading rather than stated by the paper, the spec says so in ``note``.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from avbench import io
from avbench.tables import GT_CLASS_SUFFIX

ENV_DIR = "AVBENCH_PAPER_RESULTS"
RAW_COLUMNS = ["paper", "table", "task", "dataset", "method", "metric", "value", "notes"]
LONG_COLUMNS = ["table_id", "paper", "table", "task", "dataset", "method", "metric", "value", "value_text",
                "train_set", "pre_vision", "notes"]
SEP = " | "  # column names of the wide frame: "<paper dataset> | <paper metric> | paper|ours"

# PROTOCOLS 7, "Reproduction caveats to print beside any comparison with these numbers".
REPRODUCTION_CAVEATS: tuple[str, ...] = (
    "Evaluated subsets differ by availability (e.g. Senocak used 4,655 of 5,158 VGG-SS clips); "
    "N_available is reported with every number (n_ours).",
    "VGGSound-144k training contains 72 % of the VGG-SS test clips (PROTOCOLS 1.11).",
    "Median-protocol cIoU@0.5 on VGG-SS is capped at 50.5 % (PROTOCOLS 4.12).",
    "AVGN's released code decodes MUSIC boxes wrongly and cannot run its multi-source test as shipped (1.7, 5.1); "
    "OneAVM and M2VSL release no code; Senocak et al. release no training code (k-NN positives must be rebuilt).",
    "Stated audio front-ends are not self-consistent (2.4); audio_frontend is recorded with every result.",
    "Text-versus-table inconsistencies are listed in paper_results/README.md.",
)

# Our task keys; "extended" = SLAVC extended-set metrics (AP / max-F1 / LocAcc, PROTOCOLS 4.5).
TASKS = ("localization", "multisource", "extended", "retrieval", "separation", "segmentation")
ANY = "*"  # setting wildcard: the summary's primary protocol, else the task's only setting
ANY_GT_CLASS = ANY + GT_CLASS_SUFFIX  # wildcard: the primary protocol's ground-truth-class setting
DEFAULT_SETTINGS: dict[str, tuple[str, ...]] = {
    "localization": (ANY,),
    "extended": (ANY,),
    "multisource": ("mix_concat_lr", "mix_separate"),  # paper text convention first (PROTOCOLS 5.2), then 5.1
    "retrieval": ("test",),
    "separation": ("test", ANY),
    "segmentation": ("test", ANY),
}
STATUSES = ("complete", "partial", "missing", "not_implemented")


@dataclass(frozen=True)
class MetricMap:
    """One paper metric -> our ``tasks[task][setting][key]``; ``scale`` converts ours to the paper's unit."""

    task: str
    key: str | None  # None: avbench computes no counterpart
    scale: float = 100.0  # fractions -> percent; 1.0 for dB
    note: str = ""


@dataclass(frozen=True)
class DatasetMap:
    """One paper dataset -> our dataset key (``summary["dataset"]``) and the settings to look up per task."""

    dataset: str | None  # None: not available in avbench
    paper_n: str = ""  # the paper's test size as stated
    settings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # task -> candidates, first = paper's
    note: str = ""


@dataclass(frozen=True)
class RowMap:
    """One paper row label -> our registry name (None: not implemented)."""

    method: str | None
    ogl: bool | None = None  # True/False: only a summary with/without OGL matches; None: any
    minus: str | None = None  # "delta" rows: ours = value(method) - value(minus)
    note: str = ""
    # paper dataset -> our dataset key for this row only (a row trained elsewhere, e.g. OneAVM T4 "[train:
    # Kinetics]" reads the VGGSound-Music evaluation of the Kinetics-trained model); wins over the table's map
    datasets: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class TableSpec:
    table_id: str
    file: str
    title: str
    datasets: Mapping[str, DatasetMap]
    metrics: Mapping[str | tuple[str, str], MetricMap]  # metric, or (dataset, metric) for dataset-specific maps
    methods: Mapping[str, RowMap]
    protocols: tuple[str, ...] = ()  # localization / extended protocol presets of the paper (first = main)
    caveats: tuple[str, ...] = ()
    # the paper gives each clip's class at test time (AVGN): single-source cells of class-aware methods read the
    # ``<protocol>_gt_class`` settings first; methods without class maps have none and fall back to their own map
    class_given: bool = False

    def metric_map(self, dataset: str, metric: str) -> MetricMap | None:
        return self.metrics.get((dataset, metric)) or self.metrics.get(metric)

    def settings(self, dataset: str, task: str) -> tuple[str, ...]:
        dmap = self.datasets.get(dataset)
        if dmap is not None and task in dmap.settings:
            return dmap.settings[task]
        if task in ("localization", "extended") and self.protocols:
            if task == "localization" and self.class_given:
                return (*(p + GT_CLASS_SUFFIX for p in self.protocols), ANY_GT_CLASS, *self.protocols, ANY)
            return (*self.protocols, ANY)
        return DEFAULT_SETTINGS[task]


# --------------------------------------------------------------------------------------------------------------
# Metric / method vocabularies shared by several tables
# --------------------------------------------------------------------------------------------------------------

def _loc(key: str, note: str = "") -> MetricMap:
    return MetricMap("localization", key, 100.0, note)


def _ms(key: str) -> MetricMap:
    return MetricMap("multisource", key)


SINGLE = {"AP": _loc("pixel_ap"), "IoU@0.5": _loc("ciou_sr@0.5"), "IoU@0.3": _loc("ciou_sr@0.3"), "AUC": _loc("auc")}
MULTI = {"CAP": _ms("cap"), "PIAP": _ms("piap"), "CIoU@0.3": _ms("class_ciou_sr@0.3"),
         "CIoU@0.1": _ms("class_ciou_sr@0.1"), "AUC": _ms("class_auc")}
SENOCAK_LOC = {"cIoU@0.5": _loc("ciou_sr@0.5"), "AUC": _loc("auc")}
SEP_DB = {"SDR": MetricMap("separation", "sdr", 1.0), "SIR": MetricMap("separation", "sir", 1.0),
          "SAR": MetricMap("separation", "sar", 1.0)}
RECOG = {"IR-Acc": MetricMap("retrieval", "ir_acc"), "xNN-Acc": MetricMap("retrieval", "xnn_acc"),
         "wNN-Acc": MetricMap("retrieval", "wnn_acc")}
SEG = {"mIoU": MetricMap("segmentation", "miou"), "F-score": MetricMap("segmentation", "fscore")}
RETR = {f"{d} R@{k}": MetricMap("retrieval", f"{o}_r@{k}") for d, o in (("A->I", "a2i"), ("I->A", "i2a"))
        for k in (1, 5, 10)}
EXTENDED = {"AP": MetricMap("extended", "ap"), "max-F1": MetricMap("extended", "max_f1"),
            "LocAcc": MetricMap("extended", "loc_acc")}
ONEAVM_F1_KEY = "maxf1_visible@0.5"  # avbench.metrics.extended key: visible (bb > 0) subset, IoU 0.5
ONEAVM_LOC = {
    "PIAP": _loc("pixel_ap", "PIAP with K = 1 = pixel AP (PROTOCOLS 4.8)"),
    ("VGGSound-Instruments", "Precision"): _loc("ciou_sr@0.3", "Precision = SR@0.3 on VGGSound-Instruments"),
    ("VGGSound-All", "Precision"): _loc("ciou_sr@0.5", "Precision = SR@0.5 on VGG-SS"),
    ("VGGSound-Music", "Precision"): _loc("ciou_sr@0.3", "[ours reading] threshold unstated; SR@0.3 as for instruments"),
    # OneAVM's test sets have no non-sounding negatives: its F1 is SLAVC's max-F1 over the sounding (visible)
    # samples only. Our ``max_f1`` is over all samples, negatives included, so it is not the same number.
    "F1": MetricMap("extended", ONEAVM_F1_KEY, 100.0,
                    "[ours reading] SLAVC max-F1 (4.5) at IoU 0.5 over positives only (no negatives)"),
}

AVGN_PROTOCOLS = ("avgn",)
GT_CLASS_CAVEAT = ("Class-aware methods (AVGN, M2VSL, CoarsetoFine) are scored on the map of each clip's "
                   "ground-truth class, as AVGN's protocol gives the class at test time; the others on their "
                   "class-agnostic map.",)
EZVSL_PROTOCOLS = ("ezvsl_test",)
SENOCAK_PROTOCOLS = ("sslalignment",)
QIAN_PROTOCOLS = ("qian_flickr",)

# Baseline rows shared by the EZ-VSL-lineage tables (AVGN / M2VSL / OneAVM).
LINEAGE_METHODS: dict[str, RowMap] = {
    "EZ-VSL": RowMap("ezvsl"),
    "SLAVC": RowMap("slavc"),
    "CoarsetoFine": RowMap("qian"),
    "AVGN": RowMap("avgn"),
    "OneAVM": RowMap("oneavm"),
    "M2VSL": RowMap("m2vsl"),
}
SENOCAK_METHODS: dict[str, RowMap] = {
    "Ours": RowMap("senocak", ogl=False),
    "Ours (w/o OGL)": RowMap("senocak", ogl=False),
    "Ours (w/ OGL)": RowMap("senocak", ogl=True),
    "EZ-VSL": RowMap("ezvsl"),
    "EZ-VSL (w/o OGL)": RowMap("ezvsl", ogl=False),
    "EZ-VSL (w/ OGL)": RowMap("ezvsl", ogl=True),
    "SLAVC": RowMap("slavc"),
    "SLAVC (w/o OGL)": RowMap("slavc", ogl=False),
    "SLAVC (w/ OGL)": RowMap("slavc", ogl=True),
    "SLAVC (w/o OGL) [listed under 'with OGL']": RowMap(
        None, note="ambiguous paper row (printed 'w/o OGL' inside the OGL block); not matched"),
    "CoarsetoFine": RowMap("qian"),
}

VGGSS_N = "5,158 (Senocak: 4,655 available)"
FLICKR_N = "250 (249 resolvable)"


def _spec(table_id: str, file: str, title: str, datasets: Mapping[str, DatasetMap],
          metrics: Mapping[str | tuple[str, str], MetricMap], methods: Mapping[str, RowMap],
          protocols: tuple[str, ...] = (), caveats: tuple[str, ...] = (), class_given: bool = False) -> TableSpec:
    return TableSpec(table_id, file, title, dict(datasets), dict(metrics), dict(methods), protocols, caveats,
                     class_given)


def _ds(dataset: str | None, paper_n: str = "", note: str = "", **settings: tuple[str, ...]) -> DatasetMap:
    return DatasetMap(dataset, paper_n, dict(settings), note)


_MIX = ("mix_concat_lr", "mix_separate")

PAPER_TABLES: dict[str, TableSpec] = {spec.table_id: spec for spec in [
    # ---------------------------------------------------------------- OneAVM (Mo & Morgado, ICML 2023)
    _spec("oneavm_table1", "oneavm_table1_localization.csv", "OneAVM Table 1: visual sound localization",
          {"VGGSound-Instruments": _ds("vggsound_instruments", "446"),
           "VGGSound-Music": _ds("vggsound_music", "1,201"),
           "VGGSound-All": _ds("vggsound_single", "5,158 (VGG-SS)", "train: VGGSound 150k clips / 221 classes")},
          ONEAVM_LOC, LINEAGE_METHODS, EZVSL_PROTOCOLS),
    _spec("oneavm_table2", "oneavm_table2_separation.csv", "OneAVM Table 2: sound source separation (dB)",
          {"MUSIC": _ds("music", "90 solo test videos"), "VGGSound-Music": _ds("vggsound_music", "1,201 pairs")},
          SEP_DB, LINEAGE_METHODS),
    _spec("oneavm_table3", "oneavm_table3_recognition.csv", "OneAVM Table 3: audio-visual recognition",
          {"VGGSound-Music": _ds("vggsound_music", "1,201")}, RECOG, LINEAGE_METHODS),
    _spec("oneavm_table4", "oneavm_table4_kinetics_pretraining.csv", "OneAVM Table 4: Kinetics pre-training",
          {"VGGSound-Music": _ds("vggsound_music", "1,201")},
          {**ONEAVM_LOC, **SEP_DB, **RECOG},
          {"OneAVM [train: VGGSound-Music]": RowMap("oneavm"),
           "OneAVM [train: Kinetics]": RowMap(
               "oneavm", note="cross-dataset: Kinetics-400-trained model on the VGGSound-Music test",
               datasets={"VGGSound-Music": "vggsound_music_from_k400"}),
           "OneAVM [train: Kinetics -> VGGSound-Music]": RowMap(None, note="Kinetics pre-training not reproduced")},
          EZVSL_PROTOCOLS),
    _spec("oneavm_table5", "oneavm_table5_ablation.csv", "OneAVM Table 5: ablation (CL / MAS / MVA)",
          {"VGGSound-Music": _ds("vggsound_music", "1,201")},
          {**ONEAVM_LOC, **SEP_DB, **RECOG},
          {"OneAVM (CL+MAS+MVA)": RowMap("oneavm", note="full model")}, EZVSL_PROTOCOLS),
    _spec("oneavm_table6", "oneavm_table6_multisource_precision.csv",
          "OneAVM Table 6: localization precision by number of sources",
          {"VGGSound-All": _ds("vggsound_single", "5,158 (VGG-SS)")},
          {m: MetricMap("localization", None, note="per-#sources grouping not computed by avbench")
           for m in ("Precision (1 source)", "Precision (2 sources)", "Precision (3+ sources)")},
          LINEAGE_METHODS, EZVSL_PROTOCOLS,
          ("Grouping of samples by number of GT boxes is our reading of the paper (PROTOCOLS 7).",)),
    # ---------------------------------------------------------------- AVGN (Mo & Tian, CVPR 2023)
    _spec("avgn_table1", "avgn_table1_singlesource.csv", "AVGN Table 1: single-source localization",
          {"MUSIC-Solo": _ds("music", "90 solo test videos (released list 2,124 frames)"),
           "VGGSound-Instruments": _ds("vggsound_instruments", "446"),
           "VGGSound-Single": _ds("vggsound_single", "5,158")},
          SINGLE, LINEAGE_METHODS, AVGN_PROTOCOLS, GT_CLASS_CAVEAT, class_given=True),
    _spec("avgn_table2", "avgn_table2_multisource.csv", "AVGN Table 2: multi-source localization",
          {"MUSIC-Duet": _ds("music", "17 duet test videos", multisource=("duet_clips",)),
           "VGGSound-Instruments": _ds("vggsound_instruments", "446 mixtures", multisource=_MIX),
           "VGGSound-Duet": _ds("vggsound_single", "5,158 mixtures", multisource=_MIX)},
          MULTI, LINEAGE_METHODS, AVGN_PROTOCOLS,
          ("AVGN's multi-source numbers cannot be regenerated from the released code as is (PROTOCOLS 5.1).",)),
    _spec("avgn_table3", "avgn_table3_ablation.csv", "AVGN Table 3: ablation (AVCT / AVG)",
          {"MUSIC-Solo": _ds("music", "90 solo test videos"),
           "MUSIC-Duet": _ds("music", "17 duet test videos", multisource=("duet_clips",))},
          {**SINGLE, **{("MUSIC-Duet", m): v for m, v in MULTI.items()}},
          {"AVGN (+AVCT +AVG)": RowMap("avgn", note="full model")}, AVGN_PROTOCOLS, GT_CLASS_CAVEAT,
          class_given=True),
    _spec("avgn_text_3source", "avgn_text_3source.csv", "AVGN Sec. 4.3: 3-source transfer (text)",
          {"VGGSound-Duet (3-source mixtures)": _ds(
              "vggsound_single", "5,158", multisource=("mix3_concat_lr", "mix3_separate"),
              note="3-source mixtures are not generated by avbench yet")},
          MULTI, LINEAGE_METHODS, AVGN_PROTOCOLS),
    # ---------------------------------------------------------------- M2VSL (Mo & Wang 2024)
    _spec("m2vsl_table1", "m2vsl_table1_singlesource.csv", "M2VSL Table 1: single-source localization",
          {"VGGSound-Instruments": _ds("vggsound_instruments", "446"),
           "VGGSound-Single": _ds("vggsound_single", "5,158")},
          SINGLE, LINEAGE_METHODS, AVGN_PROTOCOLS, GT_CLASS_CAVEAT, class_given=True),
    _spec("m2vsl_table2", "m2vsl_table2_text_deltas.csv",
          "M2VSL Table 2 (body missing): gains over AVGN stated in the text",
          {"VGGSound-Instruments": _ds("vggsound_instruments", "446 mixtures", multisource=_MIX),
           "VGGSound-Duet": _ds("vggsound_single", "5,158 mixtures", multisource=_MIX)},
          {f"delta {m}": v for m, v in MULTI.items()},
          {"M2VSL minus AVGN": RowMap("m2vsl", minus="avgn", note="ours = m2vsl - avgn")}, AVGN_PROTOCOLS,
          ("M2VSL Table 2 has no numbers in the text; these are the stated gains over AVGN, not absolute values.",)),
    _spec("m2vsl_table3", "m2vsl_table3_avsbench_ws_segmentation.csv",
          "M2VSL Table 3: weakly-supervised AV segmentation (AVSBench)",
          {"AVSBench S4 (Single Source)": _ds("avsbench_s4", "740 videos x 5 frames"),
           "AVSBench MS3 (Multiple Source)": _ds("avsbench_ms3", "64 videos x 5 frames",
                                                 note="MS3 inferred from the header")},
          SEG, LINEAGE_METHODS, caveats=(
              "How localization maps become masks is not stated (PROTOCOLS 4.9); default absolute@0.5.",)),
    _spec("m2vsl_table4", "m2vsl_table4_ablation.csv", "M2VSL Table 4: ablation (MMC / MMT)",
          {"AVSBench S4 (Single Source)": _ds("avsbench_s4", "740 videos x 5 frames"),
           "AVSBench MS3 (Multiple Source)": _ds("avsbench_ms3", "64 videos x 5 frames")},
          SEG, {"M2VSL (+MMC +MMT)": RowMap("m2vsl", note="full model")}),
    # ---------------------------------------------------------------- Qian et al. (ECCV 2020)
    _spec("qian_table1", "qian_table1_flickr.csv", "Qian et al. Table 1: localization on SoundNet-Flickr",
          {"SoundNet-Flickr test (249)": _ds("flickr", "249")},
          SENOCAK_LOC,
          {"Ours 10K": RowMap("qian", note="trained on 10k Flickr pairs"),
           "Ours 20K": RowMap(None, note="20k training variant not reproduced")},
          QIAN_PROTOCOLS),
    _spec("qian_table2", "qian_table2_audioset_multisource.csv",
          "Qian et al. Table 2: multi-source localization on AudioSet-Instrument",
          {d: _ds(None, n, "AudioSet-Instrument is not available in avbench") for d, n in (
              ("AudioSet-Instrument level-1 (1 source, 4,273 pairs)", "4,273"),
              ("AudioSet-Instrument level-2 (2 sources, 211 pairs)", "211"),
              ("AudioSet-Instrument level-3 (3 sources, 19 pairs)", "19"))},
          {"cIoU_class@0.5": _ms("class_ciou_sr@0.5"), "cIoU_class@0.3": _ms("class_ciou_sr@0.3"),
           "AUC": _ms("class_auc")},
          {"Ours": RowMap("qian")}),
    _spec("qian_table3", "qian_table3_music_separation.csv", "Qian et al. Table 3: separation on MUSIC (dB)",
          {"MUSIC [train: solo]": _ds(None, note="solo-only training variant not configured (configs/qian.yaml "
                                                 "trains on solo + duet)"),
           "MUSIC [train: solo+duet]": _ds("music", "first/second video per class as val/test")},
          SEP_DB,
          {"Ours Visual": RowMap("qian", note="visual guidance (main result)"),
           "Ours Audio": RowMap(None, note="variant not reproduced"),
           "Ours Grad-CAM": RowMap(None, note="variant not reproduced")}),
    # ---------------------------------------------------------------- Senocak et al. (ICCV 2023)
    _spec("senocak_table1", "senocak_table1_vggss_flickr.csv",
          "Senocak et al. Table 1: localization (train VGGSound-144k)",
          {"VGG-SS": _ds("vggss", VGGSS_N),
           "SoundNet-Flickr test": _ds("flickr_from_vggss", FLICKR_N,
                                       "cross-dataset: trained on VGGSound-144k, tested on Flickr")},
          SENOCAK_LOC, SENOCAK_METHODS, SENOCAK_PROTOCOLS,
          ("Table 1's caption says SLAVC gives no AUC, yet a VGG-SS AUC of 39.40 is printed (README).",)),
    _spec("senocak_table2", "senocak_table2_flickr144k.csv",
          "Senocak et al. Table 2: localization on Flickr (train Flickr-144k)",
          {"SoundNet-Flickr test": _ds("flickr", FLICKR_N, "paper: trained on SoundNet-Flickr-144k")},
          SENOCAK_LOC, SENOCAK_METHODS, SENOCAK_PROTOCOLS),
    _spec("senocak_table3", "senocak_table3_openset_heard_unheard.csv",
          "Senocak et al. Table 3: open-set localization (LVS / EZ-VSL split)",
          {"VGG-SS Heard 110": _ds("vggss_heard", "2,564"), "VGG-SS Unheard 110": _ds("vggss_unheard", "2,575")},
          SENOCAK_LOC, SENOCAK_METHODS, SENOCAK_PROTOCOLS),
    _spec("senocak_table4", "senocak_table4_openset_ssltie_split.csv",
          "Senocak et al. Table 4: open-set localization (SSL-TIE split)",
          {d: _ds(None, note="SSL-TIE split not in shared/") for d in (
              "VGG-SS Heard 110 (SSL-TIE split)", "VGG-SS Unheard 110 (SSL-TIE split)")},
          SENOCAK_LOC, SENOCAK_METHODS, SENOCAK_PROTOCOLS),
    _spec("senocak_table5", "senocak_table5_avsbench_s4.csv", "Senocak et al. Table 5: zero-shot AVSBench S4",
          {"AVSBench S4": _ds("avsbench_s4_from_vggss", "740 videos x 5 frames",
                              "zero-shot: trained on VGGSound-144k, no AVSBench training")},
          SEG, SENOCAK_METHODS),
    _spec("senocak_table6", "senocak_table6_retrieval.csv", "Senocak et al. Table 6: cross-modal retrieval",
          {"VGG-SS": _ds("vggss", VGGSS_N)}, RETR, SENOCAK_METHODS),
    _spec("senocak_table7", "senocak_table7_extended.csv",
          "Senocak et al. Table 7: localization with non-sounding negatives",
          {"Extended Flickr-SoundNet": _ds("flickr", "250 + 250 negatives"),
           "Extended VGG-SS": _ds("vggss", "5,158 + 5,158 negatives")},
          EXTENDED, SENOCAK_METHODS, ("slavc_test_relative",),
          ("Prior-method rows are copied from SLAVC (caption).",)),
    _spec("senocak_table8", "senocak_table8_ablation.csv", "Senocak et al. Table 8: ablation",
          {"VGG-SS": _ds("vggss", VGGSS_N)}, SENOCAK_LOC,
          {"(A) Semantic+Multi-View+Feature Alignment": RowMap("senocak", ogl=False, note="full model")},
          SENOCAK_PROTOCOLS),
    _spec("senocak_table9", "senocak_table9_knn_k.csv", "Senocak et al. Table 9: k of the k-NN positives",
          {"VGG-SS": _ds("vggss", VGGSS_N)}, SENOCAK_LOC,
          {"Ours (k=1000)": RowMap("senocak", ogl=False, note="final model (k=1000); ours uses the configured k")},
          SENOCAK_PROTOCOLS),
]}


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------

def paper_results_dir(path: str | os.PathLike | None = None) -> Path:
    """The ``paper_results`` folder: ``path``, else ``$AVBENCH_PAPER_RESULTS``, else ``shared/paper_results``
    beside (or inside) any ancestor of this checkout, else the copy shipped with the package."""
    if path is None and os.environ.get(ENV_DIR):
        path = os.environ[ENV_DIR]
    if path is not None:
        found = Path(path)
        if not found.is_dir():
            raise FileNotFoundError(f"paper_results folder {found} does not exist")
        return found
    for ancestor in Path(__file__).resolve().parents:
        candidate = ancestor / "shared" / "paper_results"
        if candidate.is_dir():
            return candidate
    packaged = Path(__file__).resolve().parent / "paper_results"
    if packaged.is_dir():
        return packaged
    raise FileNotFoundError(f"no shared/paper_results above {Path(__file__).resolve()}; set ${ENV_DIR}")


def table_id_from_path(csv_path: str | os.PathLike) -> str:
    """``oneavm_table1_localization.csv`` -> ``oneavm_table1``; text-only files keep their stem."""
    stem = Path(csv_path).stem
    match = re.match(r"^([a-z0-9]+_table\d+)", stem)
    return match.group(1) if match else stem


_TRAIN_PATTERNS = (
    re.compile(r"\[train: ([^\]]+)\]"),
    re.compile(r"train(?: DB)?=([^;]+)"),
    re.compile(r"trained on ([^;,]+)"),
)


def _train_set(dataset: str, method: str, notes: str) -> str:
    # A condition printed in the row label or dataset name wins over the notes (OneAVM T4, Qian T3).
    for text in (method, dataset, notes):
        for pattern in _TRAIN_PATTERNS:
            match = pattern.search(text)
            if match:
                return match.group(1).strip()
    return ""


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def load_paper_table(csv_path: str | os.PathLike) -> pd.DataFrame:
    """Read one ``paper_results`` CSV into the long frame :data:`LONG_COLUMNS`.

    ``value`` is a float in the paper's unit (percent or dB), ``value_text`` the number as printed; ``train_set``
    and ``pre_vision`` are the conditions parsed from the row label, dataset name or notes ("" when absent).
    """
    path = Path(csv_path)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{path.name}: expected columns {RAW_COLUMNS}, missing {missing}")
    raw = raw[RAW_COLUMNS].apply(lambda col: col.str.strip())
    values = pd.to_numeric(raw["value"], errors="coerce")
    if values.isna().any():
        bad = raw.loc[values.isna(), "value"].tolist()
        raise ValueError(f"{path.name}: non-numeric values {bad[:5]}")
    duplicated = raw.duplicated(["paper", "table", "dataset", "method", "metric"])
    if duplicated.any():
        raise ValueError(f"{path.name}: duplicated cells {raw.loc[duplicated, ['dataset', 'method', 'metric']]}")
    frame = raw.rename(columns={"value": "value_text"})
    frame.insert(0, "table_id", table_id_from_path(path))
    frame["value"] = values.astype(float)
    frame["train_set"] = [_train_set(d, m, n) for d, m, n in zip(frame["dataset"], frame["method"], frame["notes"], strict=True)]
    pre = frame["notes"].str.extract(r"pre_vision=(yes|no|n/a)", expand=False)
    frame["pre_vision"] = pre.fillna("")
    return frame[LONG_COLUMNS].reset_index(drop=True)


def load_all(directory: str | os.PathLike | None = None) -> pd.DataFrame:
    """Every CSV of the folder, concatenated (long form)."""
    folder = paper_results_dir(directory)
    frames = [load_paper_table(p) for p in sorted(folder.glob("*.csv"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=LONG_COLUMNS)


def available_tables(directory: str | os.PathLike | None = None) -> list[str]:
    """Registry ids whose CSV is present (all of :data:`PAPER_TABLES` when the folder is complete)."""
    try:
        folder = paper_results_dir(directory)
    except FileNotFoundError:
        return []
    return sorted(tid for tid, spec in PAPER_TABLES.items() if (folder / spec.file).is_file())


def load_spec_table(table_id: str, directory: str | os.PathLike | None = None) -> pd.DataFrame:
    spec = _spec_of(table_id)
    return load_paper_table(paper_results_dir(directory) / spec.file)


def _spec_of(table_id: str) -> TableSpec:
    if table_id not in PAPER_TABLES:
        raise KeyError(f"unknown paper table {table_id!r}; known: {sorted(PAPER_TABLES)}")
    return PAPER_TABLES[table_id]


# --------------------------------------------------------------------------------------------------------------
# Our numbers beside the paper's
# --------------------------------------------------------------------------------------------------------------

def _summary_ogl(summary: Mapping[str, Any]) -> bool:
    """Whether a summary was produced with object-guided localization (flag ``ogl``; absent = off)."""
    flag = summary.get("ogl", (summary.get("flags") or {}).get("ogl"))
    if flag is None:
        return "ogl" in str(summary.get("preset") or "").lower()
    return flag not in (False, "off", "none", 0)


def _resolve_setting(task_results: Mapping[str, Any], candidates: Sequence[str],
                     summary: Mapping[str, Any]) -> str | None:
    for cand in candidates:
        if cand == ANY_GT_CLASS:
            by_class = f"{summary.get('primary_protocol')}{GT_CLASS_SUFFIX}"
            if by_class in task_results:
                return by_class
        elif cand == ANY:
            primary = summary.get("primary_protocol")
            if primary in task_results:
                return primary
            if len(task_results) == 1:
                return next(iter(task_results))
        elif cand in task_results:
            return cand
    return None


@dataclass
class _Lookup:
    value: float | None  # in the paper's unit
    setting: str | None
    n: int | None
    reason: str  # "" when value is present


def _lookup(summary: Mapping[str, Any] | None, mmap: MetricMap, candidates: Sequence[str]) -> _Lookup:
    if summary is None:
        return _Lookup(None, None, None, "no summary")
    task_results = (summary.get("tasks") or {}).get(mmap.task) or {}
    setting = _resolve_setting(task_results, candidates, summary)
    if setting is None:
        return _Lookup(None, None, None, f"no {mmap.task} result for setting {candidates[0]}")
    metrics = task_results[setting]
    n = metrics.get("n", summary.get("n_available"))
    raw = metrics.get(mmap.key) if mmap.key else None
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return _Lookup(None, setting, n, f"{mmap.key} not in summary")
    return _Lookup(float(raw) * mmap.scale, setting, int(n) if n is not None else None, "")


def _index_summaries(summaries: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    index: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for summary in summaries:
        index.setdefault((summary["method"], summary["dataset"]), []).append(summary)
    return index


def _pick(index: Mapping[tuple[str, str], list[Mapping[str, Any]]], method: str, dataset: str,
          ogl: bool | None) -> Mapping[str, Any] | None:
    matches = [s for s in index.get((method, dataset), []) if ogl is None or _summary_ogl(s) == ogl]
    return matches[-1] if matches else None  # later summaries override earlier ones


def _fmt_frac(value: float) -> str:
    return f"{100 * value:.0f} %"


def _our_dataset(paper_ds: str, dmap: DatasetMap | None, rmap: RowMap, override: Mapping[str, Any]) -> str | None:
    if paper_ds in rmap.datasets:
        return rmap.datasets[paper_ds]
    return override.get(paper_ds, dmap.dataset if dmap else None)


def _training_note(our_ds: str, config_note: Mapping[str, Any]) -> list[str]:
    """What the models evaluated on ``our_ds`` were trained on (cross-dataset source, list, list mode)."""
    source = (config_note.get("train_from") or {}).get(our_ds)
    lists = config_note.get("train_lists") or {}
    modes = config_note.get("train_list_mode")
    mode = modes.get(our_ds) if isinstance(modes, Mapping) else None
    train_list = lists.get(source or our_ds)
    parts = []
    if source:
        parts.append(f"models trained on {source!r} (cross-dataset" + (f", train list {train_list})" if train_list
                                                                        else ")"))
    elif train_list:
        parts.append(f"train list {train_list}")
    if mode:
        parts.append(f"train_list_mode={mode}")
    return parts


def note_with_leakage(config_note: Mapping[str, Any] | None) -> dict[str, Any]:
    """``config_note`` with ``leakage`` read from the leakage report it names (``leakage_report``: the CSV of the
    ``leakage_report`` rule; its ``configured`` rows give, per evaluated dataset, the fraction of its test clips in
    the training split its models saw). A report that does not exist yet leaves ``leakage`` as given."""
    note = dict(config_note or {})
    path = note.pop("leakage_report", None)
    if path and Path(path).is_file():
        report = pd.read_csv(path, keep_default_na=False)
        if not {"scope", "dataset", "test_frac_in_train"} <= set(report.columns):
            raise ValueError(f"{path}: not a leakage report with a 'configured' scope (columns {list(report.columns)})")
        rows = report[report["scope"] == "configured"]
        found = {str(d): float(f) for d, f in zip(rows["dataset"], rows["test_frac_in_train"], strict=True)}
        note["leakage"] = {**found, **(note.get("leakage") or {})}
    return note


def _dataset_diff(paper_ds: str, dmap: DatasetMap | None, our_ds: str | None, seen: Mapping[str, Any],
                  config_note: Mapping[str, Any]) -> list[str]:
    """How our setting on one dataset differs from the paper's."""
    if our_ds is None:
        reason = dmap.note if dmap and dmap.note else "not available in avbench"
        return [f"{paper_ds}: {reason}"]
    if not seen or not seen["settings"]:
        reasons = sorted(seen.get("reasons") or []) if seen else []
        why = ", ".join(r for r in reasons if r != "no summary") or f"no avbench result for dataset {our_ds!r}"
        return [f"{paper_ds}: {why}"]
    parts = []
    ns = sorted({n for n in seen["n"] if n is not None})
    n_text = "/".join(str(n) for n in ns) if ns else "?"
    parts.append(f"N={n_text} vs paper {dmap.paper_n or '?'}" if dmap else f"N={n_text}")
    for task, (used, wanted) in sorted(seen["settings"].items()):
        text = f"{task} setting={'/'.join(sorted(used))}"
        # a GT-class setting is the paper's protocol given the class: compare the protocols without the suffix
        paper = [w.removesuffix(GT_CLASS_SUFFIX) for w in wanted if w not in (ANY, ANY_GT_CLASS)]
        if paper and not {u.removesuffix(GT_CLASS_SUFFIX) for u in used} <= set(paper[:1]):
            text += f" (paper: {paper[0]})"
        parts.append(text)
    parts += _training_note(our_ds, config_note)
    leakage = (config_note.get("leakage") or {}).get(our_ds)
    if leakage is not None:
        parts.append(f"train split holds {_fmt_frac(float(leakage))} of the test clips (reports/leakage.md)")
    if seen.get("frontend"):
        parts.append(f"audio_frontend={'/'.join(sorted(seen['frontend']))}")
    if seen.get("oracle"):
        parts.append(f"median-protocol ceiling cIoU@0.5 = {max(seen['oracle']):.1f}")
    if dmap and dmap.note:
        parts.append(dmap.note)
    return [f"{paper_ds}: " + ", ".join(parts)]


def _ordered_pairs(spec: TableSpec, paper: pd.DataFrame) -> list[tuple[str, str]]:
    """(dataset, metric) columns grouped by dataset (paper order), metrics in the spec's (= paper's) order; a
    plain first-appearance order would split a dataset when the first rows lack some metrics."""
    appearance = list(dict.fromkeys(zip(paper["dataset"], paper["metric"], strict=True)))
    datasets = list(dict.fromkeys(paper["dataset"]))
    rank: dict[str, int] = {}
    for key in spec.metrics:
        rank.setdefault(key if isinstance(key, str) else key[1], len(rank))
    return sorted(appearance, key=lambda p: (datasets.index(p[0]), rank.get(p[1], len(rank)), appearance.index(p)))


def paper_beside_ours(table_id: str, summaries: Sequence[Mapping[str, Any]], *,
                      config_note: Mapping[str, Any] | None = None,
                      directory: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per paper method, a ``paper`` and an ``ours`` column per (dataset, metric).

    Columns: ``method`` (paper's row label), ``our_method`` (registry name or ""), then
    ``"<dataset> | <metric> | paper"`` / ``"... | ours"`` (ours in the paper's unit; NaN when absent), the condition
    columns ``train_set`` / ``pre_vision`` where the paper has them, ``n_ours`` (test items behind our numbers, ""
    when none), ``setting_diff`` (how our setting differs) and ``status`` (one of :data:`STATUSES`).

    ``config_note`` (optional): ``datasets`` {paper dataset: our dataset key} overrides the registry (a row's own
    ``RowMap.datasets`` wins), ``leakage`` {our dataset: fraction of its test clips in the training split its models
    saw}, ``train_list_mode`` (one mode, or {our dataset: mode of the list its models were trained on}),
    ``train_from`` {our dataset: dataset its models were trained on}, ``train_lists`` {our dataset: train list
    name}, ``notes`` [str]. :func:`note_with_leakage` fills ``leakage`` from the leakage report.
    """
    spec = _spec_of(table_id)
    config_note = dict(config_note or {})
    paper = load_spec_table(table_id, directory)
    ds_override = config_note.get("datasets") or {}
    index = _index_summaries(summaries)

    pairs = _ordered_pairs(spec, paper)
    datasets = list(dict.fromkeys(paper["dataset"]))
    rows = []
    for label in dict.fromkeys(paper["method"]):
        block = paper[paper["method"] == label]
        rmap = spec.methods.get(label, RowMap(None))
        row: dict[str, Any] = {"method": label, "our_method": rmap.method or ""}
        seen: dict[str, dict[str, Any]] = {}
        filled = wanted = 0
        no_counterpart = False
        for ds, metric in pairs:
            cell = block[(block["dataset"] == ds) & (block["metric"] == metric)]
            row[f"{ds}{SEP}{metric}{SEP}paper"] = float(cell["value"].iloc[0]) if len(cell) else math.nan
            row[f"{ds}{SEP}{metric}{SEP}ours"] = math.nan
            dmap = spec.datasets.get(ds)
            our_ds = _our_dataset(ds, dmap, rmap, ds_override)
            mmap = spec.metric_map(ds, metric)
            if rmap.method is not None and our_ds is not None and len(cell) and (mmap is None or mmap.key is None):
                no_counterpart = True
            if rmap.method is None or our_ds is None or mmap is None or mmap.key is None or not len(cell):
                continue  # no ours possible: not implemented, no dataset, no counterpart metric or no paper cell
            wanted += 1
            candidates = spec.settings(ds, mmap.task)
            found = _lookup(_pick(index, rmap.method, our_ds, rmap.ogl), mmap, candidates)
            if found.reason == "no summary" and index.get((rmap.method, our_ds)):
                found.reason = f"no summary with OGL {'on' if rmap.ogl else 'off'}"
            if found.value is not None and rmap.minus:
                other = _lookup(_pick(index, rmap.minus, our_ds, None), mmap, candidates)
                found.value = None if other.value is None else found.value - other.value
            info = seen.setdefault(ds, {"n": set(), "settings": {}, "frontend": set(), "oracle": set(),
                                        "reasons": set()})
            if found.setting is None:
                info["reasons"].add(found.reason)
                continue
            info["n"].add(found.n)
            used, _ = info["settings"].setdefault(mmap.task, (set(), candidates))
            used.add(found.setting)
            summary = _pick(index, rmap.method, our_ds, rmap.ogl) or {}
            frontend = (summary.get("data") or {}).get("frontend")
            if frontend:
                info["frontend"].add(frontend)
            oracle = ((summary.get("tasks") or {}).get("localization") or {}).get(found.setting, {})
            if mmap.key == "ciou_sr@0.5" and isinstance(oracle, dict) and "oracle_sr@0.5" in oracle:
                info["oracle"].add(100 * float(oracle["oracle_sr@0.5"]))
            if found.value is not None:
                row[f"{ds}{SEP}{metric}{SEP}ours"] = found.value
                filled += 1
        for cond in ("train_set", "pre_vision"):
            if paper[cond].astype(bool).any():
                row[cond] = "; ".join(v for v in dict.fromkeys(block[cond]) if v)
        ns = sorted({n for info in seen.values() for n in info["n"] if n is not None})
        row["n_ours"] = "/".join(str(n) for n in ns)
        diff: list[str] = []
        if rmap.method is None:
            diff.append("not implemented in avbench" + (f" ({rmap.note})" if rmap.note else ""))
            status = "not_implemented"
        else:
            if rmap.note:
                diff.append(rmap.note)
            for ds in datasets:
                dmap = spec.datasets.get(ds)
                diff += _dataset_diff(ds, dmap, _our_dataset(ds, dmap, rmap, ds_override), seen.get(ds, {}),
                                      config_note)
            if wanted == 0 and no_counterpart:
                diff.append("no avbench counterpart for these metrics")
            if filled and isinstance(config_note.get("train_list_mode"), str):  # one mode for every dataset
                diff.append(f"train_list_mode={config_note['train_list_mode']}")
            diff += [str(n) for n in config_note.get("notes") or []]
            status = "complete" if wanted and filled == wanted else "partial" if filled else "missing"
        row["setting_diff"] = "; ".join(diff)
        row["status"] = status
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs = {"table_id": table_id, "title": spec.title}  # informative only; writers take explicit args
    return frame


def value_columns(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(dataset, metric, paper|ours) for every value column of a :func:`paper_beside_ours` frame, in order."""
    out = []
    for col in frame.columns:
        parts = str(col).split(SEP)
        if len(parts) == 3 and parts[2] in ("paper", "ours"):
            out.append((parts[0], parts[1], parts[2]))
    return out


def caveats_for(table_id: str) -> list[str]:
    """PROTOCOLS 7 reproduction caveats followed by the table's own."""
    return [*REPRODUCTION_CAVEATS, *_spec_of(table_id).caveats]


# --------------------------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------------------------

def _pair_decimals(frame: pd.DataFrame, dataset: str, metric: str) -> int:
    """Decimals of a (dataset, metric) pair: as many as the paper prints (1 or 2), so ours lines up."""
    col = f"{dataset}{SEP}{metric}{SEP}paper"
    best = 1
    for value in frame[col].dropna() if col in frame else []:
        for d in (1, 2):
            if abs(round(float(value), d) - float(value)) < 1e-9:
                best = max(best, d)
                break
        else:
            best = 2
    return best


def _cell(value: Any, decimals: int, missing: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value)


def to_markdown(frame: pd.DataFrame, title: str, caveats: Sequence[str]) -> str:
    cols = list(frame.columns)
    vcols = {f"{d}{SEP}{m}{SEP}{k}": (d, m) for d, m, k in value_columns(frame)}
    decimals = {pair: _pair_decimals(frame, *pair) for pair in set(vcols.values())}

    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = [f"# {title}", "", "| " + " | ".join(esc(c) for c in cols) + " |",
             "|" + "|".join("---:" if c in vcols or c == "n_ours" else "---" for c in cols) + "|"]
    for _, row in frame.iterrows():
        cells = []
        for col in cols:
            pair = vcols.get(col)
            cells.append(esc(_cell(row[col], decimals[pair] if pair else 2, "–")))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Status: complete = every mappable cell has our number; partial = some; missing = none; "
              "not_implemented = method not in avbench (paper number only).", "", "Reproduction caveats:", ""]
    lines += [f"{i}. {c}" for i, c in enumerate(caveats, 1)]
    return "\n".join(lines) + "\n"


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    out = "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))
    return out.replace("->", r"$\rightarrow$").replace("–", "--")


def to_latex(frame: pd.DataFrame, title: str, caveats: Sequence[str]) -> str:
    """A booktabs ``table`` with a three-level header (dataset / metric / paper-ours); setting differences and
    caveats follow as lists (long free text does not belong in tabular cells)."""
    vcols = value_columns(frame)
    pairs = list(dict.fromkeys((d, m) for d, m, _ in vcols))
    decimals = {pair: _pair_decimals(frame, *pair) for pair in pairs}
    lead = ["method", "our_method"]
    tail = [c for c in ("n_ours", "status") if c in frame.columns]
    spec = "l" * len(lead) + "r" * (2 * len(pairs)) + "r" * ("n_ours" in tail) + "l" * ("status" in tail)
    lines = [r"% generated by avbench.paper_tables; requires \usepackage{booktabs}", r"\begin{table}[t]",
             r"\centering", r"\small", f"\\caption{{{tex_escape(title)}}}", f"\\begin{{tabular}}{{{spec}}}",
             r"\toprule"]
    blank = " & ".join([""] * len(lead))
    runs = [(d, 2 * len(list(group))) for d, group in itertools.groupby(pairs, key=lambda p: p[0])]
    head1 = [f"\\multicolumn{{{width}}}{{c}}{{{tex_escape(d)}}}" for d, width in runs]
    lines.append(blank + " & " + " & ".join(head1) + " & " * len(tail) + r" \\")
    start = len(lead) + 1
    rules = []
    for _, width in runs:
        rules.append(f"\\cmidrule(lr){{{start}-{start + width - 1}}}")
        start += width
    lines.append(" ".join(rules))
    head2 = [f"\\multicolumn{{2}}{{c}}{{{tex_escape(m)}}}" for _, m in pairs]
    lines.append(blank + " & " + " & ".join(head2) + " & " * len(tail) + r" \\")
    head3 = ["Method", "avbench"] + ["paper", "ours"] * len(pairs) + [{"n_ours": "$N$", "status": "status"}[c]
                                                                        for c in tail]
    lines.append(" & ".join(head3) + r" \\")
    lines.append(r"\midrule")
    for _, row in frame.iterrows():
        cells = [tex_escape(row["method"]), tex_escape(row["our_method"])]
        for d, m in pairs:
            for kind in ("paper", "ours"):
                cells.append(tex_escape(_cell(row[f"{d}{SEP}{m}{SEP}{kind}"], decimals[(d, m)], "--")))
        cells += [tex_escape(_cell(row[c], 0, "")).replace("not\\_implemented", "n/i") for c in tail]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    if "setting_diff" in frame.columns:
        diffs = [(row["method"], row["setting_diff"]) for _, row in frame.iterrows()
                 if row["setting_diff"] and row["status"] != "not_implemented"]
        if diffs:
            lines += [r"\paragraph{Setting differences.}", r"\begin{itemize}"]
            lines += [f"  \\item \\textbf{{{tex_escape(m)}}}: {tex_escape(d)}" for m, d in diffs]
            lines += [r"\end{itemize}", ""]
    lines += [r"\paragraph{Reproduction caveats.}", r"\begin{enumerate}"]
    lines += [f"  \\item {tex_escape(c)}" for c in caveats]
    lines += [r"\end{enumerate}", ""]
    return "\n".join(lines)


def write_paper_table(frame: pd.DataFrame, parquet: str | os.PathLike, csv: str | os.PathLike,
                      md: str | os.PathLike, tex: str | os.PathLike, title: str,
                      caveats: Sequence[str] | None = None) -> None:
    """Write the comparison as Parquet, CSV, Markdown and LaTeX (each atomically); caveats go under the table
    (default: the PROTOCOLS 7 reproduction caveats)."""
    caveats = list(REPRODUCTION_CAVEATS if caveats is None else caveats)
    plain = frame.copy()
    plain.attrs = {}  # keep parquet metadata free of ad-hoc attrs
    io.write_parquet(parquet, plain)
    io.write_csv(csv, plain)
    io.write_text(md, to_markdown(plain, title, caveats))
    io.write_text(tex, to_latex(plain, title, caveats))


__all__ = [
    "PAPER_TABLES", "REPRODUCTION_CAVEATS", "DatasetMap", "MetricMap", "RowMap", "TableSpec", "available_tables",
    "caveats_for", "load_all", "load_paper_table", "load_spec_table", "note_with_leakage", "paper_beside_ours",
    "paper_results_dir",
    "table_id_from_path", "to_latex", "to_markdown", "value_columns", "write_paper_table",
]
