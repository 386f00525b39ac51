"""Source separation metrics: BSS-Eval v3 SDR / SIR / SAR, the mixture baseline, SI-SDR (PROTOCOLS 4.10).

Fast path: ``fast_bss_eval.bss_eval_sources`` on batched float64 torch tensors (its numpy backend fails on
numpy >= 2: ``np.linalg.solve`` no longer broadcasts a stacked right-hand side), with
``compute_permutation=False`` set explicitly (its default is True). ``backend="mir_eval"`` runs the
deprecated reference implementation per sample for parity checks.

Silent signals make the BSS-Eval projection singular, so, as Sound-of-Pixels does, a sample is scored only if
every reference and every estimate has ``sum|x| > 1e-5``; the others are skipped and counted.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from avbench.metrics.localization import ArrayLike, _Accumulator

BACKENDS = ("fast_bss_eval", "mir_eval")
SILENCE_EPS = 1e-5


def _as_float64(x: ArrayLike) -> np.ndarray:
    a = np.asarray(torch.as_tensor(x).detach().cpu().numpy(), dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"expected [B, n_src, L] signals, got shape {a.shape}")
    return a


def audible(refs: np.ndarray, ests: np.ndarray, eps: float = SILENCE_EPS) -> np.ndarray:
    """Per sample: every reference and every estimate has sum|x| > eps."""
    return (np.abs(refs).sum(-1) > eps).all(-1) & (np.abs(ests).sum(-1) > eps).all(-1)


def _fast(refs: np.ndarray, ests: np.ndarray, filter_length: int, chunk: int,
          use_cg_iter: int | None) -> tuple[np.ndarray, ...]:
    import fast_bss_eval

    outs: list[list[np.ndarray]] = [[], [], []]
    for start in range(0, len(refs), chunk):
        r = torch.from_numpy(refs[start:start + chunk])
        e = torch.from_numpy(ests[start:start + chunk])
        try:
            res = fast_bss_eval.bss_eval_sources(r, e, filter_length=filter_length, use_cg_iter=use_cg_iter,
                                                 compute_permutation=False)
        except (RuntimeError, np.linalg.LinAlgError):  # a singular sample: score one by one
            res = _fast_one_by_one(r, e, filter_length, use_cg_iter)
        for acc, v in zip(outs, res[:3], strict=True):
            acc.append(np.asarray(v, dtype=np.float64))
    return tuple(np.concatenate(acc) for acc in outs)


def _fast_one_by_one(r: torch.Tensor, e: torch.Tensor, filter_length: int,
                     use_cg_iter: int | None) -> tuple[np.ndarray, ...]:
    import fast_bss_eval

    out = np.full((3, *r.shape[:2]), np.nan)
    for i in range(len(r)):
        try:
            res = fast_bss_eval.bss_eval_sources(r[i], e[i], filter_length=filter_length,
                                                 use_cg_iter=use_cg_iter, compute_permutation=False)
            out[:, i] = np.stack([np.asarray(v) for v in res[:3]])
        except (RuntimeError, np.linalg.LinAlgError):
            pass  # stays NaN, counted as failed by the caller
    return tuple(out)


def _mir(refs: np.ndarray, ests: np.ndarray) -> tuple[np.ndarray, ...]:
    import mir_eval

    out = np.full((3, *refs.shape[:2]), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # mir_eval.separation is deprecated in 0.8
        for i in range(len(refs)):
            try:
                sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(refs[i], ests[i],
                                                                       compute_permutation=False)
                out[:, i] = sdr, sir, sar
            except (ValueError, np.linalg.LinAlgError):
                pass
    return tuple(out)


def bss_eval(refs: ArrayLike, ests: ArrayLike, *, backend: str = "fast_bss_eval", filter_length: int = 512,
             silence_eps: float = SILENCE_EPS, chunk: int = 16,
             use_cg_iter: int | None = None) -> dict[str, np.ndarray]:
    """SDR/SIR/SAR ``[B, n_src]`` for refs/ests ``[B, n_src, L]`` (NaN rows for skipped samples).

    Returns ``sdr``, ``sir``, ``sar`` and ``valid`` ``[B]`` (audible and numerically solvable).
    ``use_cg_iter`` (fast path only) trades exactness for speed; keep None for mir_eval parity.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    r, e = _as_float64(refs), _as_float64(ests)
    if r.shape != e.shape:
        raise ValueError(f"refs {r.shape} and ests {e.shape} differ")
    ok = audible(r, e, silence_eps)
    out = {name: np.full(r.shape[:2], np.nan) for name in ("sdr", "sir", "sar")}
    if ok.any():
        if backend == "fast_bss_eval":
            res = _fast(r[ok], e[ok], filter_length, chunk, use_cg_iter)
        else:
            if filter_length != 512:
                raise ValueError("mir_eval's bss_eval_sources has a fixed 512-tap filter")
            res = _mir(r[ok], e[ok])
        for name, v in zip(("sdr", "sir", "sar"), res, strict=True):
            out[name][ok] = v
    out["valid"] = ok & np.isfinite(out["sdr"]).all(1)
    return out


