"""Source separation metrics: BSS-Eval v3 SDR / SIR / SAR, the mixture baseline, SI-SDR (PROTOCOLS 4.10).

Default ``backend="native"``: our exact BSS-Eval v3 (``mir_eval.separation.bss_eval_sources`` with
``compute_permutation=False``, 512-tap filters), batched over samples in float64: FFT correlations and a
numba-compiled block Levinson solver, with a residual check and a dense fallback (see :func:`_native`).
``backend="fast_bss_eval"`` runs ``fast_bss_eval.bss_eval_sources`` on batched float64 torch tensors (its numpy
backend fails on numpy >= 2: ``np.linalg.solve`` no longer broadcasts a stacked right-hand side), with
``compute_permutation=False`` set explicitly (its default is True). ``backend="mir_eval"`` runs the deprecated
reference implementation per sample for parity checks.

Silent signals make the BSS-Eval projection singular, so, as Sound-of-Pixels does, a sample is scored only if
every reference and every estimate has ``sum|x| > 1e-5``; the others are skipped and counted.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
import pandas as pd
import scipy.fft
import torch

from avbench.metrics.localization import ArrayLike, _Accumulator, _default_workers

BACKENDS = ("native", "fast_bss_eval", "mir_eval")
SILENCE_EPS = 1e-5
_LEVINSON_MAX_DB_ERR = 1e-5  # above this first-order error bound a sample is re-solved densely


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


@numba.njit(cache=True, error_model="numpy")
def _small_solve(a: np.ndarray, b: np.ndarray, out: np.ndarray, wa: np.ndarray, wb: np.ndarray) -> None:
    """``out = a^-1 b`` for a small square ``a`` (Gaussian elimination with partial pivoting, like LAPACK's
    ``gesv`` that ``np.linalg.solve`` calls); ``wa``, ``wb`` are scratch arrays at least as large as a, b."""
    s = a.shape[0]
    q = b.shape[1]
    for i in range(s):
        for j in range(s):
            wa[i, j] = a[i, j]
        for j in range(q):
            wb[i, j] = b[i, j]
    for c in range(s):
        p = c
        for i in range(c + 1, s):
            if abs(wa[i, c]) > abs(wa[p, c]):
                p = i
        if p != c:
            for j in range(s):
                wa[c, j], wa[p, j] = wa[p, j], wa[c, j]
            for j in range(q):
                wb[c, j], wb[p, j] = wb[p, j], wb[c, j]
        for i in range(c + 1, s):
            fac = wa[i, c] / wa[c, c]
            for j in range(c + 1, s):
                wa[i, j] -= fac * wa[c, j]
            for j in range(q):
                wb[i, j] -= fac * wb[c, j]
    for c in range(s - 1, -1, -1):
        for j in range(q):
            acc = wb[c, j]
            for k in range(c + 1, s):
                acc -= wa[c, k] * out[k, j]
            out[c, j] = acc / wa[c, c]


# ``reassoc`` lets LLVM vectorise the dot products (a different summation order, as BLAS uses); no flag that
# assumes finite values: a NaN must reach the residual check.
@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _levinson_one(r: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """One system of :func:`_block_levinson`: ``r`` ``[n, S, S]``, ``y`` ``[n, S, q]`` -> ``out`` ``[n, S, q]``.

    Predictors and solution are stored lag-last (``f[i, j, k]`` = (F_k)_ij) so every inner loop runs over
    contiguous lags.
    """
    n, s, _ = r.shape
    q = y.shape[2]
    rrev = np.empty((s, s, n))  # rrev[i, l, t] = (R_{n-1-t})_il: lags m+1 .. 1 are a contiguous slice
    rsh = np.zeros((s, s, n))  # rsh[l, i, k] = (R_{k+1})_li
    for t in range(n):
        for i in range(s):
            for c in range(s):
                rrev[i, c, t] = r[n - 1 - t, i, c]
                if t < n - 1:
                    rsh[c, i, t] = r[t + 1, c, i]
    f = np.zeros((s, s, n))  # forward predictor, T_m F = [E_f; 0 ...]
    b = np.zeros((s, s, n))  # backward predictor, T_m B = [... 0; E_b]
    f_new = np.zeros((s, s, n))
    b_new = np.zeros((s, s, n))
    x = np.zeros((s, q, n))
    ef = r[0].copy()
    eb = r[0].copy()
    df = np.empty((s, s))
    db = np.empty((s, s))
    kf = np.empty((s, s))
    kb = np.empty((s, s))
    u = np.empty((s, q))
    z = np.empty((s, q))
    wa = np.empty((s, s))
    wb = np.empty((s, max(s, q)))
    for i in range(s):
        f[i, i, 0] = 1.0
        b[i, i, 0] = 1.0
    _small_solve(r[0], y[0], z, wa, wb)
    x[:, :, 0] = z
    for m in range(n - 1):
        off = n - 2 - m
        w = m + 1
        # df = sum_k R_{m+1-k} F_k, db = sum_k R_{k+1}^T B_k, u = y_{m+1} - sum_k R_{m+1-k} x_k
        for i in range(s):
            for j in range(s):
                acc_f = 0.0
                acc_b = 0.0
                for c in range(s):
                    ra = rrev[i, c, off:off + w]
                    rb = rsh[c, i, :w]
                    fc = f[c, j, :w]
                    bc = b[c, j, :w]
                    for k in range(w):
                        acc_f += ra[k] * fc[k]
                        acc_b += rb[k] * bc[k]
                df[i, j] = acc_f
                db[i, j] = acc_b
            for j in range(q):
                acc = 0.0
                for c in range(s):
                    ra = rrev[i, c, off:off + w]
                    xc = x[c, j, :w]
                    for k in range(w):
                        acc += ra[k] * xc[k]
                u[i, j] = y[m + 1, i, j] - acc
        _small_solve(eb, df, kf, wa, wb)
        _small_solve(ef, db, kb, wa, wb)
        # F' = [F; 0] - [0; B] kf, B' = [0; B] - [F; 0] kb
        for i in range(s):
            for j in range(s):
                fo = f_new[i, j]
                bo = b_new[i, j]
                fi = f[i, j]
                bi = b[i, j]
                for k in range(w):
                    fo[k] = fi[k]
                fo[w] = 0.0
                bo[0] = 0.0
                for k in range(w):
                    bo[k + 1] = bi[k]
                for c in range(s):
                    cf = kf[c, j]
                    cb = kb[c, j]
                    bc = b[i, c]
                    fc = f[i, c]
                    for k in range(w):
                        fo[k + 1] -= bc[k] * cf
                        bo[k] -= fc[k] * cb
        f, f_new = f_new, f
        b, b_new = b_new, b
        for i in range(s):
            for j in range(s):
                for c in range(s):
                    ef[i, j] -= db[i, c] * kf[c, j]
                    eb[i, j] -= df[i, c] * kb[c, j]
        # x' = [x; 0] + B' E_b'^-1 (y_{m+1} - theta)
        _small_solve(eb, u, z, wa, wb)
        for i in range(s):
            for j in range(q):
                xo = x[i, j]
                for c in range(s):
                    zc = z[c, j]
                    bc = b[i, c]
                    for k in range(w + 1):
                        xo[k] += bc[k] * zc
    for k in range(n):
        for i in range(s):
            for j in range(q):
                out[k, i, j] = x[i, j, k]


@numba.njit(cache=True, nogil=True)
def _levinson_batch(r: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    for i in range(r.shape[0]):
        _levinson_one(r[i], y[i], out[i])


def _block_levinson(r: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Solve T x = y for symmetric positive definite block Toeplitz T, ``T[a, b] = R_{a-b}``, ``R_{-k} = R_k^T``.

    ``r``: ``[batch, n, S, S]`` (R_0 .. R_{n-1}); ``y``: ``[batch, n, S, q]``; returns x ``[batch, n, S, q]``.
    Whittle / Wiggins-Robinson recursion (forward and backward block predictors) with a general right-hand
    side: O(n^2 S^3) per system instead of O((nS)^3) for a dense factorisation. Compiled with numba
    (:func:`_levinson_one`, no GIL); the systems are split over a small thread pool. A singular leading block
    gives inf/NaN values (no exception), which the caller's residual check sends to the dense solve.
    """
    r = np.ascontiguousarray(r, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    if r.ndim != 4 or y.ndim != 4 or r.shape[:3] != y.shape[:3] or r.shape[2] != r.shape[3]:
        raise ValueError(f"expected r [batch, n, S, S] and y [batch, n, S, q], got {r.shape} and {y.shape}")
    out = np.empty(y.shape)
    bsz = len(r)
    workers = min(_default_workers(), bsz)
    if workers > 1 and r.shape[1] >= 64:  # enough work per system to pay for the threads
        bounds = np.linspace(0, bsz, workers + 1).astype(int)
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda a, b: _levinson_batch(r[a:b], y[a:b], out[a:b]), bounds[:-1], bounds[1:]))
    else:
        _levinson_batch(r, y, out)
    return out


