"""Seeded multi-source pair sets (PROTOCOLS 5.4) and both multi-source layouts (5.1 separate, 5.2 concat_lr).

Contract (docs/ARCHITECTURE.md, Mixtures): ``R/mixtures/{dataset}/{layout}.parquet`` with
``pair_id, id_a, cls_a, id_b, cls_b, seed, boxes_a, boxes_b`` (boxes: JSON normalised xyxy; for ``concat_lr`` already
mapped into the 224 (H) x 448 (W) canvas with ``avbench.gt.shift_boxes_side_by_side``, PROTOCOLS 3.6).

Pairing rule (5.4): candidates sorted by clip id; item ``i`` (its position in that order) draws with
``numpy.random.default_rng([seed, i])`` a partner uniformly from the items with a different label and a different
ytid (``same_class``: same label, different ytid). The draw is ``candidates[rng.integers(len(candidates))]`` with
candidates in clip-id order. For three sources the same generator then draws the third item among those whose label
and ytid differ from both (``same_class``: same label, ytid differing from both).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from avbench.gt import shift_boxes_side_by_side
from avbench.io import write_parquet

Mode = Literal["class_distinct", "same_class"]
Layout = Literal["separate", "concat_lr"]
LAYOUTS: tuple[str, ...] = ("separate", "concat_lr")
MODES: tuple[str, ...] = ("class_distinct", "same_class")
# Stream used to pick the anchor subset when n_pairs < N; a spawn key keeps it apart from the per-item
# default_rng([seed, i]) streams.
_SUBSET_SPAWN_KEY = (5, 4)


def _complement_pick(excluded: np.ndarray, r: int) -> int:
    """The r-th (0-based) integer not in sorted, unique ``excluded`` (positions 0..N-1 in clip-id order).

    Avoids materialising an N-long candidate list per item (O(N^2) on VGGSound-size sets).
    """
    # before the j-th excluded value there are excluded[j] - j kept positions
    shifted = excluded - np.arange(len(excluded))
    return int(r + np.searchsorted(shifted, r, side="right"))


def make_pairs(
    items: pd.DataFrame,
    *,
    seed: int,
    n_pairs: int | None = None,
    mode: Mode = "class_distinct",
    n_sources: int = 2,
) -> pd.DataFrame:
    """Seeded pairs (or triples) of items; see the module docstring for the exact draw.

    ``items`` needs ``clip_id, label, ytid`` and optionally ``boxes`` (JSON string; ``"[]"`` if absent).
    ``n_pairs=None`` gives one row per item (every item is an anchor once); otherwise ``n_pairs`` anchors are
    chosen without replacement by a seeded generator and kept in clip-id order.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if n_sources not in (2, 3):
        raise ValueError(f"n_sources must be 2 or 3, got {n_sources}")
    missing = {"clip_id", "label", "ytid"} - set(items.columns)
    if missing:
        raise ValueError(f"items lack columns {sorted(missing)}")
    df = items.sort_values("clip_id", kind="stable").reset_index(drop=True)
    if df["clip_id"].duplicated().any():
        dup = df.loc[df["clip_id"].duplicated(), "clip_id"].iloc[0]
        raise ValueError(f"duplicate clip_id in pairing candidates: {dup!r}")
    n = len(df)
    if n < n_sources:
        raise ValueError(f"{n} items cannot form {n_sources}-source mixtures")
    if df["label"].isna().any() or df["ytid"].isna().any():
        raise ValueError("items with a missing label or ytid cannot be paired")
    ids = df["clip_id"].astype(str).to_numpy()
    labels = df["label"].astype(str).to_numpy()
    ytids = df["ytid"].astype(str).to_numpy()
    boxes = (
        df["boxes"].map(_boxes_json).to_numpy() if "boxes" in df.columns else np.full(n, "[]", dtype=object)
    )

    label_pos = {lab: np.flatnonzero(labels == lab) for lab in np.unique(labels)}
    ytid_pos: dict[str, list[int]] = {}
    for pos, y in enumerate(ytids):
        ytid_pos.setdefault(y, []).append(pos)
    n_labels = len(label_pos)
    if mode == "class_distinct" and n_labels < n_sources:
        raise ValueError(
            f"class_distinct {n_sources}-source mixtures need >= {n_sources} labels, found {n_labels}"
        )

    def pick(rng: np.random.Generator, chosen: Sequence[int]) -> int | None:
        """Uniform draw among the items compatible with every already chosen item (None if there are none)."""
        yt = np.concatenate([np.asarray(ytid_pos[ytids[c]]) for c in chosen])
        if mode == "class_distinct":
            lab = np.concatenate([label_pos[labels[c]] for c in chosen])
            excluded = np.union1d(lab, yt)  # sorted, unique
            n_cand = n - len(excluded)
            if n_cand <= 0:
                return None
            return _complement_pick(excluded, int(rng.integers(n_cand)))
        same = label_pos[labels[chosen[0]]]
        cand = same[~np.isin(same, yt)]
        if cand.size == 0:
            return None
        return int(cand[rng.integers(cand.size)])

    if n_pairs is None:
        anchors = np.arange(n)
    else:
        if not 1 <= n_pairs <= n:
            raise ValueError(f"n_pairs must be in [1, {n}] (one pair per anchor item), got {n_pairs}")
        subset_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_SUBSET_SPAWN_KEY))
        anchors = np.sort(subset_rng.choice(n, size=n_pairs, replace=False))

    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    for i in anchors:
        rng = np.random.default_rng([seed, int(i)])
        chosen = [int(i)]
        for _ in range(n_sources - 1):
            nxt = pick(rng, chosen)
            if nxt is None:
                break
            chosen.append(nxt)
        if len(chosen) < n_sources:
            failed.append(ids[i])
            continue
        row: dict[str, Any] = {"pair_id": f"s{seed}_{len(rows):06d}"}
        for tag, c in zip("abc", chosen, strict=False):
            row[f"id_{tag}"], row[f"cls_{tag}"] = ids[c], labels[c]
        row["seed"] = int(seed)
        for tag, c in zip("abc", chosen, strict=False):
            row[f"boxes_{tag}"] = boxes[c]
        rows.append(row)
    if failed:
        rule = (
            "a different label and a different ytid"
            if mode == "class_distinct"
            else "the same label, another ytid"
        )
        raise ValueError(
            f"{len(failed)} of {len(anchors)} items have no {n_sources - 1} compatible partner(s) with {rule} "
            f"(e.g. {failed[:3]}); filter them out or change mode"
        )
    cols = ["pair_id", "id_a", "cls_a", "id_b", "cls_b"]
    cols += ["id_c", "cls_c"] if n_sources == 3 else []
    cols += ["seed", "boxes_a", "boxes_b"] + (["boxes_c"] if n_sources == 3 else [])
    return pd.DataFrame(rows, columns=cols)


