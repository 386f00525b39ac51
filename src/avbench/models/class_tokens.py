"""Shared building blocks of the class-token methods (AVGN, M2VSL): attention blocks over ``[tokens; class
tokens]``, the soft grouping block, the token-constraint loss and in-batch mixtures (PROTOCOLS 6.4, 6.7, 5.1).

* ``ClassTokenTransformer`` - AVGN Eq. 2-5 / M2VSL Eq. 5-6: self-attention over the concatenation of feature
  tokens and learnable class tokens (pre-norm ViT blocks as in the AVGN code: 8 heads, MLP ratio 4,
  drop-path 0.1). No positional embedding (the papers have none), so any number of tokens works (7x7, 7x14).
* ``GroupingBlock`` - AVGN Eq. 7-8, soft assignment: ``A[p, i] = softmax_i(W_q x_p . W_k c_i)``,
  ``g_i = c_i + W_o sum_p A[p, i] W_v x_p / sum_p A[p, i]``.
* ``token_constraint_loss`` - AVGN Sec. 3.2: ``e_i = softmax(FC(c_i))``, ``CE(h_i, e_i)``.
* ``mix_batch`` - two-source training mixtures built from the batch itself (PROTOCOLS 5.1).
* ``class_aware_mil_logits`` - AVGN Eq. 10 similarities ``max_p cos(g^a_{b,n_b}, f^v_{m,p} (.) g^v_{m,n_b})``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avbench import audio as av_audio


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at eval time or with ``p = 0``)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block: ``x + DP(MHSA(LN(x)))``, then ``x + DP(MLP(LN(x)))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # Eq. 4-6: softmax(x X^T / sqrt(d_head)) X, per head.
        att = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.drop_path(self.proj(att.transpose(1, 2).reshape(b, n, d)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ClassTokenTransformer(nn.Module):
    """``phi([x; c])`` (AVGN Eq. 2-3): returns the updated feature tokens ``[B, P, D]`` and class tokens
    ``[B, C, D]``. The class tokens are passed in (``[C, D]``) so one learnable set can be shared by the audio
    and the visual transformer, as in AVGN (one ``av_token`` parameter)."""

    def __init__(self, dim: int, depth: int = 3, heads: int = 8, mlp_ratio: float = 4.0,
                 drop_path: float = 0.1) -> None:
        super().__init__()
        rates = [drop_path * i / max(depth - 1, 1) for i in range(depth)]  # linearly increasing (timm)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, r) for r in rates)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, class_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = tokens.shape[1]
        x = torch.cat([tokens, class_tokens.unsqueeze(0).expand(tokens.shape[0], -1, -1)], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, :p], x[:, p:]


class GroupingBlock(nn.Module):
    """Soft grouping of feature tokens into class groups (AVGN Eq. 7-8).

    ``A[b, p, i] = softmax_i(<W_q LN(x_p), W_k LN(c_i)> / sqrt(D))``;
    ``g_i = c_i + W_o (sum_p A[p, i] W_v x_p) / (sum_p A[p, i] + eps)``.
    With a single token (global audio) the normaliser cancels: ``g_i = c_i + W_o W_v x`` exactly as printed.
    The layer norms on the inputs are [ours] (GroupViT's block normalises both inputs as well).
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm_x = nn.LayerNorm(dim)
        self.norm_c = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.eps = eps
        self.scale = dim ** -0.5

    def assignment(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """``A [B, P, C]``: each token's soft assignment over the class groups (Eq. 7)."""
        logits = torch.einsum("bpd,bcd->bpc", self.q(self.norm_x(x)), self.k(self.norm_c(c))) * self.scale
        return logits.softmax(dim=-1)

    def forward(self, x: torch.Tensor, c: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
        """``x [B, P, D]`` tokens, ``c [B, C, D]`` class tokens -> groups ``[B, C, D]``. ``values`` (default
        ``x``) are the tokens that get pooled: AVGN's audio Eq. 8 pools the raw ``f^a``, not ``f^a-hat``."""
        a = self.assignment(x, c)
        v = self.v(x if values is None else values)
        pooled = torch.einsum("bpc,bpd->bcd", a, v) / (a.sum(dim=1).unsqueeze(-1) + self.eps)
        return c + self.o(pooled)  # Eq. 8


def token_constraint_loss(fc: nn.Linear, class_tokens: torch.Tensor) -> torch.Tensor:
    """AVGN Sec. 3.2: ``e_i = softmax(FC(c_i))`` must classify token ``i`` as class ``i``.

    Mean CE over the C tokens (the AVGN code's ``F.cross_entropy``; the paper prints the sum).
    """
    target = torch.arange(class_tokens.shape[0], device=class_tokens.device)
    return F.cross_entropy(fc(class_tokens).float(), target)


def partner_index(labels: torch.Tensor) -> torch.Tensor:
    """For each item b, the first item after b in (cyclic) batch order whose label differs; ``b + 1`` when all
    labels in the batch are equal. [ours] deterministic stand-in for AVGN's uniform different-class draw: the
    batch order is already a seeded random permutation, so the partner is random across epochs."""
    b = labels.shape[0]
    shifts = torch.arange(1, max(b, 2), device=labels.device)  # candidate offsets 1..B-1
    cand = (torch.arange(b, device=labels.device)[:, None] + shifts[None, :]) % b  # [B, B-1]
    differs = labels[cand] != labels[:, None]
    first = torch.where(differs.any(dim=1), differs.float().argmax(dim=1), torch.zeros_like(labels))
    return cand.gather(1, first[:, None]).squeeze(1)


def mix_batch(batch: dict[str, Any], n_mixed: int, frontend: str, sample_rate: int = 16000
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixture spectrograms for the first ``n_mixed`` items and their partner index (PROTOCOLS 5.1).

    With ``batch['wave']`` (``ClipDataset(return_wave=True)``) the waves are summed (plain sum, no 1/2) and the
    spectrogram is recomputed with ``avbench.audio.spectrogram``. Without waves (``train.py`` does not forward
    ``return_wave`` to the loader) the log spectrograms are summed in the power domain,
    ``log(exp(s1 * k) + exp(s2 * k) - eps) / k`` with the front end's scale k: exact up to the cross term
    ``2 Re(X1 X2*)``, whose expectation is zero for independent sources [ours].
    Returns ``(specs [B, 1, F, T], partner [B])``; items ``>= n_mixed`` keep their own spectrogram.
    """
    specs = batch["spec"]
    partner = partner_index(batch["label_idx"])
    if n_mixed <= 0:
        return specs, partner
    idx = torch.arange(n_mixed, device=specs.device)
    with torch.no_grad():
        if "wave" in batch:
            wave = batch["wave"][idx] + batch["wave"][partner[idx]]
            mixed = av_audio.spectrogram(wave.float(), sample_rate, frontend).unsqueeze(1).to(specs.dtype)
        else:
            cfg = av_audio.get_frontend(frontend)
            k, eps = cfg.log_scale, cfg.log_eps
            power = (torch.exp(specs[idx].double() * k) + torch.exp(specs[partner[idx]].double() * k) - eps)
            mixed = (torch.log(power.clamp_min(eps)) / k).to(specs.dtype)
    out = specs.clone()
    out[:n_mixed] = mixed
    return out, partner


def multi_hot(labels: torch.Tensor, num_classes: int, partner: torch.Tensor | None = None,
              n_mixed: int = 0) -> torch.Tensor:
    """``y [B, C]``: one-hot of ``labels``; the first ``n_mixed`` rows also mark their partner's class."""
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"label_idx must be in [0, {num_classes}); got {labels.min()}..{labels.max()} "
                         "(set the model's num_classes to the dataset's class count)")
    y = F.one_hot(labels, num_classes).float()
    if partner is not None and n_mixed > 0:
        y[:n_mixed] = torch.maximum(y[:n_mixed], F.one_hot(labels[partner[:n_mixed]], num_classes).float())
    return y


def class_aware_mil_logits(query: torch.Tensor, vis: torch.Tensor, gate: torch.Tensor | None, tau: float
                           ) -> torch.Tensor:
    """``logits[b, m] = max_p cos(query_b, vis_{m,p} (.) gate_{m,b}) / tau`` (AVGN Eq. 10 similarities).

    ``query [B, D]`` = class-selected audio embeddings ``g^a_{b, n_b}``; ``vis [B, P, D]`` visual tokens;
    ``gate [B(m), B(b), D]`` = ``g^v_{m, n_b}`` (image m's group of the *query's* class), or None for no gating.
    Computed without materialising ``[B, B, P, D]``: numerator ``sum_d q_bd g_mbd f_mpd``, norm
    ``sqrt(sum_d f_mpd^2 g_mbd^2)``.
    """
    q = F.normalize(query, dim=-1)
    if gate is None:
        v = F.normalize(vis, dim=-1)
        sims = torch.einsum("bd,mpd->bmp", q, v)
    else:
        num = torch.einsum("bd,mbd,mpd->bmp", q, gate, vis)
        den = torch.einsum("mbd,mpd->bmp", gate.square(), vis.square()).clamp_min(1e-12).sqrt()
        sims = num / den
    return sims.amax(dim=-1) / tau


def class_maps(query: torch.Tensor, vis: torch.Tensor, gate: torch.Tensor | None) -> torch.Tensor:
    """``maps[b, n, p] = cos(query_{b,n}, vis_{b,p} (.) gate_{b,n})`` for ``query [B, N, D]``, ``vis [B, P, D]``,
    ``gate [B, N, D]`` (or None): one map per requested class (AVGN inference, Sec. 3.3)."""
    q = F.normalize(query, dim=-1)
    if gate is None:
        return torch.einsum("bnd,bpd->bnp", q, F.normalize(vis, dim=-1))
    num = torch.einsum("bnd,bnd,bpd->bnp", q, gate, vis)
    den = torch.einsum("bnd,bpd->bnp", gate.square(), vis.square()).clamp_min(1e-12).sqrt()
    return num / den


def init_class_tokens(num_classes: int, dim: int) -> nn.Parameter:
    """Learnable class tokens ``[C, D]``, truncated normal std 0.02 [ours: the AVGN code starts from zeros,
    which leaves all tokens identical until the token-constraint gradient separates them]."""
    t = torch.empty(num_classes, dim)
    nn.init.trunc_normal_(t, std=0.02)
    return nn.Parameter(t)


def init_linear(module: nn.Module) -> None:
    """timm/AVGN initialisation for the attention heads: trunc-normal(0.02) weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


__all__ = [
    "Block",
    "ClassTokenTransformer",
    "DropPath",
    "GroupingBlock",
    "class_aware_mil_logits",
    "class_maps",
    "init_class_tokens",
    "init_linear",
    "mix_batch",
    "multi_hot",
    "partner_index",
    "token_constraint_loss",
]
