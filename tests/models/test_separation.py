"""Shared mix-and-separate utilities: STFT round trip, masks, weighted BCE, partner roll, U-Net decoder."""

from __future__ import annotations

import math

import pytest
import torch

from avbench.models import separation as sep

CPU = sep.get_stft("cpu_16k")


def _tones(n: int = 16000, freqs: tuple[float, ...] = (440.0, 1500.0)) -> torch.Tensor:
    t = torch.arange(n) / 16000
    return torch.stack([0.3 * torch.sin(2 * math.pi * f * t) for f in freqs])


def _sdr(ref: torch.Tensor, est: torch.Tensor) -> float:
    return float(10 * torch.log10(ref.square().sum() / (ref - est).square().sum()))


@pytest.mark.parametrize("name", ["cpu_16k", "oneavm_8k", "sop_11k"])
def test_stft_istft_round_trip(name: str) -> None:
    cfg = sep.get_stft(name)
    wave = _tones()
    spec = sep.stft(wave, cfg, 16000)
    assert spec.shape[:2] == (2, cfg.n_freq) and spec.is_complex()
    back = sep.istft(spec, cfg, 16000, wave.shape[-1])
    assert back.shape == wave.shape
    # Resampling recipes lose nothing below their Nyquist (the tones are below 4 kHz); skip the filter edges.
    assert _sdr(wave[:, 400:-400], back[:, 400:-400]) > 30


def test_masks_by_hand() -> None:
    mag_i = torch.tensor([1.0, 0.2, 0.5])
    mag_j = torch.tensor([0.5, 0.4, 0.5])
    mag_m = torch.tensor([1.2, 0.6, 0.1])
    # dominance: |X_i| > |X_j| -> [1, 0, 0] (ties are not dominant); as printed: |X_i| > |X_m| -> [0, 0, 1]
    assert sep.dominance_mask(mag_i, mag_j, mag_m).tolist() == [1.0, 0.0, 0.0]
    assert sep.dominance_mask(mag_i, mag_j, mag_m, "as_printed").tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError):
        sep.dominance_mask(mag_i, mag_j, mag_m, "bogus")  # type: ignore[arg-type]


def test_weighted_bce_by_hand() -> None:
    # logit 0 -> p = 1/2 -> BCE = ln 2 whatever the target; logit ln 3 -> p = 3/4 -> BCE(target 1) = -ln(3/4)
    logits = torch.tensor([[0.0, math.log(3.0)]])
    target = torch.tensor([[0.0, 1.0]])
    expected = (math.log(2.0) - math.log(0.75)) / 2
    torch.testing.assert_close(sep.mask_bce(logits, target), torch.tensor(expected))
    # SoP weights clamp(log1p|X|, 1e-3, 10): |X| = 0 -> 1e-3, |X| = e - 1 -> 1, |X| = e^20 -> 10
    mags = torch.tensor([0.0, math.e - 1.0, math.exp(20.0)])
    torch.testing.assert_close(sep.bin_weights(mags), torch.tensor([1e-3, 1.0, 10.0]))
    w = torch.tensor([[2.0, 0.5]])
    torch.testing.assert_close(sep.mask_bce(logits, target, w),
                               torch.tensor((2.0 * math.log(2.0) - 0.5 * math.log(0.75)) / 2))


def test_apply_mask_binarises_and_keeps_phase() -> None:
    mix = torch.tensor([[1 + 1j, 2 - 1j, -3j]])
    logits = torch.tensor([[2.0, -0.1, 0.3]])
    out = sep.apply_mask(mix, logits)
    torch.testing.assert_close(out, torch.tensor([[1 + 1j, 0j, -3j]]))
    soft = sep.apply_mask(mix, logits, binarize=False)
    torch.testing.assert_close(soft.angle()[0, 0], mix.angle()[0, 0])


def test_partner_permutation() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    partner = sep.partner_permutation(labels)
    assert sorted(partner.tolist()) == list(range(6))  # a permutation
    assert (labels[partner] != labels).all()  # shift 1 pairs 0-0: the roll by 2 has no same-label pair
    assert partner.tolist() == [2, 3, 4, 5, 0, 1]
    assert sep.partner_permutation(torch.tensor([3])).tolist() == [0]
    same = torch.zeros(4, dtype=torch.long)  # every shift has 4 same-label pairs: the roll by 1
    assert sep.partner_permutation(same).tolist() == [1, 2, 3, 0]


