"""Embeddings + exact top-k neighbours for k-NN conceptual positives (PROTOCOLS 6.5, "k-NN artifact [ours]").

Contract (docs/ARCHITECTURE.md, kNN): ``neighbours.npz`` holds ``ids`` (str, train clip ids), ``audio`` and ``visual``
(int32 ``[N, k]`` indices into ``ids``; self, same-ytid clips and every excluded (test) id are never neighbours);
``neighbours.json`` records the encoder name, its config and config hash, k, the metric and the index type.

Encoders are looked up by name in ``ENCODERS``; each one takes a JSON-able config dict (unknown keys are rejected
so a typo cannot silently fall back to a default) and exposes ``name``, ``config``, ``config_hash()``,
``provenance()``, ``encode_visual(images)`` and ``encode_audio(waves, sample_rate)``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avbench.ids import parse_clip_id
from avbench.io import atomic_path, write_json

METRIC = "inner_product_on_l2_normalised"
INDEX_TYPE = "faiss.IndexFlatIP"
_EPS = 1e-12
_BLOCK_ELEMS = 1 << 24  # query rows x k_search per search block

# ImageNet statistics, used by torchvision's pretrained ResNets.
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


# --------------------------------------------------------------------------------------------------------------
# helpers


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in float32; all-zero rows stay zero (they have no direction)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, _EPS)).astype(np.float32, copy=False)


def _as_mono(wave: np.ndarray) -> np.ndarray:
    """Shard waves are 1-D; tolerate [1, T] / [T, 1] by flattening, reject true multi-channel input."""
    arr = np.asarray(wave, dtype=np.float32)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"expected a mono waveform, got shape {arr.shape}")
    return arr


def _as_rgb(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:  # greyscale frames: replicate so every encoder sees HxWx3
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {arr.dtype}")
    return arr


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize (squash) with PIL; frames of any size map onto a fixed grid."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def _resize_short_centre_crop(image: np.ndarray, short: int, crop: int) -> np.ndarray:
    """ImageNet evaluation transform: resize the short side to ``short``, centre-crop ``crop`` x ``crop``."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = short / min(h, w)
    nh, nw = max(crop, round(h * scale)), max(crop, round(w * scale))
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
    top, left = (nh - crop) // 2, (nw - crop) // 2
    return resized[top : top + crop, left : left + crop]


