"""Senocak et al., "Sound Source Localization is All about Cross-Modal Alignment", ICCV 2023 - PROTOCOLS 6.5.

Two ResNet-18 trained from scratch (shared encoder core: visual map -> 1x1 conv -> L2 per location, audio ->
global max-pool -> linear -> L2). Two similarities (Sec. 3.2):

* Eq. 3  ``s_L(v, a) = (1/|M|) sum_xy cos(v^xy, a)`` with M = all locations; since every ``v^xy`` and ``a`` are unit
  norm this equals ``<avg(v), a>``, which is how it is computed (one matmul for all B x B pairs);
* Eq. 4  ``s_A(v, a) = cos(p_v(avg(v)), p_a(a))`` with projection layers ``p_v``, ``p_a``.

Positive sets (Sec. 3.3) ``V = {v, v^aug, v^conc}``, ``A = {a, a^aug, a^conc}``: ``v^aug`` = SimCLR image
augmentations done in-batch with torch ops, ``a^aug`` = random time shift of the spectrogram, ``v^conc``/``a^conc`` =
a training clip drawn uniformly from the anchor's top-k visual/audio neighbours (the knn stage's file; supplied by
``wrap_dataset`` as ``image_conc``/``spec_conc``). Eq. 5 over the 3 x 3 = 9 pairs, tau = 0.07:

    L_i = - sum_{v in V} sum_{a in A} [ log softmax_j(s_L(v_i, a_j) / tau)_i + log softmax_j(s_A(v_i, a_j) / tau)_i ]

where the negatives ``a_j`` are the same kind of audio view of the other clips in the batch; averaged over i.
Localization map = ``cos(v^xy, a)``; retrieval embeddings = the s_A projections (PROTOCOLS 4.11).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from avbench.data import IMAGENET_MEAN, IMAGENET_STD
from avbench.knn import load_knn
from avbench.models.encoders import AudioEncoder, VisualEncoder
from avbench.models.registry import register

PRESETS: dict[str, dict[str, Any]] = {
    # Paper (Sec. 4 implementation details; PROTOCOLS 6.5 / 6.9). Both encoders from scratch. Layer4 keeps stride 1
    # (14x14 maps at 224 px) like the released evaluator's LVS-style backbone. [ours]: batch size (not stated;
    # lineage 128), D = projection size = 512 (not stated), audio front end = the released evaluator's 257x299.
    "paper": {
        "model": {
            "dim": 512, "width": 64, "audio_width": 64, "last_stride": 1, "audio_last_stride": 1,
            "proj_dim": 512, "tau": 0.07, "k": 1000,
            "semantic": True, "multiview": True, "feature_alignment": True,
        },
        "data": {"image_size": 224, "frontend": "lvs_16k_257x299", "audio_duration_s": 3.0},
        "train": {"epochs": 50, "batch_size": 128, "lr": 1e-4},
    },
    # [ours] CPU recipe for the SynthAV demo (width 16, 112 px, stride 16 -> 7x7 maps, 64-mel audio). One step
    # encodes 3 image and 3 audio views, so it runs ~3x fewer samples/s than EZ-VSL: epochs sized for <= 60 s.
    "cpu": {
        "model": {
            "dim": 128, "width": 16, "audio_width": 16, "last_stride": 1, "audio_last_stride": 2,
            "proj_dim": 128, "tau": 0.07, "k": 1000,
            "semantic": True, "multiview": True, "feature_alignment": True,
        },
        "data": {"image_size": 112, "frontend": "mel64_16k", "audio_duration_s": 3.0},
        "train": {"epochs": 6, "batch_size": 64, "lr": 1e-3},
    },
}

# ------------------------------------------------------------------------------------------------ augmentations

_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
_GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


def _rand(n: int, generator: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    # Parameters are drawn on the CPU (global RNG unless a generator is given): the training loop seeds it and
    # restores it on resume, so augmentations are reproducible and independent of the device.
    return low + (high - low) * torch.rand(n, generator=generator)


def _gray(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_GRAY, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _hue_rotate(x: torch.Tensor, hue: torch.Tensor) -> torch.Tensor:
    """[ours] Hue shift by ``hue`` (fraction of a turn, per sample) as a chroma rotation in YIQ space: a linear,
    vectorised stand-in for torchvision's HSV round trip (same hue semantics, differs slightly in saturation)."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          dtype=x.dtype, device=x.device)
    to_rgb = torch.linalg.inv(to_yiq)
    ang = 2 * math.pi * hue.to(x)
    cos, sin = torch.cos(ang), torch.sin(ang)
    rot = torch.zeros(x.shape[0], 3, 3, dtype=x.dtype, device=x.device)
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    mat = to_rgb @ rot @ to_yiq  # [B, 3, 3]
    return torch.einsum("bij,bjhw->bihw", mat, x)


