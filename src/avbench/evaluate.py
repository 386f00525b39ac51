"""Evaluation: a trained method (or a training-free baseline) -> maps / embeddings -> metrics -> summary.

Single-source localization runs on the test split under every configured protocol, the extended
(false-positive) protocol on every test image with its own and with another class's audio; multi-source
localization on SynthAV's real duet clips and on the seeded test mixtures (both layouts); retrieval and
recognition on the global embeddings of the test split. The summary records the number of clips evaluated
(N_available).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from avbench import audio, io
from avbench.data import ClipDataset, collate
from avbench.gt import union_map
from avbench.models import registry
from avbench.tables import GT_CLASS_SUFFIX

log = logging.getLogger("avbench.evaluate")

# Data settings for training-free baselines (their maps do not depend on the input content).
BASELINE_DATA = {"image_size": 112, "frontend": "mel64_16k", "audio_duration_s": 3.0}


def load_method(method: str, method_cfg: dict[str, Any], model_path: str | None) -> tuple[torch.nn.Module, dict]:
    """Instantiate ``method`` with its preset and load trained weights; return (model, data settings)."""
    from avbench.train import load_trained

    method = method_cfg.get("method", method)  # config entry name -> registered model (ablation entries)
    preset = method_cfg.get("preset")
    data_cfg = dict(BASELINE_DATA)
    if preset:
        data_cfg.update(registry.get_preset(method, preset).get("data", {}))
    data_cfg.update(method_cfg.get("data", {}))
    if model_path:
        model = load_trained(model_path, device="cpu")
    else:
        model = registry.create(method, preset=preset, **method_cfg.get("model", {}))
    model.eval()
    return model, data_cfg


def _batches(dataset: ClipDataset, batch_size: int) -> Iterable[dict[str, Any]]:
    for start in range(0, len(dataset), batch_size):
        yield collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])


# --- class vocabularies across datasets (train_from) -----------------------------------------------------
CLASS_MODES = ("own", "by_name", "class_agnostic")


def _name_keys(label: str) -> tuple[str, str, str]:
    """Spellings of one class name, strictest first: as written; case/underscore/space-insensitive; and the
    instrument rule (``playing violin, fiddle`` -> ``violin``, PROTOCOLS 1.0), which joins VGGSound-style and
    instrument-list vocabularies."""
    from avbench.sources.labels import instrument_label

    loose = " ".join(label.lower().replace("_", " ").split())
    return label, loose, " ".join(instrument_label(loose).replace("_", " ").split())


@dataclass(frozen=True)
class ClassMapping:
    """How the class indices of the evaluated dataset reach a class-aware model.

    ``own``: the model was trained on this dataset, indices are used as they are. ``by_name``: it was trained
    on another dataset (``train_from``) and every evaluated class has exactly one class of that dataset with the
    same name (:func:`_name_keys`); indices are translated. ``class_agnostic``: the vocabularies do not cover each
    other, so no class token is meaningful: every source gets the class-agnostic map (``localize``).
    """

    mode: str
    index: Mapping[int, int] = field(default_factory=dict)
    train_dataset: str | None = None
    n_test_classes: int = 0
    unmapped: tuple[str, ...] = ()

    def classes(self, class_idx: torch.Tensor) -> torch.Tensor | None:
        """Model class indices for ``class_idx`` of the evaluated dataset, or None for class-agnostic maps."""
        if self.mode == "own":
            return class_idx
        if self.mode == "class_agnostic":
            return None
        return torch.tensor([self.index[int(c)] for c in class_idx.reshape(-1)], dtype=torch.long)

    def record(self) -> dict[str, Any]:
        return {"mode": self.mode, "train_dataset": self.train_dataset, "n_test_classes": self.n_test_classes,
                "n_mapped": len(self.index) if self.mode == "by_name" else 0,
                "unmapped": list(self.unmapped[:20]), "n_unmapped": len(self.unmapped)}


OWN_CLASSES = ClassMapping("own")


def label_vocabulary(manifest: pd.DataFrame) -> dict[int, str]:
    """``{label_idx: label}`` of a clip manifest (clip labels and every source's label), i.e. the class space the
    dataset's models were trained in. Raises when one index carries two names (a corrupt manifest)."""
    pairs = list(zip(manifest["label_idx"].astype(int), manifest["label"].astype(str), strict=True))
    for entry in manifest.get("sources", pd.Series(dtype=object)):
        for src in json.loads(entry) if isinstance(entry, str) else (entry or []):
            pairs.append((int(src["label_idx"]), str(src["label"])))
    vocab: dict[int, str] = {}
    for idx, label in pairs:
        if idx < 0:  # clips of unknown class (manifest.UNKNOWN_LABEL_IDX, e.g. off-screen negatives): not a class
            continue
        if vocab.setdefault(idx, label) != label:
            raise ValueError(f"manifest: label_idx {idx} names both {vocab[idx]!r} and {label!r}")
    return vocab


def class_mapping(train_vocab: Mapping[int, str] | None, test_vocab: Mapping[int, str],
                  train_dataset: str | None = None) -> ClassMapping:
    """Translate the evaluated dataset's classes into the training dataset's by name (see :class:`ClassMapping`).

    ``train_vocab`` None: the model was trained on the evaluated dataset (``own``). A class matches when exactly one
    training class shares the first spelling key that matches at all; the mapping is used only when every evaluated
    class matches (a partial mapping would mix class-aware and class-agnostic sources in one metric).
    """
    if train_vocab is None:
        return OWN_CLASSES
    index: dict[int, int] = {}
    for level in range(3):
        keyed: dict[str, set[int]] = {}
        for idx, label in train_vocab.items():
            keyed.setdefault(_name_keys(label)[level], set()).add(idx)
        for idx, label in test_vocab.items():
            hits = keyed.get(_name_keys(label)[level], set())
            if idx not in index and len(hits) == 1:
                index[idx] = next(iter(hits))
    unmapped = tuple(sorted(test_vocab[i] for i in test_vocab if i not in index))
    mode = "by_name" if test_vocab and not unmapped else "class_agnostic"
    return ClassMapping(mode, index if mode == "by_name" else {}, train_dataset, len(test_vocab), unmapped)


def _class_maps(model: torch.nn.Module, images: torch.Tensor, specs: torch.Tensor,
                class_idx: torch.Tensor, classes: ClassMapping = OWN_CLASSES) -> torch.Tensor:
    """Class-specific maps when the method has them and the class indices mean something to it (``classes``);
    otherwise one class-agnostic map for every source."""
    if hasattr(model, "localize_class"):
        cls = classes.classes(class_idx)
        if cls is not None:
            return model.localize_class(images, specs, cls)
    return model.localize(images, specs)


# --- the test split, decoded once ------------------------------------------------------------------------
def read_mask(path: str | Path, size: int) -> np.ndarray:
    """A GT mask file (AVSBench PNG, VGGSound-Instruments pickle) as a binary ``[size, size]`` map, resized
    nearest-neighbour (PROTOCOLS 3.4/3.5, 3.7)."""
    from avbench.gt import read_mask_file

    return read_mask_file(path, size, size)


class TestSet:
    """A test split decoded once: normalised images, spectrograms, labels, boxes, GT maps and (on demand) the
    centre-window waves, by position and by clip id.

    Every evaluation of one job (single-source, extended, mixtures, separation, segmentation) indexes into it
    instead of re-running the loader. ``masks`` (clip id -> mask file) makes those clips' GT the mask
    (VGGSound-Instruments: PROTOCOLS 3.4) instead of the union of their boxes; other clips keep their box GT.
    ``dataset`` is a :class:`ClipDataset` or any sequence of loader items (tests).
    """

    __test__ = False  # not a pytest class

    def __init__(self, dataset: ClipDataset | Sequence[dict[str, Any]],
                 masks: Mapping[str, str | Path] | None = None) -> None:
        items = [dataset[i] for i in range(len(dataset))]
        if not items:
            raise ValueError("test split is empty")
        self.dataset = dataset
        self.clip_ids = [str(item["clip_id"]) for item in items]
        self.index = {cid: i for i, cid in enumerate(self.clip_ids)}
        self.images = torch.stack([item["image"] for item in items])
        self.specs = torch.stack([item["spec"] for item in items])
        self.labels = torch.tensor([int(item["label_idx"]) for item in items], dtype=torch.long)
        self.boxes: list[list[list[float]]] = [list(item.get("boxes", [])) for item in items]
        self.sources: list[list[dict[str, Any]]] = [list(item.get("sources", [])) for item in items]
        clips = getattr(dataset, "clips", None)
        self.label_names = [str(c.meta.get("label", "")) for c in clips] if clips is not None \
            else [str(item.get("label", "")) for item in items]
        # GT maps: a ClipDataset rebuilds them from the boxes per batch (its own rule: union_map at gt_size), so
        # a large split does not hold [N, 224, 224] floats; other item sequences carry theirs.
        self._clip_dataset = isinstance(dataset, ClipDataset)
        self.gt_size = int(dataset.gt_size) if self._clip_dataset else int(items[0]["gt"].shape[-1])
        self._gts = None if self._clip_dataset else torch.stack([item["gt"] for item in items])
        self._items_waves = [item.get("wave") for item in items] if not self._clip_dataset else None
        self._waves: torch.Tensor | None = None
        self.masks: dict[str, np.ndarray] = {}
        unknown = sorted(set(masks or {}) - set(self.index))
        if unknown:  # masks of clips that did not reach the shards (unavailable media): nothing to score
            log.info("%d GT masks belong to clips missing from the test shards (e.g. %s)", len(unknown), unknown[:3])
        for cid, path in (masks or {}).items():
            if cid in self.index:
                self.masks[cid] = read_mask(path, self.gt_size)

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def waves(self) -> torch.Tensor:
        """Centre-window waves ``[N, n]`` (the loader's audio window), built on first use."""
        if self._waves is None:
            if self._clip_dataset:
                ds = self.dataset
                self._waves = torch.stack([ds._wave(clip) for clip in ds.clips])  # type: ignore[union-attr]
            else:
                if any(w is None for w in self._items_waves or [None]):
                    raise ValueError("test items carry no 'wave': mixtures and separation need the loader's waves")
                self._waves = torch.stack(self._items_waves)  # type: ignore[arg-type]
        return self._waves

    @property
    def sample_rate(self) -> int:
        return int(getattr(self.dataset, "sample_rate", 16000))

    def gt(self, idx: Sequence[int] | np.ndarray) -> torch.Tensor:
        """GT maps ``[B, gt_size, gt_size]`` of the items ``idx``: mask where one is given, else the box union."""
        out = []
        for i in idx:
            i = int(i)
            mask = self.masks.get(self.clip_ids[i])
            if mask is not None:
                out.append(torch.from_numpy(mask))
            elif self._gts is not None:
                out.append(self._gts[i])
            else:
                out.append(torch.from_numpy(union_map(self.boxes[i], self.gt_size, self.gt_size)))
        return torch.stack(out)

    def n_boxes(self, idx: Sequence[int] | np.ndarray) -> list[int]:
        """SLAVC's ``bb`` per item: its box count, or 1 for a non-empty mask GT (0 for an empty one)."""
        out = []
        for i in idx:
            mask = self.masks.get(self.clip_ids[int(i)])
            out.append(int(mask.any()) if mask is not None else len(self.boxes[int(i)]))
        return out

    def source_gt(self, cid: str, boxes: list[list[float]], width: int, side: str | None) -> torch.Tensor:
        """GT of one mixture source ``[gt_size, width]``: its mask (in its half of a side-by-side canvas) when the
        clip has one, else the boxes (already shifted into the canvas by the pair set)."""
        mask = self.masks.get(cid)
        if mask is None:
            return torch.from_numpy(union_map(boxes, self.gt_size, width))
        if side is None:
            return torch.from_numpy(mask)
        canvas = np.zeros((self.gt_size, width), dtype=np.float32)
        left = 0 if side == "left" else width - self.gt_size
        canvas[:, left:left + self.gt_size] = mask
        return torch.from_numpy(canvas)

    def vocabulary(self) -> dict[int, str]:
        """``{label_idx: label}`` of the test clips and their sources (for :func:`class_mapping`)."""
        vocab = {int(i): name for i, name in zip(self.labels.tolist(), self.label_names, strict=True)}
        for sources in self.sources:
            for src in sources:
                vocab.setdefault(int(src["label_idx"]), str(src["label"]))
        return vocab

    def ranges(self, batch_size: int) -> Iterable[np.ndarray]:
        for start in range(0, len(self), batch_size):
            yield np.arange(start, min(start + batch_size, len(self)))

    def pair_indices(self, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """Row indices of both clips of every pair whose clips are present (others are dropped and logged)."""
        present = pairs["id_a"].isin(self.index.keys()) & pairs["id_b"].isin(self.index.keys())
        if not present.all():
            log.warning("%d of %d pairs reference clips missing from the test shards", (~present).sum(), len(pairs))
        kept = pairs[present].reset_index(drop=True)
        ia = kept["id_a"].map(self.index).to_numpy(dtype=np.int64, copy=True)  # writable: torch indexes with it
        ib = kept["id_b"].map(self.index).to_numpy(dtype=np.int64, copy=True)
        return ia, ib, kept

    def mixture_specs(self, ia: np.ndarray, ib: np.ndarray) -> torch.Tensor:
        """Spectrograms of the plain sums of the two centre windows (PROTOCOLS 5.1), ``[B, 1, F, T]``."""
        waves = self.waves[ia] + self.waves[ib]
        return audio.spectrogram(waves, self.sample_rate, self.dataset.frontend).unsqueeze(1).float()


def _as_test_set(dataset: TestSet | ClipDataset | Sequence[dict[str, Any]]) -> TestSet:
    return dataset if isinstance(dataset, TestSet) else TestSet(dataset)


def localize_all(model: torch.nn.Module, test: TestSet, batch_size: int) -> torch.Tensor:
    """The class-agnostic map of every test item with its own audio, ``[N, h, w]``, in ``batch_size`` batches.

    Computed once per evaluation job and shared by the single-source, extended and segmentation evaluations.
    """
    maps = []
    with torch.no_grad():
        for idx in test.ranges(batch_size):
            maps.append(model.localize(test.images[idx], test.specs[idx]).detach())
    return torch.cat(maps)


def localize_gt_class(model: torch.nn.Module, test: TestSet, batch_size: int,
                      classes: ClassMapping = OWN_CLASSES) -> torch.Tensor | None:
    """Each test item's map for its ground-truth class ``[N, h, w]``: the single-source protocol of the class-aware
    papers (AVGN: "the source's class is the GT class", PROTOCOLS 6.4). None when the method has no class maps,
    the classes do not reach it (``classes``), or an item's label is unknown."""
    if not hasattr(model, "localize_class") or bool((test.labels < 0).any()):
        return None
    maps = []
    with torch.no_grad():
        for idx in test.ranges(batch_size):
            cls = classes.classes(test.labels[idx])
            if cls is None:
                return None
            maps.append(model.localize_class(test.images[idx], test.specs[idx], cls).detach())
    return torch.cat(maps)


def evaluate_single_source(model: torch.nn.Module, dataset: TestSet | ClipDataset | Sequence[dict[str, Any]],
                           protocols: list[str], batch_size: int, maps: torch.Tensor | None = None,
                           embed: bool = True) -> tuple[dict[str, dict[str, float]], pd.DataFrame, dict]:
    """Localization under every protocol (+ global embeddings for retrieval unless ``embed`` is False). ``maps``:
    the items' positive maps from :func:`localize_all` when the caller already has them."""
    from avbench.metrics.localization import PRESETS, LocalizationMetric

    test = _as_test_set(dataset)
    if maps is None:
        maps = localize_all(model, test, batch_size)
    metrics = {name: LocalizationMetric(PRESETS[name]) for name in protocols}
    visual, acoustic, labels = [], [], []
    for idx in test.ranges(batch_size):
        gts = test.gt(idx)
        for metric in metrics.values():
            metric.update(maps[idx], gts)
        if embed and getattr(model, "requires_training", True):  # training-free baselines have no embeddings
            with torch.no_grad():
                v, a = model.embed(test.images[idx], test.specs[idx])
            visual.append(v.numpy())
            acoustic.append(a.numpy())
            labels.append(test.labels[idx].numpy())
    results = {name: metric.compute() for name, metric in metrics.items()}
    per_sample = []
    for name, metric in metrics.items():
        frame = metric.per_sample()
        frame.insert(0, "clip_id", test.clip_ids)
        frame.insert(1, "protocol", name)
        per_sample.append(frame)
    embeddings = {"visual": np.concatenate(visual), "audio": np.concatenate(acoustic),
                  "labels": np.concatenate(labels)} if visual else {}
    return results, pd.concat(per_sample, ignore_index=True), embeddings


def evaluate_retrieval(embeddings: dict[str, np.ndarray]) -> dict[str, float]:
    from avbench.metrics import retrieval

    return retrieval.retrieval_summary(embeddings["visual"], embeddings["audio"], embeddings["labels"])


def evaluate_duets(model: torch.nn.Module, dataset: ClipDataset, protocol: str, batch_size: int,
                   gt_size: int, classes: ClassMapping = OWN_CLASSES) -> dict[str, float]:
    """Real two-source clips: one map per sounding source (class-aware when the method supports it)."""
    from avbench.metrics.localization import PRESETS
    from avbench.metrics.multisource import MultiSourceMetric

    metric = MultiSourceMetric(PRESETS[protocol])
    for batch in _batches(dataset, batch_size):
        per_source_maps, per_source_gts = [], []
        for k in range(2):
            cls = torch.tensor([s[k]["label_idx"] for s in batch["sources"]])
            with torch.no_grad():
                per_source_maps.append(_class_maps(model, batch["image"], batch["spec"], cls, classes))
            per_source_gts.append(torch.stack([
                torch.from_numpy(union_map(s[k]["boxes"], gt_size, gt_size)) for s in batch["sources"]
            ]))
        metric.update(torch.stack(per_source_maps, 1), torch.stack(per_source_gts, 1))
    return metric.compute()


def extended_partners(dataset: TestSet | Sequence[dict[str, Any]], seed: int) -> np.ndarray | None:
    """For every test item, the index of the item whose audio makes its non-sounding negative (extended set).

    The seeded class-distinct rule of the mixtures (PROTOCOLS 5.4, :func:`avbench.mixtures.make_pairs`) applied
    to the clips of the test shards: a partner of another class and another video, drawn from
    ``default_rng([seed, i])`` with ``i`` the clip's position in clip-id order. None when the test split has
    fewer than two classes (no negative can be built).
    """
    from avbench.ids import parse_clip_id
    from avbench.mixtures import make_pairs

    def ytid(cid: str) -> str:
        try:
            return parse_clip_id(cid)[0]
        except ValueError:  # not a canonical id: then the id itself stands for its video
            return cid

    if isinstance(dataset, TestSet):
        ids, labels = list(dataset.clip_ids), [int(x) for x in dataset.labels.tolist()]
    elif getattr(dataset, "clips", None) is not None:  # ClipDataset: read ids and labels without decoding items
        clips = dataset.clips  # type: ignore[union-attr]
        ids, labels = [str(c.clip_id) for c in clips], [int(c.label_idx) for c in clips]
    else:
        items = [dataset[i] for i in range(len(dataset))]
        ids, labels = [str(item["clip_id"]) for item in items], [int(item["label_idx"]) for item in items]
    if len(set(labels)) < 2:
        return None
    frame = pd.DataFrame({"clip_id": ids, "label": [str(lab) for lab in labels],
                          "ytid": [ytid(cid) for cid in ids]})
    pairs = make_pairs(frame, seed=seed)
    index = {cid: i for i, cid in enumerate(ids)}
    partner = dict(zip(pairs["id_a"], pairs["id_b"], strict=True))
    return np.array([index[partner[cid]] for cid in ids], dtype=np.int64)


@dataclass(frozen=True)
class NegativeSet:
    """Non-sounding negatives of the extended protocol: image ``image_idx[j]`` of ``image_set`` heard with the
    audio ``audio_idx[j]`` of ``audio_set``; scored against an empty GT with ``n_boxes = 0``."""

    kind: str  # seeded_mismatch | official_mismatch | official_offscreen
    image_set: TestSet
    image_idx: np.ndarray
    audio_set: TestSet
    audio_idx: np.ndarray

    def __len__(self) -> int:
        return len(self.image_idx)


def seeded_negatives(test: TestSet, seed: int) -> list[NegativeSet] | None:
    """SynthAV's extended set: every test image with the audio of :func:`extended_partners` (None: one class)."""
    partners = extended_partners(test, seed)
    if partners is None:
        return None
    return [NegativeSet("seeded_mismatch", test, np.arange(len(test)), test, partners)]


def official_negatives(test: TestSet, listed: pd.DataFrame, offscreen: TestSet | None = None,
                       ) -> tuple[list[NegativeSet], dict[str, Any]]:
    """The negatives of an official SLAVC extended list (PROTOCOLS 1.9, 4.5; ``*_plus_silent.csv`` read by
    :func:`avbench.sources.vggss.read_plus_silent`): a row ``video != audio`` is test image ``video`` with the
    audio of test clip ``audio``; a row ``video == audio`` is an off-screen-sound clip of its own (VGG-SS), taken
    from ``offscreen`` (the shards of those clips). Rows whose clips are not available are dropped and counted,
    like positives (N_available).
    """
    mism = listed[~listed["same_clip"]]
    present = mism["video"].isin(test.index.keys()) & mism["audio"].isin(test.index.keys())
    kept = mism[present]
    sets = []
    if len(kept):
        sets.append(NegativeSet("official_mismatch", test,
                                kept["video"].map(test.index).to_numpy(dtype=np.int64, copy=True),
                                test, kept["audio"].map(test.index).to_numpy(dtype=np.int64, copy=True)))
    own = listed[listed["same_clip"]]
    n_own = 0
    if offscreen is not None and len(own):
        idx = own["video"][own["video"].isin(offscreen.index.keys())].map(offscreen.index).to_numpy(
            dtype=np.int64, copy=True)
        n_own = len(idx)
        if n_own:
            sets.append(NegativeSet("official_offscreen", offscreen, idx, offscreen, idx))
    info = {"n_listed": int(len(listed)), "n_listed_mismatch": int(len(mism)), "n_mismatch": int(len(kept)),
            "n_listed_offscreen": int(len(own)), "n_offscreen": int(n_own)}
    if len(kept) < len(mism) or n_own < len(own):
        log.warning("extended set: %d of %d listed negatives available (%d mismatched, %d off-screen)",
                    len(kept) + n_own, len(listed), len(kept), n_own)
    return sets, info


def evaluate_extended(model: torch.nn.Module, dataset: TestSet | Sequence[dict[str, Any]], protocol: str, *,
                      seed: int, batch_size: int, conf_norm: str = "abs_cos",
                      positive_maps: torch.Tensor | None = None,
                      negatives: list[NegativeSet] | None = None) -> dict[str, Any] | None:
    """SLAVC-style extended localization (PROTOCOLS 4.5).

    Positives: every test image with its own audio (``n_boxes`` = its box count, 1 for a non-empty mask GT);
    ``positive_maps`` are their maps when the caller already computed them (:func:`localize_all`). Negatives:
    ``negatives`` (an official extended list, :func:`official_negatives`; an empty list scores the positives
    alone), or by default every test image with the audio of :func:`extended_partners` (another class, so the
    visible objects are silent: SynthAV's seeded protocol): an empty GT and ``n_boxes = 0``. ``protocol``
    binarises the maps; the confidence is the top-quarter mean of the upsampled map under ``conf_norm``:
    ``abs_cos`` is ``(cos + 1) / 2``, SLAVC's absolute score for cosine maps; for maps on another scale it is an
    increasing affine transform of theirs, which changes no AP, max-F1 or LocAcc (only the F1 at the fixed
    confidence threshold). Keys: those of :func:`avbench.metrics.extended.extended_metrics` plus ``ap`` (SLAVC
    ``calc_ap``), ``ap_exact`` (all-points AP), ``max_f1``, ``loc_acc`` (all at IoU 0.5), ``n`` (test clips),
    ``n_negatives`` and ``negatives`` (their kinds); None for a single-class test split without given negatives.
    """
    from avbench.metrics.extended import ExtendedMetric, ap_voc_exact
    from avbench.metrics.localization import PRESETS

    test = _as_test_set(dataset)
    if negatives is None:
        negatives = seeded_negatives(test, seed)
        if negatives is None:
            return None
    if positive_maps is None:
        positive_maps = localize_all(model, test, batch_size)
    metric = ExtendedMetric(PRESETS[protocol], ap_impl="slavc", conf_norm=conf_norm)
    n_rows = max([len(test), *(len(neg) for neg in negatives)])
    # Positives and negatives of the same slice are scored together, in this order: the rows' order never changes
    # a metric, but it keeps the per-sample table in the order of the earlier code.
    for start in range(0, n_rows, batch_size):
        sl = slice(start, start + batch_size)
        idx = np.arange(len(test))[sl]
        if len(idx):
            metric.update(positive_maps[idx], test.gt(idx), n_boxes=test.n_boxes(idx))
        for neg in negatives:
            img, aud = neg.image_idx[sl], neg.audio_idx[sl]
            if not len(img):
                continue
            with torch.no_grad():
                maps = model.localize(neg.image_set.images[img], neg.audio_set.specs[aud])
            gt = torch.zeros((len(img), test.gt_size, test.gt_size), dtype=torch.float32)
            metric.update(maps, gt, n_boxes=[0] * len(img))
    out = metric.compute()
    rows = metric.per_sample()
    n_negatives = sum(len(neg) for neg in negatives)
    out.update(
        ap=out["ap_all@0.5"], max_f1=out["maxf1_all@0.5"], loc_acc=out["locacc@0.5"],
        ap_exact=ap_voc_exact(rows["conf"], rows["ciou"], rows["n_boxes"], 0.5),
        n=len(test), n_negatives=n_negatives,
        negatives=sorted({neg.kind for neg in negatives if len(neg)}) or ["none"],
    )
    return out


def evaluate_mixtures(model: torch.nn.Module, test: TestSet, pairs: pd.DataFrame, layout: str,
                      protocol: str, gt_size: int, batch_size: int,
                      classes: ClassMapping = OWN_CLASSES) -> dict[str, float]:
    """Seeded two-source test mixtures: one map per source from the shared mixture audio.

    ``separate``: source k's map comes from its own frame; ``concat_lr``: both maps come from the 1x2 canvas,
    each scored against its source's boxes shifted into that canvas (or its mask, in its half of the canvas).
    """
    from avbench.metrics.localization import PRESETS
    from avbench.metrics.multisource import MultiSourceMetric

    metric = MultiSourceMetric(PRESETS[protocol])
    ia, ib, pairs = test.pair_indices(pairs)
    width = gt_size if layout == "separate" else 2 * gt_size
    sides = (None, None) if layout == "separate" else ("left", "right")
    for start in range(0, len(pairs), batch_size):
        sl = slice(start, start + batch_size)
        a, b = ia[sl], ib[sl]
        specs = test.mixture_specs(a, b)
        maps = []
        canvas = torch.cat([test.images[a], test.images[b]], -1) if layout == "concat_lr" else None
        for idx in (a, b):
            images = test.images[idx] if canvas is None else canvas
            with torch.no_grad():
                maps.append(_class_maps(model, images, specs, test.labels[idx], classes))
        gts = torch.stack([
            torch.stack([test.source_gt(row[f"id_{k}"], json.loads(row[f"boxes_{k}"]), width, side)
                         for k, side in zip("ab", sides, strict=True)])
            for _, row in pairs.iloc[sl].iterrows()
        ])
        metric.update(torch.stack(maps, 1), gts)
    return metric.compute()


def evaluate_separation(model: torch.nn.Module, test: TestSet, pairs: pd.DataFrame,
                        batch_size: int, binarize: bool | None = None) -> dict[str, float]:
    """Mix-and-separate on the test pairs: each source is recovered from the mixture given its own frame.

    References are the two centre-window waves; the unprocessed mixture is scored as every estimate too
    (``sdr_mix``), and silent references are skipped and counted by the metric.
    """
    from avbench.metrics.separation import SeparationMetric

    metric = SeparationMetric()
    ia, ib, pairs = test.pair_indices(pairs)
    for start in range(0, len(pairs), batch_size):
        a, b = ia[start:start + batch_size], ib[start:start + batch_size]
        refs = torch.stack([test.waves[a], test.waves[b]], 1)  # [B, 2, n]
        mixture = refs.sum(1)
        with torch.no_grad():
            kwargs = {} if binarize is None else {"binarize": binarize}
            ests = torch.stack([model.separate(mixture, test.images[idx], test.sample_rate, **kwargs)
                                for idx in (a, b)], 1)
        metric.update(refs.numpy(), ests.numpy(), mixture.numpy())
    return metric.compute()


# --- segmentation (AVSBench masks) -----------------------------------------------------------------------
def synthav_segmentation_masks(avsbench_root: str | Path) -> tuple[dict[str, Path], dict[str, str]]:
    """SynthAV's AVSBench-style S4 tree: each test clip (``<name>_<start:06d>``, a 10 s clip) is scored on the
    mask of its centre frame (k = 3 of the 5 mask frames); every clip is its own video."""
    from avbench.ids import clip_id
    from avbench.sources.avsbench import avsbench_paths, read_avsbench_meta

    meta = read_avsbench_meta(avsbench_root, "s4")
    masks: dict[str, Path] = {}
    for row in meta.itertuples():
        path = avsbench_paths(avsbench_root, "s4", row.name, row.split, row.category)["masks"][2]
        masks[clip_id(row.name, int(row.start))] = path
    return masks, {cid: cid for cid in masks}


def placed_masks(ingest: pd.DataFrame | str | Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Mask files of a placed dataset from its ``ingest_placed`` table (``clip_id, mask``; AVSBench frames
    ``<name>_<k>`` with ``gt_masks/.../<name>_<k>.png``, VGGSound-Instruments ``sampleNNNN`` with its pickle),
    and the video of each clip: AVSBench frames group by ``<name>`` (the reference scores one video per batch),
    other placed items are their own video."""
    table = pd.read_parquet(ingest) if isinstance(ingest, (str, Path)) else ingest
    for col in ("clip_id", "mask"):
        if col not in table.columns:
            raise KeyError(f"ingest table {ingest if isinstance(ingest, (str, Path)) else ''} has no {col!r} column")
    masks = {str(c): Path(m) for c, m in zip(table["clip_id"], table["mask"], strict=True)
             if isinstance(m, str) and m}
    videos = {}
    for cid in masks:
        name, _, k = cid.rpartition("_")
        videos[cid] = name if name and k.isdigit() else cid
    return masks, videos


def evaluate_segmentation(model: torch.nn.Module, test: TestSet, masks: Mapping[str, str | Path],
                          batch_size: int, gt_size: int, videos: Mapping[str, str] | None = None,
                          maps: torch.Tensor | None = None) -> dict[str, float]:
    """AVSBench mIoU / F-score (PROTOCOLS 4.9) of the test items that have a mask: min-max maps as probabilities,
    thresholded at 0.5 (the default for weakly supervised localization); masks are read and resized
    nearest-neighbour to ``gt_size``. ``videos`` groups frames for the per-video F-score (default: each clip is
    a video); ``maps`` are the positive maps of every test item when already computed."""
    from avbench.metrics.localization import prepare_maps
    from avbench.metrics.segmentation import SegmentationMetric

    keep = np.array([i for i, cid in enumerate(test.clip_ids) if cid in masks], dtype=np.int64)
    if not len(keep):
        raise ValueError(f"segmentation: none of the {len(test)} test clips has a GT mask (e.g. test clip "
                         f"{test.clip_ids[0]!r}, mask ids such as {sorted(masks)[:3]})")
    metric = SegmentationMetric(input="prob", fscore_batch="video")
    for start in range(0, len(keep), batch_size):
        idx = keep[start:start + batch_size]
        if maps is None:
            with torch.no_grad():
                batch_maps = model.localize(test.images[idx], test.specs[idx])
        else:
            batch_maps = maps[idx]
        probs = prepare_maps(batch_maps, (gt_size, gt_size), "ezvsl_test")
        gts = np.stack([read_mask(masks[test.clip_ids[i]], gt_size) for i in idx])
        ids = [test.clip_ids[i] for i in idx]
        metric.update(probs, gts, videos=[(videos or {}).get(cid, cid) for cid in ids])
    return {**metric.compute(), "n_masks": len(masks)}


# --- one evaluation job ----------------------------------------------------------------------------------
def _offscreen_set(shards: str | Path | None, loader_kwargs: dict[str, Any], dataset: str) -> TestSet | None:
    """The off-screen-sound clips of an official extended list, decoded once like the test split (the same loader
    settings, so their images and spectrograms match what the model sees for positives); None without shards or
    when the split has no sample (every clip unavailable: the rows are then counted, not scored)."""
    if not shards:
        return None
    from avbench.shards import read_index

    index_path = Path(shards) / "index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"{dataset}: off-screen shards {shards} have no index.json (not a shard directory)")
    n_samples = int(read_index(shards).get("n_samples") or 0)
    if not n_samples:
        log.warning("%s: off-screen shards %s hold no clip; the off-screen negatives are counted, not scored",
                    dataset, shards)
        return None
    return TestSet(ClipDataset(shards, split_kind="test", **loader_kwargs))


def evaluate_method(
    method: str, method_cfg: dict[str, Any], *, test_shards: Path, model_path: str | None,
    duet_shards: str | None, mixtures: list[str], eval_cfg: dict[str, Any], seed: int, threads: int,
    summary_path: Path, per_sample_path: Path, dataset: str, avsbench_root: str | None = None,
    ingest: str | Path | None = None, mask_gt: str | None = None,
    train_manifest: str | Path | None = None, train_dataset: str | None = None,
    extended: str | None = "seeded", extended_list: str | Path | None = None,
    offscreen_shards: str | Path | None = None,
) -> dict[str, Any]:
    """Every task of one (dataset, method) job; the test split is decoded once and its maps computed once.

    ``avsbench_root``: SynthAV's AVSBench-style tree (segmentation masks). ``ingest`` + ``mask_gt``: a placed
    dataset's mask files (its ``ingest_placed`` table) used as ``segmentation`` GT (AVSBench) or as the
    ``localization`` GT itself (VGGSound-Instruments). ``train_manifest``: the manifest of the dataset the model
    was trained on when it is not this one (``train_from``): class-aware maps then go through
    :func:`class_mapping`. ``extended``: ``seeded`` (SynthAV's mismatched-audio negatives), ``official`` (the
    SLAVC list ``extended_list``), ``positives`` (no negatives: positives-only SLAVC numbers such as OneAVM's F1)
    or None (no extended task). ``offscreen_shards``: with ``official``, the shards of the list's off-screen-sound
    clips (split ``avbench.datasets.OFFSCREEN_SPLIT``), decoded once and scored as their own negatives; without
    them (or when none of those clips could be fetched) the off-screen rows are counted, not scored.
    """
    if mask_gt not in (None, "segmentation", "localization"):
        raise ValueError(f"mask_gt must be None, 'segmentation' or 'localization', got {mask_gt!r}")
    if extended not in (None, "seeded", "official", "positives"):
        raise ValueError(f"extended must be None, 'seeded', 'official' or 'positives', got {extended!r}")
    if offscreen_shards and extended != "official":
        raise ValueError(f"{dataset}: offscreen_shards ({offscreen_shards}) are negatives of the official extended "
                         f"list, but extended is {extended!r}")
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model, data_cfg = load_method(method, method_cfg, model_path)
    gt_size = eval_cfg["gt_size"]
    primary = eval_cfg["primary_protocol"]
    batch_size = eval_cfg["batch_size"]
    protocols = list(dict.fromkeys([primary, *eval_cfg["protocols"]]))
    loader_kwargs = {"image_size": data_cfg["image_size"], "frontend": data_cfg["frontend"],
                     "audio_duration_s": data_cfg["audio_duration_s"], "gt_size": gt_size, "seed": seed}
    masks: dict[str, Path] = {}
    videos: dict[str, str] = {}
    if ingest and mask_gt:
        masks, videos = placed_masks(ingest)
    elif avsbench_root:
        masks, videos = synthav_segmentation_masks(avsbench_root)
        mask_gt = "segmentation"
    test = TestSet(ClipDataset(test_shards, split_kind="test", **loader_kwargs),
                   masks=masks if mask_gt == "localization" else None)
    classes = OWN_CLASSES
    if train_manifest:
        classes = class_mapping(label_vocabulary(pd.read_parquet(train_manifest)), test.vocabulary(), train_dataset)
        log.info("%s on %s: model trained on %s; class-aware maps: %s", method, dataset, train_dataset,
                 classes.record())
    maps = localize_all(model, test, batch_size) if hasattr(model, "localize") else None
    tasks: dict[str, dict[str, Any]] = {}
    single, per_sample, embeddings = evaluate_single_source(model, test, protocols, batch_size, maps=maps)
    tasks["localization"] = {name: {**values, "n": len(test)} for name, values in single.items()}
    gt_class_maps = localize_gt_class(model, test, batch_size, classes)
    if gt_class_maps is not None:  # class-aware methods: also the papers' reading, the map of the GT class
        setting = primary + GT_CLASS_SUFFIX
        by_class, by_class_rows, _ = evaluate_single_source(model, test, [primary], batch_size, maps=gt_class_maps,
                                                            embed=False)
        tasks["localization"][setting] = {**by_class[primary], "n": len(test)}
        per_sample = pd.concat([per_sample, by_class_rows.assign(protocol=setting)], ignore_index=True)
    if embeddings:
        tasks["retrieval"] = {"test": {**evaluate_retrieval(embeddings), "n": len(test)}}
    if maps is not None and extended:  # every localizing method, baselines included
        negatives: list[NegativeSet] | None = None
        info: dict[str, Any] = {}
        if extended == "positives":
            negatives = []
        elif extended == "official":
            if not extended_list:
                raise ValueError(f"{dataset}: extended=official needs the official extended list")
            from avbench.sources.vggss import read_extended_list

            offscreen = _offscreen_set(offscreen_shards, loader_kwargs, dataset)
            negatives, info = official_negatives(test, read_extended_list(extended_list), offscreen=offscreen)
        result = evaluate_extended(model, test, primary, seed=seed, batch_size=batch_size, positive_maps=maps,
                                   negatives=negatives)
        if result is None:
            log.warning("%s: single-class test split, no extended (negative) set", dataset)
        else:
            tasks["extended"] = {primary: {**result, **info}}
    multisource: dict[str, Any] = {}
    if duet_shards:
        duets = ClipDataset(duet_shards, split_kind="test", **loader_kwargs)
        multisource["duet_clips"] = {**evaluate_duets(model, duets, primary, batch_size, gt_size, classes),
                                     "n": len(duets)}
    for path in mixtures:
        pairs = pd.read_parquet(path)
        layout = Path(path).stem
        multisource[f"mix_{layout}"] = {
            **evaluate_mixtures(model, test, pairs, layout, primary, gt_size, batch_size, classes),
            "n": len(pairs),
        }
    if multisource:
        tasks["multisource"] = multisource
    separate_pairs = [p for p in mixtures if Path(p).stem == "separate"]
    if hasattr(model, "separate") and separate_pairs:
        pairs = pd.read_parquet(separate_pairs[0])
        tasks["separation"] = {"test": evaluate_separation(model, test, pairs, batch_size)}
        if "binarize" in inspect.signature(model.separate).parameters:
            # Mask methods: "test" applies the method's own mask convention (binarised at 0.5 for BCE-trained
            # masks, as Sound-of-Pixels); "test_soft_mask" the sigmoid mask itself, so both readings are reported.
            tasks["separation"]["test_soft_mask"] = evaluate_separation(model, test, pairs, batch_size,
                                                                        binarize=False)
    if mask_gt == "segmentation" and masks:
        tasks["segmentation"] = {"test": evaluate_segmentation(model, test, masks, batch_size, gt_size,
                                                               videos=videos, maps=maps)}
    summary = {"method": method, "dataset": dataset, "preset": method_cfg.get("preset"),
               "primary_protocol": primary, "data": data_cfg, "n_available": len(test), "tasks": tasks}
    if train_manifest:
        summary["class_mapping"] = classes.record()
    if mask_gt:
        summary["gt"] = {"masks": mask_gt, "n_masks": len(masks)}
    io.write_parquet(per_sample_path, per_sample)
    io.write_json(summary_path, summary)
    log.info("%s on %s: %s", method, dataset, json.dumps(tasks["localization"][primary]))
    return summary


__all__ = ["ClassMapping", "NegativeSet", "TestSet", "class_mapping", "evaluate_extended", "evaluate_method",
           "evaluate_segmentation", "label_vocabulary", "load_method", "localize_all", "official_negatives",
           "placed_masks"]
