"""WebDataset shards of sliced clips (ARCHITECTURE "Shards"): writer, index and reader.

A sample is ``{__key__: clip_id, jpg: centre frame, f000.jpg..: frames, wav: 16 kHz mono PCM16, json: meta}``.
Shards are byte-for-byte reproducible: samples sorted by clip_id, fixed tar mtime/owner/mode, sorted JSON.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
import webdataset as wds
from PIL import Image

from avbench.ids import shard_key
from avbench.manifest import in_split

INDEX = "index.json"
SHARDABLE = ("ok", "too_short")  # too_short clips are zero padded and flagged in their json
_TAR_OPTS = {"mtime": 0.0, "user": "avbench", "group": "avbench", "mode": 0o444, "encoder": False}


def shard_name(dataset: str, split: str, n: int) -> str:
    return f"{dataset}-{split}-{n:06d}.tar"


def _json_list(value: Any) -> list:
    """Manifest list columns are JSON strings; tolerate already-decoded lists and missing values."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        return json.loads(value) if value.strip() else []
    return [v.tolist() if hasattr(v, "tolist") else v for v in value]


def _sources(row: dict[str, Any], boxes: list) -> list[dict[str, Any]]:
    """One entry per sounding object: the manifest's optional ``sources`` column, else the clip's own label."""
    raw = row.get("sources")
    sources = _json_list(raw) if raw is not None else []
    if not sources:
        return [{"label": row["label"], "label_idx": int(row["label_idx"]), "boxes": boxes}]
    return [
        {"label": s["label"], "label_idx": int(s["label_idx"]), "boxes": _json_list(s.get("boxes", []))}
        for s in sources
    ]


def _frame_files(frames_dir: Any) -> list[Path]:
    if not isinstance(frames_dir, str) or not frames_dir:
        return []
    d = Path(frames_dir)
    return sorted(p for p in d.iterdir() if p.suffix in (".jpg", ".png")) if d.is_dir() else []