def simclr_augment(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    min_scale: float = 0.08,
    jitter: float = 1.0,
) -> torch.Tensor:
    """SimCLR augmentations (Chen et al. 2020, App. A) on a batch of ImageNet-normalised images ``[B, 3, H, W]``.

    Per sample: random resized crop (area ``U(min_scale, 1)``, aspect ``logU(3/4, 4/3)``, back to H x W,
    bilinear), horizontal flip (p 0.5), colour jitter with p 0.8 (brightness/contrast/saturation ``0.8 s``,
    hue ``0.2 s``, s = ``jitter``), grayscale (p 0.2), Gaussian blur (p 0.5, sigma ``U(0.1, 2) * H/224`` px, kernel
    ~10 % of the side). [ours]: the crop box is clamped into the image instead of torchvision's 10 retries; the
    jitter order is fixed (brightness, contrast, saturation, hue) instead of random; the blur sigma is scaled with
    the image size. Output is ImageNet-normalised again.
    """
    b, _, h, w = images.shape
    dev, dt = images.device, images.dtype
    x = (images.float() * _STD.to(dev) + _MEAN.to(dev)).clamp(0, 1)

    # random resized crop + flip via one affine grid per sample
    area = _rand(b, generator, min_scale, 1.0)
    log_r = _rand(b, generator, math.log(3 / 4), math.log(4 / 3))
    ratio = torch.exp(log_r)
    cw = torch.sqrt(area * ratio * h / w).clamp(max=1.0)  # crop width as a fraction of W
    ch = torch.sqrt(area / ratio * w / h).clamp(max=1.0)
    cx = (1 - cw) * _rand(b, generator) + cw / 2  # crop centre (fractions)
    cy = (1 - ch) * _rand(b, generator) + ch / 2
    flip = torch.where(_rand(b, generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = cw * flip, 2 * cx - 1
    theta[:, 1, 1], theta[:, 1, 2] = ch, 2 * cy - 1
    grid = F.affine_grid(theta.to(dev), [b, 3, h, w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # colour jitter (p 0.8)
    apply = (_rand(b, generator) < 0.8).to(dev).view(b, 1, 1, 1)
    s = 0.8 * jitter
    bright = _rand(b, generator, max(0.0, 1 - s), 1 + s).to(dev).view(b, 1, 1, 1)
    contrast = _rand(b, generator, max(0.0, 1 - s), 1 + s).to(dev).view(b, 1, 1, 1)
    sat = _rand(b, generator, max(0.0, 1 - s), 1 + s).to(dev).view(b, 1, 1, 1)
    hue = _rand(b, generator, -0.2 * jitter, 0.2 * jitter)
    y = (x * bright).clamp(0, 1)
    y = (contrast * y + (1 - contrast) * _gray(y).mean(dim=(-2, -1), keepdim=True)).clamp(0, 1)
    y = (sat * y + (1 - sat) * _gray(y)).clamp(0, 1)
    y = _hue_rotate(y, hue).clamp(0, 1)
    x = torch.where(apply, y, x)

    # random grayscale (p 0.2)
    gray = (_rand(b, generator) < 0.2).to(dev).view(b, 1, 1, 1)
    x = torch.where(gray, _gray(x).expand_as(x), x)

    # Gaussian blur (p 0.5): separable depthwise convolution with one kernel per sample
    blur = _rand(b, generator) < 0.5
    sigma = _rand(b, generator, 0.1, 2.0) * (h / 224.0)
    k = max(3, int(0.1 * min(h, w)) // 2 * 2 + 1)
    t = torch.arange(k, dtype=torch.float32) - k // 2
    kern = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None] ** 2))
    kern = kern / kern.sum(1, keepdim=True)
    kern = torch.where(blur[:, None], kern, (t[None] == 0).float())  # identity kernel where not blurred
    kern = kern.to(dev).repeat_interleave(3, dim=0)  # [3B, k]
    z = x.reshape(1, 3 * b, h, w)
    z = F.pad(z, (k // 2, k // 2, k // 2, k // 2), mode="reflect")
    z = F.conv2d(z, kern.view(3 * b, 1, 1, k), groups=3 * b)
    z = F.conv2d(z, kern.view(3 * b, 1, k, 1), groups=3 * b)
    x = z.reshape(b, 3, h, w)

    return ((x - _MEAN.to(dev)) / _STD.to(dev)).to(dt)


def time_shift(specs: torch.Tensor, max_frac: float = 0.25, generator: torch.Generator | None = None) -> torch.Tensor:
    """[ours] Audio view ``a^aug``: circular shift of each spectrogram ``[B, 1, F, T]`` along time by an integer
    offset uniform in ``[-max_frac T, max_frac T]`` (the paper's "random time-window shift"; the loader serves only
    the centre window, so the shift wraps around inside it)."""
    b, t = specs.shape[0], specs.shape[-1]
    max_shift = int(max_frac * t)
    if max_shift == 0:
        return specs
    shift = torch.randint(-max_shift, max_shift + 1, (b,), generator=generator).to(specs.device)
    idx = (torch.arange(t, device=specs.device)[None] - shift[:, None]) % t  # out[..., i] = in[..., i - shift]
    return torch.gather(specs, -1, idx.view(b, 1, 1, t).expand_as(specs))


# ------------------------------------------------------------------------------------------------------- loss


def senocak_loss(
    visual: Sequence[tuple[torch.Tensor, torch.Tensor | None]],
    audio: Sequence[tuple[torch.Tensor, torch.Tensor | None]],
    tau: float = 0.07,
    symmetric: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 5 over every (visual view, audio view) pair.

    ``visual[x] = (avg(v_x) [B, D], z_x [B, D'] or None)`` where ``avg(v_x)`` is the spatial mean of the unit-norm
    map (so ``<avg(v), a> = s_L``) and ``z_x = p_v(avg(v_x))`` L2-normalised; ``audio[y] = (a_y, w_y = p_a(a_y))``.
    The s_A term is skipped when the projections are None. ``symmetric`` adds the audio->image direction (Eq. 2's
    symmetric form); Eq. 5 as written is image->audio only. Returns ``(loss, {'loss_loc', 'loss_align'})``.
    """
    labels = torch.arange(visual[0][0].shape[0], device=visual[0][0].device)

    def nce(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = (x.float() @ y.float().t()) / tau
        out = F.cross_entropy(logits, labels)
        return out + F.cross_entropy(logits.t(), labels) if symmetric else out

    loc = visual[0][0].new_zeros((), dtype=torch.float32)
    align = loc.clone()
    for g_v, z_v in visual:
        for a, w_a in audio:
            loc = loc + nce(g_v, a)
            if z_v is not None and w_a is not None:
                align = align + nce(z_v, w_a)
    return loc + align, {"loss_loc": loc, "loss_align": align}


# ------------------------------------------------------------------------------------ conceptual positives (kNN)


class ConceptualPositives(Dataset):
    """Wraps a training dataset: item ``i`` also carries ``image_conc`` (the image of a neighbour drawn uniformly from
    i's top-k *visual* neighbours, through the base dataset's train transform) and ``spec_conc`` (the spectrogram of a
    neighbour drawn from i's top-k *audio* neighbours).

    Neighbour rows of the knn file are mapped to dataset indices by clip id; neighbours absent from the dataset are
    dropped, and a clip with no usable neighbour (or absent from the file) uses itself [ours]. The draw for item i in
    epoch e is a pure function of ``(seed, e, i)`` (seed = the base dataset's ``seed``), like ``ClipDataset``.
    """

    def __init__(self, base: Dataset, knn_path: str | Path, k: int, seed: int | None = None) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.base = base
        self.knn_path = str(knn_path)
        ids, audio_nn, visual_nn = load_knn(knn_path)
        self.k = min(int(k), int(audio_nn.shape[1]))  # capped at the file's k
        clip_ids = self._clip_ids(base)
        pos = {cid: i for i, cid in enumerate(clip_ids)}
        file_to_ds = np.array([pos.get(str(c), -1) for c in ids], dtype=np.int64)
        row = {str(c): r for r, c in enumerate(ids)}
        self.n_missing = sum(cid not in row for cid in clip_ids)
        self.visual: list[np.ndarray] = []
        self.audio: list[np.ndarray] = []
        self.n_fallback = 0
        for i, cid in enumerate(clip_ids):
            r = row.get(cid)
            for table, out in ((visual_nn, self.visual), (audio_nn, self.audio)):
                cand = file_to_ds[table[r, : self.k]] if r is not None else np.empty(0, dtype=np.int64)
                cand = cand[cand >= 0]
                if cand.size == 0:
                    self.n_fallback += 1
                    cand = np.array([i], dtype=np.int64)
                out.append(cand)
        self.seed = int(getattr(base, "seed", 0) if seed is None else seed)
        self.epoch = 0

    @staticmethod
    def _clip_ids(base: Dataset) -> list[str]:
        clips = getattr(base, "clips", None)
        if clips is not None:  # ClipDataset: no need to build items
            return [str(c.clip_id) for c in clips]
        return [str(base[i]["clip_id"]) for i in range(len(base))]  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def neighbours(self, index: int) -> tuple[int, int]:
        """``(visual, audio)`` dataset indices of the conceptual positives of ``index`` in the current epoch."""
        g = torch.Generator()
        # Different odd multipliers (and salt) from ClipDataset's, so the draw is independent of its crop stream.
        g.manual_seed((self.seed * 998_244_353 + self.epoch * 15_485_863 + index * 32_452_843 + 17) % (2**63 - 1))
        vis, aud = self.visual[index], self.audio[index]
        jv = int(vis[int(torch.randint(0, len(vis), (1,), generator=g))])
        ja = int(aud[int(torch.randint(0, len(aud), (1,), generator=g))])
        return jv, ja

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.base[index])
        jv, ja = self.neighbours(index)
        item["image_conc"] = self.base[jv]["image"]
        item["spec_conc"] = self.base[ja]["spec"]
        return item


# ------------------------------------------------------------------------------------------------------ model


@register("senocak", presets=PRESETS)
class Senocak2023(nn.Module):
    """Senocak et al. ICCV 2023. Class-agnostic; not separation-capable; needs the knn stage (``uses_knn``).

    Constructor kwargs (ablation switches marked *; Table 8 / 9 of the paper):
      dim, width, audio_width, last_stride, audio_last_stride: encoder sizes (shared core; both from scratch).
      proj_dim: output size of the projection layers p_v, p_a [ours: one linear layer each].
      tau: temperature (0.07).
      * semantic: conceptual positives v^conc / a^conc from the kNN file (needs ``knn_path``).
      * multiview: augmented positives v^aug / a^aug.
      * feature_alignment: the s_A term (and the projection layers).
      * k: neighbours to draw from (capped at the file's k).
      knn_path: the knn stage's neighbours.npz (config key ``knn``); required for training when ``semantic``.
      symmetric: [ours, default False = Eq. 5 as written] also the audio->image direction.
      crop_min_scale, jitter, audio_max_shift: augmentation strengths (SimCLR defaults 0.08 / 1.0; shift [ours]).
    """

    requires_training = True
    uses_knn = True

    def __init__(
        self,
        dim: int = 512,
        width: int = 64,
        audio_width: int | None = None,
        last_stride: int = 1,
        padding_mode: str = "zeros",
        visual_stages: int = 4,
        audio_last_stride: int = 2,
        proj_dim: int = 512,
        tau: float = 0.07,
        semantic: bool = True,
        multiview: bool = True,
        feature_alignment: bool = True,
        k: int = 1000,
        knn_path: str | None = None,
        symmetric: bool = False,
        crop_min_scale: float = 0.08,
        jitter: float = 1.0,
        audio_max_shift: float = 0.25,
    ) -> None:
        super().__init__()
        audio_width = audio_width or width
        self.tau = float(tau)
        self.semantic, self.multiview = bool(semantic), bool(multiview)
        self.feature_alignment, self.symmetric = bool(feature_alignment), bool(symmetric)
        self.k, self.knn_path = int(k), knn_path
        self.crop_min_scale, self.jitter, self.audio_max_shift = float(crop_min_scale), float(jitter), float(
            audio_max_shift
        )
        self.config = {
            "dim": dim, "width": width, "audio_width": audio_width, "last_stride": last_stride,
            "audio_last_stride": audio_last_stride, "proj_dim": proj_dim, "tau": tau, "semantic": semantic,
            "multiview": multiview, "feature_alignment": feature_alignment, "k": k, "knn_path": knn_path,
            "symmetric": symmetric, "crop_min_scale": crop_min_scale, "jitter": jitter,
            "audio_max_shift": audio_max_shift,
        }
        self.visual = VisualEncoder(dim=dim, width=width, last_stride=last_stride, pretrained_path=None,
                                    padding_mode=padding_mode, n_stages=visual_stages)
        self.audio = AudioEncoder(dim=dim, width=audio_width, in_channels=1, last_stride=audio_last_stride)
        # Only built when used: parameters without gradients would break DDP (find_unused_parameters=False).
        self.proj_v: nn.Linear | None = nn.Linear(dim, proj_dim) if self.feature_alignment else None
        self.proj_a: nn.Linear | None = nn.Linear(dim, proj_dim) if self.feature_alignment else None

    # ------------------------------------------------------------------------------------------ dataset hook
    @classmethod
    def wrap_dataset(cls, dataset: Dataset, model_cfg: Mapping[str, Any]) -> Dataset:
        """Training-data hook (``avbench.train``): add the conceptual positives when ``semantic`` is on."""
        defaults = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        cfg = {**defaults, **dict(model_cfg)}
        if not cfg["semantic"]:
            return dataset
        knn_path = cfg.get("knn_path")
        if not knn_path:
            raise ValueError(
                "senocak with semantic=True needs the kNN neighbour file (model kwarg knn_path, filled from the knn "
                "stage's R/knn/{dataset}/neighbours.npz; configure config key 'knn'), or set model: {semantic: false}"
            )
        if not Path(knn_path).is_file():
            raise FileNotFoundError(
                f"senocak: kNN neighbour file not found: {knn_path} (written by the knn stage, config key 'knn')"
            )
        return ConceptualPositives(dataset, knn_path, k=int(cfg["k"]))

    # --------------------------------------------------------------------------------------------- encoders
    def _global(self, vmap: torch.Tensor, aud: torch.Tensor) -> tuple[
        tuple[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor | None]
    ]:
        g = vmap.mean(dim=(-2, -1))  # avg(v): <avg(v), a> = s_L (Eq. 3) for unit-norm v^xy and a
        if self.proj_v is None or self.proj_a is None:
            return (g, None), (aud, None)
        return (g, F.normalize(self.proj_v(g), dim=1)), (aud, F.normalize(self.proj_a(aud), dim=1))

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        images, specs = batch["image"], batch["spec"]
        vis, aud = [images], [specs]
        if self.multiview:
            vis.append(simclr_augment(images, min_scale=self.crop_min_scale, jitter=self.jitter))
            aud.append(time_shift(specs, self.audio_max_shift))
        if self.semantic:
            if "image_conc" not in batch or "spec_conc" not in batch:
                raise ValueError(
                    "senocak with semantic=True needs batches with 'image_conc'/'spec_conc': train through "
                    "avbench.train (Senocak2023.wrap_dataset with the knn file) or set semantic=False"
                )
            vis.append(_stacked(batch["image_conc"], images))
            aud.append(_stacked(batch["spec_conc"], specs))
        b = images.shape[0]
        # One pass per modality over all views (cheaper than separate passes; BN sees every view of the batch).
        vmaps = self.visual(torch.cat(vis)).split(b)
        auds = self.audio(torch.cat(aud)).split(b)
        pairs = [self._global(v, a) for v, a in zip(vmaps, auds, strict=True)]
        loss, parts = senocak_loss([p[0] for p in pairs], [p[1] for p in pairs], self.tau, self.symmetric)
        return {"loss": loss, **{k: v.detach() for k, v in parts.items()}}

    # ------------------------------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def localize(self, images: torch.Tensor, specs: torch.Tensor) -> torch.Tensor:
        """``cos(v^xy, a)`` per sample: ``[B, h, w]`` in [-1, 1] (fully convolutional: any H x W)."""
        vmap, aud = self.visual(images), self.audio(specs)
        return torch.einsum("ndhw,nd->nhw", vmap, aud).float()

    @torch.no_grad()
    def embed(self, images: torch.Tensor, specs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The s_A space ``(p_v(avg v), p_a(a))``, L2-normalised (PROTOCOLS 4.11); without feature alignment
        [ours] the s_L space ``(avg v / |avg v|, a)``."""
        (g, z), (a, w) = self._global(self.visual(images), self.audio(specs))
        if z is None or w is None:
            return F.normalize(g, dim=1).float(), a.float()
        return z.float(), w.float()


def _stacked(value: torch.Tensor | Sequence[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    # avbench.data.collate stacks only its known keys; the extra views arrive as lists of tensors.
    out = value if isinstance(value, torch.Tensor) else torch.stack(list(value))
    return out.to(device=like.device, dtype=like.dtype)
