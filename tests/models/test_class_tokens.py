"""Shared class-token blocks: token-constraint loss, grouping (Eq. 7-8), mixtures, class-aware similarities."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from avbench import audio
from avbench.models.class_tokens import (
    ClassTokenTransformer,
    GroupingBlock,
    class_aware_mil_logits,
    class_maps,
    mix_batch,
    multi_hot,
    partner_index,
    token_constraint_loss,
)


@pytest.fixture(autouse=True)
def _one_thread() -> object:
    # Tiny tensors: one intra-op thread avoids OpenMP spin-waits on a busy 2-core runner (restored after).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

def test_token_constraint_loss_hand_value() -> None:
    # FC = identity (D = C = 2), tokens e0, e1: logits of token i = e_i, so each CE = -log(e / (e + 1))
    # = log(1 + e^-1); the mean over the two tokens is the same value.
    fc = nn.Linear(2, 2)
    with torch.no_grad():
        fc.weight.copy_(torch.eye(2))
        fc.bias.zero_()
    loss = token_constraint_loss(fc, torch.eye(2))
    torch.testing.assert_close(loss, torch.tensor(math.log(1 + math.exp(-1))))


def _identity_grouping(dim: int) -> GroupingBlock:
    block = GroupingBlock(dim)
    with torch.no_grad():
        for lin in (block.v, block.o):
            lin.weight.copy_(torch.eye(dim))
            lin.bias.zero_()
        block.q.weight.zero_()  # zero queries -> uniform assignment A[p, i] = 1 / C
        block.q.bias.zero_()
    return block


def test_grouping_uniform_assignment_is_token_plus_mean() -> None:
    # With A[p, i] = 1/C: sum_p A v_p / sum_p A = mean_p v_p, so g_i = c_i + mean_p x_p (W_v = W_o = I).
    block = _identity_grouping(4)
    x = torch.randn(2, 5, 4)
    c = torch.randn(2, 3, 4)
    torch.testing.assert_close(block.assignment(x, c), torch.full((2, 5, 3), 1 / 3))
    torch.testing.assert_close(block(x, c), c + x.mean(1, keepdim=True), atol=1e-5, rtol=1e-5)


def test_grouping_single_token_normaliser_cancels() -> None:
    # P = 1 (global audio): A_i W_v f / A_i = W_v f for any assignment (Eq. 8), so g_i = c_i + W_o W_v f^a.
    torch.manual_seed(0)
    block = GroupingBlock(6)
    x, c, raw = torch.randn(3, 1, 6), torch.randn(3, 4, 6), torch.randn(3, 1, 6)
    expected = c + block.o(block.v(raw))
    torch.testing.assert_close(block(x, c, values=raw), expected, atol=1e-5, rtol=1e-4)


def test_partner_index_and_multi_hot() -> None:
    labels = torch.tensor([0, 0, 1, 2])
    # First later item (cyclic) with a different class: 0 -> 2, 1 -> 2, 2 -> 3, 3 -> 0.
    assert partner_index(labels).tolist() == [2, 2, 3, 0]
    assert partner_index(torch.tensor([1, 1, 1])).tolist() == [1, 2, 0]  # all equal: b + 1
    y = multi_hot(labels, 3, partner_index(labels), n_mixed=2)
    assert y.tolist() == [[1, 1, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_mix_batch_power_domain_and_wave_paths() -> None:
    cfg = audio.get_frontend("mel64_16k")
    k, eps = cfg.log_scale, cfg.log_eps
    p1, p2 = torch.rand(3, 1, 4, 5) + 0.1, torch.rand(3, 1, 4, 5) + 0.1
    specs = torch.log(torch.cat([p1[:2], p2[2:]]) + eps) / k
    batch = {"spec": specs, "label_idx": torch.tensor([0, 1, 2])}
    mixed, partner = mix_batch(batch, 1, "mel64_16k")
    assert partner.tolist() == [1, 2, 0]
    # Power domain: log(P_0 + P_1 + eps) / k for the mixed item, untouched spectrograms for the others.
    torch.testing.assert_close(mixed[0], torch.log(p1[0] + p1[1] + eps) / k)
    torch.testing.assert_close(mixed[1:], specs[1:])
    # Wave path: the spectrogram of the summed waves.
    wave = torch.randn(3, 16000) * 0.1
    batch = {"spec": audio.spectrogram(wave, 16000, "mel64_16k").unsqueeze(1), "label_idx": torch.tensor([0, 1, 2]),
             "wave": wave}
    mixed, _ = mix_batch(batch, 3, "mel64_16k")
    expected = audio.spectrogram(wave + wave[[1, 2, 0]], 16000, "mel64_16k").unsqueeze(1)
    torch.testing.assert_close(mixed, expected)


def test_class_aware_logits_match_brute_force() -> None:
    torch.manual_seed(0)
    b, p, d = 3, 5, 4
    query, vis, gate = torch.randn(b, d), torch.randn(b, p, d), torch.randn(b, b, d)
    logits = class_aware_mil_logits(query, vis, gate, tau=0.5)
    brute = torch.empty(b, b)
    for i in range(b):
        for m in range(b):
            brute[i, m] = F.cosine_similarity(query[i][None], vis[m] * gate[m, i][None], dim=-1).max() / 0.5
    torch.testing.assert_close(logits, brute, atol=1e-5, rtol=1e-5)
    plain = class_aware_mil_logits(query, vis, None, tau=1.0)
    torch.testing.assert_close(plain[1, 2], F.cosine_similarity(query[1][None], vis[2], dim=-1).max())
    maps = class_maps(query[:, None], vis, gate[:, :1])
    torch.testing.assert_close(maps[2, 0], F.cosine_similarity(query[2][None], vis[2] * gate[2, 0][None], dim=-1))


def test_transformer_shapes_and_token_flexibility() -> None:
    torch.manual_seed(0)
    phi = ClassTokenTransformer(8, depth=2, heads=2, mlp_ratio=2.0, drop_path=0.0).eval()
    tokens = torch.randn(5, 8)
    for p in (1, 49, 98):  # audio, 7x7, 7x14
        x, c = phi(torch.randn(2, p, 8), tokens)
        assert x.shape == (2, p, 8) and c.shape == (2, 5, 8)
    # The class tokens attend to the features: different inputs give different class-token outputs.
    _, c1 = phi(torch.randn(1, 4, 8), tokens)
    _, c2 = phi(torch.randn(1, 4, 8), tokens)
    assert not torch.allclose(c1, c2)
