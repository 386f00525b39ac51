"""Evaluation of real datasets: placed mask GT (AVSBench segmentation, VGGSound-Instruments localization), class
vocabularies across datasets (train_from), official extended sets, and the once-decoded test split."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import webdataset as wds
from PIL import Image

from avbench import evaluate as ev
from avbench import stages
from avbench.data import ClipDataset, collate
from avbench.gt import load_pickled_mask, read_mask_file
from avbench.metrics.extended import ExtendedMetric, ap_voc_exact
from avbench.metrics.localization import PRESETS, LocalizationMetric
from avbench.mixtures import layout_pairs, make_pairs
from avbench.workflow_helpers import WorkflowPaths

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AVBENCH_SHARED") or REPO.parent / "shared")
META = SHARED / "metadata"


# --- tiny shards -----------------------------------------------------------------------------------------
def _jpg(rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _wav(rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, (rng.uniform(-0.5, 0.5, 3 * 16000) * 32767).astype(np.int16), 16000, subtype="PCM_16",
             format="WAV")
    return buf.getvalue()


def write_shards(root: Path, clips: list[tuple[str, str, int, list]], seed: int = 0) -> None:
    """Test shards of ``(clip_id, label, label_idx, boxes)`` samples (ARCHITECTURE "Shards")."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(root / "t-test-000000.tar")) as writer:
        for cid, label, idx, boxes in clips:
            meta = {"clip_id": cid, "ytid": cid[:11], "label": label, "label_idx": idx, "split": "test",
                    "dataset": "t", "boxes": boxes, "sources": [{"label": label, "label_idx": idx, "boxes": boxes}]}
            writer.write({"__key__": cid, "jpg": _jpg(rng), "wav": _wav(rng), "json": json.dumps(meta).encode()})
    (root / "index.json").write_text(json.dumps({"dataset": "t", "split": "test", "shards": ["t-test-000000.tar"],
                                                 "n_samples": len(clips), "sample_rate": 16000, "fields": []}))


EVAL_CFG = {"protocols": ["sslalignment_adaptive", "ezvsl_test"], "primary_protocol": "sslalignment_adaptive",
            "gt_size": 32, "batch_size": 5}
LOADER = {"image_size": 112, "frontend": "mel64_16k", "audio_duration_s": 3.0, "gt_size": 32, "seed": 0}


# --- 8: the test split is decoded once, results identical to the per-task loaders -----------------------
@pytest.fixture(scope="module")
def synth_split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("split")
    clips = [(f"vid{i:08d}_{i:06d}", f"c{i % 3}", i % 3, [[0.1 * (i % 4), 0.2, 0.5 + 0.1 * (i % 4), 0.9]])
             for i in range(12)]
    write_shards(root / "test", clips)
    frame = pd.DataFrame({"clip_id": [c[0] for c in clips], "label": [c[1] for c in clips],
                          "ytid": [c[0][:11] for c in clips], "boxes": [json.dumps(c[3]) for c in clips]})
    mixtures = []
    for layout in ("separate", "concat_lr"):
        path = root / "mix" / f"{layout}.parquet"
        path.parent.mkdir(exist_ok=True)
        layout_pairs(make_pairs(frame, seed=0), layout).to_parquet(path)
        mixtures.append(str(path))
    return {"root": root, "test": root / "test", "mixtures": mixtures, "clips": clips}


def _reference(model: torch.nn.Module, shards: Path, seed: int) -> dict[str, Any]:
    """The earlier evaluation loops: per-task decoding through the loader, maps recomputed per task."""
    ds = ClipDataset(shards, split_kind="test", **LOADER)
    protocols = ["sslalignment_adaptive", "ezvsl_test"]
    metrics = {p: LocalizationMetric(PRESETS[p]) for p in protocols}
    for start in range(0, len(ds), 5):
        batch = collate([ds[i] for i in range(start, min(start + 5, len(ds)))])
        maps = model.localize(batch["image"], batch["spec"])
        for metric in metrics.values():
            metric.update(maps, batch["gt"])
    out = {"localization": {p: m.compute() for p, m in metrics.items()}}
    partners = ev.extended_partners(ds, seed)
    metric = ExtendedMetric(PRESETS["sslalignment_adaptive"], ap_impl="slavc", conf_norm="abs_cos")
    for start in range(0, len(ds), 5):
        idx = range(start, min(start + 5, len(ds)))
        batch = collate([ds[i] for i in idx])
        negative_specs = torch.stack([ds[int(partners[i])]["spec"] for i in idx])
        with torch.no_grad():
            positive = model.localize(batch["image"], batch["spec"])
            negative = model.localize(batch["image"], negative_specs)
        metric.update(positive, batch["gt"], n_boxes=[len(b) for b in batch["boxes"]])
        metric.update(negative, torch.zeros_like(batch["gt"]), n_boxes=[0] * len(idx))
    ext = metric.compute()
    rows = metric.per_sample()
    ext.update(ap=ext["ap_all@0.5"], max_f1=ext["maxf1_all@0.5"], loc_acc=ext["locacc@0.5"],
               ap_exact=ap_voc_exact(rows["conf"], rows["ciou"], rows["n_boxes"], 0.5), n=len(ds),
               n_negatives=len(ds))
    out["extended"] = ext
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (np.isnan(a) and np.isnan(b)) or a == b
    return a == b


