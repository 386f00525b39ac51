"""Additive synthesis of one SynthAV instrument instance, plus coloured background noise."""

from __future__ import annotations

from typing import Any

import numpy as np

_MAX_PARTIAL_HZ = 9500.0  # keep partials below the 22,050 Hz Nyquist (and mostly below 16 kHz's)


def coloured_noise(rng: np.random.Generator, n: int, exponent: float, sr: int) -> np.ndarray:
    """Unit-RMS noise with power spectrum ~ 1 / f**exponent (0 white, 1 pink, 2 brown)."""
    # drawn directly in the frequency domain (complex Gaussian bins): one inverse FFT instead of two
    m = n // 2 + 1
    spec = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    f = np.fft.rfftfreq(n, 1.0 / sr)
    f[0] = f[1]
    spec *= f ** (-exponent / 2.0)
    spec[0] = 0.0
    out = np.fft.irfft(spec, n)
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def instrument(
    rng: np.random.Generator, sound: dict[str, Any], cls: dict[str, Any], n: int, sr: int
) -> np.ndarray:
    """`n` samples of one sounding object: notes inside the class band, harmonics, vibrato, AM, noise."""
    t = np.arange(n) / sr
    dur = n / sr
    # notes: jittered durations around 1 / note_rate, each a few semitones off f0, clipped to the band
    rate = float(sound["note_rate"])
    m = int(np.ceil(dur * rate * 1.5)) + 2
    lengths = rng.uniform(0.7, 1.3, size=m) / rate
    onsets = np.concatenate([[0.0], np.cumsum(lengths)]) - rng.uniform(0, lengths[0])
    f_note = np.clip(sound["f0"] * 2.0 ** (rng.integers(-3, 4, size=m + 1) / 12.0), cls["f_lo"], cls["f_hi"])
    idx = np.clip(np.searchsorted(onsets, t, side="right") - 1, 0, m - 1)
    since = t - onsets[idx]
    until = onsets[idx + 1] - t
    if cls["pulsed"]:
        env = np.exp(-since / cls["note_decay"]) * (1.0 - np.exp(-since / 0.004))
    else:
        env = np.clip(np.minimum(since, until) / 0.015, 0.0, 1.0)  # legato with short gaps
    vib = 1.0 + cls["vib_depth"] * np.sin(2 * np.pi * sound["vib_rate"] * t + rng.uniform(0, 2 * np.pi))
    # float64 accumulation, then wrapped to float32: the partials are float32 sines (2x faster)
    phase = np.mod(2 * np.pi * np.cumsum(f_note[idx] * vib) / sr, 2 * np.pi).astype(np.float32)
    step = 2 if cls["odd_only"] else 1
    tonal = np.zeros(n, dtype=np.float32)
    for j in range(int(cls["n_harm"])):
        k = 1 + step * j
        if k * cls["f_hi"] * (1 + cls["vib_depth"]) > _MAX_PARTIAL_HZ:
            break
        partial = np.sin(np.float32(k) * phase + np.float32(rng.uniform(0, 2 * np.pi)))
        tonal += np.float32(k ** (-cls["harm_decay"])) * partial
    tonal /= np.sqrt(np.mean(tonal**2)) + 1e-12
    noise = cls["noise_level"] * coloured_noise(rng, n, cls["noise_colour"], sr)
    am = 1.0 - cls["am_depth"] * (
        0.5 - 0.5 * np.cos(2 * np.pi * sound["am_rate"] * t + rng.uniform(0, 2 * np.pi))
    )
    out = (tonal + noise) * env * am
    out /= np.sqrt(np.mean(out**2)) + 1e-12
    return out * 10.0 ** (sound["gain_db"] / 20.0)
