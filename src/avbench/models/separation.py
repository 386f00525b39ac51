"""Shared mix-and-separate utilities for the separation-capable methods (OneAVM MAS, Qian et al.).

PROTOCOLS 2.5 / 5.6 (Sound-of-Pixels convention): Hann STFT, binary source-dominance masks, BCE (optionally
weighted per bin by ``clamp(log1p|X_mix|, 1e-3, 10)``), mask binarised at 0.5 at inference and applied to the
mixture magnitude with the **mixture phase**, inverse STFT, clip to +-1.

STFT recipes (``STFT_PRESETS``; input waves are 16 kHz and are resampled to the recipe's rate and back):

* ``sop_11k``    - SoP: 11,025 Hz, n_fft 1022, hop 256 (Qian et al.'s separation follows SoP; paper preset).
* ``oneavm_8k``  - OneAVM's own front end: 8 kHz, 50 ms window (n_fft 400), 25 ms hop (200) (paper preset).
* ``cpu_16k``    - [ours] CPU recipe: 16 kHz input, n_fft 512 (32 ms), hop 256 (16 ms): 257 bins x 188 frames
  for 3 s; no resampling, fine enough frequency resolution to resolve SynthAV's harmonic partials.

``MaskUNet`` is a U-Net style mask decoder: a strided-conv contracting path over the mixture log-magnitude,
then ``depth`` transposed convolutions (``depth - levels`` stride-1 refinement layers at the bottleneck, then
``levels`` stride-2 up-convolutions that each consume the matching encoder skip), conditioned with **FiLM**
(per-channel scale and shift predicted from a conditioning vector, e.g. a visual embedding) at the bottleneck
and after every decoder layer. [ours] Depth counts transposed-conv layers, so OneAVM's ablation over
{4, 8, 12, 16} changes decoder capacity without needing a 2^16-divisible spectrogram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from avbench.audio import resample

MaskTarget = Literal["dominance", "as_printed"]


@dataclass(frozen=True)
class StftConfig:
    sample_rate: int
    n_fft: int
    hop_length: int

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1


STFT_PRESETS: dict[str, StftConfig] = {
    "sop_11k": StftConfig(11025, 1022, 256),
    "oneavm_8k": StftConfig(8000, 400, 200),
    "cpu_16k": StftConfig(16000, 512, 256),
}


def get_stft(cfg: str | StftConfig) -> StftConfig:
    if isinstance(cfg, StftConfig):
        return cfg
    try:
        return STFT_PRESETS[cfg]
    except KeyError:
        raise KeyError(f"unknown STFT recipe {cfg!r}; available: {sorted(STFT_PRESETS)}") from None


@lru_cache(maxsize=8)
def _hann(n: int) -> torch.Tensor:
    return torch.hann_window(n, periodic=True)


def stft(wave: torch.Tensor, cfg: StftConfig, sample_rate: int) -> torch.Tensor:
    """``[B, n]`` wave at ``sample_rate`` -> complex ``[B, F, T]`` (Hann, centred, resampled to ``cfg``'s rate)."""
    wave = resample(wave.float(), sample_rate, cfg.sample_rate)
    window = _hann(cfg.n_fft).to(wave.device)
    return torch.stft(wave, cfg.n_fft, hop_length=cfg.hop_length, window=window, center=True,
                      return_complex=True)


def istft(spec: torch.Tensor, cfg: StftConfig, sample_rate: int, length: int) -> torch.Tensor:
    """Inverse of ``stft``: complex ``[B, F, T]`` -> ``[B, length]`` at ``sample_rate``."""
    window = _hann(cfg.n_fft).to(spec.device)
    n = math.ceil(length * cfg.sample_rate / sample_rate)
    wave = torch.istft(spec, cfg.n_fft, hop_length=cfg.hop_length, window=window, center=True, length=n)
    wave = resample(wave, cfg.sample_rate, sample_rate)
    if wave.shape[-1] < length:
        wave = F.pad(wave, (0, length - wave.shape[-1]))
    return wave[..., :length]


def log_magnitude(spec: torch.Tensor) -> torch.Tensor:
    """Network input ``log(|X| + 1e-4)`` ``[B, 1, F, T]`` (SoP feeds ``log|X_mix|``; the offset avoids -inf)."""
    return torch.log(spec.abs() + 1e-4).unsqueeze(1)


def dominance_mask(
    mag_src: torch.Tensor, mag_other: torch.Tensor, mag_mix: torch.Tensor, mode: MaskTarget = "dominance"
) -> torch.Tensor:
    """Binary target ``M_i`` (float 0/1).

    ``dominance`` (default, PROTOCOLS 5.6 / SoP with N = 2): ``|X_i| > |X_j|``. ``as_printed``: OneAVM Eq. (4)'s
    printed ``|X_i| > |X_m|`` (rarely true, kept as an ablation flag).
    """
    if mode == "dominance":
        return (mag_src > mag_other).float()
    if mode == "as_printed":
        return (mag_src > mag_mix).float()
    raise ValueError(f"mas_target must be 'dominance' or 'as_printed', got {mode!r}")


def bin_weights(mag_mix: torch.Tensor) -> torch.Tensor:
    """SoP per-bin BCE weight ``clamp(log1p(|X_mix|), 1e-3, 10)`` (PROTOCOLS 2.5)."""
    return torch.log1p(mag_mix).clamp(1e-3, 10.0)


def mask_bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over bins (and batch) of ``weight * BCE(sigmoid(logits), target)``; ``weight=None`` = OneAVM Eq. (4)."""
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight, reduction="mean")


def apply_mask(mix_spec: torch.Tensor, mask_logits: torch.Tensor, binarize: bool = True) -> torch.Tensor:
    """``|X_mix| * M * exp(j angle X_mix)`` = ``X_mix * M`` (mixture phase); ``M`` binarised at 0.5 (p > 0.5)."""
    mask = torch.sigmoid(mask_logits)
    if binarize:
        mask = (mask > 0.5).to(mask.dtype)
    return mix_spec * mask


def partner_permutation(labels: torch.Tensor) -> torch.Tensor:
    """Partner index per item: the batch rolled by the smallest shift with the fewest same-label pairs.

    A roll is a permutation, so every clip is used exactly once as partner (no duplicate negatives);
    ``partner[i] = (i + s) % B`` with ``s`` chosen so that labels differ wherever possible.
    """
    b = labels.shape[0]
    idx = torch.arange(b, device=labels.device)
    if b < 2:
        return idx
    best_shift, best_same = 1, b + 1
    for shift in range(1, b):
        same = int((labels == labels.roll(-shift)).sum())
        if same < best_same:
            best_shift, best_same = shift, same
            if same == 0:
                break
    return (idx + best_shift) % b


class FiLM(nn.Module):
    """Feature-wise linear modulation ``h * (1 + gamma(c)) + beta(c)``; zero-initialised (starts as identity)."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(cond).chunk(2, dim=1)
        return h * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]


