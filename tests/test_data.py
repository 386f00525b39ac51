"""avbench.data.ClipDataset on tiny WebDataset shards written here (keys per ARCHITECTURE "Shards")."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import webdataset as wds
from PIL import Image

from avbench import audio
from avbench.data import ClipDataset, collate
from avbench.gt import union_map


def _jpg(rng: np.random.Generator, w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _wav(rng: np.random.Generator, seconds: float, sr: int = 16000) -> bytes:
    buf = io.BytesIO()
    pcm = (rng.uniform(-0.5, 0.5, int(seconds * sr)) * 32767).astype(np.int16)
    sf.write(buf, pcm, sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def write_tiny_shards(root: Path, n: int = 6, per_shard: int = 4, n_frames: int = 2, seed: int = 0) -> list[dict]:
    """Write ``n`` samples into ``ceil(n / per_shard)`` shards + index.json; return their json metadata."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    metas, names = [], []
    writer: wds.TarWriter | None = None
    for i in range(n):
        if i % per_shard == 0:
            names.append(f"tiny-train-{i // per_shard:06d}.tar")
            if writer is not None:
                writer.close()
            writer = wds.TarWriter(str(root / names[-1]))
        assert writer is not None
        clip_id = f"vid{i:04d}_{i * 10:06d}"
        boxes = [[0.1, 0.2, 0.5, 0.6]] if i % 2 == 0 else [[0.0, 0.0, 0.3, 0.3], [0.6, 0.5, 1.0, 0.9]]
        meta = {"clip_id": clip_id, "ytid": f"vid{i:04d}", "label": f"c{i % 3}", "label_idx": i % 3,
                "split": "train", "dataset": "tiny", "boxes": boxes,
                "sources": [{"label": f"c{i % 3}", "label_idx": i % 3, "boxes": boxes}]}
        sample = {"__key__": clip_id, "jpg": _jpg(rng, 96, 72), "json": json.dumps(meta).encode(),
                  "wav": _wav(rng, 1.0 if i == 1 else 4.0)}
        for k in range(n_frames):
            sample[f"f{k:03d}.jpg"] = _jpg(rng, 96, 72)
        writer.write(sample)
        metas.append(meta)
    if writer is not None:
        writer.close()
    (root / "index.json").write_text(json.dumps({"dataset": "tiny", "split": "train", "shards": names,
                                                 "n_samples": n, "sample_rate": 16000, "fields": []}))
    return metas


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("shards") / "tiny" / "train"
    return root, write_tiny_shards(root)


def test_test_split_items_and_gt(shard_dir: tuple[Path, list[dict]]) -> None:
    root, metas = shard_dir
    ds = ClipDataset(root, split_kind="test", image_size=64, frontend="mel64_16k", gt_size=56, return_wave=True)
    assert len(ds) == len(metas)
    assert [c.clip_id for c in ds.clips] == [m["clip_id"] for m in metas]  # shard order kept
    item = ds[3]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert item["spec"].shape == (1, 64, 100)
    assert item["label_idx"] == metas[3]["label_idx"] and item["clip_id"] == metas[3]["clip_id"]
    np.testing.assert_array_equal(item["gt"].numpy(), union_map(metas[3]["boxes"], 56, 56))
    # The spectrogram is the centre 3 s of the wav (decoded / int16 max) through avbench.audio.
    wave, _ = audio.load_wav(_wav_of(root, 3))
    expected = audio.spectrogram(audio.crop_window(wave, 16000, 3.0), 16000, "mel64_16k")
    torch.testing.assert_close(item["spec"][0], expected, atol=1e-5, rtol=1e-5)
    assert item["wave"].shape == (48000,)
    short = ds[1]["wave"]  # 1 s clip is tiled to 3 s
    torch.testing.assert_close(short[:16000], short[16000:32000])
    batch = collate([ds[0], ds[1], ds[2]])
    assert batch["image"].shape == (3, 3, 64, 64) and batch["gt"].shape == (3, 56, 56)
    assert batch["label_idx"].dtype == torch.long and len(batch["boxes"][1]) == 2


def _wav_of(root: Path, index: int) -> bytes:
    from avbench.data import iter_raw_samples, shard_urls

    for i, sample in enumerate(iter_raw_samples(shard_urls(root))):
        if i == index:
            return sample["wav"]
    raise IndexError(index)


def test_train_split_determinism_and_augmentation(shard_dir: tuple[Path, list[dict]]) -> None:
    root, _ = shard_dir
    kw = {"split_kind": "train", "image_size": 48, "frontend": "mel64_16k", "frame_choice": "random"}
    a, b = ClipDataset(root, seed=3, **kw), ClipDataset(root, seed=3, **kw)
    assert len(a.clips[0].frames) == 3  # jpg + f000 + f001
    assert a.clips[0].frames[0].shape[1] == int(48 * 246 / 224)  # short side resized
    for ds in (a, b):
        ds.set_epoch(1)
    items_a, items_b = [a[i] for i in range(len(a))], [b[i] for i in range(len(b))]
    for x, y in zip(items_a, items_b, strict=True):
        assert torch.equal(x["image"], y["image"]) and x["flip"] == y["flip"] and x["boxes"] == y["boxes"]
        assert x["image"].shape == (3, 48, 48)
    a.set_epoch(2)
    assert any(not torch.equal(a[i]["image"], x["image"]) for i, x in enumerate(items_a))
    flips: set[bool] = set()
    for epoch in range(4):
        a.set_epoch(epoch)
        flips |= {a[i]["flip"] for i in range(len(a))}
    assert flips == {True, False}
    for it in items_a:
        for box in it["boxes"]:
            assert 0.0 <= box[0] <= box[2] <= 1.0 and 0.0 <= box[1] <= box[3] <= 1.0


def test_train_boxes_follow_crop_and_flip(shard_dir: tuple[Path, list[dict]]) -> None:
    """A white box painted at the transformed coordinates must match the transformed image of a box frame."""
    from avbench.data import _crop_flip_boxes

    w, h, top, left, s = 100, 80, 10, 20, 50
    boxes = [[0.3, 0.25, 0.6, 0.75]]
    canvas = np.zeros((h, w), dtype=np.float32)
    canvas[int(0.25 * h):int(0.75 * h), int(0.3 * w):int(0.6 * w)] = 1
    crop = canvas[top:top + s, left:left + s][:, ::-1]
    (x1, y1, x2, y2), = _crop_flip_boxes(boxes, w, h, top, left, s, flip=True)
    ys, xs = np.nonzero(crop)
    assert (xs.min(), xs.max() + 1) == (round(x1 * s), round(x2 * s))
    assert (ys.min(), ys.max() + 1) == (round(y1 * s), round(y2 * s))


def test_bad_arguments(shard_dir: tuple[Path, list[dict]], tmp_path: Path) -> None:
    root, _ = shard_dir
    with pytest.raises(ValueError, match="split_kind"):
        ClipDataset(root, split_kind="val", image_size=32, frontend="mel64_16k")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        ClipDataset(tmp_path, split_kind="test", image_size=32, frontend="mel64_16k")
