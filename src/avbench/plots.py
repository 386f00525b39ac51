"""Figures: localization overlays, success-rate curves, separation spectrograms (PNG, written atomically).

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas directly, so nothing touches pyplot's
global state or needs a display; sizes are fixed (``figsize * dpi``, no tight bounding box) so a figure's
pixel size is known from its inputs. Colours come from fixed colormaps in input order (deterministic).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from avbench import io

if TYPE_CHECKING:  # pandas only for annotations: the figure functions take frames their callers read
    import pandas as pd

DPI = 100
PANEL_IN = 3.0  # inches per overlay panel
PANEL_MARGIN_PX = 4  # white space around each overlay panel
BOX_COLOUR = "#00ff00"
OVERLAY_CMAP = "jet"


def _save(fig: Figure, out_png: str | os.PathLike) -> Path:
    FigureCanvasAgg(fig)  # attach an Agg canvas: no pyplot, no display
    with io.atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return Path(out_png)


def bilinear_resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a 2-D map (half-pixel centres, edge clamped, = ``align_corners=False``)."""
    arr = np.asarray(arr, dtype=np.float64)
    h, w = arr.shape
    ys = np.clip((np.arange(height) + 0.5) * h / height - 0.5, 0, h - 1)
    xs = np.clip((np.arange(width) + 0.5) * w / width - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = arr[y0][:, x0] * (1 - wx) + arr[y0][:, x1] * wx
    bottom = arr[y1][:, x0] * (1 - wx) + arr[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    return np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo)


def _draw_box(panel: np.ndarray, box: Sequence[float], colour: np.ndarray, width: int = 2) -> None:
    """Outline a normalised ``[x1, y1, x2, y2]`` box on an HxWx3 uint8 panel, in place (clipped to the panel)."""
    h, w = panel.shape[:2]
    x1, x2 = (int(round(min(max(v, 0.0), 1.0) * w)) for v in (box[0], box[2]))
    y1, y2 = (int(round(min(max(v, 0.0), 1.0) * h)) for v in (box[1], box[3]))
    if x2 <= x1 or y2 <= y1:
        return
    panel[y1:min(y1 + width, y2), x1:x2] = colour
    panel[max(y2 - width, y1):y2, x1:x2] = colour
    panel[y1:y2, x1:min(x1 + width, x2)] = colour
    panel[y1:y2, max(x2 - width, x1):x2] = colour


def plot_localization_overlays(images: Sequence[np.ndarray], maps: Sequence[np.ndarray],
                               boxes: Sequence[Sequence[Sequence[float]]], titles: Sequence[str] | None,
                               out_png: str | os.PathLike, ncols: int = 4, alpha: float = 0.5,
                               cmap: str = OVERLAY_CMAP) -> Path:
    """Grid of images with the (min-max normalised, bilinearly upsampled) map overlaid and GT boxes drawn.

    ``images``: HxWx3 uint8; ``maps``: hxw float; ``boxes``: per image a list of normalised ``[x1, y1, x2, y2]``.
    Output size: ``300 * ncols`` x ``300 * nrows`` pixels (``ncols`` capped at the number of images).

    The panels are blended and tiled in numpy and drawn as one image on one Axes: a grid of dozens of Axes
    (methods x samples in the DAG's figure) spends most of its time building tick machinery it never shows.
    """
    n = len(images)
    if n == 0 or len(maps) != n or len(boxes) != n or (titles is not None and len(titles) != n):
        raise ValueError(f"need equally many images, maps, boxes (and titles); got {n}, {len(maps)}, {len(boxes)}")
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    cell = int(round(PANEL_IN * DPI))
    title_px = 22 if titles is not None else 0
    side = cell - 2 * PANEL_MARGIN_PX - title_px  # the largest square that fits below the title
    canvas = np.full((nrows * cell, ncols * cell, 3), 255, dtype=np.uint8)
    colours = colormaps[cmap]
    green = np.array(to_rgb(BOX_COLOUR)) * 255
    for i in range(n):
        image = np.asarray(images[i])
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image {i} must be HxWx3, got {image.shape}")
        height, width = image.shape[:2]
        scale = side / max(height, width)  # keep the aspect
        ph, pw = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
        rows = np.minimum(((np.arange(ph) + 0.5) * height / ph).astype(int), height - 1)
        cols = np.minimum(((np.arange(pw) + 0.5) * width / pw).astype(int), width - 1)
        frame = image[rows][:, cols].astype(np.float64) / 255.0  # nearest-neighbour resize
        heat = colours(_minmax(bilinear_resize(np.asarray(maps[i], dtype=np.float64), ph, pw)))[..., :3]
        panel = np.clip(np.round(((1 - alpha) * frame + alpha * heat) * 255), 0, 255).astype(np.uint8)
        for box in boxes[i]:
            _draw_box(panel, box, green.astype(np.uint8))
        r, c = divmod(i, ncols)
        top = r * cell + title_px + PANEL_MARGIN_PX
        left = c * cell + (cell - pw) // 2
        canvas[top:top + ph, left:left + pw] = panel
    fig = Figure(figsize=(ncols * cell / DPI, nrows * cell / DPI), dpi=DPI)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ax.imshow(canvas, extent=(0, canvas.shape[1], canvas.shape[0], 0), interpolation="nearest")
    ax.set_xlim(0, canvas.shape[1])
    ax.set_ylim(canvas.shape[0], 0)
    for i, title in enumerate(titles or []):
        r, c = divmod(i, ncols)
        ax.text(c * cell + cell / 2, r * cell + PANEL_MARGIN_PX + title_px / 2, str(title), fontsize=9,
                ha="center", va="center")
    return _save(fig, out_png)


def curve_auc(thresholds: np.ndarray, success: np.ndarray) -> float:
    """Trapezoid area under a success curve (PROTOCOLS 4.4, = ``sklearn.metrics.auc``)."""
    t, y = np.asarray(thresholds, dtype=np.float64), np.asarray(success, dtype=np.float64)
    return float(np.sum(np.diff(t) * (y[1:] + y[:-1]) / 2))


def plot_success_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                        out_png: str | os.PathLike, title: str = "") -> Path:
    """Success rate vs cIoU threshold, one line per method (input order, tab10 colours), AUC in the legend.

    Output size: 600 x 450 pixels.
    """
    if not curves:
        raise ValueError("no curves to plot")
    fig = Figure(figsize=(6.0, 4.5), dpi=DPI)
    ax = fig.add_subplot(1, 1, 1)
    palette = [f"C{i % 10}" for i in range(len(curves))]
    for (method, (thresholds, success)), colour in zip(curves.items(), palette, strict=True):
        t, y = np.asarray(thresholds, dtype=np.float64), np.asarray(success, dtype=np.float64)
        if t.shape != y.shape:
            raise ValueError(f"{method}: thresholds {t.shape} and success {y.shape} differ")
        ax.plot(t, y, color=colour, marker="o", markersize=3, linewidth=1.5,
                label=f"{method} (AUC={curve_auc(t, y):.3f})")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("cIoU threshold")
    ax.set_ylabel("success rate")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.9)
    return _save(fig, out_png)