def _toeplitz_apply(xc: np.ndarray, x: np.ndarray) -> np.ndarray:
    """T x for the block Toeplitz T of :func:`_block_levinson` given the two-sided cross-correlations
    ``xc`` ``[batch, S, S, 2n - 1]`` (``xc[..., i, j, n - 1 + k] = sum_t r_i[t] r_j[t + k]``, |k| < n) and x
    ``[batch, n, S, q]``."""
    n = x.shape[1]
    n2 = scipy.fft.next_fast_len(3 * n, real=True)
    kern = np.concatenate([xc[..., n - 1:], np.zeros((*xc.shape[:3], n2 - 2 * n + 1)), xc[..., :n - 1]], -1)
    kf = scipy.fft.rfft(kern, axis=-1)  # [b, i, j, F]
    xf = scipy.fft.rfft(x, n=n2, axis=1)  # [b, F, j, q]
    prod = np.einsum("bijf,bfjq->bfiq", kf, xf)
    return scipy.fft.irfft(prod, n=n2, axis=1)[:, :n]


def _correlations(r: np.ndarray, e: np.ndarray, flen: int, xc: np.ndarray, d: np.ndarray) -> None:
    """Two-sided reference cross-correlations into ``xc`` ``[n, S, S, 2 flen - 1]`` (see
    :func:`_toeplitz_apply`) and ``d`` ``[n, S(ref), S(est), flen]``, ``d[:, i, j, a] = sum_t r_i[t - a] e_j[t]``.

    One zero-padded FFT per signal (length >= L + flen - 1, so circular == linear at these lags), then one
    batched inverse FFT of the reference pairs i <= j only (``xc_ji[k] = xc_ij[-k]``) and of every
    (reference, estimate) pair; only the needed lags are kept.
    """
    n, n_src, length = r.shape
    n_fft = scipy.fft.next_fast_len(length + flen - 1, real=True)
    buf = np.zeros((n, 2 * n_src, n_fft))
    buf[:, :n_src, :length] = r
    buf[:, n_src:, :length] = e
    spec = scipy.fft.rfft(buf, axis=-1, overwrite_x=True, workers=-1)
    del buf
    iu, ju = np.triu_indices(n_src)
    n_pairs = len(iu)
    prod = np.empty((n, n_pairs + n_src * n_src, spec.shape[-1]), dtype=spec.dtype)
    right = [(i, j) for i, j in zip(iu, ju, strict=True)] + [(i, n_src + j) for i in range(n_src)
                                                             for j in range(n_src)]
    for p, (i, j) in enumerate(right):  # conj(R_i) X_j, in place (no temporaries)
        np.conjugate(spec[:, i], out=prod[:, p])
        np.multiply(prod[:, p], spec[:, j], out=prod[:, p])
    del spec
    corr = scipy.fft.irfft(prod, n=n_fft, axis=-1, overwrite_x=True, workers=-1)
    del prod
    pos = corr[:, :n_pairs, :flen]  # lags 0 .. flen-1 of xc_ij, i <= j
    neg = corr[:, :n_pairs, n_fft - flen + 1:]  # lags -(flen-1) .. -1
    xc[:, iu, ju, flen - 1:] = pos
    xc[:, iu, ju, :flen - 1] = neg
    xc[:, ju, iu, flen - 1:] = np.concatenate([pos[..., :1], neg[..., ::-1]], -1)
    xc[:, ju, iu, :flen - 1] = pos[..., :0:-1]
    d[:] = corr[:, n_pairs:, :flen].reshape(n, n_src, n_src, flen)


