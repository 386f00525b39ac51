"""Scene geometry shared by the spec (ground truth) and the renderer (pixels).

Both sides call the same functions, so a box or mask is, by construction, the exact footprint of the
pasted sprite. Sprites have binary alpha (no anti-aliasing) so masks need no threshold.
"""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np

SHAPES = ("circle", "square", "triangle", "diamond", "star", "cross", "ring", "hexagon")
TEXTURES = ("stripes", "checker", "dots", "solid")


def _polygon(u: np.ndarray, v: np.ndarray, n: int, radius: float, offset: float) -> np.ndarray:
    """Regular n-gon as an intersection of half-planes (apothem = radius * cos(pi / n))."""
    inside = np.ones(u.shape, dtype=bool)
    apothem = radius * np.cos(np.pi / n)
    for k in range(n):
        a = offset + 2 * np.pi * k / n
        inside &= u * np.cos(a) + v * np.sin(a) <= apothem
    return inside


def shape_alpha(shape: str, size: int, angle_deg: float) -> np.ndarray:
    """Binary [size, size] footprint of `shape`, rotated by `angle_deg` (image y points down)."""
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    v0, u0 = np.meshgrid(c, c, indexing="ij")
    a = np.deg2rad(angle_deg)
    u = u0 * np.cos(a) + v0 * np.sin(a)
    v = -u0 * np.sin(a) + v0 * np.cos(a)
    r = np.hypot(u, v)
    if shape == "circle":
        return r <= 0.95
    if shape == "square":
        return (np.abs(u) <= 0.72) & (np.abs(v) <= 0.72)
    if shape == "triangle":
        # vertex up; shifted down so the centroid sits near the sprite centre
        return _polygon(u, v - 0.2, 3, 1.05, np.pi / 2)
    if shape == "diamond":
        return np.abs(u) / 0.7 + np.abs(v) / 0.97 <= 1.0
    if shape == "star":
        phi = np.arctan2(v, u) + np.pi / 2
        d = np.abs(((5 * phi / (2 * np.pi)) % 1.0) - 0.5) * 2  # 1 at the tips, 0 between them
        return r <= 0.42 + 0.53 * d
    if shape == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.92)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.92))
    if shape == "ring":
        return (r <= 0.95) & (r >= 0.55)
    if shape == "hexagon":
        return _polygon(u, v, 6, 0.95, 0.0)
    raise ValueError(f"unknown shape {shape!r}")


def hsv_rgb(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)))


def sprite(obj: dict[str, Any], cls: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 [s, s, 3], alpha bool [s, s]) of one object instance."""
    size = int(obj["size"])
    alpha = shape_alpha(cls["shape"], size, obj["angle"])
    base = hsv_rgb(obj["hue"], obj["sat"], obj["val"])
    # second texture colour: darker, hue-shifted a little, so the texture reads at 160x120
    alt = hsv_rgb(obj["hue"] + 0.04, obj["sat"] * 0.8, obj["val"] * 0.45)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    period = float(obj["tex_period"])
    ph_x, ph_y = obj["tex_phase"]
    texture = cls["texture"]
    if texture == "stripes":
        t = np.deg2rad(obj["tex_angle"])
        pattern = ((xx * np.cos(t) + yy * np.sin(t)) / period + ph_x) % 1.0 < 0.5
    elif texture == "checker":
        pattern = (np.floor(xx / period + ph_x) + np.floor(yy / period + ph_y)) % 2 == 0
    elif texture == "dots":
        fx = (xx / period + ph_x) % 1.0 - 0.5
        fy = (yy / period + ph_y) % 1.0 - 0.5
        pattern = np.hypot(fx, fy) > 0.3
    elif texture == "solid":
        pattern = np.ones((size, size), dtype=bool)
    else:
        raise ValueError(f"unknown texture {texture!r}")
    rgb = np.where(pattern[..., None], base, alt)
    if texture == "solid":
        # radial shading so solid objects are not flat discs of colour
        c = (np.arange(size) + 0.5) / size * 2 - 1
        rr = np.hypot(*np.meshgrid(c, c, indexing="ij"))
        rgb = rgb * (1.0 - 0.35 * np.clip(rr, 0, 1) ** 2)[..., None]
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), alpha


def _triangle_wave(u: np.ndarray, span: float) -> np.ndarray:
    """Reflecting motion: position in [0, span] for an unbounded coordinate u (works for negative t too)."""
    if span <= 0:
        return np.zeros_like(u)
    w = np.mod(u, 2 * span)
    return np.where(w <= span, w, 2 * span - w)


def positions(obj: dict[str, Any], times: np.ndarray, width: int, height: int) -> np.ndarray:
    """Integer top-left corners [len(times), 2] (x, y) at clip times `times` (s).

    `u0` is the unfolded coordinate at the centre frame t = 5 s, so the centre-frame position is uniform
    over the frame when u0 is uniform in [0, 2 * span).
    """
    from .presets import CENTER_TIME_S

    size = int(obj["size"])
    t = np.asarray(times, dtype=np.float64) - CENTER_TIME_S
    x = _triangle_wave(obj["u0"][0] + obj["vel"][0] * t, width - size)
    y = _triangle_wave(obj["u0"][1] + obj["vel"][1] * t, height - size)
    return np.stack([np.floor(x + 0.5), np.floor(y + 0.5)], axis=1).astype(np.int64)


def label_map(
    objects: list[dict[str, Any]], alphas: list[np.ndarray], t: float, width: int, height: int
) -> np.ndarray:
    """[H, W] int map of the top-most object index (-1 = background) at clip time `t`."""
    out = np.full((height, width), -1, dtype=np.int64)
    for i in sorted(range(len(objects)), key=lambda k: objects[k]["z"]):
        ((x, y),) = positions(objects[i], np.array([t]), width, height)
        s = alphas[i].shape[0]
        region = out[y : y + s, x : x + s]
        region[alphas[i]] = i
    return out


def visible_masks(
    objects: list[dict[str, Any]], alphas: list[np.ndarray], t: float, width: int, height: int
) -> list[np.ndarray]:
    lab = label_map(objects, alphas, t, width, height)
    return [lab == i for i in range(len(objects))]


def tight_box(mask: np.ndarray) -> list[float]:
    """Normalised xyxy of the mask's pixels (half-open: x2 = (last column + 1) / W)."""
    h, w = mask.shape
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h]
