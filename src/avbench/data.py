"""The one clip loader: WebDataset shards (ARCHITECTURE "Shards") -> in-memory map-style torch Dataset.

Shards at these sizes fit in memory, so a split is decoded once (images pre-resized to uint8, waves kept as
int16) and served map-style: random access, exact epoch determinism, and DistributedSampler for DDP.

Image transforms follow PROTOCOLS 2.2 (stoneMo), generalised to image size ``S``:

* test: ``Resize((S, S))`` bicubic squash (GT boxes are normalised to the full frame, so no crop);
* train: ``Resize(int(S * 246 / 224))`` short side bicubic -> ``RandomCrop(S)`` -> ``RandomHorizontalFlip``;
  the boxes are mapped through the same crop/flip so they stay aligned with the returned image.

Randomness for item ``i`` in epoch ``e`` comes from a generator seeded by ``(seed, e, i)``, so results do not
depend on worker count or iteration order. Audio is the centre ``audio_duration_s`` window (stoneMo trains
on the centre window too); its spectrogram is therefore deterministic and cached after the first use.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torchvision.transforms.functional as TF
import webdataset as wds
from PIL import Image
from torch.utils.data import Dataset

from avbench import audio
from avbench.gt import union_map

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_FRAME_KEY = re.compile(r"^f(\d+)\.jpg$")


def shard_urls(shard_dir: str | os.PathLike) -> list[str]:
    """Shard paths of a split directory: ``index.json``'s list when present, else every ``*.tar`` sorted."""
    root = Path(shard_dir)
    index = root / "index.json"
    if index.exists():
        names = json.loads(index.read_text(encoding="utf-8"))["shards"]
        urls = [str(root / n) for n in names]
    else:
        urls = [str(p) for p in sorted(root.glob("*.tar"))]
    if not urls:
        raise FileNotFoundError(f"no shards found in {root}")
    return urls


def iter_raw_samples(urls: Sequence[str]) -> Any:
    """Raw (undecoded bytes) samples in shard order; no node/worker splitting (every process reads all)."""
    return wds.WebDataset(
        list(urls), shardshuffle=False, nodesplitter=lambda u: u, workersplitter=lambda u: u, empty_check=False
    )


@dataclass
class _Clip:
    clip_id: str
    label_idx: int
    boxes: list[list[float]]
    meta: dict[str, Any]
    frames: list[torch.Tensor]  # uint8 [3, H, W] each, pre-resized; frames[0] = centre frame
    wave: torch.Tensor  # int16 [T] at the dataset sample rate


