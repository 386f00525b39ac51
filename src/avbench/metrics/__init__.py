"""Evaluation metrics, one module per task (PROTOCOLS 4).

- :mod:`.localization` single-source cIoU / SR@t / AUC / pixel AP / oracle ceiling, protocol flags + presets
- :mod:`.multisource` class-aware cIoU, CAP, PIAP
- :mod:`.extended` SLAVC extended-set AP / max-F1 / LocAcc
- :mod:`.separation` SDR / SIR / SAR (fast_bss_eval, mir_eval parity), mixture baseline, SI-SDR
- :mod:`.retrieval` IR-Acc, xNN/wNN-Acc, R@k
- :mod:`.segmentation` AVSBench mIoU and F-score
"""

from avbench.metrics.extended import ExtendedMetric
from avbench.metrics.localization import PRESETS, LocalizationMetric, LocProtocol, summarize
from avbench.metrics.multisource import MultiSourceMetric
from avbench.metrics.segmentation import SegmentationMetric
from avbench.metrics.separation import SeparationMetric

__all__ = ["PRESETS", "ExtendedMetric", "LocProtocol", "LocalizationMetric", "MultiSourceMetric",
           "SegmentationMetric", "SeparationMetric", "summarize"]
