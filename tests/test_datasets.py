"""Real-dataset manifests on the real metadata, placed-media checks, metadata fetch, leakage report."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avbench import datasets
from avbench.manifest import MANIFEST_COLUMNS, UNKNOWN_LABEL, UNKNOWN_LABEL_IDX
from avbench.sources.subsets import read_clip_ids
from avbench.sources.vggsound import read_vggsound_test
from avbench.sources.vggss import read_labeled_clip_list

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AVBENCH_SHARED") or REPO.parent / "shared")
META = SHARED / "metadata"



@pytest.fixture(autouse=True)
def _require_shared_metadata() -> None:
    # The real metadata files are fixtures of this suite: their absence is a failure, never a skip.
    if not (META / "vggss" / "vggss.json").is_file():
        pytest.fail(f"shared metadata not found at {META} (set AVBENCH_SHARED to the shared/ folder)")


def _link_tree(root: Path, rels: list[str]) -> Path:
    """A metadata_dir with some shared files linked in (the tests add their own small files next to them)."""
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(META / rel)
    return root


def _check_contract(frame: pd.DataFrame, n_chunks: int) -> None:
    assert list(frame.columns) == MANIFEST_COLUMNS
    assert frame["clip_id"].is_unique
    assert frame["chunk"].between(0, n_chunks - 1).all()
    # label_idx indexes the sorted labels; a clip of unknown class (off-screen negatives) is -1, outside that list
    index = {k: i for i, k in enumerate(sorted(set(frame["label"]) - {UNKNOWN_LABEL}))}
    index[UNKNOWN_LABEL] = UNKNOWN_LABEL_IDX
    assert (frame["label_idx"] == frame["label"].map(index)).all()


# --- YouTube datasets ------------------------------------------------------------------------------------
def test_vggss_test_split_is_the_5158_boxed_clips() -> None:
    frame = datasets.real_manifest("vggss", {"source": "vggss", "train_list": "acl_vggss_10k"},
                                   metadata_dir=META, n_chunks=8)
    _check_contract(frame, 8)
    test = frame[frame["split"] == "test"]
    assert len(test) == 5158
    assert (test["boxes"].map(json.loads).map(len) > 0).all()
    assert test["url"].str.startswith("https://www.youtube.com/watch?v=").all()
    train = frame[frame["split"] == "train"]
    assert not set(train["clip_id"]) & set(test["clip_id"])  # one row per clip: a primary split each
    assert 0 < len(train) <= 10000


def test_vggss_10k_labels_from_vggsound_csv_and_clean_mode(tmp_path: Path) -> None:
    md = _link_tree(tmp_path, ["vggss/vggss.json", "vggsound/test.csv", "vggsound_subsets/vggss_10k.txt",
                               datasets.VGGSS_EXTENDED_LIST])
    # A small vggsound.csv: labels of the 10k ids known from the ACL-SSL 10k list (7,222) or from test.csv (787).
    acl = read_labeled_clip_list(META / "vggsound_subsets/acl-ssl/vggss_10k.csv").set_index("clip_id")["label"]
    test_labels = read_vggsound_test(META / "vggsound/test.csv").set_index("clip_id")["label"]
    known = {**acl.to_dict(), **test_labels.to_dict()}
    ids = read_clip_ids(META / "vggsound_subsets/vggss_10k.txt")["clip_id"]
    labelled = [c for c in ids if c in known]
    rows = pd.DataFrame({"ytid": [c[:11] for c in labelled], "start": [int(c[12:]) for c in labelled],
                         "label": [known[c] for c in labelled],
                         "split": ["test" if c in test_labels.index else "train" for c in labelled]})
    rows.to_csv(md / "vggsound/vggsound.csv", header=False, index=False)

    cfg = {"source": "vggss", "train_list": "vggss_10k"}
    original = datasets.real_manifest("v", cfg, metadata_dir=md, n_chunks=4)
    clean = datasets.real_manifest("v", {**cfg, "train_list_mode": "clean"}, metadata_dir=md, n_chunks=4)
    vggss_ids = set(original.loc[original["split"] == "test", "clip_id"])
    vggsound_test = set(read_vggsound_test(META / "vggsound/test.csv")["clip_id"])
    train_o = set(original.loc[original["split"] == "train", "clip_id"])
    train_c = set(clean.loc[clean["split"] == "train", "clip_id"])
    assert train_o == set(labelled) - vggss_ids  # ids without a vggsound.csv row are dropped, test wins
    assert train_c == set(labelled) - vggss_ids - vggsound_test
    assert len(train_o - train_c) == 787 - 238 and not train_c & vggsound_test  # PROTOCOLS 1.11 overlaps


@pytest.fixture(scope="module")
def vgg144k_metadata(tmp_path_factory) -> Path:
    """A metadata_dir with the real VGGSound-144k list, vggss.json and test.csv, and a vggsound.csv that labels the
    144k ids known from the ACL-SSL lists and test.csv (the full vggsound.csv is not in shared/)."""
    md = _link_tree(tmp_path_factory.mktemp("md144k"),
                    ["vggss/vggss.json", "vggsound/test.csv", "vggsound_subsets/vggss_144k.txt",
                     datasets.VGGSS_EXTENDED_LIST])
    known: dict[str, str] = {}
    for rel in ("vggsound_subsets/acl-ssl/vggss_heard.csv", "vggsound_subsets/acl-ssl/vggss_10k.csv"):
        known.update(read_labeled_clip_list(META / rel).set_index("clip_id")["label"].to_dict())
    test_labels = read_vggsound_test(META / "vggsound/test.csv").set_index("clip_id")["label"]
    known.update(test_labels.to_dict())
    pd.DataFrame({"ytid": [c[:11] for c in known], "start": [int(c[12:]) for c in known],
                  "label": list(known.values()),
                  "split": ["test" if c in test_labels.index else "train" for c in known]}
                 ).to_csv(md / "vggsound/vggsound.csv", header=False, index=False)
    return md


def test_original_keeps_the_3709_vggss_test_clips_of_144k_in_train(vgg144k_metadata: Path) -> None:
    """configs/senocak.yaml's `vggss`: under `original` the VGG-SS test clips of VGGSound-144k are members of both
    splits (one row, primary split test), under `clean` they are test only (PROTOCOLS 1.11: 3,709 clips)."""
    import yaml

    from avbench.manifest import in_split, split_counts

    cfg = yaml.safe_load((REPO / "configs" / "senocak.yaml").read_text())["datasets"]["vggss"]
    assert cfg["train_list_mode"] == "original" and cfg["train_list"] == "vggss_144k"
    vggss = set(read_clip_ids(META / "vggss/vggss_test.csv")["clip_id"])
    in_144k = set(read_clip_ids(META / "vggsound_subsets/vggss_144k.txt")["clip_id"])
    vggsound_test = set(read_vggsound_test(META / "vggsound/test.csv")["clip_id"])

    original = datasets.real_manifest("vggss", cfg, metadata_dir=vgg144k_metadata, n_chunks=8)
    _check_contract(original, 8)
    train = set(original.loc[in_split(original, "train"), "clip_id"])
    test = set(original.loc[in_split(original, "test"), "clip_id"])
    assert test == vggss and len(train & test) == len(vggss & in_144k) == 3709
    leaked = original[original["clip_id"].isin(train & test)]
    assert (leaked["split"] == "test").all() and (leaked["splits"] == json.dumps(["test", "train"])).all()
    assert (leaked["boxes"] != "[]").all()  # the test row (with its boxes) is the one kept
    assert split_counts(original)["train&test"] == 3709
    assert train <= in_144k and len(train & vggsound_test) == len(in_144k & vggsound_test)  # list kept as is

    clean = datasets.real_manifest("vggss", {**cfg, "train_list_mode": "clean"}, metadata_dir=vgg144k_metadata,
                                   n_chunks=8)
    _check_contract(clean, 8)
    train_c = set(clean.loc[in_split(clean, "train"), "clip_id"])
    assert set(clean.loc[in_split(clean, "test"), "clip_id"]) == vggss
    assert not train_c & vggss and not train_c & vggsound_test
    assert train_c == train - vggsound_test - vggss and split_counts(clean)["train&test"] == 0
    assert (clean["splits"].map(json.loads).map(len) == 1).all()


def test_train_from_entry_keeps_only_its_test_split(vgg144k_metadata: Path) -> None:
    import yaml

    from avbench.manifest import in_split

    cfg = yaml.safe_load((REPO / "configs" / "senocak.yaml").read_text())["datasets"]["vggss_unheard"]
    assert cfg["train_from"] == "vggss_heard"
    md = _link_tree(vgg144k_metadata, ["vggss/vggss_unheard_test.csv"])
    frame = datasets.real_manifest("vggss_unheard", cfg, metadata_dir=md, n_chunks=4)
    _check_contract(frame, 4)
    assert (frame["split"] == "test").all() and len(frame) == 2575 and not in_split(frame, "train").any()
    assert sorted(frame["chunk"].unique()) == [0, 1, 2, 3]
    assert datasets.manifest_splits(cfg) == ("test",)
    assert datasets.list_settings(cfg)["train_list"] is None


def test_vggss_heard_test_list() -> None:
    cfg = {"source": "vggss", "train_list": "acl_vggss_10k", "test_list": "vggss_unheard"}
    frame = datasets.real_manifest("vggss_unheard", cfg, metadata_dir=META, n_chunks=2)
    assert (frame["split"] == "test").sum() == 2575


# --- Extended VGG-SS: the off-screen clips are a split of the full-VGG-SS manifest ----------------------------
OFFSCREEN = datasets.OFFSCREEN_SPLIT


def _listed_offscreen(path: Path) -> list[str]:
    """Off-screen rows (video == audio) of an Extended VGG-SS list, read with the csv module, not the project's
    reader."""
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        return [r["video"].strip() for r in csv.DictReader(handle) if r["video"].strip() == r["audio"].strip()]


def test_full_vggss_manifest_has_the_listed_offscreen_clips_in_their_own_split(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from avbench.ids import parse_clip_id, youtube_url
    from avbench.manifest import in_split, split_counts

    listed = _listed_offscreen(META / datasets.VGGSS_EXTENDED_LIST)
    assert len(listed) == len(set(listed)) == 379  # PROTOCOLS 1.2
    cfg = {"source": "vggss", "train_list": "acl_vggss_10k"}
    assert datasets.manifest_splits(cfg) == ("train", "test", OFFSCREEN)
    assert datasets.VGGSS_EXTENDED_LIST in datasets.required_metadata(cfg)
    frame = datasets.real_manifest("vggss", cfg, metadata_dir=META, n_chunks=8)
    _check_contract(frame, 8)
    off = frame[in_split(frame, OFFSCREEN)]
    assert sorted(off["clip_id"]) == sorted(listed) and split_counts(frame)[OFFSCREEN] == len(listed)
    assert (off["split"] == OFFSCREEN).all() and (off["splits"] == json.dumps([OFFSCREEN])).all()
    assert (off["label"] == UNKNOWN_LABEL).all() and (off["label_idx"] == UNKNOWN_LABEL_IDX).all()
    assert (off["boxes"] == "[]").all()
    for cid, ytid, start, end, url in zip(off["clip_id"], off["ytid"], off["start_s"], off["end_s"], off["url"],
                                          strict=True):
        assert parse_clip_id(cid) == (ytid, int(start)) and end == start + 10.0 and url == youtube_url(ytid)
    assert sorted(off["chunk"].unique()) == list(range(8))  # spread over the download / slice chunks
    assert not in_split(frame, "test")[in_split(frame, OFFSCREEN)].any()

    # every other clip is exactly as in the manifest without the split: same clips, labels, label indices
    monkeypatch.setattr(datasets, "has_offscreen_split", lambda cfg: False)
    before = datasets.real_manifest("vggss", cfg, metadata_dir=META, n_chunks=8)
    assert not in_split(before, OFFSCREEN).any() and len(frame) == len(before) + len(listed)
    rest = frame[~in_split(frame, OFFSCREEN)].set_index("clip_id")
    before = before.set_index("clip_id")
    assert sorted(rest.index) == sorted(before.index)
    columns = ["label", "label_idx", "split", "splits", "boxes", "sources", "url"]
    pd.testing.assert_frame_equal(rest.loc[before.index, columns], before[columns])
    monkeypatch.undo()
    # the heard / unheard / SSLalignment subsets are not the set the list pairs up: no off-screen split
    for test_list in ("vggss_heard", "vggss_unheard", "ssl_alignment"):
        subset = {**cfg, "test_list": test_list}
        assert OFFSCREEN not in datasets.manifest_splits(subset)
        assert datasets.VGGSS_EXTENDED_LIST not in datasets.required_metadata(subset)


def test_offscreen_clip_of_a_training_list_keeps_its_row_and_a_test_clip_is_an_error(tmp_path: Path) -> None:
    from avbench.manifest import in_split
    from avbench.sources._io import MetadataError

    md = _link_tree(tmp_path / "md", ["vggss/vggss.json", "vggsound_subsets/acl-ssl/vggss_10k.csv"])
    test_ids = read_clip_ids(META / "vggss/vggss_test.csv")["clip_id"].tolist()
    train = read_labeled_clip_list(META / "vggsound_subsets/acl-ssl/vggss_10k.csv")
    train = train[~train["clip_id"].isin(set(test_ids))]
    train_id, train_label = train["clip_id"].iloc[0], train["label"].iloc[0]
    listed = md / datasets.VGGSS_EXTENDED_LIST
    listed.parent.mkdir(parents=True)
    new_id = "newclip0000_000010"
    listed.write_text(f"video,audio,label\r\n{test_ids[0]},{test_ids[1]},non-sounding\r\n"
                      f"{train_id},{train_id},non-sounding\r\n{new_id},{new_id},non-sounding\r\n")
    cfg = {"source": "vggss", "train_list": "acl_vggss_10k"}
    frame = datasets.real_manifest("v", cfg, metadata_dir=md, n_chunks=4)
    _check_contract(frame, 4)
    rows = frame.set_index("clip_id")
    assert sorted(frame.loc[in_split(frame, OFFSCREEN), "clip_id"]) == sorted([train_id, new_id])
    # the training clip keeps its one row, its label and its primary split, and is also an off-screen member
    assert rows.loc[train_id, "splits"] == json.dumps(["train", OFFSCREEN]) and rows.loc[train_id, "split"] == "train"
    assert rows.loc[train_id, "label"] == train_label and rows.loc[train_id, "label_idx"] >= 0
    assert rows.loc[new_id, "label_idx"] == UNKNOWN_LABEL_IDX and rows.loc[new_id, "split"] == OFFSCREEN
    # train_from (evaluation only): the split stays, the unknown clip keeps -1 when indices are recomputed
    evaluated = datasets.real_manifest("v", {**cfg, "train_from": "other"}, metadata_dir=md, n_chunks=4)
    _check_contract(evaluated, 4)
    assert not in_split(evaluated, "train").any()
    assert sorted(evaluated.loc[in_split(evaluated, OFFSCREEN), "clip_id"]) == sorted([train_id, new_id])
    assert evaluated.set_index("clip_id").loc[new_id, "label_idx"] == UNKNOWN_LABEL_IDX
    # a VGG-SS test clip listed as off-screen contradicts the list: the error names the file and the row
    listed.write_text(f"video,audio,label\r\n{test_ids[0]},{test_ids[1]},non-sounding\r\n"
                      f"{test_ids[2]},{test_ids[2]},non-sounding\r\n")
    with pytest.raises(MetadataError, match=rf"vggss_test_plus_silent.csv row 3: off-screen clip '{test_ids[2]}' "
                                            r"is a test clip of dataset 'v'"):
        datasets.real_manifest("v", cfg, metadata_dir=md, n_chunks=4)


def test_vggsound_single_labels_train_reconstruction_and_duet_pairs(tmp_path: Path) -> None:
    md = _link_tree(tmp_path, ["vggss/vggss.json", "vggsound_single/vggsound_single_test.csv",
                               "vggsound_single/vggsound_duet_test.csv"])
    (md / "vggsound").mkdir()
    (md / "vggsound/vggsound.csv").write_text(  # 221-class train row, test-split row, a class outside VGG-SS
        '--9O4XZOge4,30,"playing violin, fiddle",train\nzpWuikVorYg,32,elk bugling,test\n'
        "aaaaaaaaaaa,10,this is not a vggss class,train\n")
    cfg = {"source": "vggsound_single"}
    frame = datasets.real_manifest("vggsound_single", cfg, metadata_dir=md, n_chunks=4)
    _check_contract(frame, 4)
    test = frame[frame["split"] == "test"]
    assert len(test) == 5158 and "playing violin, fiddle" in set(test["label"])  # AVGN spelling mapped back
    assert frame.loc[frame["split"] == "train", "clip_id"].tolist() == ["--9O4XZOge4_000030"]
    files = datasets.resolve_files(cfg, md)
    pairs = datasets.official_pairs("vggsound_single", cfg, files, frame)
    assert len(pairs) == 5158 and int((pairs["cls_a"] == pairs["cls_b"]).sum()) == 22


def test_vggsound_music_eval_clips_in_train_label_space() -> None:
    cfg = {"source": "vggsound_music"}
    frame = datasets.real_manifest("vggsound_music", cfg, metadata_dir=META, n_chunks=4)
    test, train = frame[frame["split"] == "test"], frame[frame["split"] == "train"]
    assert len(test) == 1201 and (test["boxes"] != "[]").all()
    assert set(test["label"]) <= set(train["label"]) and frame["label"].nunique() == 49
    pairs = datasets.official_pairs("vggsound_music", cfg, datasets.resolve_files(cfg, META), frame)
    assert pairs["sep_type"].value_counts().to_dict() == {"Easy": 910, "Hard": 291}


def test_official_pairs_stage_writes_each_layout(tmp_path: Path) -> None:
    """The official_pairs rule writes the eval_ss pairs as pairs/<ds>/<layout>.parquet, the file name evaluation
    reads as the layout (concat_lr boxes shifted into the 224x448 canvas, like the seeded mixtures)."""
    from avbench.stages import official_pairs

    cfg = {"source": "vggsound_music"}
    manifest = tmp_path / "clips.parquet"
    datasets.real_manifest("vggsound_music", cfg, metadata_dir=META, n_chunks=2).to_parquet(manifest)
    metadata = [str(META / rel) for rel in datasets.required_metadata(cfg)]
    out = {}
    for layout in ("separate", "concat_lr"):
        path = tmp_path / "pairs" / f"{layout}.parquet"
        official_pairs(manifest=str(manifest), metadata=metadata, pairs=str(path), dataset_cfg=cfg,
                       wildcards={"dataset": "vggsound_music", "layout": layout})
        out[layout] = pd.read_parquet(path)
    sep, cat = out["separate"], out["concat_lr"]
    assert len(sep) == len(cat) == 1201 and set(sep["layout"]) == {"separate"} and set(cat["canvas"]) == {"224x448"}
    box_s, box_c = json.loads(sep["boxes_b"].iloc[0])[0], json.loads(cat["boxes_b"].iloc[0])[0]
    assert box_c == pytest.approx([(box_s[0] + 1) / 2, box_s[1], (box_s[2] + 1) / 2, box_s[3]])


def test_music_avgn_boxes_duets_and_disjoint_videos() -> None:
    cfg = {"source": "music", "train_list": "solo_duet", "test_list": "avgn"}
    frame = datasets.real_manifest("music", cfg, metadata_dir=META, n_chunks=4)
    _check_contract(frame, 4)
    test, duet, train = (frame[frame["split"] == s] for s in ("test", "duet", "train"))
    assert len(test) > 0 and (test["boxes"].map(json.loads).map(len) == 1).all()
    assert (duet["sources"].map(json.loads).map(len) == 2).all()
    assert not set(train["ytid"]) & (set(test["ytid"]) | set(duet["ytid"]))
    box = json.loads(test["boxes"].iloc[0])[0]
    assert box[2] > box[0] and box[3] > box[1]  # xywh decoded to xyxy


def test_unknown_list_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="train_list must be one of"):
        datasets.required_metadata({"source": "vggss", "train_list": "vggss_999k"})


# --- placed media ----------------------------------------------------------------------------------------
def test_placed_check_names_missing_paths_and_how_to_get_them(tmp_path: Path) -> None:
    root = tmp_path / "flickr"
    cfg = {"source": "flickr", "root": str(root), "train_list": "flickr_10k", "test_list": "slavc"}
    files = datasets.resolve_files(cfg, META)
    with pytest.raises(datasets.PlacedDataError) as err:
        datasets.check_placed_tree("flickr", cfg, files)
    assert str(root / "Annotations") in str(err.value) and "drive.google.com" in str(err.value)

    avs = {"source": "avsbench", "root": str(tmp_path / "avs"), "test_list": "s4"}
    with pytest.raises(datasets.PlacedDataError, match="s4_meta_data.csv") as err:
        datasets.check_placed_tree("avsbench_s4", avs, datasets.resolve_files(avs, META))
    assert "forms.gle" in str(err.value)

    ins = {"source": "vggsound_instruments", "root": str(tmp_path / "ins")}
    (tmp_path / "ins" / "frames").mkdir(parents=True)
    with pytest.raises(datasets.PlacedDataError, match="masks") as err:
        datasets.check_placed_tree("ins", ins, datasets.resolve_files(ins, META))
    assert "mix-localize" in str(err.value)

    with pytest.raises(datasets.PlacedDataError, match="root"):
        datasets.check_placed_tree("x", {"source": "flickr"}, files)


def _fake_flickr(tmp_path: Path) -> tuple[Path, Path]:
    from PIL import Image

    md, root = tmp_path / "md", tmp_path / "root"
    (md / "flickr/slavc").mkdir(parents=True)
    (md / "flickr/slavc/flickr_test.csv").write_text("1000000001,1\r\n")
    (md / "flickr/slavc/flickr_10k.txt").write_text("2000000001\n1000000001\n")
    for sub in ("Annotations", "frames", "audio"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    import soundfile as sf

    for fid in ("1000000001", "2000000001"):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "frames" / f"{fid}.jpg")
        sf.write(root / "audio" / f"{fid}.wav", 0.1 * np.sin(np.arange(16000 * 12) / 9.0), 16000)
    boxes = "".join(f"<bbox><i>{i}</i><a>32</a><b>64</b><c>160</c><d>192</d></bbox>" for i in range(3))
    (root / "Annotations" / "1000000001.xml").write_text(f"<annotation>{boxes}</annotation>")
    return md, root


def test_placed_flickr_flows_through_download_and_slice(tmp_path: Path) -> None:
    """check_placed -> ingest_placed -> manifest run as rules; the manifest's file:// rows then go through the
    same download / slice / shard functions as every other dataset."""
    from avbench.media.download import DownloadOptions, download_chunk
    from avbench.media.slice import run_slice
    from avbench.shards import write_shards

    md, root = _fake_flickr(tmp_path)
    (tmp_path / "cfg.yaml").write_text(json.dumps({
        "metadata_dir": str(md), "n_chunks": 1, "benchmarks": ["flk_localization"],
        "datasets": {"flk": {"source": "flickr", "train_list": "flickr_10k", "test_list": "slavc",
                             "root": str(root)}},
    }))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(tmp_path / "cfg.yaml"), "--cores", "1", "results/manifests/flk/clips.parquet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = tmp_path / "results"
    assert json.loads((res / "placed/flk/check.json").read_text())["n_items"] == 1
    assert "rule ingest_placed" in proc.stdout + proc.stderr
    manifest_path = res / "manifests/flk/clips.parquet"
    manifest = pd.read_parquet(manifest_path).set_index("clip_id")
    assert manifest.loc["1000000001", "split"] == "test" and manifest.loc["2000000001", "split"] == "train"
    # the test id is also in flickr_10k: train_list_mode=original keeps it in the training split as well
    assert json.loads(manifest.loc["1000000001", "splits"]) == ["test", "train"]
    ingested = pd.read_parquet(res / "placed/flk/ingest.parquet")
    assert sorted(ingested["clip_id"]) == ["1000000001", "2000000001"]  # each placed item muxed once
    assert manifest.loc["1000000001", "url"].startswith("file://")
    assert len(json.loads(manifest.loc["1000000001", "boxes"])) == 3  # every annotator's box, /256

    download_chunk(manifest_path, 0, res / "media/raw", res / "download.parquet", sections=True,
                   options=DownloadOptions.from_config({"retries": 0}))
    assert set(pd.read_parquet(res / "download.parquet")["status"]) == {"ok"}
    sliced = run_slice(res / "download.parquet", manifest_path, 0, res / "media/clips", res / "slice.parquet",
                       workers=1)
    sliced = sliced.set_index("clip_id")
    assert sliced.loc["1000000001", "status"] == "ok" and sliced.loc["1000000001", "width"] == 64
    index = write_shards(pd.read_parquet(manifest_path).query("split == 'test'"), sliced.reset_index(),
                         res / "shards", dataset="flk", split="test", max_samples_per_shard=8, include_frames=False)
    assert index["n_samples"] == 1
    from avbench.manifest import in_split

    full = pd.read_parquet(manifest_path)
    train_index = write_shards(full[in_split(full, "train")], sliced.reset_index(), res / "shards_train",
                               dataset="flk", split="train", max_samples_per_shard=8, include_frames=False)
    assert train_index["n_samples"] == 2


def test_flickr_clean_and_train_from_drop_test_ids_from_training(tmp_path: Path) -> None:
    md, root = _fake_flickr(tmp_path)
    for rel in datasets.FLICKR_ALL_TESTS:  # clean subtracts every Flickr test list
        if not (md / rel).exists():
            (md / rel).parent.mkdir(parents=True, exist_ok=True)
            (md / rel).write_text("1000000001\n")
    base = {"source": "flickr", "train_list": "flickr_10k", "test_list": "slavc", "root": str(root)}
    clean = datasets.real_manifest("flk", {**base, "train_list_mode": "clean"}, metadata_dir=md, n_chunks=1)
    assert clean.set_index("clip_id")["splits"].map(json.loads).to_dict() == {
        "1000000001": ["test"], "2000000001": ["train"]}
    files = datasets.resolve_files(base, md)
    cross = {**base, "train_from": "other"}
    assert list(datasets.placed_items("flk", cross, files)["clip_id"]) == ["1000000001"]  # test media only
    frame = datasets.real_manifest("flk", cross, metadata_dir=md, n_chunks=1)
    assert list(frame["clip_id"]) == ["1000000001"] and frame["splits"].tolist() == ['["test"]']


# --- metadata fetch --------------------------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"not found")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_falls_back_and_records_sidecar(server: str, tmp_path: Path) -> None:
    body = b'--9O4XZOge4,30,"female speech, woman speaking",train\r\nzpWuikVorYg,32,elk bugling,test'
    _Handler.files = {"/mirror/vggsound.csv": body}
    out = tmp_path / "vggsound" / "vggsound.csv"
    urls = [f"{server}/official/vggsound.csv", f"{server}/mirror/vggsound.csv"]
    record = datasets.fetch_metadata_file("vggsound/vggsound.csv", urls, out,
                                          expected_sha256=hashlib.sha256(body).hexdigest())
    assert out.read_bytes() == body
    sidecar = json.loads(Path(f"{out}.sha256.json").read_text())
    assert sidecar == record and sidecar["url"] == urls[1] and sidecar["rows"] == 2
    assert sidecar["size"] == len(body) and "404" in sidecar["tried"][0]


def test_fetch_checksum_mismatch_names_every_url(server: str, tmp_path: Path) -> None:
    _Handler.files = {"/a/vggss.json": b"[]", "/b/vggss.json": b"[1]"}
    urls = [f"{server}/a/vggss.json", f"{server}/b/vggss.json"]
    out = tmp_path / "vggss.json"
    with pytest.raises(datasets.FetchError) as err:
        datasets.fetch_metadata_file("vggss/vggss.json", urls, out,
                                     expected_sha256=datasets.METADATA["vggss/vggss.json"].sha256)
    assert all(u in str(err.value) for u in urls) and "ae300b4a" in str(err.value)
    assert not out.exists() and not Path(f"{out}.sha256.json").exists()


def test_metadata_sources_resolution_and_overrides(tmp_path: Path) -> None:
    src = datasets.metadata_source("vggsound/vggsound.csv")
    assert src.urls[0].startswith("https://www.robots.ox.ac.uk/") and "hche11/VGGSound" in src.urls[1]
    assert datasets.metadata_source("vggss/vggss.json").sha256.startswith("ae300b4a")
    assert datasets.metadata_source("vggss/vggss.json", {"vggss/vggss.json": "http://x/y"}).urls == ("http://x/y",)
    assert datasets.resolve_metadata("vggss/vggss.json", META, "res") == META / "vggss/vggss.json"
    assert datasets.resolve_metadata("vggsound/vggsound.csv", META, "res") == Path("res/metadata/vggsound/vggsound.csv")


# --- leakage report --------------------------------------------------------------------------------------
def test_leakage_report_stage_from_two_roots(tmp_path: Path) -> None:
    from avbench.stages import leakage_report

    # tiny stand-ins for every standard list, half of them in a second ("downloaded") root
    test_clip, flickr_test = "zpWuikVorYg_000032", "10000130166"
    files = []
    for i, rel in enumerate(datasets.leakage_files()):
        path = (tmp_path / ("downloaded" if i % 2 else "metadata_dir")) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.startswith("flickr"):
            path.write_text(f"{flickr_test},1\n" if "test" in rel else f"{flickr_test}\n20000000001\n")
        elif rel == "vggsound/test.csv":
            path.write_text(f"{test_clip}.mp4,elk bugling\r\n")
        elif rel == "vggss/vggss_test.csv":
            path.write_text(f"{test_clip}\r\n")
        else:
            path.write_text(f"{test_clip},elk bugling\nAAAAAAAAAAA_000010,elk bugling\n")
        files.append(str(path))
    csv, md = tmp_path / "reports/leakage.csv", tmp_path / "reports/leakage.md"
    # one configured dataset: its manifest keeps a test clip in the training split (train_list_mode=original)
    manifest = pd.DataFrame({"clip_id": [test_clip, "AAAAAAAAAAA_000010"], "ytid": [test_clip[:11], "AAAAAAAAAAA"],
                             "split": ["test", "train"], "splits": ['["test", "train"]', '["train"]']})
    manifest.to_parquet(tmp_path / "clips.parquet")
    cfg = {"source": "vggss", "train_list": "vggss_144k", "train_list_mode": "original"}
    leakage_report(metadata=files, csv=str(csv), md=str(md), workdir=str(tmp_path / "work"),
                   manifest_of={"vgg": str(tmp_path / "clips.parquet")}, dataset_cfgs={"vgg": cfg})
    full = pd.read_csv(csv, keep_default_na=False)
    report = full[full["scope"] == "published"].set_index(["train", "test"])
    assert report.loc[("vggss_144k", "vggsound_test"), "clip_overlap"] == 1
    assert report.loc[("flickr_144k", "flickr_test"), "clip_overlap"] == 1
    assert len(report) == 2 * 8 + 5
    configured = full[full["scope"] == "configured"].set_index("dataset")
    assert configured.loc["vgg", "train"] == "vgg:train [vggss_144k]" and configured.loc["vgg", "test"] == "vgg:test [vggss]"
    assert configured.loc["vgg", "clip_overlap"] == 1 and configured.loc["vgg", "train_list_mode"] == "original"
    assert md.read_text().startswith("# Train/test leakage")


def test_kinetics_is_pretraining_only_and_reads_the_train_split(tmp_path: Path) -> None:
    """Kinetics-400 pre-trains OneAVM (T4): its manifest is the train split only (no validation clips to download),
    and a list whose rows are not `split=train` is refused as the training list, naming the row."""
    md = _link_tree(tmp_path / "md", ["kinetics400/validate.csv"])
    header = "label,youtube_id,time_start,time_end,split,is_cc\n"
    (md / "kinetics400" / "train.csv").write_text(
        header + "abseiling,--07WQ2iBlw,1,11,train,0\nabseiling,-0Vd2DeRuBs,30,40,train,1\n")
    cfg = {"source": "kinetics400"}
    assert datasets.required_metadata(cfg) == ["kinetics400/train.csv"]
    assert datasets.manifest_splits(cfg) == ("train",)
    frame = datasets.real_manifest("kinetics400", cfg, metadata_dir=md, n_chunks=2)
    assert sorted(frame["clip_id"]) == ["--07WQ2iBlw_000001", "-0Vd2DeRuBs_000030"]
    assert set(frame["split"]) == {"train"}
    # the oneavm preset downloads the train list only
    import yaml

    preset = yaml.safe_load((REPO / "configs" / "oneavm.yaml").read_text())["datasets"]["kinetics400"]
    assert datasets.required_metadata(preset) == ["kinetics400/train.csv"]
    # the validation csv placed as train.csv: every row says split=validate
    (md / "kinetics400" / "train.csv").unlink()
    (md / "kinetics400" / "train.csv").symlink_to(META / "kinetics400" / "validate.csv")
    with pytest.raises(ValueError, match=r"train\.csv row 2: split 'validate' in a train list"):
        datasets.real_manifest("kinetics400", cfg, metadata_dir=md, n_chunks=2)
    # an explicitly configured test list still works (validation clips become the test split)
    (md / "kinetics400" / "train.csv").unlink()
    (md / "kinetics400" / "train.csv").write_text(header + "abseiling,zzzzzzzzzz0,1,11,train,0\n")
    both = datasets.real_manifest("kinetics400", {**cfg, "test_list": "validate"}, metadata_dir=md, n_chunks=2)
    assert set(both["split"]) == {"train", "test"} and (both["split"] == "test").sum() == 17778
