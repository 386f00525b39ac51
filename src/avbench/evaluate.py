"""Evaluation: a trained method (or a training-free baseline) -> maps / embeddings -> metrics -> summary.

Single-source localization runs on the test split under every configured protocol, the extended
(false-positive) protocol on every test image with its own and with another class's audio; multi-source
localization on SynthAV's real duet clips and on the seeded test mixtures (both layouts); retrieval and
recognition on the global embeddings of the test split. The summary records the number of clips evaluated
(N_available).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from avbench import audio, io
from avbench.data import ClipDataset, collate
from avbench.gt import union_map
from avbench.models import registry

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


def _class_maps(model: torch.nn.Module, images: torch.Tensor, specs: torch.Tensor,
                class_idx: torch.Tensor) -> torch.Tensor:
    """Class-specific maps when the method has them; a class-agnostic method gives one map for every source."""
    if hasattr(model, "localize_class"):
        return model.localize_class(images, specs, class_idx)
    return model.localize(images, specs)


def evaluate_single_source(model: torch.nn.Module, dataset: ClipDataset, protocols: list[str],
                           batch_size: int) -> tuple[dict[str, dict[str, float]], pd.DataFrame, dict]:
    from avbench.metrics.localization import PRESETS, LocalizationMetric

    metrics = {name: LocalizationMetric(PRESETS[name]) for name in protocols}
    visual, acoustic, labels = [], [], []
    clip_ids: list[str] = []
    for batch in _batches(dataset, batch_size):
        maps = model.localize(batch["image"], batch["spec"])
        for metric in metrics.values():
            metric.update(maps, batch["gt"])
        if getattr(model, "requires_training", True):  # training-free baselines have no embeddings
            v, a = model.embed(batch["image"], batch["spec"])
            visual.append(v.numpy())
            acoustic.append(a.numpy())
            labels.append(batch["label_idx"].numpy())
        clip_ids += batch["clip_id"]
    results = {name: metric.compute() for name, metric in metrics.items()}
    per_sample = []
    for name, metric in metrics.items():
        frame = metric.per_sample()
        frame.insert(0, "clip_id", clip_ids)
        frame.insert(1, "protocol", name)
        per_sample.append(frame)
    embeddings = {"visual": np.concatenate(visual), "audio": np.concatenate(acoustic),
                  "labels": np.concatenate(labels)} if visual else {}
    return results, pd.concat(per_sample, ignore_index=True), embeddings


def evaluate_retrieval(embeddings: dict[str, np.ndarray]) -> dict[str, float]:
    from avbench.metrics import retrieval

    return retrieval.retrieval_summary(embeddings["visual"], embeddings["audio"], embeddings["labels"])


def evaluate_duets(model: torch.nn.Module, dataset: ClipDataset, protocol: str, batch_size: int,
                   gt_size: int) -> dict[str, float]:
    """Real two-source clips: one map per sounding source (class-aware when the method supports it)."""
    from avbench.metrics.localization import PRESETS
    from avbench.metrics.multisource import MultiSourceMetric

    metric = MultiSourceMetric(PRESETS[protocol])
    for batch in _batches(dataset, batch_size):
        per_source_maps, per_source_gts = [], []
        for k in range(2):
            cls = torch.tensor([s[k]["label_idx"] for s in batch["sources"]])
            per_source_maps.append(_class_maps(model, batch["image"], batch["spec"], cls))
            per_source_gts.append(torch.stack([
                torch.from_numpy(union_map(s[k]["boxes"], gt_size, gt_size)) for s in batch["sources"]
            ]))
        metric.update(torch.stack(per_source_maps, 1), torch.stack(per_source_gts, 1))
    return metric.compute()


def extended_partners(dataset: Sequence[dict[str, Any]], seed: int) -> np.ndarray | None:
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

    clips = getattr(dataset, "clips", None)  # ClipDataset: read ids and labels without decoding items
    if clips is not None:
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


def evaluate_extended(model: torch.nn.Module, dataset: Sequence[dict[str, Any]], protocol: str, *, seed: int,
                      batch_size: int, conf_norm: str = "abs_cos") -> dict[str, Any] | None:
    """SLAVC-style extended localization (PROTOCOLS 4.5) built from the test split itself.

    Positives: every test image with its own audio (``n_boxes`` = its box count). Negatives: every test image
    with the audio of :func:`extended_partners` (another class, so the visible objects are silent): an empty
    GT and ``n_boxes = 0``. ``protocol`` binarises the maps; the confidence is the top-quarter mean of the
    upsampled map under ``conf_norm``: ``abs_cos`` is ``(cos + 1) / 2``, SLAVC's absolute score for cosine
    maps; for maps on another scale it is an increasing affine transform of theirs, which changes no AP,
    max-F1 or LocAcc (only the F1 at the fixed confidence threshold). Keys: those of
    :func:`avbench.metrics.extended.extended_metrics` plus ``ap`` (SLAVC ``calc_ap``), ``ap_exact``
    (all-points AP), ``max_f1``, ``loc_acc`` (all at IoU 0.5), ``n`` (test clips) and ``n_negatives``; None
    for a single-class test split.
    """
    from avbench.metrics.extended import ExtendedMetric, ap_voc_exact
    from avbench.metrics.localization import PRESETS

    partners = extended_partners(dataset, seed)
    if partners is None:
        return None
    metric = ExtendedMetric(PRESETS[protocol], ap_impl="slavc", conf_norm=conf_norm)
    for start in range(0, len(dataset), batch_size):
        idx = range(start, min(start + batch_size, len(dataset)))
        batch = collate([dataset[i] for i in idx])
        negative_specs = torch.stack([dataset[int(partners[i])]["spec"] for i in idx])
        with torch.no_grad():
            positive = model.localize(batch["image"], batch["spec"])
            negative = model.localize(batch["image"], negative_specs)
        metric.update(positive, batch["gt"], n_boxes=[len(b) for b in batch["boxes"]])
        metric.update(negative, torch.zeros_like(batch["gt"]), n_boxes=[0] * len(idx))
    out = metric.compute()
    rows = metric.per_sample()
    out.update(
        ap=out["ap_all@0.5"], max_f1=out["maxf1_all@0.5"], loc_acc=out["locacc@0.5"],
        ap_exact=ap_voc_exact(rows["conf"], rows["ciou"], rows["n_boxes"], 0.5),
        n=len(dataset), n_negatives=len(dataset),
    )
    return out


class TestSet:
    """A test split decoded once: normalised images, spectrograms, centre-window waves and labels by clip id.

    Mixture and separation evaluation index into it instead of re-running the loader per pair.
    """

    def __init__(self, dataset: ClipDataset) -> None:
        items = [dataset[i] for i in range(len(dataset))]
        self.dataset = dataset
        self.index = {item["clip_id"]: i for i, item in enumerate(items)}
        self.images = torch.stack([item["image"] for item in items])
        self.labels = torch.tensor([item["label_idx"] for item in items])
        self.waves = torch.stack([dataset._wave(clip) for clip in dataset.clips])

    def pair_indices(self, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
        """Row indices of both clips of every pair whose clips are present (others are dropped and logged)."""
        present = pairs["id_a"].isin(self.index.keys()) & pairs["id_b"].isin(self.index.keys())
        if not present.all():
            log.warning("%d of %d pairs reference clips missing from the test shards", (~present).sum(), len(pairs))
        kept = pairs[present].reset_index(drop=True)
        ia = kept["id_a"].map(self.index).to_numpy()
        ib = kept["id_b"].map(self.index).to_numpy()
        return ia, ib, kept

    def mixture_specs(self, ia: np.ndarray, ib: np.ndarray) -> torch.Tensor:
        """Spectrograms of the plain sums of the two centre windows (PROTOCOLS 5.1), ``[B, 1, F, T]``."""
        waves = self.waves[ia] + self.waves[ib]
        return audio.spectrogram(waves, self.dataset.sample_rate, self.dataset.frontend).unsqueeze(1).float()


def evaluate_mixtures(model: torch.nn.Module, test: TestSet, pairs: pd.DataFrame, layout: str,
                      protocol: str, gt_size: int, batch_size: int) -> dict[str, float]:
    """Seeded two-source test mixtures: one map per source from the shared mixture audio.

    ``separate``: source k's map comes from its own frame; ``concat_lr``: both maps come from the 1x2 canvas,
    each scored against its source's boxes shifted into that canvas.
    """
    from avbench.metrics.localization import PRESETS
    from avbench.metrics.multisource import MultiSourceMetric

    metric = MultiSourceMetric(PRESETS[protocol])
    ia, ib, pairs = test.pair_indices(pairs)
    width = gt_size if layout == "separate" else 2 * gt_size
    for start in range(0, len(pairs), batch_size):
        sl = slice(start, start + batch_size)
        a, b = ia[sl], ib[sl]
        specs = test.mixture_specs(a, b)
        maps = []
        canvas = torch.cat([test.images[a], test.images[b]], -1) if layout == "concat_lr" else None
        for idx in (a, b):
            images = test.images[idx] if canvas is None else canvas
            maps.append(_class_maps(model, images, specs, test.labels[idx]))
        gts = torch.stack([
            torch.stack([torch.from_numpy(union_map(json.loads(row[col]), gt_size, width))
                         for col in ("boxes_a", "boxes_b")])
            for _, row in pairs.iloc[sl].iterrows()
        ])
        metric.update(torch.stack(maps, 1), gts)
    return metric.compute()


def evaluate_separation(model: torch.nn.Module, test: TestSet, pairs: pd.DataFrame,
                        batch_size: int) -> dict[str, float]:
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
            ests = torch.stack([model.separate(mixture, test.images[idx], test.dataset.sample_rate)
                                for idx in (a, b)], 1)
        metric.update(refs.numpy(), ests.numpy(), mixture.numpy())
    return metric.compute()


def evaluate_segmentation(model: torch.nn.Module, dataset: ClipDataset, avsbench_root: Path, batch_size: int,
                          gt_size: int) -> dict[str, float]:
    """AVSBench-style masks of the centre frame (k = 3 of the 5 mask frames): min-max maps as probabilities,
    thresholded at 0.5 (PROTOCOLS 4.9 default for weakly supervised localization)."""
    from avbench.ids import clip_id
    from avbench.metrics.localization import prepare_maps
    from avbench.metrics.segmentation import SegmentationMetric
    from avbench.sources.avsbench import avsbench_paths, read_avsbench_mask, read_avsbench_meta

    meta = read_avsbench_meta(avsbench_root, "s4")
    masks = {}
    for row in meta.itertuples():
        path = avsbench_paths(avsbench_root, "s4", row.name, row.split, row.category)["masks"][2]
        masks[clip_id(row.name, int(row.start))] = path
    metric = SegmentationMetric(input="prob", fscore_batch="video")
    for batch in _batches(dataset, batch_size):
        keep = [i for i, cid in enumerate(batch["clip_id"]) if cid in masks]
        if not keep:
            continue
        maps = model.localize(batch["image"][keep], batch["spec"][keep])
        probs = prepare_maps(maps, (gt_size, gt_size), "ezvsl_test")
        gts = np.stack([read_avsbench_mask(masks[batch["clip_id"][i]], gt_size, gt_size) for i in keep])
        metric.update(probs, gts, videos=[batch["clip_id"][i] for i in keep])
    return metric.compute()


def evaluate_method(
    method: str, method_cfg: dict[str, Any], *, test_shards: Path, model_path: str | None,
    duet_shards: str | None, mixtures: list[str], eval_cfg: dict[str, Any], seed: int, threads: int,
    summary_path: Path, per_sample_path: Path, dataset: str, avsbench_root: str | None = None,
) -> dict[str, Any]:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model, data_cfg = load_method(method, method_cfg, model_path)
    gt_size = eval_cfg["gt_size"]
    primary = eval_cfg["primary_protocol"]
    protocols = list(dict.fromkeys([primary, *eval_cfg["protocols"]]))
    loader_kwargs = {"image_size": data_cfg["image_size"], "frontend": data_cfg["frontend"],
                     "audio_duration_s": data_cfg["audio_duration_s"], "gt_size": gt_size, "seed": seed}
    test = ClipDataset(test_shards, split_kind="test", **loader_kwargs)
    tasks: dict[str, dict[str, Any]] = {}
    single, per_sample, embeddings = evaluate_single_source(model, test, protocols, eval_cfg["batch_size"])
    tasks["localization"] = {name: {**values, "n": len(test)} for name, values in single.items()}
    if embeddings:
        tasks["retrieval"] = {"test": {**evaluate_retrieval(embeddings), "n": len(test)}}
    if hasattr(model, "localize"):  # every localizing method, baselines included
        extended = evaluate_extended(model, test, primary, seed=seed, batch_size=eval_cfg["batch_size"])
        if extended is None:
            log.warning("%s: single-class test split, no extended (negative) set", dataset)
        else:
            tasks["extended"] = {primary: extended}
    multisource: dict[str, Any] = {}
    if duet_shards:
        duets = ClipDataset(duet_shards, split_kind="test", **loader_kwargs)
        multisource["duet_clips"] = {**evaluate_duets(model, duets, primary, eval_cfg["batch_size"], gt_size),
                                     "n": len(duets)}
    test_set = TestSet(test) if mixtures else None
    for path in mixtures:
        pairs = pd.read_parquet(path)
        layout = Path(path).stem
        multisource[f"mix_{layout}"] = {
            **evaluate_mixtures(model, test_set, pairs, layout, primary, gt_size, eval_cfg["batch_size"]),
            "n": len(pairs),
        }
    if multisource:
        tasks["multisource"] = multisource
    separate_pairs = [p for p in mixtures if Path(p).stem == "separate"]
    if hasattr(model, "separate") and separate_pairs:
        pairs = pd.read_parquet(separate_pairs[0])
        tasks["separation"] = {"test": evaluate_separation(model, test_set, pairs, eval_cfg["batch_size"])}
    if avsbench_root:
        tasks["segmentation"] = {"test": evaluate_segmentation(model, test, Path(avsbench_root),
                                                               eval_cfg["batch_size"], gt_size)}
    summary = {"method": method, "dataset": dataset, "preset": method_cfg.get("preset"),
               "primary_protocol": primary, "data": data_cfg, "n_available": len(test), "tasks": tasks}
    io.write_parquet(per_sample_path, per_sample)
    io.write_json(summary_path, summary)
    log.info("%s on %s: %s", method, dataset, json.dumps(tasks["localization"][primary]))
    return summary


__all__ = ["evaluate_method", "load_method"]
