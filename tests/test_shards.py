"""avbench.shards: WebDataset shard writer/reader round trip, index, determinism, atomic output."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from avbench.media.ffmpeg_bin import ffmpeg_exe
from avbench.shards import iter_samples, read_index, webdataset_urls, write_shards

SR = 16000
DUET = json.dumps(
    [
        {"label": "cello", "label_idx": 0, "boxes": [[0.1, 0.1, 0.4, 0.9]]},
        {"label": "flute", "label_idx": 1, "boxes": [[0.5, 0.2, 0.9, 0.8]]},
    ]
)


def _clip_files(root: Path, cid: str, seed: int, n_frames: int) -> dict[str, str]:
    """A fake sliced clip: centre jpg, 1 s of PCM16 noise, ``n_frames`` extra jpgs."""
    rng = np.random.default_rng(seed)
    d = root / cid
    (d / "frames").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(d / "center.jpg", quality=90)
    for k in range(n_frames):
        Image.fromarray(np.full((24, 32, 3), 10 * k, np.uint8)).save(d / "frames" / f"{k:03d}.jpg")
    sf.write(d / "audio.wav", rng.integers(-3000, 3000, SR, dtype=np.int16), SR, subtype="PCM_16")
    return {
        "audio_path": str(d / "audio.wav"),
        "frame_path": str(d / "center.jpg"),
        "frames_dir": str(d / "frames"),
    }


CLIP_IDS = [
    "-aaaaaaaaaa_000010",  # ok, starts with '-'
    "bbbbbbbbbbb_000000",  # ok, duet sources
    "ccccccccccc_000030",  # too_short
    "ddddddddddd_000000",  # decode_error -> not written
    "eeeeeeeeeee_000000",  # missing_source -> not written
    "fffffffffff_000000",  # ok
    "ggggggggggg_000000",  # ok but train split -> not in the test shards
]


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = CLIP_IDS
    manifest = pd.DataFrame(
        {
            "clip_id": ids,
            "ytid": [c[:11] for c in ids],
            "start_s": 0.0,
            "end_s": 10.0,
            "label": ["cello", "cello", "flute", "flute", "cello", "flute", "cello"],
            "label_idx": [0, 0, 1, 1, 0, 1, 0],
            "split": ["test"] * 6 + ["train"],
            "dataset": "toy",
            "url": "file:///x",
            "boxes": [
                "[[0.1, 0.2, 0.3, 0.4]]",
                "[]",
                "[[0, 0, 1, 1], [0.5, 0.5, 0.6, 0.7]]",
                "[]",
                "[]",
                "[]",
                "[]",
            ],
            "chunk": 0,
            "sources": [None, DUET, None, None, None, None, None],
        }
    )
    statuses = ["ok", "ok", "too_short", "decode_error", "missing_source", "ok", "ok"]
    rows = []
    for i, (cid, st) in enumerate(zip(ids, statuses, strict=True)):
        files = _clip_files(tmp_path / "clips", cid, i, n_frames=i % 3) if st in ("ok", "too_short") else {}
        rows.append({"clip_id": cid, "status": st, "reason": "", **files})
    status = pd.DataFrame(rows)
    return manifest, status


def _write(manifest, status, out, **kw):
    opts = {"dataset": "toy", "split": "test", "max_samples_per_shard": 2, "include_frames": True}
    return write_shards(manifest, status, out, **{**opts, **kw})


EXPECTED = ["-aaaaaaaaaa_000010", "bbbbbbbbbbb_000000", "ccccccccccc_000030", "fffffffffff_000000"]
N_FRAMES = {cid: i % 3 for i, cid in enumerate(CLIP_IDS)}


def test_round_trip(corpus, tmp_path):
    manifest, status = corpus
    out = tmp_path / "shards" / "test"
    index = _write(manifest, status, out)
    assert index == read_index(out)
    assert index["shards"] == ["toy-test-000000.tar", "toy-test-000001.tar"]
    assert sorted(p.name for p in out.iterdir()) == ["index.json", *index["shards"]]
    assert (index["n_samples"], index["shard_sizes"], index["sample_rate"]) == (4, [2, 2], SR)
    assert {"jpg", "wav", "json", "f000.jpg", "f001.jpg"} == set(index["fields"])
    assert webdataset_urls(out) == [str(out / s) for s in index["shards"]]

    samples = list(iter_samples(out))
    assert [s["key"] for s in samples] == EXPECTED  # every ok/too_short test clip, in clip_id order
    rows = status.set_index("clip_id")
    for s in samples:
        cid = s["key"]
        assert "." not in cid
        with Image.open(rows.loc[cid, "frame_path"]) as img:
            np.testing.assert_array_equal(s["image"], np.asarray(img.convert("RGB")))
        assert s["image"].dtype == np.uint8 and s["image"].shape == (24, 32, 3)
        wave, sr = sf.read(rows.loc[cid, "audio_path"], dtype="float32")
        assert s["wave"].dtype == np.float32 and s["sample_rate"] == sr == SR
        np.testing.assert_array_equal(s["wave"], wave)
        assert len(s["frames"]) == N_FRAMES[cid]
        meta = s["meta"]
        m = manifest.set_index("clip_id").loc[cid]
        assert meta["clip_id"] == cid and meta["ytid"] == cid[:11]
        assert (meta["label"], meta["label_idx"], meta["split"], meta["dataset"]) == (
            m["label"],
            m["label_idx"],
            "test",
            "toy",
        )
        assert meta["boxes"] == json.loads(m["boxes"])
        assert meta["too_short"] == (cid == "ccccccccccc_000030")

    by_key = {s["key"]: s for s in samples}
    assert by_key["bbbbbbbbbbb_000000"]["meta"]["sources"] == json.loads(DUET)
    assert by_key["ccccccccccc_000030"]["meta"]["sources"] == [
        {"label": "flute", "label_idx": 1, "boxes": [[0, 0, 1, 1], [0.5, 0.5, 0.6, 0.7]]}
    ]
    # Frames k = 0.. come back in order (frame k is filled with grey level 10 k).
    assert [int(f.mean().round()) for f in by_key["ccccccccccc_000030"]["frames"]] == [0, 10]


def test_rerun_is_byte_identical_and_tar_is_clean(corpus, tmp_path):
    manifest, status = corpus
    a = _write(manifest, status, tmp_path / "a")
    # Shuffled inputs, a stale file in the target: same bytes, stale file gone.
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "stale.tar").write_bytes(b"x")
    b = _write(manifest.sample(frac=1, random_state=1), status.sample(frac=1, random_state=2), tmp_path / "b")
    assert a == b
    for name in ["index.json", *a["shards"]]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert not (tmp_path / "b" / "stale.tar").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left
    with tarfile.open(tmp_path / "a" / a["shards"][0]) as tar:
        members = tar.getmembers()
    assert {m.mtime for m in members} == {0}
    assert all(m.name.count(".") in (1, 2) and m.name.split(".")[0] in EXPECTED for m in members)


def test_without_frames_and_extra_json(corpus, tmp_path):
    manifest, status = corpus
    index = _write(
        manifest, status, tmp_path / "s", include_frames=False, extra_json=lambda r: {"start_s": r["start_s"]}
    )
    assert set(index["fields"]) == {"jpg", "wav", "json"}
    samples = list(iter_samples(tmp_path / "s"))
    assert all(s["frames"] == [] and s["meta"]["start_s"] == 0.0 for s in samples)


def test_empty_split(corpus, tmp_path):
    manifest, status = corpus
    index = _write(manifest, status.assign(status="decode_error"), tmp_path / "e")
    assert (index["shards"], index["n_samples"]) == ([], 0)
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["index.json"]
    assert list(iter_samples(tmp_path / "e")) == []


def test_dotted_clip_id_is_rejected(corpus, tmp_path):
    manifest, status = corpus
    bad = "hhhhhhhhhhh.000000"
    manifest = pd.concat([manifest, manifest.iloc[[0]].assign(clip_id=bad)], ignore_index=True)
    status = pd.concat([status, status.iloc[[0]].assign(clip_id=bad)], ignore_index=True)
    with pytest.raises(ValueError, match="dot"):
        _write(manifest, status, tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_sliced_clip_round_trip(tmp_path):
    """Integration with the slicer: a real mp4 -> slice_chunk -> shards -> identical wav samples."""
    from avbench.media.slice import slice_chunk

    src = tmp_path / "v.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-nostdin", "-y"]
        + ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:duration=11"]
        + ["-f", "lavfi", "-i", "sine=frequency=330:sample_rate=44100:duration=11"]
        + [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(src),
        ],
        check=True,
    )
    cid = "zzzzzzzzzzz_000001"
    dl = pd.DataFrame([{"clip_id": cid, "status": "ok", "reason": "", "path": str(src), "offset_s": 1.0}])
    status = slice_chunk(dl, None, tmp_path / "clips", workers=1, frame_fps=1)
    manifest = pd.DataFrame(
        [{"clip_id": cid, "ytid": cid[:11], "label": "tone", "label_idx": 0, "split": "test", "boxes": "[]"}]
    )
    write_shards(
        manifest,
        status,
        tmp_path / "sh",
        dataset="toy",
        split="test",
        max_samples_per_shard=8,
        include_frames=True,
    )
    (sample,) = iter_samples(tmp_path / "sh")
    wave, _ = sf.read(status.loc[0, "audio_path"], dtype="float32")
    np.testing.assert_array_equal(sample["wave"], wave)
    assert sample["wave"].shape == (10 * SR,) and sample["image"].shape == (120, 160, 3)
    assert len(sample["frames"]) == 10


def test_split_membership_puts_a_clip_in_both_shard_sets(corpus, tmp_path):
    """train_list_mode=original: a test clip kept in the training list (splits ["test", "train"]) is written into
    the test and the train shards from its one sliced copy; a test-only clip is not in the train shards."""
    manifest, status = corpus
    manifest = manifest.assign(splits=[json.dumps([s]) for s in manifest["split"]])
    both = "fffffffffff_000000"
    manifest.loc[manifest["clip_id"] == both, "splits"] = json.dumps(["test", "train"])
    train = _write(manifest, status, tmp_path / "train", split="train")
    test = _write(manifest, status, tmp_path / "test", split="test")
    train_keys = [s["key"] for s in iter_samples(tmp_path / "train")]
    assert train_keys == [both, "ggggggggggg_000000"] and train["n_samples"] == 2
    assert [s["key"] for s in iter_samples(tmp_path / "test")] == EXPECTED and test["n_samples"] == 4
    assert {s["meta"]["split"] for s in iter_samples(tmp_path / "train")} == {"train"}