def log_magnitude_stft(wave: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """``20 log10 |STFT|`` (Hann window, frames of ``n_fft``, zero-padded to one frame) as [freq, time]."""
    x = np.asarray(wave, dtype=np.float64).ravel()
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    n_frames = 1 + (x.size - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(x[index] * np.hanning(n_fft)[None, :], axis=1)
    return 20.0 * np.log10(np.abs(spec).T + 1e-8)


def plot_separation_spectrograms(mixture: np.ndarray, sources_true: Sequence[np.ndarray],
                                 sources_est: Sequence[np.ndarray], sample_rate: int,
                                 out_png: str | os.PathLike, n_fft: int = 512, hop: int = 128) -> Path:
    """Log-magnitude STFT panels: the mixture on top, then one row per source (true | estimated).

    All panels share the mixture's colour range (top 80 dB) so ground truth and estimate compare directly.
    Output size: 800 x ``220 * (1 + n_sources)`` pixels.
    """
    if len(sources_true) != len(sources_est) or not sources_true:
        raise ValueError(f"need as many estimates as sources; got {len(sources_true)} and {len(sources_est)}")
    return plot_separation_comparison(mixture, sources_true, {"estimated": sources_est}, sample_rate, out_png,
                                      n_fft=n_fft, hop=hop)


def plot_separation_comparison(mixture: np.ndarray, sources_true: Sequence[np.ndarray],
                               estimates: Mapping[str, Sequence[np.ndarray]], sample_rate: int,
                               out_png: str | os.PathLike, n_fft: int = 512, hop: int = 128,
                               mixture_title: str = "mixture") -> Path:
    """Like :func:`plot_separation_spectrograms` with one estimate column per method (input order): the
    mixture on top, then per source ``true | <method 1> | <method 2> ...``. No methods: the true sources only.

    Output size: ``400 * (1 + n_methods)`` x ``220 * (1 + n_sources)`` pixels.
    """
    n_src = len(sources_true)
    if n_src == 0 or any(len(est) != n_src for est in estimates.values()):
        raise ValueError(f"every method needs one estimate per source ({n_src}); got "
                         f"{ {name: len(est) for name, est in estimates.items()} }")
    n_cols = 1 + len(estimates)
    mix_db = log_magnitude_stft(mixture, n_fft, hop)
    vmax = float(mix_db.max())
    vmin = vmax - 80.0
    duration = max(len(np.asarray(mixture).ravel()), n_fft) / sample_rate
    extent = (0.0, duration, 0.0, sample_rate / 2 / 1000.0)
    fig = Figure(figsize=(4.0 * n_cols, 2.2 * (1 + n_src)), dpi=DPI)  # 4 x 2.2 inches per panel
    grid = fig.add_gridspec(1 + n_src, n_cols)

    def panel(ax: Axes, spec_db: np.ndarray, title: str) -> AxesImage:
        image = ax.imshow(spec_db, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                          extent=extent, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("kHz", fontsize=8)
        ax.tick_params(labelsize=7)
        return image

    image = panel(fig.add_subplot(grid[0, :]), mix_db, mixture_title)
    for k in range(n_src):
        panel(fig.add_subplot(grid[1 + k, 0]), log_magnitude_stft(sources_true[k], n_fft, hop), f"source {k + 1}: true")
        for col, (name, est) in enumerate(estimates.items(), start=1):
            panel(fig.add_subplot(grid[1 + k, col]), log_magnitude_stft(est[k], n_fft, hop), f"source {k + 1}: {name}")
    width_in = 4.0 * n_cols  # margins and colour bar keep their size in inches whatever the column count
    fig.subplots_adjust(left=0.64 / width_in, right=1 - 1.12 / width_in, bottom=0.1, top=0.93, hspace=0.65,
                        wspace=0.2)
    fig.colorbar(image, cax=fig.add_axes((1 - 0.88 / width_in, 0.15, 0.12 / width_in, 0.7)), label="dB")
    fig.supxlabel("time (s)", fontsize=8)
    return _save(fig, out_png)


# --------------------------------------------------------------------------------------------------------------
# The figures of the DAG's `plot` rule: one set per evaluated dataset
# --------------------------------------------------------------------------------------------------------------
def success_curves_from_per_sample(per_sample: Mapping[str, pd.DataFrame],
                                   protocol: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Success rate vs cIoU threshold per method from the evaluation's per-sample rows of ``protocol``
    (``eval/<ds>/<method>/per_sample.parquet``); methods without such rows are left out."""
    from avbench.metrics.localization import sr_curve

    curves = {}
    for method, frame in per_sample.items():
        rows = frame[frame["protocol"] == protocol]
        if len(rows):
            curves[method] = sr_curve(rows["ciou"].to_numpy())
    return curves


def first_pair(labels: Sequence[int]) -> tuple[int, int] | None:
    """The first two positions with different labels (the example mixture: two classes, like the test pairs)."""
    for j in range(1, len(labels)):
        for i in range(j):
            if labels[i] != labels[j]:
                return i, j
    return None


def _centre(wave: np.ndarray, n: int) -> np.ndarray:
    """The centre ``n`` samples (zero-padded when shorter): windows cut around the same centre line up."""
    wave = np.asarray(wave, dtype=np.float64).ravel()
    if wave.size >= n:
        start = (wave.size - n) // 2
        return wave[start:start + n]
    pad = n - wave.size
    return np.pad(wave, (pad // 2, pad - pad // 2))


def localization_examples(model: Any, dataset: Any, n: int, protocol: str,
                          batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Raw maps ``[n, h, w]`` of the first ``n`` items of ``dataset`` and their cIoU under ``protocol``
    (computed on the very maps drawn: a random baseline draws new maps on every call)."""
    import torch

    from avbench.data import collate
    from avbench.metrics.localization import LocalizationMetric

    n = min(n, len(dataset))
    batch = collate([dataset[i] for i in range(n)])
    with torch.no_grad():
        maps = model.localize(batch["image"], batch["spec"]).float()
    metric = LocalizationMetric(protocol, compute_ap=False)
    metric.update(maps, batch["gt"])
    return maps.numpy(), metric.per_sample()["ciou"].to_numpy()


def dataset_figures(*, test_shards: str | os.PathLike, methods: Mapping[str, dict[str, Any]],
                    model_paths: Mapping[str, str | None], per_sample: Mapping[str, str | os.PathLike],
                    eval_cfg: Mapping[str, Any], dataset: str, curves_png: str | os.PathLike,
                    overlays_png: str | os.PathLike, separation_png: str | os.PathLike, n_samples: int = 4,
                    seed: int = 0) -> dict[str, Any]:
    """The per-dataset figure set of the DAG (kept cheap: a handful of test clips, evaluation outputs reused).

    * ``curves_png``: success rate vs cIoU threshold of every method under the primary protocol, from the
      evaluation's per-sample cIoU;
    * ``overlays_png``: one row per method, the maps of the first ``n_samples`` test clips over their frames
      with the GT boxes, titled with the cIoU of the drawn map;
    * ``separation_png``: the first two test clips of different classes mixed (plain sum of the centre windows,
      as in the separation evaluation), with every separating method's estimates.

    ``methods`` maps method -> config entry (``{}`` for baselines), ``model_paths`` trained methods -> weights.
    Returns what was drawn (methods, clip ids, cIoU values, separating methods).
    """
    import pandas as pd
    import torch

    from avbench.data import ClipDataset
    from avbench.evaluate import load_method

    torch.manual_seed(seed)
    protocol = eval_cfg["primary_protocol"]
    gt_size = eval_cfg["gt_size"]
    frames = {m: pd.read_parquet(per_sample[m]) for m in methods}
    plot_success_curves(success_curves_from_per_sample(frames, protocol), curves_png,
                        f"{dataset}: success rate ({protocol})")

    datasets: dict[tuple[Any, ...], ClipDataset] = {}  # one small loader per distinct data setting

    def loader(data_cfg: Mapping[str, Any]) -> ClipDataset:
        key = (data_cfg["image_size"], data_cfg["frontend"], data_cfg["audio_duration_s"])
        if key not in datasets:
            datasets[key] = ClipDataset(test_shards, split_kind="test", image_size=key[0], frontend=key[1],
                                        audio_duration_s=key[2], gt_size=gt_size, seed=seed,
                                        return_wave=True, cache_spectrograms=False, limit=max(n_samples, 2))
        return datasets[key]

    images, maps, boxes, titles = [], [], [], []
    drawn: dict[str, Any] = {"methods": list(methods), "ciou": {}, "separating": []}
    separating: dict[str, tuple[Any, ClipDataset]] = {}
    for method, cfg in methods.items():
        model, data_cfg = load_method(method, cfg, model_paths.get(method))
        data = loader(data_cfg)
        method_maps, cious = localization_examples(model, data, n_samples, protocol)
        drawn["ciou"][method] = cious.tolist()
        for i in range(len(method_maps)):
            clip = data.clips[i]
            images.append(clip.frames[0].permute(1, 2, 0).numpy())
            maps.append(method_maps[i])
            boxes.append(clip.boxes)
            titles.append(f"{method}: {clip.clip_id[:11]} cIoU {cious[i]:.2f}")
        if hasattr(model, "separate"):
            separating[method] = (model, data)
    drawn["clip_ids"] = [c.clip_id for c in next(iter(datasets.values())).clips[:n_samples]]
    plot_localization_overlays(images, maps, boxes, titles, overlays_png, ncols=min(n_samples, len(images)))

    # Separation example: the reference loader is the first separating method's (else the first method's).
    ref = next(iter(separating.values()))[1] if separating else next(iter(datasets.values()))
    pair = first_pair([c.label_idx for c in ref.clips]) or (0, min(1, len(ref.clips) - 1))
    waves = [ref[i]["wave"].numpy() for i in pair]
    estimates = {}
    for method, (model, data) in separating.items():
        own = [data[i]["wave"] for i in pair]
        mixture = (own[0] + own[1])[None]
        with torch.no_grad():
            est = [model.separate(mixture, data[i]["image"][None], data.sample_rate)[0].numpy() for i in pair]
        estimates[method] = [_centre(e, len(waves[0])) for e in est]
    drawn["separating"] = list(estimates)
    drawn["pair"] = [ref.clips[i].clip_id for i in pair]
    title = f"mixture of {drawn['pair'][0]} + {drawn['pair'][1]}"
    if not estimates:
        title += " (no evaluated method separates)"
    plot_separation_comparison(waves[0] + waves[1], waves, estimates, ref.sample_rate, separation_png,
                               mixture_title=title)
    return drawn


__all__ = [
    "bilinear_resize", "curve_auc", "dataset_figures", "first_pair", "localization_examples", "log_magnitude_stft",
    "plot_localization_overlays", "plot_separation_comparison", "plot_separation_spectrograms",
    "plot_success_curves", "success_curves_from_per_sample",
]
