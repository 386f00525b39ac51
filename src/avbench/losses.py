"""Contrastive losses shared by the localization methods (PROTOCOLS 6.1 and lineage)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symmetric_ce(logits: torch.Tensor, same_class: torch.Tensor | None = None) -> torch.Tensor:
    """``CE(logits, arange(B)) + CE(logits^T, arange(B))``: the sum, as in stoneMo's code (not the mean).

    ``same_class`` (bool ``[B, B]``, optional): off-diagonal pairs known to share the positive's class are dropped
    from the denominators (class-level false negatives) instead of being pushed apart.
    """
    labels = torch.arange(logits.shape[0], device=logits.device)
    if same_class is not None:
        drop = same_class & ~torch.eye(len(labels), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(drop, float("-inf"))
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)


def mil_similarity(visual_map: torch.Tensor, audio: torch.Tensor, tau: float) -> torch.Tensor:
    """``S[n, m, h, w] = <v_n(h, w), a_m> / tau`` for unit-norm ``visual_map [B, D, h, w]``, ``audio [B, D]``."""
    return torch.einsum("ndhw,md->nmhw", visual_map, audio) / tau


def mil_contrastive_loss(
    visual_map: torch.Tensor, audio: torch.Tensor, tau: float = 0.03
) -> tuple[torch.Tensor, torch.Tensor]:
    """EZ-VSL multiple-instance InfoNCE: ``logits[n, m] = max_{h,w} S[n, m, h, w]``, symmetric CE.

    Returns ``(loss, logits [B, B])``; rows index images, columns audio.
    """
    logits = mil_similarity(visual_map, audio, tau).flatten(-2).amax(dim=-1)
    return symmetric_ce(logits.float()), logits


def info_nce(
    x: torch.Tensor, y: torch.Tensor, tau: float = 0.07, symmetric: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain InfoNCE on global unit-norm embeddings ``x, y [B, D]``; returns ``(loss, logits [B, B])``.

    ``symmetric`` sums both directions (like ``mil_contrastive_loss``); otherwise only x -> y.
    """
    logits = (x @ y.t()) / tau
    if symmetric:
        return symmetric_ce(logits.float()), logits
    labels = torch.arange(x.shape[0], device=x.device)
    return F.cross_entropy(logits.float(), labels), logits


__all__ = ["info_nce", "mil_contrastive_loss", "mil_similarity", "symmetric_ce"]