def _sample(
    row: dict[str, Any],
    *,
    dataset: str,
    split: str,
    include_frames: bool,
    extra_json: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> tuple[dict[str, bytes], int]:
    """Build one encoded sample (all values bytes) and return it with the wav's sample rate."""
    cid = row["clip_id"]
    frame_path = Path(row["frame_path"])
    sample: dict[str, Any] = {"__key__": shard_key(cid)}
    sample[frame_path.suffix.lstrip(".")] = frame_path.read_bytes()
    if include_frames:
        for k, p in enumerate(_frame_files(row.get("frames_dir"))):
            sample[f"f{k:03d}{p.suffix}"] = p.read_bytes()
    wav = Path(row["audio_path"]).read_bytes()
    sample["wav"] = wav
    sample_rate = sf.info(io.BytesIO(wav)).samplerate

    boxes = _json_list(row.get("boxes"))
    meta: dict[str, Any] = {
        "clip_id": cid,
        "ytid": row["ytid"],
        "label": row["label"],
        "label_idx": int(row["label_idx"]),
        "split": split,
        "dataset": dataset,
        "boxes": boxes,
        "sources": _sources(row, boxes),
        "too_short": row["status"] == "too_short",
    }
    if extra_json is not None:
        meta.update(extra_json(row))
    sample["json"] = json.dumps(meta, sort_keys=True, default=_json_default).encode("utf-8")
    return sample, sample_rate


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars from the manifest
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_shards(
    manifest: pd.DataFrame,
    slice_status: pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    dataset: str,
    split: str,
    max_samples_per_shard: int = 256,
    include_frames: bool = True,
    extra_json: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write the ``split`` clips of ``manifest`` (by membership, ``avbench.manifest.in_split``) that sliced ok (or
    too_short) as WebDataset shards.

    The whole directory is rendered next to ``out_dir`` and renamed into place, so ``out_dir`` (a Snakemake
    ``directory()`` output) never holds a partial set. ``extra_json(row)`` may add keys to each sample's json
    (``row`` = manifest columns + slice status columns). Returns the index written to ``index.json``.
    """
    out_dir = Path(out_dir)
    rows = manifest
    if "split" in rows.columns:  # membership: a clip of several splits (train_list_mode=original) is in each
        rows = rows[in_split(rows, split)]
    status = slice_status[slice_status["status"].isin(SHARDABLE)]
    status = status[["clip_id", "status", "audio_path", "frame_path", "frames_dir"]]
    # Manifest columns win (a slice status may carry none of them anyway).
    rows = rows.merge(status, on="clip_id", how="inner", validate="one_to_one")
    rows = rows.sort_values("clip_id", kind="stable").to_dict("records")

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        # ShardWriter formats the pattern with %, so escape any % in the names.
        pattern = str(tmp).replace("%", "%%") + "/" + f"{dataset}-{split}-".replace("%", "%%") + "%06d.tar"
        sizes: list[int] = []
        fields: set[str] = set()
        rates: set[int] = set()
        with wds.ShardWriter(
            pattern, maxcount=max_samples_per_shard, maxsize=float("inf"), verbose=0, **_TAR_OPTS
        ) as sink:
            for i, row in enumerate(rows):
                sample, rate = _sample(
                    row, dataset=dataset, split=split, include_frames=include_frames, extra_json=extra_json
                )
                rates.add(rate)
                fields.update(k for k in sample if k != "__key__")
                if i % max_samples_per_shard == 0:
                    sizes.append(0)
                sizes[-1] += 1
                sink.write(sample)
        if len(rates) > 1:
            raise ValueError(f"clips of {dataset}/{split} have mixed sample rates {sorted(rates)}")
        # ShardWriter opens its first shard eagerly; an empty split keeps no (empty) tar.
        shards = [shard_name(dataset, split, n) for n in range(len(sizes))]
        for stray in set(p.name for p in tmp.glob("*.tar")) - set(shards):
            (tmp / stray).unlink()
        index = {
            "dataset": dataset,
            "split": split,
            "shards": shards,
            "shard_sizes": sizes,
            "n_samples": len(rows),
            "n_too_short": sum(r["status"] == "too_short" for r in rows),
            "sample_rate": rates.pop() if rates else None,
            "fields": sorted(fields),
        }
        (tmp / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return index


def read_index(shard_dir: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(shard_dir) / INDEX).read_text(encoding="utf-8"))


def webdataset_urls(shard_dir: str | os.PathLike) -> list[str]:
    """Shard paths in index order, for ``webdataset.WebDataset`` in the training loader."""
    shard_dir = Path(shard_dir)
    return [str(shard_dir / name) for name in read_index(shard_dir)["shards"]]


def _image(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_sample(sample: dict[str, Any]) -> dict[str, Any]:
    """Raw WebDataset sample (bytes per field) -> arrays; explicit decoders, no torchaudio."""
    wave, rate = sf.read(io.BytesIO(sample["wav"]), dtype="float32", always_2d=False)
    image_field = "jpg" if "jpg" in sample else "png"
    frame_fields = sorted(k for k in sample if k.startswith("f") and k[1:4].isdigit())
    return {
        "key": sample["__key__"],
        "image": _image(sample[image_field]),
        "frames": [_image(sample[k]) for k in frame_fields],
        "wave": wave,
        "sample_rate": int(rate),
        "meta": json.loads(sample["json"]),
    }


def iter_samples(shard_dir: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Every sample of a shard directory, decoded, in write order (clip_id order)."""
    urls = webdataset_urls(shard_dir)
    if not urls:
        return
    # No node/worker splitting: this reader must see every sample whatever process it runs in.
    dataset = wds.WebDataset(
        urls, shardshuffle=False, nodesplitter=None, workersplitter=None, empty_check=False
    )
    for sample in dataset:
        yield decode_sample(sample)