def _batches(n: int, size: int) -> Iterable[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _log_mel_batch(waves: Sequence[np.ndarray], sample_rate: int, cfg: dict[str, Any]) -> list[np.ndarray]:
    """Log-mel spectrograms ``[n_mels, T]`` of mono waves, through the shared front end ``avbench.audio``.

    Waves of equal length are stacked into one batch (no padding, so the time statistics are never polluted
    by padded silence).
    """
    import torch

    from avbench.audio import FrontendConfig, spectrogram

    frontend = FrontendConfig(
        "knn_log_mel", int(sample_rate), "mel", n_fft=int(cfg["n_fft"]), hop_length=int(cfg["hop_length"]),
        window="hann", n_mels=int(cfg["n_mels"]), log_eps=float(cfg["log_offset"]), log_scale=1.0,
    )

    def mel(batch: torch.Tensor) -> torch.Tensor:
        return spectrogram(batch, int(sample_rate), frontend)

    out: list[np.ndarray | None] = [None] * len(waves)
    by_len: dict[int, list[int]] = {}
    for i, w in enumerate(waves):
        by_len.setdefault(len(w), []).append(i)
    with torch.inference_mode():
        for idx in by_len.values():
            batch = torch.from_numpy(np.stack([waves[i] for i in idx]))
            spec = mel(batch).numpy()
            for j, i in enumerate(idx):
                out[i] = spec[j]
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------------------
# encoders


class Encoder:
    """Base class: a named, configured pair of global embedding functions (one per modality)."""

    name: str = ""
    defaults: dict[str, Any] = {}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        config = dict(config or {})
        unknown = sorted(set(config) - set(self.defaults))
        if unknown:
            raise ValueError(
                f"unknown {self.name} encoder config keys {unknown}; allowed: {sorted(self.defaults)}"
            )
        self.config: dict[str, Any] = {**self.defaults, **config}

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the encoder name + full config (defaults included)."""
        blob = json.dumps(
            {"encoder": self.name, "config": self.config}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def provenance(self) -> dict[str, Any]:
        """Extra facts recorded next to the output (e.g. the hash of a weights file)."""
        return {}

    def encode_visual(self, images: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def encode_audio(self, waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        raise NotImplementedError


ENCODERS: dict[str, type[Encoder]] = {}


def register_encoder(name: str) -> Callable[[type[Encoder]], type[Encoder]]:
    def deco(cls: type[Encoder]) -> type[Encoder]:
        if name in ENCODERS:
            raise ValueError(f"encoder {name!r} registered twice")
        cls.name = name
        ENCODERS[name] = cls
        return cls

    return deco


def get_encoder(name: str, config: dict[str, Any] | None = None) -> Encoder:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; known: {sorted(ENCODERS)}")
    return ENCODERS[name](config)


@register_encoder("handcrafted")
class HandcraftedEncoder(Encoder):
    """Cheap, deterministic, CPU-only features; the SynthAV default.

    Visual: Hellinger (sqrt) joint HSV histogram + a grid of centred mean RGB colours + a grid of gradient energy,
    each block L2-normalised, concatenated and L2-normalised again (colour layout and texture both count).
    Audio: per-band mean (centred over bands, so loudness does not dominate) and std over time of a log-mel
    spectrogram, concatenated and L2-normalised. A silent clip has no direction and encodes to the zero vector.
    """

    defaults = {
        "image_size": 64,
        "hsv_bins": [8, 4, 4],
        "grid": 4,
        "n_mels": 64,
        "n_fft": 1024,
        "hop_length": 160,
        "log_offset": 1e-6,
        "batch_size": 256,
    }

    def _visual_one(self, image: np.ndarray) -> np.ndarray:
        from PIL import Image

        size, grid = int(self.config["image_size"]), int(self.config["grid"])
        small = _resize(_as_rgb(image), size, size)
        hsv = np.asarray(Image.fromarray(small).convert("HSV")).reshape(-1, 3)
        bins = [int(b) for b in self.config["hsv_bins"]]
        hist, _ = np.histogramdd(hsv, bins=bins, range=[(0, 256)] * 3)
        hist = np.sqrt(hist.reshape(-1) / hsv.shape[0])

        rgb = small.astype(np.float32) / 255.0
        # grid cells by integer edges so any image_size works, even when not divisible by grid
        edges = np.linspace(0, size, grid + 1).astype(int)
        gy, gx = np.gradient(rgb.mean(axis=2))
        energy = np.sqrt(gx * gx + gy * gy)
        colours = np.empty((grid, grid, 3), dtype=np.float32)
        texture = np.empty((grid, grid), dtype=np.float32)
        for r in range(grid):
            for c in range(grid):
                ys, xs = slice(edges[r], edges[r + 1]), slice(edges[c], edges[c + 1])
                colours[r, c] = rgb[ys, xs].reshape(-1, 3).mean(axis=0)
                texture[r, c] = energy[ys, xs].mean()
        blocks = [hist, (colours - 0.5).reshape(-1), texture.reshape(-1)]
        return np.concatenate([b / max(float(np.linalg.norm(b)), _EPS) for b in blocks])

    def encode_visual(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.visual_dim), dtype=np.float32)
        return l2_normalise(np.stack([self._visual_one(im) for im in images]))

    @property
    def visual_dim(self) -> int:
        return int(np.prod(self.config["hsv_bins"])) + 4 * int(self.config["grid"]) ** 2

    def encode_audio(self, waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        n_mels = int(self.config["n_mels"])
        if len(waves) == 0:
            return np.zeros((0, 2 * n_mels), dtype=np.float32)
        mono = [_as_mono(w) for w in waves]
        feats = []
        for sl in _batches(len(mono), int(self.config["batch_size"])):
            for spec in _log_mel_batch(mono[sl], sample_rate, self.config):
                mean, std = spec.mean(axis=1), spec.std(axis=1)
                feats.append(np.concatenate([mean - mean.mean(), std]))
        return l2_normalise(np.stack(feats))


class _ResNet18Base(Encoder):
    """torchvision ResNet-18 trunk, global-average-pooled 512-D features (the fc layer is dropped)."""

    defaults = {
        "seed": 0,
        "device": "cpu",
        "batch_size": 64,
        "resize": 256,
        "crop": 224,
        "n_mels": 128,
        "n_fft": 1024,
        "hop_length": 160,
        "log_offset": 1e-6,
    }

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._visual_model: Any = None
        self._audio_model: Any = None

    @staticmethod
    def _trunk(model: Any) -> Any:
        import torch

        model.fc = torch.nn.Identity()
        return model.eval()

    def _seeded_model(self) -> Any:
        """Random init under a fixed seed, without touching the caller's global RNG state."""
        import torch
        import torchvision

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.config["seed"]))
            model = torchvision.models.resnet18(weights=None)
        return self._trunk(model).to(self.config["device"])

    def _build_visual_model(self) -> Any:
        raise NotImplementedError

    def _build_audio_model(self) -> Any:
        return self._seeded_model()

    def _run(self, model: Any, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.config["device"])
            return model(x).float().cpu().numpy()

    def encode_visual(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, 512), dtype=np.float32)
        if self._visual_model is None:
            self._visual_model = self._build_visual_model()
        resize, crop = int(self.config["resize"]), int(self.config["crop"])
        feats = []
        for sl in _batches(len(images), int(self.config["batch_size"])):
            arr = np.stack([_resize_short_centre_crop(_as_rgb(im), resize, crop) for im in images[sl]])
            x = (arr.astype(np.float32) / 255.0 - _IMAGENET_MEAN) / _IMAGENET_STD
            feats.append(self._run(self._visual_model, x.transpose(0, 3, 1, 2)))
        return l2_normalise(np.concatenate(feats))

    def encode_audio(self, waves: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """Log-mel "image" (per-clip standardised, replicated to 3 channels) through the audio ResNet-18."""
        if len(waves) == 0:
            return np.zeros((0, 512), dtype=np.float32)
        if self._audio_model is None:
            self._audio_model = self._build_audio_model()
        mono = [_as_mono(w) for w in waves]
        feats: list[np.ndarray | None] = [None] * len(mono)
        for sl in _batches(len(mono), int(self.config["batch_size"])):
            specs = _log_mel_batch(mono[sl], sample_rate, self.config)
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for j, s in enumerate(specs):
                by_shape.setdefault(s.shape, []).append(j)
            for idx in by_shape.values():
                x = np.stack([specs[j] for j in idx]).astype(np.float32)
                mu = x.mean(axis=(1, 2), keepdims=True)
                sd = x.std(axis=(1, 2), keepdims=True)
                x = np.repeat(((x - mu) / np.maximum(sd, 1e-6))[:, None], 3, axis=1)
                out = self._run(self._audio_model, x)
                for row, j in enumerate(idx):
                    feats[sl.start + j] = out[row]
        return l2_normalise(np.stack(feats))  # type: ignore[arg-type]


@register_encoder("resnet18_random_seeded")
class ResNet18RandomSeeded(_ResNet18Base):
    """Both modalities through a seeded, randomly initialised ResNet-18.

    A WEAK baseline: random conv features keep only coarse colour/texture/spectral-shape similarity. It exists so the
    pipeline runs offline without any weights file and for the audio branch, where no local audio checkpoint is
    assumed; prefer ``handcrafted`` on SynthAV and ``resnet18_imagenet`` for real images.
    """

    def _build_visual_model(self) -> Any:
        return self._seeded_model()


@register_encoder("resnet18_imagenet")
class ResNet18ImageNet(_ResNet18Base):
    """Visual: ImageNet ResNet-18 loaded from a LOCAL file (config ``weights_path``; machines are offline).

    Audio: the seeded random ResNet-18 of ``resnet18_random_seeded`` on a log-mel image (weak baseline, see there),
    unless ``audio_weights_path`` names a local state dict for an audio ResNet-18.
    """

    defaults = {**_ResNet18Base.defaults, "weights_path": None, "audio_weights_path": None}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        # fail at construction, before any data is read, when the weights file is missing
        self._check_file("weights_path", required=True)
        self._check_file("audio_weights_path", required=False)

    def _check_file(self, key: str, *, required: bool) -> None:
        path = self.config[key]
        if path is None:
            if required:
                raise FileNotFoundError(
                    f"encoder {self.name!r} needs encoder_config[{key!r}] = a local torchvision resnet18 state-dict "
                    "file (e.g. resnet18-f37072fd.pth); offline machines cannot download weights"
                )
            return
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"encoder {self.name!r}: encoder_config[{key!r}] = {str(path)!r} does not exist or is not a file "
                "(weights are never downloaded; copy the state dict there first)"
            )

    def _load(self, key: str) -> Any:
        import torch
        import torchvision

        state = torch.load(self.config[key], map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model = torchvision.models.resnet18(weights=None)
        model.load_state_dict(state)
        return self._trunk(model).to(self.config["device"])

    def _build_visual_model(self) -> Any:
        return self._load("weights_path")

    def _build_audio_model(self) -> Any:
        if self.config["audio_weights_path"] is None:
            return self._seeded_model()
        return self._load("audio_weights_path")

    def provenance(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("weights_path", "audio_weights_path"):
            if self.config[key] is not None:
                out[key.replace("_path", "_sha256")] = _file_sha256(self.config[key])
        out["audio_branch"] = (
            "pretrained" if self.config["audio_weights_path"] else "random_seeded (weak baseline)"
        )
        return out


def _file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------------------
# exact top-k search


class _TorchFlatIP:
    """Exact inner-product search as blocked GPU matmul + topk (PROTOCOLS 6.5 allows it when FAISS has no GPU).

    float64 so no TF32 / reduced-precision matmul setting can change neighbour order; ties are resolved by the
    caller's (score, index) re-sort and boundary check exactly as for FAISS.
    """

    def __init__(self, x: np.ndarray, device: str = "cuda") -> None:
        import torch

        self.device = device
        self.x = torch.from_numpy(x).to(device, dtype=torch.float64)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        rows = max(1, (1 << 27) // self.x.shape[0])  # <= 1 GiB of float64 scores per block
        scores, idx = [], []
        with torch.inference_mode():
            for sl in _batches(len(q), rows):
                s = torch.from_numpy(q[sl]).to(self.device, dtype=torch.float64) @ self.x.T
                top = torch.topk(s, k, dim=1, largest=True, sorted=True)
                scores.append(top.values.float().cpu().numpy())
                idx.append(top.indices.cpu().numpy())
        return np.concatenate(scores), np.concatenate(idx)


def _gpu_backend() -> str:
    """Which GPU search ``use_gpu=True`` gets: FAISS GPU if this FAISS build has it, else torch CUDA."""
    import faiss

    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        return "faiss.GpuIndexFlatIP"
    import torch

    if torch.cuda.is_available():
        return "torch.matmul+topk (cuda, float64)"
    raise RuntimeError("use_gpu=True but neither a GPU FAISS build nor a CUDA device for torch is available")


def _flat_ip_index(x: np.ndarray, use_gpu: bool) -> Any:
    import faiss

    if use_gpu and _gpu_backend().startswith("torch"):
        return _TorchFlatIP(x)
    index = faiss.IndexFlatIP(x.shape[1])
    if use_gpu:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(x)
    return index


def _exact_rows(x: np.ndarray, rows: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """Brute-force top-k for ``rows``: full inner-product rows, stable sort so ties go to the lower index."""
    out = np.empty((len(rows), k), dtype=np.int64)
    for sl in _batches(len(rows), 512):
        r = rows[sl]
        scores = x[r] @ x.T
        scores[groups[None, :] == groups[r][:, None]] = -np.inf  # self and same group
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        out[sl] = order
    return out


def topk_neighbours(
    emb: np.ndarray, k: int, *, exclude: np.ndarray | Sequence[Any] | None = None, use_gpu: bool = False
) -> np.ndarray:
    """Exact top-k neighbours by inner product of L2-normalised rows; int32 ``[N, k]``.

    Self and every row sharing ``exclude[i]`` (a group id, e.g. the ytid) are never neighbours. Ties are broken
    by index (lower first): FAISS results are re-sorted by (score desc, index asc), and rows whose k-th kept score
    ties with the last retrieved score (so tied candidates may lie outside the search window) are recomputed by
    brute force with a stable sort.
    """
    emb = np.asarray(emb)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be 2-D [N, D], got shape {emb.shape}")
    if not np.all(np.isfinite(emb)):
        raise ValueError("embeddings contain NaN or inf")
    x = np.ascontiguousarray(l2_normalise(emb))
    n = x.shape[0]
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if exclude is None:
        groups = np.arange(n, dtype=np.int64)
    else:
        labels = np.asarray(exclude)
        if labels.shape != (n,):
            raise ValueError(f"exclude must have shape ({n},), got {labels.shape}")
        _, groups = np.unique(labels, return_inverse=True)
        groups = groups.reshape(-1).astype(np.int64)
    group_size = np.bincount(groups)[groups] if n else np.zeros(0, dtype=np.int64)
    available = n - group_size  # rows not excluded for each query
    if n == 0 or int(available.min()) < k:
        worst = 0 if n == 0 else int(available.min())
        raise ValueError(
            f"k={k} neighbours requested but some of the N={n} rows have only {worst} valid neighbours "
            "(self and same-group rows excluded); lower k or add data"
        )

    # self + same group are at most max(group_size) of the results, so k + that always leaves k valid ones
    k_search = min(n, k + int(group_size.max()))
    index = _flat_ip_index(x, use_gpu)
    out = np.empty((n, k), dtype=np.int32)
    # query blocks bound the [rows, k_search] temporaries (k can be 1000 on 144k clips)
    for sl in _batches(n, max(1, _BLOCK_ELEMS // k_search)):
        scores, idx = index.search(x[sl], k_search)
        idx = idx.astype(np.int64, copy=False)
        invalid = (idx < 0) | (groups[np.maximum(idx, 0)] == groups[sl, None])
        # lexsort: last key is primary -> valid first, then score descending, then index ascending
        order = np.lexsort((idx, -scores, invalid), axis=1)
        kept_idx = np.take_along_axis(idx, order, axis=1)[:, :k]
        kept_scores = np.take_along_axis(scores, order, axis=1)[:, :k]
        if k_search < n:
            # a tie with the weakest retrieved score may continue outside the window: redo those rows exactly
            rows = np.flatnonzero(kept_scores[:, -1] <= scores.min(axis=1))
            if rows.size:
                kept_idx[rows] = _exact_rows(x, rows + sl.start, groups, k)
        out[sl] = kept_idx
    return out


# --------------------------------------------------------------------------------------------------------------
# artifact


def _sample_ids(sample: dict[str, Any]) -> tuple[str, str]:
    meta = sample.get("meta") or {}
    cid = meta.get("clip_id", sample.get("key"))
    if cid is None:
        raise ValueError("sample has neither meta['clip_id'] nor 'key'")
    ytid = meta.get("ytid")
    if ytid is None:
        ytid, _ = parse_clip_id(str(cid))
    return str(cid), str(ytid)


def build_knn(
    samples: Iterable[dict[str, Any]],
    *,
    encoder: str,
    encoder_config: dict[str, Any],
    k: int,
    out_npz: str | os.PathLike,
    out_json: str | os.PathLike,
    exclude_ids: Iterable[str] = (),
    use_gpu: bool = False,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Encode every kept sample in both modalities, write the neighbour artifact; returns the JSON record.

    Samples are streamed in batches of ``batch_size`` (decoded waves of a full training set do not fit in memory).
    Samples whose clip id is in ``exclude_ids`` (the test ids) are dropped before encoding, so they can never be
    neighbours; clips of the same ytid are excluded from each other's neighbour lists.
    """
    enc = get_encoder(encoder, encoder_config)
    excluded = {str(e) for e in exclude_ids}
    ids: list[str] = []
    ytids: list[str] = []
    visual: list[np.ndarray] = []
    audio: list[np.ndarray] = []
    n_seen = n_dropped = 0
    pending: list[dict[str, Any]] = []
    seen: set[str] = set()

    def flush() -> None:
        if not pending:
            return
        visual.append(enc.encode_visual([s["image"] for s in pending]))
        by_rate: dict[int, list[int]] = {}
        for j, s in enumerate(pending):
            by_rate.setdefault(int(s["sample_rate"]), []).append(j)
        a = [None] * len(pending)
        for rate, idx in by_rate.items():
            out = enc.encode_audio([pending[j]["wave"] for j in idx], rate)
            for row, j in enumerate(idx):
                a[j] = out[row]
        audio.append(np.stack(a))  # type: ignore[arg-type]
        pending.clear()

    for sample in samples:
        n_seen += 1
        cid, ytid = _sample_ids(sample)
        if cid in excluded:
            n_dropped += 1
            continue
        if cid in seen:
            raise ValueError(f"duplicate clip id in kNN input: {cid!r}")
        seen.add(cid)
        ids.append(cid)
        ytids.append(ytid)
        pending.append(sample)
        if len(pending) >= batch_size:
            flush()
    flush()

    if not ids:
        raise ValueError(f"no samples left for kNN after dropping {n_dropped} excluded ids")
    group = np.asarray(ytids)
    vis = np.concatenate(visual)
    aud = np.concatenate(audio)
    nn_visual = topk_neighbours(vis, k, exclude=group, use_gpu=use_gpu)
    nn_audio = topk_neighbours(aud, k, exclude=group, use_gpu=use_gpu)

    with atomic_path(out_npz) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, ids=np.asarray(ids, dtype=str), audio=nn_audio, visual=nn_visual)
    info = {
        "encoder": enc.name,
        "encoder_config": enc.config,
        "encoder_config_hash": enc.config_hash(),
        "encoder_provenance": enc.provenance(),
        "k": int(k),
        "metric": METRIC,
        "faiss_index": _gpu_backend() if use_gpu else INDEX_TYPE,
        "tie_break": "lower index first",
        "exclusions": ["self", "same_ytid", "exclude_ids"],
        "n": len(ids),
        "n_input": n_seen,
        "n_dropped_excluded_ids": n_dropped,
        "n_exclude_ids": len(excluded),
        "dim": {"audio": int(aud.shape[1]), "visual": int(vis.shape[1])},
    }
    write_json(out_json, info)
    return info


def load_knn(npz: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``(ids, audio, visual)`` from a neighbours.npz written by ``build_knn`` (no pickles)."""
    with np.load(npz, allow_pickle=False) as data:
        ids, audio, visual = data["ids"], data["audio"], data["visual"]
    n = len(ids)
    for name, arr in (("audio", audio), ("visual", visual)):
        if arr.dtype != np.int32 or arr.ndim != 2 or arr.shape[0] != n:
            raise ValueError(f"{npz}: {name} must be int32 [N={n}, k], got {arr.dtype} {arr.shape}")
    return ids, audio, visual