def _boxes_list(value: Any) -> list[list[float]]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    boxes = json.loads(value) if isinstance(value, str) else value
    return [[float(v) for v in box] for box in boxes]


def _boxes_json(value: Any) -> str:
    return json.dumps(_boxes_list(value))


def layout_pairs(pairs: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    """Add ``layout`` and ``canvas`` (H x W); for ``concat_lr`` map A's boxes to the left, B's to the right half."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    out = pairs.copy()
    if layout == "concat_lr":
        if "id_c" in out.columns:
            raise ValueError(
                "concat_lr is defined for two sources (224x448 canvas); use 'separate' for 3 sources"
            )
        out["boxes_a"] = [
            json.dumps(shift_boxes_side_by_side(_boxes_list(b), "left")) for b in out["boxes_a"]
        ]
        out["boxes_b"] = [
            json.dumps(shift_boxes_side_by_side(_boxes_list(b), "right")) for b in out["boxes_b"]
        ]
        out["canvas"] = "224x448"
    else:
        for col in [c for c in out.columns if c.startswith("boxes_")]:
            out[col] = out[col].map(_boxes_json)
        out["canvas"] = "224x224"  # per frame
    out["layout"] = layout
    return out


def write_mixtures(
    manifest_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    dataset: str,
    split: str,
    seed: int,
    layouts: Iterable[str],
    n_pairs: int | None,
    mode: Mode = "class_distinct",
    n_sources: int = 2,
    keep_ids: Iterable[str] | None = None,
) -> dict[str, Path]:
    """Pair the ``split`` clips of ``dataset`` from the clip manifest; write ``{out_dir}/{layout}.parquet``.

    ``keep_ids`` optionally restricts candidates (e.g. to clips that made it into the shards). The same pairs are
    used for every layout, so layouts differ only in box mapping. Returns ``{layout: path}``.
    """
    layouts = list(layouts)
    for layout in layouts:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    manifest = pd.read_parquet(manifest_path)
    sel = manifest["split"] == split
    if "dataset" in manifest.columns:
        sel &= manifest["dataset"] == dataset
    if keep_ids is not None:
        sel &= manifest["clip_id"].isin(set(keep_ids))
    items = manifest.loc[sel]
    if items.empty:
        raise ValueError(f"{manifest_path}: no clips of dataset {dataset!r} in split {split!r}")
    pairs = make_pairs(items, seed=seed, n_pairs=n_pairs, mode=mode, n_sources=n_sources)
    written: dict[str, Path] = {}
    for layout in layouts:
        path = Path(out_dir) / f"{layout}.parquet"
        write_parquet(path, layout_pairs(pairs, layout))  # type: ignore[arg-type]
        written[layout] = path
    return written


def _centre_window(wave: np.ndarray, n: int) -> np.ndarray:
    """Centre ``n`` samples (zero-padded at the end when the wave is shorter), as the AVGN loader centres 3 s."""
    start = max((len(wave) - n) // 2, 0)
    seg = wave[start : start + n]
    return np.pad(seg, (0, n - len(seg)))


def _squash(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((size, size), Image.BILINEAR))


def build_mixture_sample(
    sample_a: dict[str, Any],
    sample_b: dict[str, Any],
    layout: Layout,
    *,
    audio_window: float | None = None,
    size: int = 224,
) -> dict[str, Any]:
    """One two-source input from two decoded samples (dicts as ``avbench.shards.iter_samples`` yields).

    Audio: ``wave_a + wave_b`` (plain sum, PROTOCOLS 5.1), optionally over the centre ``audio_window`` seconds of
    each; without a window the shorter wave is zero-padded to the longer. Images: ``separate`` keeps both frames as
    they are (``images``); ``concat_lr`` squashes each to ``size`` x ``size`` and puts A left, B right (``image``,
    ``size`` x ``2*size`` x 3) with B's boxes shifted into the right half (PROTOCOLS 3.6).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    rate_a, rate_b = int(sample_a["sample_rate"]), int(sample_b["sample_rate"])
    if rate_a != rate_b:
        raise ValueError(f"cannot sum waves with different sample rates ({rate_a} vs {rate_b})")
    wa = np.asarray(sample_a["wave"], dtype=np.float32).reshape(-1)
    wb = np.asarray(sample_b["wave"], dtype=np.float32).reshape(-1)
    if audio_window is not None:
        n = int(round(audio_window * rate_a))
        if n <= 0:
            raise ValueError(f"audio_window must be positive, got {audio_window}")
        wa, wb = _centre_window(wa, n), _centre_window(wb, n)
    else:
        n = max(len(wa), len(wb))
        wa, wb = np.pad(wa, (0, n - len(wa))), np.pad(wb, (0, n - len(wb)))

    meta_a, meta_b = sample_a.get("meta") or {}, sample_b.get("meta") or {}
    boxes_a, boxes_b = _boxes_list(meta_a.get("boxes", [])), _boxes_list(meta_b.get("boxes", []))
    out: dict[str, Any] = {
        "wave": wa + wb,
        "sample_rate": rate_a,
        "layout": layout,
        "ids": [meta_a.get("clip_id", sample_a.get("key")), meta_b.get("clip_id", sample_b.get("key"))],
        "labels": [meta_a.get("label"), meta_b.get("label")],
    }
    if layout == "separate":
        out["images"] = [sample_a["image"], sample_b["image"]]
        out["boxes_a"], out["boxes_b"] = boxes_a, boxes_b
    else:
        out["image"] = np.concatenate(
            [_squash(sample_a["image"], size), _squash(sample_b["image"], size)], axis=1
        )
        out["boxes_a"] = shift_boxes_side_by_side(boxes_a, "left")
        out["boxes_b"] = shift_boxes_side_by_side(boxes_b, "right")
    return out