def _bn_act(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, inplace=True)]


class MaskUNet(nn.Module):
    """Mixture log-magnitude ``[B, 1, F, T]`` + condition ``[B, cond_dim]`` -> mask logits ``[B, F, T]``.

    ``levels`` stride-2 encoder convs (channels ``base * 2^l``, capped at ``max_channels``); decoder of ``depth``
    transposed convs (``depth >= levels``). The input is replicate-padded to a multiple of ``pool * 2^levels`` and
    the logits cropped back, so any STFT size works. ``pool`` (int or (freq, time)) average-pools the input
    and bilinearly upsamples the logits (a cheaper, coarser mask for CPU recipes). [ours] options for a decoder
    that must know *where* in frequency a source lives (convolutions alone are translation-equivariant):
    ``freq_coord`` appends a frequency-coordinate channel (-1 at the lowest row, +1 at the highest) to the input;
    ``freq_prior`` = K > 0 adds to the logits a per-frequency envelope predicted from the condition (K control
    points, linearly interpolated over the rows, constant over time; zero-initialised).
    """

    def __init__(
        self, cond_dim: int, depth: int = 8, levels: int = 4, base: int = 16, max_channels: int = 256,
        pool: int | tuple[int, int] = 1, freq_coord: bool = False, freq_prior: int = 0,
    ) -> None:
        super().__init__()
        if levels < 1 or depth < levels:
            raise ValueError(f"need 1 <= levels <= depth, got levels={levels}, depth={depth}")
        pool_ft = (pool, pool) if isinstance(pool, int) else (int(pool[0]), int(pool[1]))
        if min(pool_ft) < 1:
            raise ValueError(f"pool must be >= 1, got {pool}")
        self.depth, self.levels, self.pool = depth, levels, pool_ft
        self.freq_coord = bool(freq_coord)
        ch = [min(base * 2**lv, max_channels) for lv in range(levels + 1)]
        self.inc = nn.Sequential(nn.Conv2d(1 + self.freq_coord, ch[0], 3, padding=1, bias=False), *_bn_act(ch[0]))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ch[lv], ch[lv + 1], 4, stride=2, padding=1, bias=False), *_bn_act(ch[lv + 1]))
            for lv in range(levels)
        )
        self.film_in = FiLM(cond_dim, ch[-1])
        self.refine = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(ch[-1], ch[-1], 3, padding=1, bias=False), *_bn_act(ch[-1]))
            for _ in range(depth - levels)
        )
        self.film_refine = nn.ModuleList(FiLM(cond_dim, ch[-1]) for _ in range(depth - levels))
        # up[k] maps level (levels - k) -> (levels - k - 1); input = previous decoder output ++ encoder skip.
        self.up = nn.ModuleList()
        self.film_up = nn.ModuleList()
        for k in range(levels):
            lv = levels - k
            in_ch = ch[lv] * (1 if k == 0 else 2)
            self.up.append(nn.Sequential(
                nn.ConvTranspose2d(in_ch, ch[lv - 1], 4, stride=2, padding=1, bias=False), *_bn_act(ch[lv - 1])
            ))
            self.film_up.append(FiLM(cond_dim, ch[lv - 1]))
        self.head = nn.Conv2d(2 * ch[0], 1, 1)
        self.freq_prior = int(freq_prior)
        if self.freq_prior < 0 or self.freq_prior == 1:
            raise ValueError(f"freq_prior must be 0 (off) or >= 2 control points, got {freq_prior}")
        if self.freq_prior:
            self.prior = nn.Linear(cond_dim, self.freq_prior)
            nn.init.zeros_(self.prior.weight)
            nn.init.zeros_(self.prior.bias)

    def forward(self, log_mag: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        f, t = log_mag.shape[-2:]
        pooled = self.pool != (1, 1)
        pad_f, pad_t = (-f) % (2**self.levels * self.pool[0]), (-t) % (2**self.levels * self.pool[1])
        x = F.pad(log_mag, (0, pad_t, 0, pad_f), mode="replicate") if (pad_f or pad_t) else log_mag
        if pooled:  # [ours] CPU budget: run the U-Net on a pooled grid, upsample the logits back
            x = F.avg_pool2d(x, self.pool)
        if self.freq_coord:  # [ours] convolutions are blind to absolute frequency; a source's band is not
            coord = torch.linspace(-1.0, 1.0, x.shape[-2], device=x.device, dtype=x.dtype)
            x = torch.cat([x, coord[:, None].expand(x.shape[0], 1, -1, x.shape[-1])], dim=1)
        skips = [self.inc(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        h = self.film_in(skips[-1], cond)
        for conv, film in zip(self.refine, self.film_refine, strict=True):
            h = film(conv(h), cond)
        for k, (up, film) in enumerate(zip(self.up, self.film_up, strict=True)):
            inp = h if k == 0 else torch.cat([h, skips[self.levels - k]], dim=1)
            h = film(up(inp), cond)
        logits = self.head(torch.cat([h, skips[0]], dim=1))
        if self.freq_prior:
            env = F.interpolate(self.prior(cond)[:, None], size=logits.shape[-2], mode="linear", align_corners=True)
            logits = logits + env[:, :, :, None]
        if pooled:
            logits = F.interpolate(logits, scale_factor=self.pool, mode="bilinear", align_corners=False)
        return logits[:, 0, :f, :t]


__all__ = [
    "STFT_PRESETS",
    "FiLM",
    "MaskUNet",
    "StftConfig",
    "apply_mask",
    "bin_weights",
    "dominance_mask",
    "get_stft",
    "istft",
    "log_magnitude",
    "mask_bce",
    "partner_permutation",
    "stft",
]
