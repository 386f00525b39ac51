"""The one audio front end (PROTOCOLS 2.2-2.4): wav decoding, window cropping, resampling, spectrograms.

Everything here is torch so the same code runs per-item on CPU workers or batched on a GPU.
``torchaudio`` is used only for transforms (resampling, mel filter banks); wav decoding uses soundfile
because torchaudio >= 2.9 delegates I/O to torchcodec.

Named front ends (``FRONTENDS``), all returning ``[..., F, T']``:

* ``stonemo_16k_257x200`` - scipy.signal.spectrogram parity (nperseg 512, noverlap 274, periodic
  Tukey(0.25), constant detrend, one-sided PSD density), ``log(S + 1e-7) / 12``; 3 s at 16 kHz -> 257x200.
* ``lvs_16k_257x299`` - same with noverlap 353 (hop 159), the SSLalignment evaluator path -> 257x299.
* ``paper_22k_257x300`` - [ours] reading of AVGN/M2VSL: 22,050 Hz, nperseg 512, hop 220, padded to 300 frames.
* ``oneavm_8k_128x128`` - [ours] reading of OneAVM: 8 kHz, 50 ms Hann window, hop 188, 128 mels -> 128x128.
* ``qian_22k_mel64`` - Qian et al.: 22,050 Hz, n_fft 882, hop 441, 64 Slaney mels, ``log(mel + eps)``.
* ``mel64_16k`` - small CPU-preset front end: 16 kHz, n_fft 512, hop 480, 64 mels -> 64x100 for 3 s.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

INT16_MAX = float(np.iinfo(np.int16).max)  # stoneMo divides PCM16 by int16 max (PROTOCOLS 2.2 step 1)


@dataclass(frozen=True)
class FrontendConfig:
    """A spectrogram recipe. ``kind='psd'`` is the scipy-parity path, ``kind='mel'`` a log-mel path."""

    name: str
    sample_rate: int
    kind: Literal["psd", "mel"]
    n_fft: int
    hop_length: int
    win_length: int | None = None  # defaults to n_fft
    window: Literal["tukey_periodic_0.25", "hann"] = "tukey_periodic_0.25"
    n_mels: int = 0
    mel_scale: Literal["htk", "slaney"] = "htk"
    mel_norm: Literal["slaney"] | None = None
    center: bool = True  # mel path only; the psd path never pads (scipy.signal.spectrogram semantics)
    pad_mode: str = "reflect"
    log_eps: float = 1e-7
    log_scale: float = 12.0  # stoneMo's (x - 0) / 12 normalisation
    target_frames: int | None = None  # pad (repeat last) / crop to an exact frame count
    duration_s: float = 3.0  # nominal window; the shape documented above assumes it

    @property
    def n_freq(self) -> int:
        return self.n_mels if self.kind == "mel" else self.n_fft // 2 + 1


FRONTENDS: dict[str, FrontendConfig] = {
    c.name: c
    for c in (
        FrontendConfig("stonemo_16k_257x200", 16000, "psd", n_fft=512, hop_length=512 - 274),
        FrontendConfig("lvs_16k_257x299", 16000, "psd", n_fft=512, hop_length=512 - 353),
        FrontendConfig("paper_22k_257x300", 22050, "psd", n_fft=512, hop_length=220, target_frames=300),
        FrontendConfig(
            "oneavm_8k_128x128", 8000, "mel", n_fft=400, hop_length=188, window="hann", n_mels=128,
            target_frames=128,
        ),
        FrontendConfig(
            "qian_22k_mel64", 22050, "mel", n_fft=882, hop_length=441, window="hann", n_mels=64,
            mel_scale="slaney", mel_norm="slaney", log_scale=1.0, duration_s=5.0,
        ),
        FrontendConfig(
            "mel64_16k", 16000, "mel", n_fft=512, hop_length=480, window="hann", n_mels=64, target_frames=100,
        ),
    )
}


def get_frontend(frontend: str | FrontendConfig) -> FrontendConfig:
    if isinstance(frontend, FrontendConfig):
        return frontend
    try:
        return FRONTENDS[frontend]
    except KeyError:
        raise KeyError(f"unknown audio front end {frontend!r}; available: {sorted(FRONTENDS)}") from None


def output_shape(frontend: str | FrontendConfig, duration_s: float | None = None) -> tuple[int, int]:
    """``(F, T')`` the front end produces for ``duration_s`` seconds of audio (default: its nominal window)."""
    cfg = get_frontend(frontend)
    n = int(cfg.sample_rate * (cfg.duration_s if duration_s is None else duration_s))
    if cfg.target_frames is not None:
        return cfg.n_freq, cfg.target_frames
    if cfg.kind == "psd":
        return cfg.n_freq, (n - cfg.n_fft) // cfg.hop_length + 1
    return cfg.n_freq, (n // cfg.hop_length + 1) if cfg.center else ((n - cfg.n_fft) // cfg.hop_length + 1)


# ----------------------------------------------------------------------------------------------- decoding


def load_wav(source: bytes | str, mono: bool = True) -> tuple[torch.Tensor, int]:
    """Decode a wav (bytes or path) to float32 in [-1, 1] (PCM16 / int16 max, clipped), channel mean -> mono.

    Returns ``([T], sr)`` when ``mono`` else ``([C, T], sr)``.
    """
    handle = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    with sf.SoundFile(handle) as f:
        sr = f.samplerate
        pcm16 = f.subtype == "PCM_16"
        data = f.read(dtype="int16" if pcm16 else "float32", always_2d=True)  # [T, C]
    wave = data.astype(np.float32) / INT16_MAX if pcm16 else data.astype(np.float32)
    wave = np.clip(wave, -1.0, 1.0).T  # [C, T]
    tensor = torch.from_numpy(np.ascontiguousarray(wave))
    return (tensor.mean(0) if mono else tensor), sr


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Band-limited sinc resampling along the last axis (no-op when the rates match)."""
    if orig_sr == new_sr:
        return wave
    return AF.resample(wave, orig_sr, new_sr)


def crop_window(
    wave: torch.Tensor,
    sample_rate: int,
    duration_s: float,
    center: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Cut ``int(sr * duration_s)`` samples from the last axis (stoneMo, PROTOCOLS 2.2 steps 2-3).

    Centre mode starts at ``max(len/2 - n/2, 0)`` (the centre window); otherwise the start is uniform over
    all valid offsets, drawn from ``generator``. Audio shorter than the window is tiled
    ``int(n / len) + 1`` times and cut to ``n``.
    """
    n = int(sample_rate * duration_s)
    length = wave.shape[-1]
    if length == 0:
        raise ValueError("cannot crop an empty waveform")
    if length < n:
        reps = int(n / length) + 1
        return wave.repeat(*([1] * (wave.dim() - 1)), reps)[..., :n]
    if center:
        start = max(int(length / 2 - n / 2), 0)
    else:
        start = int(torch.randint(0, length - n + 1, (1,), generator=generator).item())
    return wave[..., start : start + n]


# -------------------------------------------------------------------------------------------- spectrogram


@lru_cache(maxsize=32)
def _window_cpu(kind: str, length: int) -> torch.Tensor:
    if kind == "tukey_periodic_0.25":
        # Periodic Tukey = symmetric Tukey of length N + 1 with the last sample dropped (scipy fftbins=True).
        m = length + 1
        n = np.arange(m, dtype=np.float64)
        alpha = 0.25
        width = int(np.floor(alpha * (m - 1) / 2.0))
        w = np.ones(m, dtype=np.float64)
        n1, n3 = n[: width + 1], n[m - width - 1 :]
        w[: width + 1] = 0.5 * (1 + np.cos(np.pi * (-1 + 2.0 * n1 / alpha / (m - 1))))
        w[m - width - 1 :] = 0.5 * (1 + np.cos(np.pi * (-2.0 / alpha + 1 + 2.0 * n3 / alpha / (m - 1))))
        return torch.from_numpy(w[:length].copy())
    if kind == "hann":
        return torch.hann_window(length, periodic=True, dtype=torch.float64)
    raise ValueError(f"unknown window {kind!r}")


@lru_cache(maxsize=32)
def _mel_fb_cpu(cfg: FrontendConfig) -> torch.Tensor:
    return AF.melscale_fbanks(
        cfg.n_fft // 2 + 1, 0.0, cfg.sample_rate / 2.0, cfg.n_mels, cfg.sample_rate,
        norm=cfg.mel_norm, mel_scale=cfg.mel_scale,
    )  # [n_freq, n_mels]


def _psd(wave: torch.Tensor, cfg: FrontendConfig, fs: int) -> torch.Tensor:
    """scipy.signal.spectrogram(mode='psd', scaling='density') in torch: [..., T] -> [..., F, T']."""
    nperseg = cfg.win_length or cfg.n_fft
    if wave.shape[-1] < nperseg:
        raise ValueError(f"{cfg.name}: need >= {nperseg} samples, got {wave.shape[-1]}")
    window = _window_cpu(cfg.window, nperseg).to(device=wave.device, dtype=wave.dtype)
    frames = wave.unfold(-1, nperseg, cfg.hop_length)  # [..., T', nperseg], no padding (scipy semantics)
    frames = frames - frames.mean(dim=-1, keepdim=True)  # detrend='constant' per segment
    spec = torch.fft.rfft(frames * window, n=cfg.n_fft, dim=-1)
    power = spec.real.square() + spec.imag.square()
    power = power * (1.0 / (fs * float(window.square().sum())))  # density scaling 1/(fs * sum w^2)
    # One-sided: double everything except DC and (for even nfft) the Nyquist bin.
    stop = -1 if cfg.n_fft % 2 == 0 else None
    power[..., 1:stop] *= 2.0
    return power.transpose(-1, -2)


def _mel(wave: torch.Tensor, cfg: FrontendConfig) -> torch.Tensor:
    win_length = cfg.win_length or cfg.n_fft
    window = _window_cpu(cfg.window, win_length).to(device=wave.device, dtype=wave.dtype)
    shape = wave.shape
    flat = wave.reshape(-1, shape[-1])
    spec = torch.stft(
        flat, cfg.n_fft, hop_length=cfg.hop_length, win_length=win_length, window=window,
        center=cfg.center, pad_mode=cfg.pad_mode, return_complex=True,
    )  # [N, F, T']
    power = spec.real.square() + spec.imag.square()
    fb = _mel_fb_cpu(cfg).to(device=wave.device, dtype=wave.dtype)
    mel = torch.matmul(power.transpose(-1, -2), fb).transpose(-1, -2)  # [N, n_mels, T']
    return mel.reshape(*shape[:-1], *mel.shape[-2:])


def _fit_frames(spec: torch.Tensor, target: int) -> torch.Tensor:
    t = spec.shape[-1]
    if t > target:
        return spec[..., :target]
    if t < target:  # repeat the last frame: avoids inventing a silence level in the log domain
        pad = spec[..., -1:].expand(*spec.shape[:-1], target - t)
        return torch.cat([spec, pad], dim=-1)
    return spec


def spectrogram(wave: torch.Tensor, sample_rate: int, frontend: str | FrontendConfig) -> torch.Tensor:
    """Waveform ``[..., T]`` at ``sample_rate`` -> normalised log spectrogram ``[..., F, T']``.

    The wave is resampled to the front end's rate when they differ. Integer input is rejected; float16/
    bfloat16 input is computed in float32 (log-domain parity needs it).
    """
    cfg = get_frontend(frontend)
    if not torch.is_floating_point(wave):
        raise TypeError(f"spectrogram expects a float waveform, got {wave.dtype}")
    out_dtype = wave.dtype
    if wave.dtype in (torch.float16, torch.bfloat16):
        wave = wave.float()
    wave = resample(wave, sample_rate, cfg.sample_rate)
    raw = _psd(wave, cfg, cfg.sample_rate) if cfg.kind == "psd" else _mel(wave, cfg)
    out = torch.log(raw + cfg.log_eps) / cfg.log_scale
    if cfg.target_frames is not None:
        out = _fit_frames(out, cfg.target_frames)
    return out.to(out_dtype)


def with_overrides(frontend: str | FrontendConfig, **changes: object) -> FrontendConfig:
    """A copy of a named front end with some fields changed (e.g. ``sample_rate`` for 22,050 Hz stoneMo)."""
    return replace(get_frontend(frontend), **changes)  # type: ignore[arg-type]


__all__ = [
    "FRONTENDS",
    "FrontendConfig",
    "crop_window",
    "get_frontend",
    "load_wav",
    "output_shape",
    "resample",
    "spectrogram",
    "with_overrides",
]
