"""SynthAV corpus specification: classes, clips, every per-instance parameter, and the ground truth.

Everything is drawn from seeded generators (`default_rng([seed, clip_index])` per clip), so a spec is a
pure function of (preset, seed, overrides) and the renderer is a pure function of one spec row.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from avbench import ids as ids_mod
from avbench.io import atomic_path, write_json

from . import scene
from .presets import CLASS_CATALOGUE, MASK_TIMES_S, resolve_params

_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# stream tags so the id / class / role generators never share a stream with a clip generator
_IDS_STREAM, _CLASS_STREAM, _ROLE_STREAM = 1_000_003, 1_000_033, 1_000_037
_META_KEY = b"synthav"
SPEC_VERSION = 1


def music_name(label: str) -> str:
    """Instrument-list rule (AVGN/MUSIC): strip 'playing ', drop text after a comma, spaces -> '_'."""
    name = label.removeprefix("playing ").split(",")[0].strip()
    return name.replace(" ", "_")


def avs_category(label: str) -> str:
    """AVSBench S4 category: the first comma-separated name with spaces -> '_' (no commas occur there)."""
    return label.split(",")[0].strip().replace(" ", "_")


@dataclass
class SynthSpec:
    params: dict[str, Any]
    seed: int
    classes: pd.DataFrame
    clips: pd.DataFrame
    version: int = field(default=SPEC_VERSION)

    def class_row(self, k: int) -> dict[str, Any]:
        return self.classes.iloc[int(k)].to_dict()

    def objects(self, clip_index: int) -> list[dict[str, Any]]:
        return json.loads(self.clips.iloc[int(clip_index)]["objects"])

    def header(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "seed": self.seed,
            "params": self.params,
            "classes": self.classes.to_dict(orient="records"),
            "class_columns": list(self.classes.columns),  # the JSON writer sorts keys
        }


def _make_ids(seed: int, n: int) -> list[str]:
    """Unique 11-char YouTube-style ids; every 5th starts with '-', every 10th with '--', every 4th has '_'."""
    rng = np.random.default_rng([seed, _IDS_STREAM])
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        i = len(out)
        chars = [_ID_ALPHABET[c] for c in rng.integers(0, 62, size=11)]  # letters/digits by default
        if i % 5 == 0:
            chars[0] = "-"
        if i % 10 == 0:
            chars[1] = "-"
        if i % 4 == 1:
            chars[int(rng.integers(1, 11))] = "_"
        if i % 7 == 3:
            chars[int(rng.integers(2, 11))] = "-"
        ytid = "".join(chars)
        if ytid not in seen and ids_mod.YTID_RE.match(ytid):
            seen.add(ytid)
            out.append(ytid)
    return out


def _make_classes(p: dict[str, Any], seed: int) -> pd.DataFrame:
    k = int(p["n_classes"])
    rng = np.random.default_rng([seed, _CLASS_STREAM])
    lo, hi = p["pitch_hz"]
    edges = np.geomspace(lo, hi, k + 1)
    guard = 2 ** (1 / 24)  # a quarter tone between neighbouring class bands
    band_of = rng.permutation(k)  # pitch order independent of name order
    hue_offset = rng.uniform(0, 1)
    hue_of = rng.permutation(k)
    shape_perm = np.concatenate([rng.permutation(len(scene.SHAPES)) for _ in range(math.ceil(k / 8))])
    tex_perm = rng.permutation(k)
    heard = np.zeros(k, dtype=bool)
    heard[rng.permutation(k)[: math.ceil(k / 2)]] = True
    rows = []
    for c in range(k):
        label = CLASS_CATALOGUE[c]
        hue = float((hue_offset + hue_of[c] / k) % 1.0)
        rgb = scene.hsv_rgb(hue, 0.85, 0.9)
        pulsed = bool(rng.random() < 0.5)
        rows.append(
            {
                "class_idx": c,
                "name": label,
                "music_name": music_name(label),
                "avs_category": avs_category(label),
                "heard": bool(heard[c]),
                "shape": scene.SHAPES[int(shape_perm[c]) % len(scene.SHAPES)],
                "texture": scene.TEXTURES[int(tex_perm[c]) % len(scene.TEXTURES)],
                "hue": hue,
                "colour": "#" + "".join(f"{int(round(v * 255)):02x}" for v in rgb),
                "tex_angle": float(rng.uniform(0, 180)),
                "tex_period_frac": float(rng.uniform(0.14, 0.26)),
                "f_lo": float(edges[band_of[c]] * guard),
                "f_hi": float(edges[band_of[c] + 1] / guard),
                "n_harm": int(rng.integers(2, 11)),
                "harm_decay": float(rng.uniform(0.6, 2.0)),
                "odd_only": bool(rng.random() < 0.4),
                "am_rate": float(rng.uniform(0.5, 8.0)),
                "am_depth": float(rng.uniform(0.0, 0.7)),
                "vib_rate": float(rng.uniform(3.0, 7.0)),
                "vib_depth": float(rng.uniform(0.0, 0.012)),  # fraction of f0, < a quarter tone
                "note_rate": float(rng.uniform(1.0, 5.0)),
                "pulsed": pulsed,
                "note_decay": float(rng.uniform(0.08, 0.35)) if pulsed else 0.0,
                "noise_level": float(rng.uniform(0.02, 0.25)),
                "noise_colour": float(rng.uniform(0.0, 2.0)),
            }
        )
    classes = pd.DataFrame(rows)
    if classes["music_name"].duplicated().any() or classes["avs_category"].duplicated().any():
        raise ValueError("class names collide after label normalisation")
    return classes


def _sample_object(
    rng: np.random.Generator, cls: dict[str, Any], sounding: bool, p: dict[str, Any]
) -> dict[str, Any]:
    w, h = int(p["width"]), int(p["height"])
    size = int(round(rng.uniform(*p["size_frac"]) * min(w, h)))
    obj: dict[str, Any] = {
        "class_idx": int(cls["class_idx"]),
        "sounding": sounding,
        "size": size,
        "hue": float(cls["hue"] + rng.normal(0, 0.015)),
        "sat": float(rng.uniform(0.6, 0.95)),
        "val": float(rng.uniform(0.7, 1.0)),
        "angle": float(rng.uniform(-20, 20)),
        "tex_angle": float(cls["tex_angle"] + rng.uniform(-15, 15)),
        "tex_period": float(max(3.0, cls["tex_period_frac"] * size * rng.uniform(0.8, 1.25))),
        "tex_phase": [float(rng.uniform()), float(rng.uniform())],
    }
    if sounding:
        obj["sound"] = {
            "f0": float(np.exp(rng.uniform(np.log(cls["f_lo"]), np.log(cls["f_hi"])))),
            "am_rate": float(cls["am_rate"] * rng.uniform(0.85, 1.15)),
            "vib_rate": float(cls["vib_rate"] * rng.uniform(0.85, 1.15)),
            "note_rate": float(cls["note_rate"] * rng.uniform(0.8, 1.25)),
            "gain_db": float(rng.uniform(*p["loudness_db"])),
        }
    return obj


def _alphas(objects: list[dict[str, Any]], shapes: list[str]) -> list[np.ndarray]:
    return [scene.shape_alpha(shapes[o["class_idx"]], o["size"], o["angle"]) for o in objects]


def _place(
    rng: np.random.Generator, objects: list[dict[str, Any]], p: dict[str, Any], shapes: list[str]
) -> None:
    """Draw trajectories and z-order until every sounding object stays visible enough at the mask frames."""
    w, h = int(p["width"]), int(p["height"])
    alphas = _alphas(objects, shapes)
    for attempt in range(200):
        for o in objects:
            s = o["size"]
            speed = rng.uniform(*p["speed_frac"]) * w
            direction = rng.uniform(0, 2 * np.pi)
            o["u0"] = [float(rng.uniform(0, 2 * (w - s))), float(rng.uniform(0, 2 * (h - s)))]
            o["vel"] = [float(speed * np.cos(direction)), float(speed * np.sin(direction))]
        for i, zi in enumerate(rng.permutation(len(objects))):
            objects[i]["z"] = int(zi)
        if _visible_enough(objects, alphas, p):
            return
        if attempt % 40 == 39 and any(not o["sounding"] for o in objects):
            objects.pop(next(i for i, o in enumerate(objects) if not o["sounding"]))  # drop a distractor
            alphas = _alphas(objects, shapes)
    raise RuntimeError("could not place the sounding objects visibly")


def _visible_enough(objects: list[dict[str, Any]], alphas: list[np.ndarray], p: dict[str, Any]) -> bool:
    w, h = int(p["width"]), int(p["height"])
    sounding = [i for i, o in enumerate(objects) if o["sounding"]]
    for t in MASK_TIMES_S:
        masks = scene.visible_masks(objects, alphas, t, w, h)
        for i in sounding:
            if masks[i].sum() < p["min_visible"] * alphas[i].sum():
                return False
    if len(sounding) == 2:  # duet sources should be separable: boxes barely overlap at the centre frame
        masks = scene.visible_masks(objects, alphas, 5.0, w, h)
        a, b = (scene.tight_box(masks[i]) for i in sounding)
        if _iou(a, b) > 0.15:
            return False
    return True


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def make_spec(preset: str | dict[str, Any], seed: int, overrides: dict[str, Any] | None = None) -> SynthSpec:
    """Draw the whole corpus: class table, clip table (singles train/test, duets), roles, ground truth."""
    p = resolve_params(preset, overrides)
    seed = int(seed)
    classes = _make_classes(p, seed)
    cls_rows = classes.to_dict(orient="records")
    shapes = [str(r["shape"]) for r in cls_rows]
    k = int(p["n_classes"])
    n_train, n_test, n_duet = int(p["n_train"]), int(p["n_test"]), int(p["n_duet"])
    n = n_train + n_test + n_duet
    ytids = _make_ids(seed, n)

    # balanced labels per split, shuffled (seeded) so clip order carries no label information
    label_rng = np.random.default_rng([seed, _CLASS_STREAM, 1])
    single_labels = np.concatenate(
        [label_rng.permutation(np.resize(np.arange(k), m)) for m in (n_train, n_test)]
    ).astype(int)
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    duet_pairs = [pairs[int(i)] for i in np.resize(label_rng.permutation(len(pairs)), n_duet)]

    role_rng = np.random.default_rng([seed, _ROLE_STREAM])
    flagged = role_rng.choice(n_train, size=int(p["n_missing"]) + int(p["n_corrupt"]), replace=False)
    missing = set(int(i) for i in flagged[: int(p["n_missing"])])
    corrupt = set(int(i) for i in flagged[int(p["n_missing"]) :])

    w, h = int(p["width"]), int(p["height"])
    rows = []
    for idx in range(n):
        rng = np.random.default_rng([seed, idx])
        if idx < n_train + n_test:
            kind, split = "single", ("train" if idx < n_train else "test")
            sources = [int(single_labels[idx])]
            n_dis = int(rng.integers(0, int(p["max_distractors"]) + 1))
            start_s = int(rng.integers(0, int(p["max_start_s"]) + 1))
        else:
            # duets are MUSIC-style whole videos (no timing in the list), so the clip is the whole file
            kind, split = "duet", "test"
            sources = list(duet_pairs[idx - n_train - n_test])
            n_dis = int(rng.integers(0, int(p["max_duet_distractors"]) + 1))
            start_s = 0
        others = [c for c in range(k) if c not in sources]
        distractors = [int(c) for c in rng.permutation(others)[:n_dis]]
        objects = [_sample_object(rng, cls_rows[c], True, p) for c in sources]
        objects += [_sample_object(rng, cls_rows[c], False, p) for c in distractors]
        _place(rng, objects, p, shapes)
        alphas = _alphas(objects, shapes)
        masks = scene.visible_masks(objects, alphas, 5.0, w, h)
        boxes = [scene.tight_box(masks[i]) for i, o in enumerate(objects) if o["sounding"]]
        labels = [classes.at[c, "name"] for c in sources]
        rows.append(
            {
                "clip_index": idx,
                "clip_id": ids_mod.clip_id(ytids[idx], start_s),
                "ytid": ytids[idx],
                "start_s": start_s,
                "label": labels[0],
                "label2": labels[1] if len(labels) > 1 else "",
                "split": split,
                "kind": kind,
                "missing": idx in missing,
                "corrupt": idx in corrupt,
                "n_distractors": len(objects) - len(sources),
                "background": str(rng.choice(["noise", "gradient", "patches"])),
                "noise_db": float(rng.uniform(*p["noise_db"])),
                "noise_colour": float(rng.uniform(0.0, 2.0)),
                "boxes": json.dumps(boxes),
                "objects": json.dumps(objects),
            }
        )
    clips = pd.DataFrame(rows)
    return SynthSpec(params=p, seed=seed, classes=classes, clips=clips)


def save_spec(spec: SynthSpec, path: str | Path) -> None:
    """Parquet (clips; the header with params + classes embedded in the schema metadata) + a JSON sidecar."""
    path = Path(path)
    header = json.dumps(spec.header(), sort_keys=True)
    table = pa.Table.from_pandas(spec.clips, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: header.encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    write_json(path.with_suffix(".json"), spec.header())


def load_spec(path: str | Path) -> SynthSpec:
    table = pq.read_table(Path(path))
    header = json.loads(table.schema.metadata[_META_KEY])
    if header.get("version") != SPEC_VERSION:
        raise ValueError(f"unsupported SynthAV spec version {header.get('version')!r}")
    params = dict(header["params"])
    for key, value in params.items():
        if isinstance(value, list):
            params[key] = tuple(value)
    clips = table.to_pandas()
    classes = pd.DataFrame(header["classes"])[header["class_columns"]]
    return SynthSpec(params=params, seed=int(header["seed"]), classes=classes, clips=clips)


def object_alphas(spec: SynthSpec, objects: list[dict[str, Any]]) -> list[np.ndarray]:
    return _alphas(objects, [str(s) for s in spec.classes["shape"]])
