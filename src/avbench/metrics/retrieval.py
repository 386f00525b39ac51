"""Recognition / retrieval metrics on global embeddings (PROTOCOLS 4.11).

Embeddings are L2-normalised here (cosine similarity = inner product). Rank of the paired item: the number of
items scored strictly higher plus the tied items with a smaller index, i.e. the position under a stable
descending sort, so R@1 equals "argmax (first index on ties) is the pair".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def l2_normalize(x: ArrayLike, eps: float = 1e-12) -> np.ndarray:
    a = np.asarray(torch.as_tensor(x).detach().cpu().numpy(), dtype=np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), eps)


def _row_chunks(n: int, chunk: int) -> list[slice]:
    return [slice(s, min(n, s + chunk)) for s in range(0, n, chunk)]


def paired_ranks(query: ArrayLike, gallery: ArrayLike, chunk: int = 2048) -> np.ndarray:
    """Rank (0 = top) of gallery item i for query i, in a stable descending order of cosine similarity."""
    q, g = l2_normalize(query), l2_normalize(gallery)
    if q.shape != g.shape:
        raise ValueError(f"paired embeddings must have the same shape, got {q.shape} and {g.shape}")
    ranks = np.empty(len(q), dtype=np.int64)
    for sl in _row_chunks(len(q), chunk):
        sim = q[sl] @ g.T
        idx = np.arange(sl.start, sl.stop)
        own = sim[np.arange(len(idx)), idx][:, None]
        earlier = np.arange(len(g))[None, :] < idx[:, None]
        ranks[sl] = (sim > own).sum(1) + ((sim == own) & earlier).sum(1)
    return ranks


def ir_acc(visual: ArrayLike, audio: ArrayLike) -> dict[str, float]:
    """Instance retrieval top-1 in both directions (OneAVM IR-Acc / xIR-Acc) and their mean."""
    v2a = float(np.mean(paired_ranks(visual, audio) == 0))
    a2v = float(np.mean(paired_ranks(audio, visual) == 0))
    return {"ir_acc_v2a": v2a, "ir_acc_a2v": a2v, "ir_acc": (v2a + a2v) / 2}


def recall_at_k(visual: ArrayLike, audio: ArrayLike, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@k audio->image (``a2i_r@k``) and image->audio (``i2a_r@k``) (Senocak Table 6)."""
    a2i = paired_ranks(audio, visual)
    i2a = paired_ranks(visual, audio)
    out = {f"a2i_r@{k}": float(np.mean(a2i < k)) for k in ks}
    out.update({f"i2a_r@{k}": float(np.mean(i2a < k)) for k in ks})
    return out


def nn_labels(query: ArrayLike, reference: ArrayLike, ref_labels: ArrayLike, exclude_self: bool,
              chunk: int = 2048) -> np.ndarray:
    """Label of the nearest reference (cosine) for every query; with ``exclude_self`` the reference with the
    query's own index is ignored (leave-one-out on the test set)."""
    q, r = l2_normalize(query), l2_normalize(reference)
    labels = np.asarray(ref_labels)
    out = np.empty(len(q), dtype=labels.dtype)
    for sl in _row_chunks(len(q), chunk):
        sim = q[sl] @ r.T
        if exclude_self:
            rows = np.arange(sl.stop - sl.start)
            sim[rows, rows + sl.start] = -np.inf
        out[sl] = labels[np.argmax(sim, axis=1)]
    return out


def nn_acc(visual: ArrayLike, audio: ArrayLike, labels: ArrayLike, *, nn_reference: str = "test_loo",
           ref_visual: ArrayLike | None = None, ref_audio: ArrayLike | None = None,
           ref_labels: ArrayLike | None = None) -> dict[str, float]:
    """xNN-Acc (neighbour in the other modality) and wNN-Acc (same modality), each averaged over the two query
    modalities. ``nn_reference="test_loo"``: the test set itself, self excluded (for xNN the paired item too);
    ``"train"``: the given reference embeddings."""
    y = (labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)).reshape(-1)
    if nn_reference == "test_loo":
        rv, ra, ry, loo = visual, audio, y, True
    elif nn_reference == "train":
        if ref_visual is None or ref_audio is None or ref_labels is None:
            raise ValueError("nn_reference='train' needs ref_visual, ref_audio and ref_labels")
        rv, ra, ry, loo = ref_visual, ref_audio, np.asarray(ref_labels).reshape(-1), False
    else:
        raise ValueError(f"nn_reference must be 'test_loo' or 'train', got {nn_reference!r}")
    out = {
        "xnn_acc_v": float(np.mean(nn_labels(visual, ra, ry, loo) == y)),
        "xnn_acc_a": float(np.mean(nn_labels(audio, rv, ry, loo) == y)),
        "wnn_acc_v": float(np.mean(nn_labels(visual, rv, ry, loo) == y)),
        "wnn_acc_a": float(np.mean(nn_labels(audio, ra, ry, loo) == y)),
    }
    out["xnn_acc"] = (out["xnn_acc_v"] + out["xnn_acc_a"]) / 2
    out["wnn_acc"] = (out["wnn_acc_v"] + out["wnn_acc_a"]) / 2
    return out


def retrieval_summary(visual: ArrayLike, audio: ArrayLike, labels: ArrayLike, **nn_kwargs: Any) -> dict[str, Any]:
    """IR-Acc, xNN/wNN-Acc and R@1/5/10 in one dict (plus ``n``)."""
    out: dict[str, Any] = {}
    out.update(ir_acc(visual, audio))
    out.update(nn_acc(visual, audio, labels, **nn_kwargs))
    out.update(recall_at_k(visual, audio))
    out["n"] = len(np.asarray(labels))
    return out


__all__ = ["ir_acc", "l2_normalize", "nn_acc", "nn_labels", "paired_ranks", "recall_at_k", "retrieval_summary"]
