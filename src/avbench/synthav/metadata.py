"""Write the SynthAV corpus in the official metadata formats of the real datasets (PROTOCOLS 1).

Byte-level conventions copied from the real files in shared/metadata:
- vggsound.csv: no header, `ytid,start_s,label,split`, minimal CSV quoting (labels with commas), LF,
  trailing newline, rows sorted by ytid.
- vggss.json: one line, `json.dumps` default separators, no trailing newline.
- vggss_test.csv: ids, CRLF (trailing CRLF). Heard/unheard test lists and vggss_heard.txt: ids, LF, no
  trailing newline.
- MUSIC_duet_videos.json: Python-2 style `indent=4` with ", " item separators, no trailing newline.
- music_duet.json (AVGN): one line; boxes are normalised **xywh**; `file` is the AVGN MUSIC frame id
  `<ytid>_<sec:03d>_<frame:05d>` (frame index at 30 fps) of the annotated frame t = 5.0 s, i.e.
  `<ytid>_005_00150`. SynthAV duets are whole 10 s videos (start 0), so clip time = video time.
- AVSBench S4 under `avsbench/` (the `avsbench_data` root): `Single-source/s4_meta_data.csv` (header
  `name,start,category,split`; name = ytid, start = the clip's start_s, i.e. the same clip as in vggsound.csv)
  + `Single-source/s4_data/gt_masks/test/{category}/{name}/{name}_{k}.png` (mode '1', frame size), k = 1..5 at
  clip times MASK_TIMES_S. Only the masks are written (no visual_frames / audio_wav / audio_log_mel): the
  frames and audio come from the rendered videos.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from avbench.io import atomic_path, write_json, write_text

from . import scene
from .presets import CENTER_FRAME, CENTER_TIME_S, CLIP_SECONDS, FPS, MASK_TIMES_S
from .spec import SynthSpec, object_alphas


def _csv_text(rows: list[list[Any]], lineterminator: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=lineterminator).writerows(rows)
    return buf.getvalue()


MUSIC_FPS = 30  # AVGN frame ids count frames at 30 fps


def music_frame_id(ytid: str, t: float) -> str:
    return f"{ytid}_{int(t):03d}_{int(round(t * MUSIC_FPS)):05d}"


def _xyxy_to_xywh(box: list[float]) -> list[float]:
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]


def clip_masks(spec: SynthSpec, clip_index: int) -> list[np.ndarray]:
    """Visible binary masks (union over sounding objects) at the 5 AVSBench-style mask times."""
    objects = spec.objects(clip_index)
    alphas = object_alphas(spec, objects)
    w, h = int(spec.params["width"]), int(spec.params["height"])
    out = []
    for t in MASK_TIMES_S:
        vis = scene.visible_masks(objects, alphas, t, w, h)
        out.append(np.any([m for m, o in zip(vis, objects, strict=True) if o["sounding"]], axis=0))
    return out


def write_metadata(spec: SynthSpec, out_dir: str | Path) -> dict[str, Path]:
    out_dir = Path(out_dir)
    clips = spec.clips
    classes = spec.classes
    singles = clips[clips["kind"] == "single"]
    test = singles[singles["split"] == "test"]
    duets = clips[clips["kind"] == "duet"]
    heard = set(classes.loc[classes["heard"], "name"])
    music = dict(zip(classes["name"], classes["music_name"], strict=True))
    avs = dict(zip(classes["name"], classes["avs_category"], strict=True))
    paths: dict[str, Path] = {}

    # VGGSound: every single clip, including the missing and corrupt ones (the list outlives the videos)
    rows = sorted(
        ([r.ytid, int(r.start_s), r.label, r.split] for r in singles.itertuples()), key=lambda r: (r[0], r[1])
    )
    paths["vggsound"] = out_dir / "vggsound.csv"
    write_text(paths["vggsound"], _csv_text(rows, "\n"))

    # VGG-SS: test single clips with their centre-frame boxes (normalised xyxy)
    vggss = [{"file": r.clip_id, "class": r.label, "bbox": json.loads(r.boxes)} for r in test.itertuples()]
    paths["vggss"] = out_dir / "vggss.json"
    write_text(paths["vggss"], json.dumps(vggss))
    paths["vggss_test"] = out_dir / "vggss_test.csv"
    write_text(paths["vggss_test"], "".join(f"{r.clip_id}\r\n" for r in test.itertuples()))
    paths["vggss_heard_test"] = out_dir / "vggss_heard_test.csv"
    write_text(paths["vggss_heard_test"], "\n".join(r.clip_id for r in test.itertuples() if r.label in heard))
    paths["vggss_unheard_test"] = out_dir / "vggss_unheard_test.csv"
    write_text(
        paths["vggss_unheard_test"], "\n".join(r.clip_id for r in test.itertuples() if r.label not in heard)
    )
    train_heard = sorted(r.clip_id for r in singles.itertuples() if r.split == "train" and r.label in heard)
    paths["vggss_heard"] = out_dir / "vggss_heard.txt"
    write_text(paths["vggss_heard"], "\n".join(train_heard))

    # MUSIC duet list + AVGN duet boxes
    videos: dict[str, list[str]] = {}
    duet_rows = []
    for r in duets.itertuples():
        c1, c2 = music[r.label], music[r.label2]
        videos.setdefault(f"{c1} {c2}", []).append(r.ytid)
        b1, b2 = json.loads(r.boxes)
        duet_rows.append(
            {
                "file": music_frame_id(r.ytid, float(r.start_s) + CENTER_TIME_S),
                "class_src1": c1,
                "bbox_src1": _xyxy_to_xywh(b1),
                "class_src2": c2,
                "bbox_src2": _xyxy_to_xywh(b2),
            }
        )
    paths["music_duet_videos"] = out_dir / "MUSIC_duet_videos.json"
    write_text(
        paths["music_duet_videos"],
        json.dumps({"version": 1.0, "videos": videos}, indent=4, separators=(", ", ": ")),
    )
    paths["music_duet"] = out_dir / "music_duet.json"
    write_text(paths["music_duet"], json.dumps(duet_rows))

    # AVSBench S4-style masks for the test single clips
    avs_dir = out_dir / "avsbench" / "Single-source"
    meta = [["name", "start", "category", "split"]]
    for r in test.itertuples():
        category = avs[r.label]
        meta.append([r.ytid, int(r.start_s), category, "test"])
        mask_dir = avs_dir / "s4_data" / "gt_masks" / "test" / category / r.ytid
        for k, mask in enumerate(clip_masks(spec, int(r.clip_index)), start=1):
            with atomic_path(mask_dir / f"{r.ytid}_{k}.png") as tmp:
                Image.fromarray(mask).convert("1").save(tmp, format="PNG")
    paths["s4_meta"] = avs_dir / "s4_meta_data.csv"
    write_text(paths["s4_meta"], _csv_text(meta, "\n"))
    paths["s4_masks"] = avs_dir / "s4_data" / "gt_masks"
    paths["avsbench_root"] = out_dir / "avsbench"

    paths["synthav"] = out_dir / "synthav.json"
    write_json(paths["synthav"], corpus_summary(spec))
    return paths


def corpus_summary(spec: SynthSpec) -> dict[str, Any]:
    clips = spec.clips
    singles = clips[clips["kind"] == "single"]
    classes = spec.classes
    return {
        "name": "SynthAV",
        "preset": spec.params["name"],
        "seed": spec.seed,
        "params": spec.params,
        "fps": FPS,
        "clip_seconds": CLIP_SECONDS,
        "sample_rate": int(spec.params["sample_rate"]),
        "frame_size": [int(spec.params["width"]), int(spec.params["height"])],
        "annotated_time_s": CENTER_TIME_S,
        "annotated_frame": CENTER_FRAME,
        "mask_times_s": list(MASK_TIMES_S),
        "source_video": "start_s + 10 s; the clip is [start_s, start_s + 10); before start_s: background only, silence",
        "counts": {
            "classes": len(classes),
            "train": int((singles["split"] == "train").sum()),
            "test": int((singles["split"] == "test").sum()),
            "duet": int((clips["kind"] == "duet").sum()),
            "missing": int(clips["missing"].sum()),
            "corrupt": int(clips["corrupt"].sum()),
        },
        "missing": clips.loc[clips["missing"], "clip_id"].tolist(),
        "corrupt": clips.loc[clips["corrupt"], "clip_id"].tolist(),
        "heard_classes": classes.loc[classes["heard"], "name"].tolist(),
        "unheard_classes": classes.loc[~classes["heard"], "name"].tolist(),
        "classes": classes.to_dict(orient="records"),
    }