def si_sdr(refs: ArrayLike, ests: ArrayLike, eps: float = 1e-12) -> np.ndarray:
    """Scale-invariant SDR ``[B, n_src]`` (zero-mean signals, optimal scaling of the reference)."""
    r, e = _as_float64(refs), _as_float64(ests)
    r = r - r.mean(-1, keepdims=True)
    e = e - e.mean(-1, keepdims=True)
    alpha = (e * r).sum(-1, keepdims=True) / ((r * r).sum(-1, keepdims=True) + eps)
    target = alpha * r
    noise = e - target
    return 10 * np.log10(((target**2).sum(-1) + eps) / ((noise**2).sum(-1) + eps))


class SeparationMetric(_Accumulator):
    """Accumulator: ``update(refs [B, S, L], ests [B, S, L], mix=None [B, L])``.

    Per sample the source scores are averaged, then samples are averaged. ``compute()`` keys: ``sdr``,
    ``sir``, ``sar``, ``sdr_mix``, ``sir_mix``, ``sar_mix`` (mixture as every estimate; default mixture is the sum
    of the references), ``si_sdr`` and ``si_sdr_mix`` (if enabled), ``n`` (scored), ``n_skipped``,
    ``n_skipped_mix``, ``backend``.
    """

    def __init__(self, backend: str = "fast_bss_eval", filter_length: int = 512, compute_mix: bool = True,
                 compute_si_sdr: bool = False, silence_eps: float = SILENCE_EPS) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.filter_length = filter_length
        self.compute_mix = compute_mix
        self.compute_si_sdr = compute_si_sdr
        self.silence_eps = silence_eps
        super().__init__()

    def _score(self, refs: np.ndarray, ests: np.ndarray, suffix: str) -> dict[str, np.ndarray]:
        res = bss_eval(refs, ests, backend=self.backend, filter_length=self.filter_length,
                       silence_eps=self.silence_eps)
        out = {f"{k}{suffix}": res[k].mean(1) for k in ("sdr", "sir", "sar")}
        out[f"valid{suffix}"] = res["valid"]
        if self.compute_si_sdr:
            v = si_sdr(refs, ests).mean(1)
            out[f"si_sdr{suffix}"] = np.where(res["valid"], v, np.nan)
        return out

    def update(self, refs: ArrayLike, ests: ArrayLike, mix: ArrayLike | None = None,
               groups: Sequence[Any] | None = None, ids: Sequence[Any] | None = None) -> None:
        r, e = _as_float64(refs), _as_float64(ests)
        values = self._score(r, e, "")
        if self.compute_mix:
            m = r.sum(1) if mix is None else _as_float64(mix).reshape(len(r), -1)
            values.update(self._score(r, np.broadcast_to(m[:, None], r.shape).copy(), "_mix"))
        self._append(values, len(r), groups, ids)

    def compute(self, group: Any = None) -> dict[str, Any]:
        mask = self._mask(group)
        out: dict[str, Any] = {}
        for suffix in ("", "_mix") if self.compute_mix else ("",):
            valid = self._column(f"valid{suffix}")[mask].astype(bool)
            names = ["sdr", "sir", "sar"] + (["si_sdr"] if self.compute_si_sdr else [])
            for name in names:
                v = self._column(f"{name}{suffix}")[mask][valid]
                out[f"{name}{suffix}"] = float(v.mean()) if v.size else math.nan
            out[f"n_skipped{suffix}"] = int((~valid).sum())
        out["n"] = int(self._column("valid")[mask].astype(bool).sum())
        out["backend"] = self.backend
        return out

    def per_sample(self) -> pd.DataFrame:
        cols = ["sdr", "sir", "sar", "valid"]
        if self.compute_si_sdr:
            cols.append("si_sdr")
        if self.compute_mix:
            cols += [f"{c}_mix" for c in cols]
        return self._frame(cols)


__all__ = ["BACKENDS", "SILENCE_EPS", "SeparationMetric", "audible", "bss_eval", "si_sdr"]