def _native(refs: np.ndarray, ests: np.ndarray, filter_length: int, chunk: int) -> tuple[np.ndarray, ...]:
    """Exact BSS-Eval v3 source criteria (mir_eval's ``_bss_decomp_mtifilt`` + ``_bss_source_crit``).

    For estimate j, mir_eval projects e_j (zero-padded by ``flen - 1``) onto the span of the delayed references
    (delays 0 .. flen-1): onto all sources (``P_all``) and onto source j alone (``P_j``); with the Gram matrix
    G of the delayed references and D = <delayed refs, e_j>, ``|P e|^2 = D^T G^-1 D``. Because the subspaces
    are nested and the projections orthogonal, mir_eval's energies follow exactly:
    SDR = |P_j e|^2 / (|e|^2 - |P_j e|^2), SIR = |P_j e|^2 / (|P_all e|^2 - |P_j e|^2),
    SAR = |P_all e|^2 / (|e|^2 - |P_all e|^2). G (ordered lag-major) is block Toeplitz with S x S blocks taken
    from one FFT cross-correlation per reference pair (computed ``chunk`` samples at a time, at most ~16 MB of
    spectra), so the systems are solved by a block Levinson recursion (compiled, :func:`_block_levinson`)
    over all samples. Every solve is checked through its residual r = G x - D (the energy error is ``x . r``
    to first order); a sample whose bound exceeds 1e-5 dB is re-solved densely like mir_eval does
    (``np.linalg.solve``, else ``lstsq``).
    """
    n, n_src, length = refs.shape
    flen = filter_length
    n_fft = scipy.fft.next_fast_len(length + flen - 1, real=True)
    chunk = max(1, min(chunk, 2**20 // (n_src * (n_src + 1) * n_fft)))  # bounds the [n, ., n_fft] spectra
    xc = np.empty((n, n_src, n_src, 2 * flen - 1))
    d = np.empty((n, n_src, n_src, flen))
    for start in range(0, n, chunk):
        sl = slice(start, start + chunk)
        _correlations(refs[sl], ests[sl], flen, xc[sl], d[sl])
    y = np.ascontiguousarray(d.transpose(0, 3, 1, 2))  # [n, a, i, j]
    rr = np.ascontiguousarray(xc[..., flen - 1:].transpose(0, 3, 1, 2))  # R_k[i, j] = xcorr_ij[k]
    x = _block_levinson(rr, y)
    all_energy = (x * y).sum((1, 2))  # [n, j]
    all_err = np.abs((x * (_toeplitz_apply(xc, x) - y)).sum((1, 2)))
    # own-source projections: scalar Toeplitz systems R_jj, one per (sample, source)
    diag = np.arange(n_src)
    r1 = rr[:, :, diag, diag].transpose(0, 2, 1).reshape(n * n_src, flen, 1, 1)
    y1 = y[:, :, diag, diag].transpose(0, 2, 1).reshape(n * n_src, flen, 1, 1)
    x1 = _block_levinson(r1, y1)
    target = (x1 * y1).sum((1, 2, 3)).reshape(n, n_src)
    xc1 = xc[:, diag, diag].reshape(n * n_src, 1, 1, 2 * flen - 1)
    t_err = np.abs((x1 * (_toeplitz_apply(xc1, x1) - y1)).sum((1, 2, 3))).reshape(n, n_src)
    if n_src == 1:  # one source: P_all == P_j, no interference (SIR = +inf as in mir_eval)
        all_energy, all_err = target.copy(), t_err.copy()
    e_energy = np.einsum("bst,bst->bs", ests, ests)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = 4.35 * np.maximum.reduce([  # first-order dB error of SDR, SIR, SAR
            t_err / target + t_err / (e_energy - target),
            t_err / target + (all_err + t_err) / (all_energy - target) if n_src > 1 else 0 * t_err,
            all_err / all_energy + all_err / (e_energy - all_energy)])
    for i in np.flatnonzero(~(bound <= _LEVINSON_MAX_DB_ERR).all(1)):  # ill-conditioned: dense, as mir_eval
        g = _dense_gram(xc[i], flen)
        dd = np.ascontiguousarray(d[i].transpose(0, 2, 1).reshape(n_src * flen, n_src))
        all_energy[i], target[i] = _energies_solve(g, dd, n_src, flen)
        if n_src == 1:
            all_energy[i] = target[i]
    t, a = target, all_energy
    with np.errstate(divide="ignore", invalid="ignore"):
        return (10 * np.log10(t / (e_energy - t)), 10 * np.log10(t / (a - t)),
                10 * np.log10(a / (e_energy - a)))


def _dense_gram(xc: np.ndarray, flen: int) -> np.ndarray:
    """Source-major Gram matrix of one sample (mir_eval's G): block (i, j)[a, b] = xcorr_ij[a - b]
    (``xc`` two-sided, ``[S, S, 2 flen - 1]``)."""
    n_src = xc.shape[0]
    lags = np.arange(flen)
    idx = lags[:, None] - lags[None, :] + flen - 1
    return xc[:, :, idx].transpose(0, 2, 1, 3).reshape(n_src * flen, n_src * flen)


def _solve_like_mir_eval(g: np.ndarray, d: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(g, d)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(g, d, rcond=None)[0]


def _energies_solve(g: np.ndarray, d: np.ndarray, n_src: int, flen: int) -> tuple[np.ndarray, np.ndarray]:
    """Projection energies D^T C with G C = D (C as mir_eval's ``_project`` solves it) for one sample."""
    all_energy = (_solve_like_mir_eval(g, d) * d).sum(0)
    target = np.empty(n_src)
    for j in range(n_src):
        sl = slice(j * flen, (j + 1) * flen)
        target[j] = _solve_like_mir_eval(g[sl, sl], d[sl, j]) @ d[sl, j]
    return all_energy, target


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


def bss_eval(refs: ArrayLike, ests: ArrayLike, *, backend: str = "native", filter_length: int = 512,
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
        if backend == "native":
            every = ok.all()  # no boolean-index copies of the signals then
            res = _native(r if every else r[ok], e if every else e[ok], filter_length, chunk)
        elif backend == "fast_bss_eval":
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

    def __init__(self, backend: str = "native", filter_length: int = 512, compute_mix: bool = True,
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