@pytest.mark.parametrize("method", ["ezvsl", "centre_prior"])
def test_test_split_decoded_once_and_results_unchanged(method: str, synth_split: dict, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {"preset": "cpu", "data": {"image_size": 112, "frontend": "mel64_16k"}} if method == "ezvsl" else {}
    torch.manual_seed(0)
    model, _ = ev.load_method(method, cfg, None)
    reference = _reference(model, synth_split["test"], seed=0)

    calls = {"n": 0}
    original = ClipDataset.__getitem__

    def counting(self: ClipDataset, index: int) -> dict[str, Any]:
        calls["n"] += 1
        return original(self, index)

    monkeypatch.setattr(ClipDataset, "__getitem__", counting)
    torch.manual_seed(0)
    model, _ = ev.load_method(method, cfg, None)
    monkeypatch.setattr(ev, "load_method", lambda *a, **k: (model, {**LOADER, "image_size": 112}))
    summary = ev.evaluate_method(
        method, cfg, test_shards=synth_split["test"], model_path=None, duet_shards=None,
        mixtures=synth_split["mixtures"], eval_cfg=EVAL_CFG, seed=0, threads=1,
        summary_path=tmp_path / "summary.json", per_sample_path=tmp_path / "per_sample.parquet", dataset="t")
    assert calls["n"] == len(synth_split["clips"])  # every item built once for all tasks
    tasks = summary["tasks"]
    for protocol, values in reference["localization"].items():
        for key, value in values.items():
            assert _same(tasks["localization"][protocol][key], value), (protocol, key)
    for key, value in reference["extended"].items():
        assert _same(tasks["extended"]["sslalignment_adaptive"][key], value), key
    assert tasks["extended"]["sslalignment_adaptive"]["negatives"] == ["seeded_mismatch"]
    assert set(tasks["multisource"]) == {"mix_separate", "mix_concat_lr"}


# --- 3: class-aware maps of a model trained on another dataset ------------------------------------------
def test_class_mapping_by_name_or_class_agnostic() -> None:
    train = {0: "cello", 1: "flute", 2: "playing violin, fiddle"}
    mapping = ev.class_mapping(train, {0: "violin", 1: "cello"}, "k400")
    assert mapping.mode == "by_name"
    assert mapping.classes(torch.tensor([0, 1, 0])).tolist() == [2, 0, 2]
    assert mapping.record() == {"mode": "by_name", "train_dataset": "k400", "n_test_classes": 2, "n_mapped": 2,
                                "unmapped": [], "n_unmapped": 0}
    assert ev.class_mapping(train, {0: "Flute"}).classes(torch.tensor([0])).tolist() == [1]  # case/underscores
    disjoint = ev.class_mapping(train, {0: "cello", 1: "dog barking"}, "k400")
    assert disjoint.mode == "class_agnostic" and disjoint.classes(torch.tensor([0])) is None
    assert disjoint.record()["unmapped"] == ["dog barking"]
    assert ev.class_mapping(None, {0: "x"}).mode == "own"
    # ambiguous names never map: two training classes share the instrument spelling
    amb = ev.class_mapping({0: "playing guitar, bass", 1: "guitar"}, {0: "guitar"})
    assert amb.classes(torch.tensor([0])).tolist() == [1]  # the exact spelling wins before the looser ones
    amb2 = ev.class_mapping({0: "Guitar", 1: "guitar_"}, {0: "GUITAR"})
    assert amb2.mode == "class_agnostic" and amb2.record()["unmapped"] == ["GUITAR"]


class RecordingModel(torch.nn.Module):
    """Flat maps; records the class indices it is asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[int] | None] = []

    def localize(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        self.asked.append(None)
        return torch.zeros(images.shape[0], 4, images.shape[-1] // 16)

    def localize_class(self, images: torch.Tensor, specs: torch.Tensor, class_idx: torch.Tensor) -> torch.Tensor:
        self.asked.append(class_idx.tolist())
        return torch.zeros(images.shape[0], 4, images.shape[-1] // 16)


def test_cross_dataset_mixtures_use_the_training_class_indices(synth_split: dict) -> None:
    test = ev.TestSet(ClipDataset(synth_split["test"], split_kind="test", **LOADER))
    assert test.vocabulary() == {0: "c0", 1: "c1", 2: "c2"}
    pairs = pd.read_parquet(synth_split["mixtures"][0])
    # trained on a dataset whose vocabulary lists the same names in another order
    mapping = ev.class_mapping({0: "c2", 1: "x", 2: "c0", 3: "c1"}, test.vocabulary(), "other")
    model = RecordingModel()
    ev.evaluate_mixtures(model, test, pairs, "separate", "sslalignment_adaptive", 32, 64, mapping)
    ia, _, kept = test.pair_indices(pairs)
    expected = [{0: 2, 1: 3, 2: 0}[int(c)] for c in test.labels[ia]]
    assert model.asked[0] == expected
    # the old behaviour (own indices) would have asked for the evaluated dataset's indices
    assert model.asked[0] != test.labels[ia].tolist()
    agnostic = RecordingModel()
    ev.evaluate_mixtures(agnostic, test, pairs, "separate", "sslalignment_adaptive", 32, 64,
                         ev.class_mapping({0: "dog"}, test.vocabulary()))
    assert agnostic.asked == [None, None]


class GtClassPeakModel(torch.nn.Module):
    """Class-agnostic map: flat. Class map: the top-left quarter (no embeddings, as a training-free model)."""

    requires_training = False

    def localize(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(images.shape[0], 8, 8)

    def localize_class(self, images: torch.Tensor, specs: torch.Tensor, class_idx: torch.Tensor) -> torch.Tensor:
        maps = torch.zeros(images.shape[0], 8, 8)
        maps[:, :4, :4] = 1.0
        return maps


def test_single_source_gt_class_maps(synth_split: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    test = ev.TestSet(ClipDataset(synth_split["test"], split_kind="test", **LOADER))
    model = RecordingModel()
    maps = ev.localize_gt_class(model, test, 2)
    assert maps is not None and maps.shape[0] == len(test)
    assert [c for asked in model.asked for c in asked] == test.labels.tolist()  # each item: its own label
    mapped = RecordingModel()
    ev.localize_gt_class(mapped, test, 64, ev.class_mapping({0: "c2", 1: "x", 2: "c0", 3: "c1"},
                                                            test.vocabulary(), "other"))
    assert mapped.asked[0] == [{0: 2, 1: 3, 2: 0}[int(c)] for c in test.labels]
    assert ev.localize_gt_class(model, test, 64, ev.class_mapping({0: "dog"}, test.vocabulary())) is None
    with torch.no_grad():
        assert ev.localize_gt_class(torch.nn.Identity(), test, 64) is None  # no class maps at all
    unknown = ev.TestSet(ClipDataset(synth_split["test"], split_kind="test", **LOADER))
    unknown.labels[0] = -1
    assert ev.localize_gt_class(RecordingModel(), unknown, 64) is None
    # in a summary: a separate setting beside the class-agnostic protocols, scored from the GT-class maps
    peak = GtClassPeakModel()
    monkeypatch.setattr(ev, "load_method", lambda *a, **k: (peak, {**LOADER, "image_size": 112}))
    summary = ev.evaluate_method(
        "fake", {}, test_shards=synth_split["test"], model_path=None, duet_shards=None, mixtures=[],
        eval_cfg=EVAL_CFG, seed=0, threads=1, summary_path=tmp_path / "s.json",
        per_sample_path=tmp_path / "p.parquet", dataset="t")
    loc = summary["tasks"]["localization"]
    primary = EVAL_CFG["primary_protocol"]
    assert set(loc) == {*EVAL_CFG["protocols"], f"{primary}_gt_class"}
    expected, _, _ = ev.evaluate_single_source(peak, test, [primary], 64, maps=ev.localize_gt_class(peak, test, 64),
                                               embed=False)
    for key, value in expected[primary].items():
        assert _same(loc[f"{primary}_gt_class"][key], value), key
    assert loc[f"{primary}_gt_class"]["avg_ciou"] != loc[primary]["avg_ciou"]
    rows = pd.read_parquet(tmp_path / "p.parquet")
    assert (rows["protocol"] == f"{primary}_gt_class").sum() == len(test)


def test_train_from_summary_records_the_class_mapping(synth_split: dict, tmp_path: Path) -> None:
    manifest = tmp_path / "train_manifest.parquet"
    pd.DataFrame({"clip_id": ["a", "b"], "label": ["dog", "cat"], "label_idx": [1, 0],
                  "sources": ["[]", "[]"]}).to_parquet(manifest)
    summary = ev.evaluate_method(
        "centre_prior", {}, test_shards=synth_split["test"], model_path=None, duet_shards=None, mixtures=[],
        eval_cfg=EVAL_CFG, seed=0, threads=1, summary_path=tmp_path / "s.json",
        per_sample_path=tmp_path / "p.parquet", dataset="t", train_manifest=manifest, train_dataset="pets",
        extended="positives")
    assert summary["class_mapping"]["mode"] == "class_agnostic"
    assert summary["class_mapping"]["train_dataset"] == "pets"
    assert summary["class_mapping"]["n_unmapped"] == 3
    with pytest.raises(ValueError, match="label_idx 0 names both"):
        ev.label_vocabulary(pd.DataFrame({"label": ["a", "b"], "label_idx": [0, 0]}))


# --- 1: a placed real AVSBench tree feeds the segmentation evaluation ------------------------------------
def _png(path: Path, mask: np.ndarray, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray((mask > 0).astype(np.uint8) * 255)
    img.convert("1").save(path) if mode == "1" else img.convert("P").save(path)


def fake_avsbench_s4(root: Path) -> dict[str, np.ndarray]:
    """The official S4 layout (PROTOCOLS 1.8): meta csv, frames, masks (all 5 for test, frame 1 for train), wavs.
    Masks are 64 x 48 (not the evaluation size): the foreground is the left half for video A, empty for frame
    2 of video B, the top half otherwise. Returns the expected 32 x 32 GT per frame id."""
    base = root / "Single-source"
    base.mkdir(parents=True)
    (base / "s4_meta_data.csv").write_text(
        "name,start,category,split\n"
        "aaaaaaaaaaa_1,0,playing_violin,test\nbbbbbbbbbbb_2,0,dog,test\nccccccccccc_3,0,dog,train\n")
    data = base / "s4_data"
    for d in ("visual_frames", "audio_wav", "audio_log_mel", "gt_masks"):
        (data / d).mkdir(parents=True)
    expected = {}
    rng = np.random.default_rng(0)
    for name, cat, split in (("aaaaaaaaaaa_1", "playing_violin", "test"), ("bbbbbbbbbbb_2", "dog", "test"),
                             ("ccccccccccc_3", "dog", "train")):
        wav = data / "audio_wav" / split / cat / f"{name}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        sf.write(wav, rng.uniform(-0.1, 0.1, 5 * 16000), 16000)
        for k in range(1, 6):
            frame = data / "visual_frames" / split / cat / name / f"{name}_{k}.png"
            frame.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(frame)
            if split == "train" and k > 1:
                continue
            mask = np.zeros((48, 64), dtype=np.uint8)
            gt = np.zeros((32, 32), dtype=np.float32)
            if name.startswith("a"):
                mask[:, :32], gt[:, :16] = 1, 1
            elif k != 2:
                mask[:24], gt[:16] = 1, 1
            _png(data / "gt_masks" / split / cat / name / f"{name}_{k}.png", mask, "1")
            expected[f"{name}_{k}"] = gt
    return expected


class OracleModel(torch.nn.Module):
    """Returns the GT of each item as its map (looked up by the item's image), at the GT size."""

    requires_training = False

    def __init__(self, maps: dict[bytes, torch.Tensor]) -> None:
        super().__init__()
        self.maps = maps

    def localize(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.maps[img.numpy().tobytes()] for img in images])


def test_placed_avsbench_s4_tree_feeds_segmentation(tmp_path: Path) -> None:
    from avbench.datasets import placed_items

    expected = fake_avsbench_s4(tmp_path / "avsbench_data")
    cfg = {"source": "avsbench", "test_list": "s4", "root": str(tmp_path / "avsbench_data")}
    items = placed_items("avs_s4", cfg, {})
    ingest = items.assign(status="ok", reason="", video_path="")  # the ingest_placed table's columns
    masks, videos = ev.placed_masks(ingest)
    test_ids = sorted(c for c in expected if not c.startswith("c"))
    assert sorted(masks) == sorted(expected)  # test frames 1..5 and the train video's frame 1
    assert videos["aaaaaaaaaaa_1_3"] == "aaaaaaaaaaa_1"
    # the evaluated test split: real frame ids `<name>_<k>` in the shards
    write_shards(tmp_path / "test", [(cid, "dog", 0, []) for cid in test_ids])
    test = ev.TestSet(ClipDataset(tmp_path / "test", split_kind="test", **LOADER))
    oracle = OracleModel({test.images[i].numpy().tobytes(): torch.from_numpy(expected[cid])
                          for i, cid in enumerate(test.clip_ids)})
    out = ev.evaluate_segmentation(oracle, test, masks, batch_size=4, gt_size=32, videos=videos)
    assert out["n"] == 10 and out["n_batches"] == 2  # 2 test videos x 5 frames, F-score per video
    assert out["miou"] == pytest.approx(1.0) and out["fscore"] == pytest.approx(1.0)
    assert out["n_fscore_frames"] == 9  # the empty mask counts in mIoU only
    # a wrong map scores below 1 (the masks were really read and resized nearest)
    flipped = OracleModel({k: 1 - v for k, v in oracle.maps.items()})
    assert ev.evaluate_segmentation(flipped, test, masks, 4, 32, videos=videos)["miou"] < 0.1
    # through the rule's stage function: eval_options + the ingest table reach the segmentation task
    ingest_path = tmp_path / "ingest.parquet"
    ingest.to_parquet(ingest_path)
    stages.evaluate(summary=str(tmp_path / "s.json"), per_sample=str(tmp_path / "p.parquet"), eval_cfg=EVAL_CFG,
                    method_cfg={}, seed=0, threads=1, wildcards={"dataset": "avs_s4", "method": "centre_prior"},
                    eval_options={"mask_gt": "segmentation", "train_dataset": None, "extended": "positives"},
                    test=str(tmp_path / "test"), ingest=str(ingest_path))
    summary = json.loads((tmp_path / "s.json").read_text())
    seg = summary["tasks"]["segmentation"]["test"]
    assert seg["n"] == 10 and seg["n_batches"] == 2 and 0.0 <= seg["miou"] <= 1.0
    assert summary["gt"] == {"masks": "segmentation", "n_masks": 11}
    # localization on AVSBench keeps its box GT (SSLalignment boxes): the masks do not replace it
    assert summary["tasks"]["localization"]["sslalignment_adaptive"]["n"] == 10


def test_ms3_frames_and_masks_share_ids(tmp_path: Path) -> None:
    from avbench.datasets import placed_items

    base = tmp_path / "avsbench_data" / "Multi-sources"
    (base / "ms3_data").mkdir(parents=True)
    for d in ("visual_frames", "audio_wav", "audio_log_mel", "gt_masks"):
        (base / "ms3_data" / d).mkdir()
    (base / "ms3_meta_data.csv").write_text("video_id,split\n0WxgIKuetYI_0,test\n")
    name = "0WxgIKuetYI_0"
    for k in range(1, 6):
        _png(base / "ms3_data" / "gt_masks" / "test" / name / f"{name}_{k}.png", np.eye(8), "P")
    items = placed_items("ms3", {"source": "avsbench", "test_list": "ms3", "root": str(tmp_path / "avsbench_data")},
                         {})
    masks, videos = ev.placed_masks(items)
    assert sorted(masks) == [f"{name}_{k}" for k in range(1, 6)]
    assert set(videos.values()) == {name}
    np.testing.assert_array_equal(read_mask_file(masks[f"{name}_1"], 16, 16), np.kron(np.eye(8), np.ones((2, 2))))


# --- 2: VGGSound-Instruments mask GT (pickles) ----------------------------------------------------------
def test_pickled_instrument_masks_decode_and_resize_nearest(tmp_path: Path) -> None:
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[:15, 20:] = 1
    path = tmp_path / "sample0000.pkl"
    path.write_bytes(pickle.dumps(mask))
    np.testing.assert_array_equal(load_pickled_mask(path), mask)
    gt = read_mask_file(path, 6, 8)
    expected = np.zeros((6, 8), dtype=np.float32)
    expected[:3, 4:] = 1
    np.testing.assert_array_equal(gt, expected)
    (tmp_path / "bool.pkl").write_bytes(pickle.dumps(mask.astype(bool), protocol=2))
    np.testing.assert_array_equal(read_mask_file(tmp_path / "bool.pkl", 6, 8), expected)
    # a pickle that would run code is refused, and so is anything but a 2-D mask; errors name the file
    (tmp_path / "evil.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")  # os.system('true') as a pickle
    with pytest.raises(ValueError, match=r"evil\.pkl.*not allowed"):
        load_pickled_mask(tmp_path / "evil.pkl")
    (tmp_path / "cube.pkl").write_bytes(pickle.dumps(np.zeros((2, 2, 2))))
    with pytest.raises(ValueError, match=r"cube\.pkl: expected a 2-D numeric mask"):
        load_pickled_mask(tmp_path / "cube.pkl")
    with pytest.raises(ValueError, match="unknown mask format"):
        read_mask_file(tmp_path / "sample0000.txt")


def test_instrument_masks_are_the_localization_gt(tmp_path: Path) -> None:
    """VGGSound-Instruments test samples have no boxes: their GT is the pickled mask (it used to be empty)."""
    ids = [f"sample{i:04d}" for i in range(4)]
    write_shards(tmp_path / "test", [(cid, f"i{i % 2}", i % 2, []) for i, cid in enumerate(ids)])
    masks = tmp_path / "masks"
    masks.mkdir()
    rows = []
    for i, cid in enumerate(ids):
        mask = np.zeros((20, 20), dtype=np.uint8)
        mask[: 5 * (i + 1), :10] = 1
        (masks / f"{cid}.pkl").write_bytes(pickle.dumps(mask))
        rows.append({"clip_id": cid, "status": "ok", "reason": "", "video_path": "", "image": "", "audio": "",
                     "mask": str(masks / f"{cid}.pkl")})
    ingest = tmp_path / "ingest.parquet"
    pd.DataFrame(rows).to_parquet(ingest)
    summary = ev.evaluate_method(
        "centre_prior", {}, test_shards=tmp_path / "test", model_path=None, duet_shards=None, mixtures=[],
        eval_cfg=EVAL_CFG, seed=0, threads=1, summary_path=tmp_path / "s.json",
        per_sample_path=tmp_path / "p.parquet", dataset="vggsound_instruments", ingest=ingest,
        mask_gt="localization", extended="positives")
    per_sample = pd.read_parquet(tmp_path / "p.parquet")
    areas = per_sample[per_sample["protocol"] == "sslalignment_adaptive"].set_index("clip_id")["gt_area"]
    # 5 (i + 1) x 10 of 20 x 20 pixels, nearest-resized to 32 x 32: 8 (i + 1) x 16
    assert areas.to_dict() == {cid: 128 * (i + 1) for i, cid in enumerate(ids)}
    ext = summary["tasks"]["extended"]["sslalignment_adaptive"]
    assert ext["n_visible"] == 4 and ext["n_negatives"] == 0 and ext["negatives"] == ["none"]
    assert "maxf1_visible@0.5" in ext  # OneAVM's F1 (positives only)
    assert "segmentation" not in summary["tasks"]


# --- 6: official extended sets on real data; seeded negatives stay SynthAV's -----------------------------
def test_official_extended_lists_pair_test_clips(synth_split: dict) -> None:
    test = ev.TestSet(ClipDataset(synth_split["test"], split_kind="test", **LOADER))
    ids = test.clip_ids
    listed = pd.DataFrame({"video": [ids[0], ids[1], "zzzzzzzzzzz_000001", "yyyyyyyyyyy_000002"],
                           "audio": [ids[5], ids[7], ids[2], "yyyyyyyyyyy_000002"],
                           "label": "non-sounding", "same_clip": [False, False, False, True]})
    sets, info = ev.official_negatives(test, listed)
    assert info == {"n_listed": 4, "n_listed_mismatch": 3, "n_mismatch": 2, "n_listed_offscreen": 1,
                    "n_offscreen": 0}
    assert [s.kind for s in sets] == ["official_mismatch"]
    assert sets[0].image_idx.tolist() == [0, 1] and sets[0].audio_idx.tolist() == [5, 7]
    model = RecordingModel()
    out = ev.evaluate_extended(model, test, "sslalignment_adaptive", seed=0, batch_size=5, negatives=sets)
    assert out["n"] == 12 and out["n_negatives"] == 2 and out["n_all"] == 14
    assert out["negatives"] == ["official_mismatch"]
    positives = ev.evaluate_extended(model, test, "sslalignment_adaptive", seed=0, batch_size=5, negatives=[])
    assert positives["n_all"] == 12 and positives["negatives"] == ["none"]


def test_real_extended_lists_read_and_workflow_options() -> None:
    from avbench.sources.vggss import read_extended_list

    vggss = read_extended_list(META / "vggss_extended" / "vggss_test_plus_silent.csv")
    assert len(vggss) == 5158 and int(vggss["same_clip"].sum()) == 379
    flickr = read_extended_list(META / "flickr_extended" / "flickr_test_plus_silent.csv")
    assert len(flickr) == 250 and not flickr["same_clip"].any()
    config = {"results_dir": "R", "metadata_dir": str(META), "n_chunks": 1, "datasets": {
        "synthav": {"source": "synthav"}, "vggss": {"source": "vggss"},
        "vggss_heard": {"source": "vggss", "train_list": "vggss_heard", "test_list": "vggss_heard"},
        "flickr_from_vggss": {"source": "flickr", "train_from": "vggss", "root": "/x"},
        "avs": {"source": "avsbench", "test_list": "s4", "root": "/y", "train_from": "vggss"},
        "inst": {"source": "vggsound_instruments", "root": "/z"}, "vmusic": {"source": "vggsound_music"}}}
    paths = WorkflowPaths(config)
    assert paths.eval_options("synthav") == {"mask_gt": None, "train_dataset": None, "extended": "seeded"}
    assert paths.eval_options("vggss")["extended"] == "official"
    # the full VGG-SS test set also reads the shards of the list's off-screen clips (its extended_offscreen split);
    # a subset of it keeps the list but has no such split
    assert paths.eval_extra_inputs("vggss") == {
        "extended_list": str(META / "vggss_extended" / "vggss_test_plus_silent.csv"),
        "offscreen": "R/shards/vggss/extended_offscreen"}
    assert paths.eval_extra_inputs("vggss_heard") == {
        "extended_list": str(META / "vggss_extended" / "vggss_test_plus_silent.csv")}
    assert "extended_offscreen" not in paths.shard_splits("vggss_heard")
    flickr_inputs = paths.eval_extra_inputs("flickr_from_vggss")
    assert flickr_inputs["train_manifest"] == "R/manifests/vggss/clips.parquet"
    assert flickr_inputs["extended_list"].endswith("flickr_extended/flickr_test_plus_silent.csv")
    assert paths.eval_options("avs") == {"mask_gt": "segmentation", "train_dataset": "vggss",
                                         "extended": "positives"}
    assert paths.eval_extra_inputs("avs")["ingest"] == "R/placed/avs/ingest.parquet"
    assert paths.eval_options("inst")["mask_gt"] == "localization"
    assert paths.eval_options("vmusic") == {"mask_gt": None, "train_dataset": None, "extended": "positives"}


# --- Extended VGG-SS's off-screen clips: their own shards, scored as negatives ---------------------------
class SpyModel(torch.nn.Module):
    """Maps that depend on image and audio (so negatives differ from positives); records every input pair."""

    requires_training = False  # no embeddings: the retrieval task is skipped, as for training-free baselines

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def localize(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        self.seen.append((images.clone(), specs.clone()))
        side = images.shape[-1] // 16
        pooled = torch.nn.functional.adaptive_avg_pool2d(images.mean(1, keepdim=True), side)[:, 0]
        return torch.tanh(pooled * specs.mean(dim=(1, 2, 3)).view(-1, 1, 1))


def _write_extended_list(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("video,audio,label\r\n" + "".join(f"{v},{a},non-sounding\r\n" for v, a in rows))
    return path


def test_offscreen_clips_are_scored_as_official_negatives(synth_split: dict, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [c[0] for c in synth_split["clips"]]
    offscreen = [f"off{i:08d}_{i:06d}" for i in range(3)]
    write_shards(tmp_path / "offscreen", [(cid, "unknown", -1, []) for cid in offscreen], seed=1)
    # 2 mismatched pairs of test clips; 4 off-screen rows, one of whose clips was never fetched (no sample)
    listed = _write_extended_list(tmp_path / "vggss_test_plus_silent.csv", [
        (ids[0], ids[5]), (ids[1], ids[7]), *[(c, c) for c in offscreen], ("offmissing0_000001",) * 2])
    model = SpyModel()
    monkeypatch.setattr(ev, "load_method", lambda *a, **k: (model, {**LOADER, "image_size": 112}))

    def run(name: str, **offscreen_input: str) -> dict[str, Any]:
        stages.evaluate(summary=str(tmp_path / f"{name}.json"), per_sample=str(tmp_path / f"{name}.parquet"),
                        eval_cfg=EVAL_CFG, method_cfg={}, seed=0, threads=1,
                        wildcards={"dataset": "vggss", "method": "spy"},
                        eval_options={"mask_gt": None, "train_dataset": None, "extended": "official"},
                        test=str(synth_split["test"]), extended_list=str(listed), **offscreen_input)
        return json.loads((tmp_path / f"{name}.json").read_text())["tasks"]["extended"]["sslalignment_adaptive"]

    without = run("without")
    assert without["negatives"] == ["official_mismatch"] and without["n_negatives"] == 2
    assert without["n_listed_offscreen"] == 4 and without["n_offscreen"] == 0  # counted, not scored
    model.seen.clear()
    scored = run("with", offscreen=str(tmp_path / "offscreen"))
    assert scored["negatives"] == ["official_mismatch", "official_offscreen"]
    assert scored["n_negatives"] == without["n_negatives"] + len(offscreen)
    assert scored["n_all"] == without["n_all"] + len(offscreen) and scored["n"] == without["n"] == len(ids)
    assert scored["n_listed_offscreen"] == 4 and scored["n_offscreen"] == len(offscreen)
    assert scored["n_mismatch"] == without["n_mismatch"] == 2
    # each off-screen clip was scored with its own frame and its own audio, decoded by the test loader
    off = ev.TestSet(ClipDataset(tmp_path / "offscreen", split_kind="test", **{**LOADER, "image_size": 112}))
    images = torch.cat([im for im, _ in model.seen])
    specs = torch.cat([sp for _, sp in model.seen])
    for i in range(len(off)):
        hits = [j for j in range(len(images)) if torch.equal(images[j], off.images[i])]
        assert hits and any(torch.equal(specs[j], off.specs[i]) for j in hits), off.clip_ids[i]


def test_offscreen_shards_without_samples_or_extended_official(synth_split: dict, tmp_path: Path) -> None:
    ids = [c[0] for c in synth_split["clips"]]
    listed = _write_extended_list(tmp_path / "list.csv", [(ids[0], ids[3]), ("offmissing0_000001",) * 2])
    write_shards(tmp_path / "empty", [])  # every off-screen clip unavailable: an index with no sample
    common = {"model_path": None, "duet_shards": None, "mixtures": [], "eval_cfg": EVAL_CFG, "seed": 0,
              "threads": 1, "summary_path": tmp_path / "s.json", "per_sample_path": tmp_path / "p.parquet",
              "dataset": "vggss"}
    summary = ev.evaluate_method("centre_prior", {}, test_shards=synth_split["test"], extended="official",
                                 extended_list=listed, offscreen_shards=tmp_path / "empty", **common)
    ext = summary["tasks"]["extended"]["sslalignment_adaptive"]
    assert ext["n_offscreen"] == 0 and ext["n_listed_offscreen"] == 1 and ext["n_negatives"] == 1
    with pytest.raises(ValueError, match="offscreen_shards .* official extended list, but extended is 'positives'"):
        ev.evaluate_method("centre_prior", {}, test_shards=synth_split["test"], extended="positives",
                           offscreen_shards=tmp_path / "empty", **common)
    with pytest.raises(FileNotFoundError, match="no index.json"):
        ev.evaluate_method("centre_prior", {}, test_shards=synth_split["test"], extended="official",
                           extended_list=listed, offscreen_shards=tmp_path, **common)