def _decode_image(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def _to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


class ClipDataset(Dataset):
    """Map-style dataset over one split of shards. Items (see ``collate``):

    ``image`` float ``[3, S, S]`` (ImageNet-normalised), ``spec`` ``[1, F, T]`` (``avbench.audio``),
    ``label_idx`` int, ``clip_id`` str, ``boxes`` list of normalised xyxy (for train: after crop/flip),
    ``sources`` list of ``{label, label_idx, boxes}``, ``flip`` bool (train), ``gt`` ``[gt_size, gt_size]``
    union map (test only), ``wave`` float ``[n]`` (only when ``return_wave``).
    """

    def __init__(
        self,
        shard_dir: str | os.PathLike,
        *,
        split_kind: Literal["train", "test"],
        image_size: int = 224,
        frontend: str = "stonemo_16k_257x200",
        audio_duration_s: float = 3.0,
        sample_rate: int = 16000,
        frame_choice: Literal["center", "random"] = "center",
        seed: int = 0,
        gt_size: int = 224,
        return_wave: bool = False,
        cache_spectrograms: bool = True,
        limit: int | None = None,
    ) -> None:
        if split_kind not in ("train", "test"):
            raise ValueError(f"split_kind must be 'train' or 'test', got {split_kind!r}")
        if frame_choice not in ("center", "random"):
            raise ValueError(f"frame_choice must be 'center' or 'random', got {frame_choice!r}")
        self.shard_dir = Path(shard_dir)
        self.split_kind = split_kind
        self.image_size = int(image_size)
        self.frontend = audio.get_frontend(frontend)
        self.audio_duration_s = float(audio_duration_s)
        self.sample_rate = int(sample_rate)
        self.frame_choice = frame_choice if split_kind == "train" else "center"
        self.seed = int(seed)
        self.gt_size = int(gt_size)
        self.return_wave = return_wave
        self.cache_spectrograms = cache_spectrograms
        self.epoch = 0
        # Train images keep the aspect (short side resize) for the random crop; test images are squashed.
        self.resize_short = int(self.image_size * 246 / 224)
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        self.clips = self._load(limit)
        self._spec_cache: dict[int, torch.Tensor] = {}
        if cache_spectrograms:  # compute once in the parent so forked DataLoader workers share the cache
            for i, clip in enumerate(self.clips):
                self._spec(i, clip)

    # ------------------------------------------------------------------------------------------ loading
    def _prepare_image(self, data: bytes) -> torch.Tensor:
        img = _decode_image(data)
        if self.split_kind == "test":
            img = img.resize((self.image_size, self.image_size), Image.BICUBIC)
        else:
            img = TF.resize(img, self.resize_short, interpolation=TF.InterpolationMode.BICUBIC)
        return _to_uint8_tensor(img)

    def _load(self, limit: int | None) -> list[_Clip]:
        clips: list[_Clip] = []
        for sample in iter_raw_samples(shard_urls(self.shard_dir)):
            meta = json.loads(sample["json"])
            frame_keys = sorted((k for k in sample if _FRAME_KEY.match(k)), key=lambda k: int(k[1:-4]))
            keys = ["jpg"] + (frame_keys if self.frame_choice == "random" else [])
            frames = [self._prepare_image(sample[k]) for k in keys]
            wave, sr = audio.load_wav(sample["wav"])
            wave = audio.resample(wave, sr, self.sample_rate)
            pcm = torch.round(wave.clamp(-1.0, 1.0) * audio.INT16_MAX).to(torch.int16)
            clips.append(
                _Clip(
                    clip_id=str(meta.get("clip_id", sample["__key__"])),
                    label_idx=int(meta.get("label_idx", -1)),
                    boxes=[list(map(float, b)) for b in meta.get("boxes", [])],
                    meta=meta,
                    frames=frames,
                    wave=pcm,
                )
            )
            if limit is not None and len(clips) >= limit:
                break
        if not clips:
            raise ValueError(f"{self.shard_dir}: shards contain no samples")
        return clips

    # ------------------------------------------------------------------------------------------ serving
    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before iterating; DataLoader workers see it)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.clips)

    def _generator(self, index: int) -> torch.Generator:
        g = torch.Generator()
        # Distinct odd multipliers keep (seed, epoch, index) triples from colliding.
        g.manual_seed((self.seed * 1_000_003 + self.epoch * 7_919 + index * 104_729) % (2**63 - 1))
        return g

    def _wave(self, clip: _Clip) -> torch.Tensor:
        wave = clip.wave.float() / audio.INT16_MAX
        return audio.crop_window(wave, self.sample_rate, self.audio_duration_s, center=True)

    def _spec(self, index: int, clip: _Clip) -> torch.Tensor:
        cached = self._spec_cache.get(index)
        if cached is not None:
            return cached
        spec = audio.spectrogram(self._wave(clip), self.sample_rate, self.frontend).unsqueeze(0).float()
        if self.cache_spectrograms:
            self._spec_cache[index] = spec
        return spec

    def _normalise(self, img: torch.Tensor) -> torch.Tensor:
        return (img.float() / 255.0 - self._mean) / self._std

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.clips[index]
        item: dict[str, Any] = {
            "clip_id": clip.clip_id,
            "label_idx": clip.label_idx,
            "sources": clip.meta.get("sources", []),
            "spec": self._spec(index, clip),
        }
        if self.split_kind == "test":
            item["image"] = self._normalise(clip.frames[0])
            item["boxes"] = clip.boxes
            item["gt"] = torch.from_numpy(union_map(clip.boxes, self.gt_size, self.gt_size))
        else:
            g = self._generator(index)
            f = int(torch.randint(0, len(clip.frames), (1,), generator=g).item()) if len(clip.frames) > 1 else 0
            img = clip.frames[f]
            _, h, w = img.shape
            s = self.image_size
            top = int(torch.randint(0, h - s + 1, (1,), generator=g).item())
            left = int(torch.randint(0, w - s + 1, (1,), generator=g).item())
            flip = bool(torch.rand((), generator=g).item() < 0.5)
            img = img[:, top : top + s, left : left + s]
            if flip:
                img = img.flip(-1)
            item["image"] = self._normalise(img)
            item["boxes"] = _crop_flip_boxes(clip.boxes, w, h, top, left, s, flip)
            item["flip"] = flip
            item["frame_index"] = f
        if self.return_wave:
            item["wave"] = self._wave(clip)
        return item


def _crop_flip_boxes(
    boxes: Sequence[Sequence[float]], w: int, h: int, top: int, left: int, size: int, flip: bool
) -> list[list[float]]:
    """Map full-frame normalised xyxy boxes into a ``size`` crop at (top, left) of a w x h image, then flip."""
    out: list[list[float]] = []
    for x1, y1, x2, y2 in boxes:
        nx1, nx2 = (min(max((x * w - left) / size, 0.0), 1.0) for x in (x1, x2))
        ny1, ny2 = (min(max((y * h - top) / size, 0.0), 1.0) for y in (y1, y2))
        if flip:
            nx1, nx2 = 1.0 - nx2, 1.0 - nx1
        out.append([nx1, ny1, nx2, ny2])
    return out


_STACKED = ("image", "spec", "gt", "wave")


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors (``image``, ``spec``, ``gt``, ``wave``), ``label_idx`` -> LongTensor; lists otherwise."""
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [it[key] for it in items]
        if key in _STACKED:
            batch[key] = torch.stack(values)
        elif key == "label_idx":
            batch[key] = torch.tensor(values, dtype=torch.long)
        else:
            batch[key] = values  # clip_id, boxes, sources, flip, ... (variable length)
    return batch


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ClipDataset", "collate", "iter_raw_samples", "shard_urls"]
