"""avbench.audio: scipy parity, front-end shapes, crop/tile, wav decoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import torch

from avbench import audio


@pytest.mark.parametrize(("sr", "noverlap", "name"), [(16000, 274, "stonemo_16k_257x200"), (16000, 353, "lvs_16k_257x299")])
def test_psd_matches_scipy_in_log_domain(sr: int, noverlap: int, name: str) -> None:
    rng = np.random.default_rng(0)
    for x in (rng.uniform(-1, 1, 3 * sr), 1e-3 * rng.standard_normal(3 * sr) + 0.3):  # loud; quiet with DC
        _, _, ref = scipy.signal.spectrogram(x, fs=sr, nperseg=512, noverlap=noverlap)
        ref = np.log(ref + 1e-7) / 12.0
        for dtype in (torch.float32, torch.float64):
            ours = audio.spectrogram(torch.tensor(x, dtype=dtype), sr, name).double().numpy()
            assert ours.shape == ref.shape
            assert np.abs(ours - ref).max() < 1e-5


def test_tukey_window_is_scipys_periodic_default() -> None:
    ref = scipy.signal.get_window(("tukey", 0.25), 512)
    np.testing.assert_allclose(audio._window_cpu("tukey_periodic_0.25", 512).numpy(), ref, atol=1e-12)


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("stonemo_16k_257x200", (257, 200)),
        ("lvs_16k_257x299", (257, 299)),
        ("paper_22k_257x300", (257, 300)),
        ("oneavm_8k_128x128", (128, 128)),
        ("qian_22k_mel64", (64, 151)),
        ("mel64_16k", (64, 100)),
    ],
)
def test_frontend_shapes_for_3s_at_16k(name: str, shape: tuple[int, int]) -> None:
    wave = 0.1 * torch.randn(2, 48000, generator=torch.Generator().manual_seed(1))
    spec = audio.spectrogram(wave, 16000, name)
    assert spec.shape == (2, *shape)
    assert torch.isfinite(spec).all()
    assert audio.output_shape(name, 3.0) == shape


def test_batched_equals_per_item_and_native_rate_override() -> None:
    wave = 0.1 * torch.randn(3, 48000, generator=torch.Generator().manual_seed(2))
    batched = audio.spectrogram(wave, 16000, "stonemo_16k_257x200")
    single = audio.spectrogram(wave[1], 16000, "stonemo_16k_257x200")
    torch.testing.assert_close(batched[1], single)
    # stoneMo uses the wav's native rate: 22,050 Hz gives 257x276 (PROTOCOLS 2.2 step 6).
    native = audio.with_overrides("stonemo_16k_257x200", sample_rate=22050)
    assert audio.spectrogram(torch.zeros(66150), 22050, native).shape == (257, 276)


def test_unknown_frontend_lists_available() -> None:
    with pytest.raises(KeyError, match="mel64_16k"):
        audio.spectrogram(torch.zeros(48000), 16000, "nope")


def test_crop_window_centre_random_and_tile() -> None:
    wave = torch.arange(10 * 100, dtype=torch.float32)  # 10 s at 100 Hz
    centre = audio.crop_window(wave, 100, 3.0)
    assert centre.shape == (300,) and centre[0].item() == 350  # start = 10/2 - 3/2 = 3.5 s
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    r1 = audio.crop_window(wave, 100, 3.0, center=False, generator=g1)
    r2 = audio.crop_window(wave, 100, 3.0, center=False, generator=g2)
    assert torch.equal(r1, r2) and r1.shape == (300,)
    assert torch.equal(r1, torch.arange(r1[0].item(), r1[0].item() + 300, dtype=torch.float32))
    short = torch.arange(120, dtype=torch.float32)  # 1.2 s: tiled int(300/120)+1 = 3 times, cut to 300
    tiled = audio.crop_window(short, 100, 3.0)
    assert torch.equal(tiled, torch.cat([short, short, short])[:300])
    stereo_short = torch.stack([short, -short])
    assert audio.crop_window(stereo_short, 100, 3.0).shape == (2, 300)


def test_load_wav_pcm16_and_resample() -> None:
    pcm = np.array([[0, 32767], [-32768, 16384]], dtype=np.int16)  # 2 frames, 2 channels
    buf = io.BytesIO()
    sf.write(buf, pcm, 16000, subtype="PCM_16", format="WAV")
    wave, sr = audio.load_wav(buf.getvalue())
    assert sr == 16000
    expected = np.clip(pcm.astype(np.float32) / 32767.0, -1, 1).mean(1)
    np.testing.assert_allclose(wave.numpy(), expected, atol=1e-7)
    tone = torch.sin(2 * torch.pi * 440 * torch.arange(16000) / 16000)
    assert audio.resample(tone, 16000, 8000).shape == (8000,)
    assert audio.resample(tone, 16000, 16000) is tone