@pytest.mark.parametrize(("depth", "levels", "pool"), [(4, 4, 1), (6, 3, (2, 4)), (2, 2, 2)])
def test_mask_unet_shapes_and_conditioning(depth: int, levels: int, pool: int | tuple[int, int]) -> None:
    torch.manual_seed(0)
    net = sep.MaskUNet(cond_dim=5, depth=depth, levels=levels, base=4, pool=pool)
    n_t = sum(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert n_t == depth  # depth = number of transposed convolutions
    x = torch.randn(2, 1, 33, 21)  # odd sizes: padded then cropped
    c = torch.randn(2, 5)
    out = net(x, c)
    assert out.shape == (2, 33, 21)
    # FiLM starts as the identity: the condition does not matter until its projections are trained.
    torch.testing.assert_close(net(x, torch.zeros(2, 5)), out)
    for m in net.modules():
        if isinstance(m, sep.FiLM):
            torch.nn.init.normal_(m.proj.weight, std=0.5)
    assert not torch.allclose(net(x, torch.zeros(2, 5)), net(x, c))
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_mask_unet_frequency_prior_adds_the_interpolated_envelope() -> None:
    torch.manual_seed(0)
    plain = sep.MaskUNet(cond_dim=3, depth=2, levels=2, base=4)
    torch.manual_seed(0)
    with_prior = sep.MaskUNet(cond_dim=3, depth=2, levels=2, base=4, freq_prior=2)
    plain.eval(), with_prior.eval()
    x, c = torch.randn(2, 1, 32, 8), torch.randn(2, 3)
    # zero-initialised: identical to the plain decoder until trained
    torch.testing.assert_close(with_prior(x, c), plain(x, c))
    with torch.no_grad():
        with_prior.prior.bias.copy_(torch.tensor([0.0, 3.0]))  # two control points: 0 at the lowest bin, 3 at the top
    envelope = torch.linspace(0.0, 3.0, 32)[None, :, None]
    torch.testing.assert_close(with_prior(x, c) - plain(x, c), envelope.expand(2, 32, 8))
    with_prior(x, c).sum().backward()
    assert with_prior.prior.weight.grad is not None and with_prior.prior.weight.grad.abs().sum() > 0


def test_mask_unet_frequency_coordinate_channel() -> None:
    net = sep.MaskUNet(cond_dim=2, depth=2, levels=2, base=4, pool=(2, 1), freq_coord=True)
    seen = {}
    net.inc.register_forward_hook(lambda mod, args, out: seen.update(x=args[0]))
    net(torch.randn(3, 1, 30, 5), torch.randn(3, 2))
    x = seen["x"]  # 30 bins padded to 32 and pooled by 2 -> 16 rows; 5 frames padded to 8
    assert x.shape == (3, 2, 16, 8)
    torch.testing.assert_close(x[:, 1], torch.linspace(-1.0, 1.0, 16)[None, :, None].expand(3, 16, 8))


def test_mask_unet_rejects_bad_depth() -> None:
    with pytest.raises(ValueError):
        sep.MaskUNet(cond_dim=2, depth=2, levels=3)
    with pytest.raises(ValueError, match="freq_prior"):
        sep.MaskUNet(cond_dim=2, depth=2, levels=2, freq_prior=1)


def test_oracle_dominance_mask_beats_mixture() -> None:
    # The whole pipeline (STFT -> dominance mask -> mixture phase -> iSTFT) with the ideal mask separates two tones.
    src = _tones()
    x = sep.stft(src, CPU, 16000)
    x_mix = x[0] + x[1]
    target = sep.dominance_mask(x[0].abs(), x[1].abs(), x_mix.abs())
    logits = (target * 2 - 1) * 5.0  # confident logits of the ideal binary mask
    est = sep.istft(sep.apply_mask(x_mix[None], logits[None]), CPU, 16000, src.shape[-1])[0]
    mixture = src.sum(0)
    assert _sdr(src[0], est) > _sdr(src[0], mixture) + 15
