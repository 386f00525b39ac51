"""Real datasets: metadata resolution and download, placed-media checks and ingestion, clip manifests.

Metadata files are named by their path relative to ``metadata_dir`` (the layout of ``shared/metadata``, e.g.
``vggss/vggss.json``). :func:`resolve_metadata` takes a file from ``metadata_dir`` when it is there, else from
``{results_dir}/metadata/<rel>``, which the ``fetch_metadata`` rule fills with :func:`fetch_metadata_file`
(official URL first, the pinned-commit GitHub copy second; sha256 verified where pinned, sidecar
``<file>.sha256.json`` recording what was fetched).

Placed media (Flickr-SoundNet, AVSBench, the VGGSound-Instruments test set): these are never downloaded.
``check_placed`` verifies the tree under the dataset's ``root`` and fails with one message naming the missing
paths and how to obtain the data. ``ingest_placed`` then muxes every placed item (a still frame + its audio)
into a small ``R/placed/{dataset}/videos/{clip_id}.mkv`` (the frame looped for ``duration_s``, the audio
window centred in the source, PCM, never padded), and the manifest points at it with a ``file://`` URL. From
there on placed and YouTube clips share ONE code path: yt-dlp ``file://`` download (taken whole, like
SynthAV), the same slice pass (centre frame at 5 s = the annotated frame; short audio flagged ``too_short``
and zero padded by the slicer), the same shards. Placed items keep their native ids as ``clip_id``
(``sample0123``, Flickr ``10000130166``, AVSBench frame ``<name>_<k>``): all are dot-free file-name-safe
strings, while YouTube datasets keep canonical ``<ytid>_<start:06d>`` ids.

One row per clip, with split membership (``avbench.manifest``: ``split`` = primary split, ``splits`` = all). A
clip that is both in a training list and in the test set of the same manifest has ``split == "test"``; under
``train_list_mode=original`` (paper parity: the published list as is) it is also a member of ``train``
(``splits == ["test", "train"]``: downloaded and sliced once, written into both shard sets), under ``clean`` it is
test only, and ``clean`` also drops every VGGSound-test and VGG-SS-test clip (Flickr: every Flickr test id) from the
training list (PROTOCOLS 1.11). The counts are logged and the effective overlap of every configured dataset is in
the leakage report (:func:`avbench.leakage.configured_leakage`).

Cross-dataset evaluation: a dataset entry with ``train_from: <other dataset>`` is evaluated with the models
trained on that dataset and has no training split of its own: its manifest keeps only its evaluation splits
(:func:`eval_only`), and its placed media are ingested for those splits only.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import json
import logging
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from avbench import io
from avbench.ids import clip_id as make_clip_id
from avbench.ids import youtube_url
from avbench.leakage import clean_train_list
from avbench.manifest import (
    UNKNOWN_LABEL,
    UNKNOWN_LABEL_IDX,
    assign_chunks,
    duet_clips,
    finalize_manifest,
    split_lists,
)

log = logging.getLogger(__name__)

REAL_SOURCES = (
    "vggsound", "vggss", "vggsound_single", "vggsound_instruments", "vggsound_music", "music", "avsbench",
    "flickr", "kinetics400",
)
PLACED_SOURCES = ("flickr", "avsbench", "vggsound_instruments")
UNLABELLED = "unlabelled"


# --- metadata registry -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetaFile:
    """Where a metadata file comes from: URLs in the order tried, and its sha256 when pinned."""

    urls: tuple[str, ...]
    sha256: str | None = None


def _gh(repo: str, branch: str, commit: str, path: str, sha256: str | None) -> MetaFile:
    # The branch URL is the official one (PROTOCOLS 1.x); the commit URL is the copy SOURCES.md was read from,
    # so it still serves the pinned bytes if the branch moves.
    base = "https://raw.githubusercontent.com"
    return MetaFile((f"{base}/{repo}/{branch}/{path}", f"{base}/{repo}/{commit}/{path}"), sha256)


_VGG = ("hche11/VGGSound", "master", "9bbc7491c054a203e53584c0065df336e1322bb7")
_LVS = ("hche11/Localizing-Visual-Sounds-the-Hard-Way", "main", "8fe8cbbf810e804cf8cc9b244bb5d77ec8aa8315")
_EZ = ("stoneMo/EZ-VSL", "main", "95ff5bff30191fed11856699a7669419fa59b356")
_SLAVC = ("stoneMo/SLAVC", "main", "05b429c6f474ca6f1070d08e1d0142948d1625bf")
_SEN = ("ardasnck/learning_to_localize_sound_source", "master", "89205e9b0af21be847d29deeaded140604e77229")
_ACL = ("swimmiing/ACL-SSL", "main", "57f4a6c3b93e03992806da483c143c8802eba21d")
_KAIST = ("kaistmm/SSLalignment", "main", "e7ae3c5518e5a4d911c49e034d906612cf922aff")
_DAVF = ("stoneMo/DeepAVFusion", "main", "2768e7f77b65c45e39e019b0b13315f0b4c4fddd")
_AVGN = ("stoneMo/AVGN", "main", "5ab8cab2a414ca87c2b7787f66ad1474679ad6f2")
_MUSIC = ("roudimit/MUSIC_dataset", "master", "6f47a09aa1dc596d4dd3eb9c194819832becabc0")
_ML = ("hxixixh/mix-and-localize", "main", "bbdd56aac2921e0b1161e745e9af3430374a6357")

# rel path -> (repo triple, path in repo, sha256) transcribed from shared/metadata/SOURCES.md
_GITHUB_FILES: dict[str, tuple[tuple[str, str, str], str, str]] = {
    "vggsound/test.csv": (_VGG, "data/test.csv", "0b2215dc3786fbb223aa06a2162491099d89cf080ac31b16bb3a72368fbaa24d"),
    "vggsound/stat.csv": (_VGG, "data/stat.csv", "981445307f3b9ebc2b0e65641daaac1359496b7a8f17208348e7fc8e2696b6d5"),
    "vggss/vggss.json": (_LVS, "metadata/vggss.json", "ae300b4a259267e6fe839970d495862edd70bfe3da63d925bcdb34054ed3b15e"),
    "vggss/vggss_test.csv": (_LVS, "metadata/vggss_test.csv", "971081929d45caf21a148a6ca968822d96e8316331d0cc0bafb1783acb4d2c35"),
    "vggss/vggss_heard_test.csv": (_EZ, "metadata/vggss_heard_test.csv", "70a01c6828e7b84531823616ebb2e32e75bbaf5e44c715fa366b61111ab33c4e"),
    "vggss/vggss_unheard_test.csv": (_EZ, "metadata/vggss_unheard_test.csv", "11883813db359df63e1a28f69bb53e1ceef7f5b8d68e0149de5792540acb9e17"),
    "vggss/ssl-alignment/ours_vggss.txt": (_KAIST, "metadata/ours_vggss.txt", "24546044696e8ea0aff172dc7acef36f84adfc7a00611c601c8ab7294ce3b6e2"),
    "vggss_extended/vggss_test_plus_silent.csv": (_SLAVC, "metadata/vggss_test_plus_silent.csv", "905a009428e16d1108e5af112d8e682dbe1702a2ed897b3d56753ff587018e4e"),
    "vggsound_subsets/vggss_10k.txt": (_EZ, "metadata/vggss_10k.txt", "9a19023b17aedc79001bbcb69ccd5c96f6af2f7b8ef1b12fa92a76050a0ae43e"),
    "vggsound_subsets/vggss_144k.txt": (_EZ, "metadata/vggss_144k.txt", "a9a02f704e8bb2d746c43860e5830e7589e9311de5bd067459484ec5bb4bd529"),
    "vggsound_subsets/vggss_heard.txt": (_EZ, "metadata/vggss_heard.txt", "db900e2df283236b3e5485ae95a4a09f0904f8da184fc7da6f1ab1d24f6c5aa2"),
    "vggsound_subsets/acl-ssl/vggss_10k.csv": (_ACL, "VGGSS/metadata/vggss_10k.csv", "35929877aa9bb38f910468ceef34ab1dc815b328c26fc4108aa9d7ab80242d9e"),
    "vggsound_subsets/acl-ssl/vggss_heard.csv": (_ACL, "VGGSS/metadata/vggss_heard.csv", "66c34ff14e5d8d9e87da9abac87d7359da4afe5ce02e44ff38dfbe18ba6d0a22"),
    "vggsound_single/vggsound_single_test.csv": (_AVGN, "metadata/vggsound_single_test.csv", "524511f56934441ad86f0cef16b1cb6bd9367c91d963adbca6240b4de30845cc"),
    "vggsound_single/vggsound_duet_test.csv": (_AVGN, "metadata/vggsound_duet_test.csv", "3e212fb1ac3f7f8d71ca6fdff81aa7a3d1e1908d98f946aa644b7d213df730a6"),
    "vggsound_instruments/vgginstruments_train.txt": (_AVGN, "metadata/vgginstruments_train.txt", "920764e927835cbabf0a1fa3faef9cc1d3a2988967513e23b7e4fafd5c1edbfa"),
    "vggsound_instruments/vgginstruments_test.csv": (_AVGN, "metadata/vgginstruments_test.csv", "93b96403745cd9c5063517bb539b753fe378b25635ab97eca28689a916d59276"),
    "vggsound_instruments/vgginstruments_multi_test.csv": (_AVGN, "metadata/vgginstruments_multi_test.csv", "1979f24434971473c5d0fb02455bc25b5b19db7e8a81c09bfd23a7a20177ead4"),
    "vggsound_instruments/deepavfusion/vgginstruments_train.txt": (_DAVF, "metadata/vgginstruments_train.txt", "62aab728a9afaaa639975e9d904f2b88cd300331794f335610d7f47a11861777"),
    "vggsound_music/vggmusic_train.txt": (_DAVF, "metadata/vggmusic_train.txt", "80335166208f69619bb99fbae7179e376b4113ecfd362525c7c7726be56823b9"),
    "vggsound_music/vggmusic_eval_ss.csv": (_DAVF, "metadata/vggmusic_eval_ss.csv", "6643a7030ddfa1997beaed418536218ecf5b8c9a736ff425ed368e31d4b086fa"),
    "music/MUSIC_solo_videos.json": (_MUSIC, "MUSIC_solo_videos.json", "cddd3e9544cac4b5e5ebd55c2707bad0eb6ad29ebff571afb70a5545d4740304"),
    "music/MUSIC21_solo_videos.json": (_MUSIC, "MUSIC21_solo_videos.json", "f3e7145e4750a2455c59ab3a8acf4475171a4d3113d0fa3a8a8a549ca3e6c461"),
    "music/MUSIC_duet_videos.json": (_MUSIC, "MUSIC_duet_videos.json", "f53c60f22d1901b88a15592b55a7e9891ae70016d08fb6f7ec7acd04091cd2e9"),
    "music/avgn/music_solo.json": (_AVGN, "metadata/music_solo.json", "beb7508129540b98fab3ceb63c62541fc4615eeaffbd05c6c9ab7a9b558e893c"),
    "music/avgn/music_duet.json": (_AVGN, "metadata/music_duet.json", "ef9dadc0146ea69cc7c41088cba04c10174b617d8a8bcdc4cce65e17e749168f"),
    "music/mix-and-localize/solo/train.csv": (_ML, "data/MUSIC/data-splits/solo/train.csv", "947bd280d9a3d26ad3c8486e2a5f2c87e259242de78eface0451367f4ee11f83"),
    "music/mix-and-localize/solo/val.csv": (_ML, "data/MUSIC/data-splits/solo/val.csv", "aa5a8507f1d5db7f9d0a5c402f5904120bfa888686a8ee447b0aa63dccc954d0"),
    "music/mix-and-localize/solo/test.csv": (_ML, "data/MUSIC/data-splits/solo/test.csv", "eeefd411dac57f4419cd80610cc9431b293088a47a1bbb5d8775d1fd839054d3"),
    "avsbench/ssl-alignment/s4_box.json": (_KAIST, "metadata/s4_box.json", "67da965929c03af6bf4709040d944b5d22daef489e0a7bb2ba3a486ac732b301"),
    "avsbench/ssl-alignment/ms3_box.json": (_KAIST, "metadata/ms3_box.json", "9453e0b0822c111cdfc2cde39d54b274cd9c08134a11815c9818bc199ea8d3e7"),
    "flickr/flickr_test.csv": (_LVS, "metadata/flickr_test.csv", "faf5465bdb991cfb7506ccadef64dfea9e9bceb47e895d0e4dbdc2a0ca622871"),
    "flickr/slavc/flickr_test.csv": (_SLAVC, "metadata/flickr_test.csv", "e5c04bd722fc73a2daafcdafe9e10068d198c5df168300db4e05aa61b4ef71ed"),
    "flickr/slavc/flickr_10k.txt": (_SLAVC, "metadata/flickr_10k.txt", "773429321cd7690710660446b4aab9157ef75fe9a1f6b788649989a8066a77b1"),
    "flickr/slavc/flickr_144k.txt": (_SLAVC, "metadata/flickr_144k.txt", "5368914670a8e41f27591a7d6818abe74132aefd199a2a3b1861aeafa2e20b99"),
    "flickr/slavc/flickr_sup_train.txt": (_SLAVC, "metadata/flickr_sup_train.txt", "af87c3a35d584d8792686fe8de5b21adaf331330b6e2b80c7d4998f60d4f9030"),
    "flickr/senocak/test_list.txt": (_SEN, "test_list.txt", "7134e3d58fffd0232cde2674a1d387c0c1e4d2844b153d894a47d1c6865567cd"),
    "flickr/senocak/supervised_test_list.txt": (_SEN, "supervised_test_list.txt", "9072744d952c5817851fa11efdd59bef69e29f9f1b0a4b908303934a70a2777e"),
    "flickr/senocak/Flickr_train_144k.txt": (_SEN, "Flickr_train_144k.txt", "1df6592386ca744ae4663a1372e493adfb1ec034bfc20b2f5b11c5ca2160e44e"),
    "flickr/ssl-alignment/flickr_test.csv": (_KAIST, "metadata/flickr_test.csv", "238dbe3d91befda692b9b8a9a1a0c2e14b1642de0801c8459adf59ae7f11f268"),
    "flickr/acl-ssl/flickr_test.csv": (_ACL, "Flickr/metadata/flickr_test.csv", "17cba7df66accd13b5b70bbf5e1ff6cd4395052acfe976b6e8287f359d7a6259"),
    "flickr/acl-ssl/flickr_10k.csv": (_ACL, "Flickr/metadata/flickr_10k.csv", "a98ac7f3eb659d250e9f8e17091691e3047f54a9e63f985488f91b1c20f93b08"),
    "flickr_extended/flickr_test_plus_silent.csv": (_SLAVC, "metadata/flickr_test_plus_silent.csv", "45a0d32b64a9ef9e567d3eaf4a4a29683cdb0f7f4e1924a0e26cde24fa298643"),
}

METADATA: dict[str, MetaFile] = {
    rel: _gh(repo, branch, commit, path, sha) for rel, ((repo, branch, commit), path, sha) in _GITHUB_FILES.items()
}
# Not in shared/ (too large) or hosted outside GitHub; no pinned checksum: the first download is recorded.
METADATA["vggsound/vggsound.csv"] = MetaFile((
    "https://www.robots.ox.ac.uk/~vgg/data/vggsound/vggsound.csv",
    "https://raw.githubusercontent.com/hche11/VGGSound/master/data/vggsound.csv",
))
METADATA["kinetics400/train.csv"] = MetaFile(("https://s3.amazonaws.com/kinetics/400/annotations/train.csv",))
METADATA["kinetics400/validate.csv"] = MetaFile(("https://s3.amazonaws.com/kinetics/400/annotations/val.csv",))
METADATA["kinetics400/test.csv"] = MetaFile(("https://s3.amazonaws.com/kinetics/400/annotations/test.csv",))


def metadata_source(rel: str, overrides: Mapping[str, Any] | None = None) -> MetaFile:
    """URLs and pinned sha256 of one metadata file; ``overrides`` is the config key ``metadata_urls``."""
    if rel not in METADATA and not (overrides and rel in overrides):
        raise KeyError(f"no download source known for metadata file {rel!r}; place it under metadata_dir")
    base = METADATA.get(rel, MetaFile(()))
    if overrides and rel in overrides:
        urls = overrides[rel]
        return MetaFile(tuple([urls] if isinstance(urls, str) else urls), base.sha256)
    return base


def resolve_metadata(rel: str, metadata_dir: str | os.PathLike | None, results_dir: str | os.PathLike) -> Path:
    """``metadata_dir/rel`` when that file exists, else the download location ``results_dir/metadata/rel``."""
    if metadata_dir:
        candidate = Path(metadata_dir) / rel
        if candidate.is_file():
            return candidate
    return Path(results_dir) / "metadata" / rel


# --- download --------------------------------------------------------------------------------------------
class FetchError(RuntimeError):
    """Every URL of a metadata file failed (network error or checksum mismatch)."""


def _count_rows(data: bytes) -> int:
    """Rows of a CSV/TXT file (a missing final newline still counts), or entries of a JSON list/mapping."""
    stripped = data.strip()
    if stripped[:1] in (b"[", b"{"):
        try:
            obj = json.loads(stripped)
            inner = obj.get("videos", obj) if isinstance(obj, dict) else obj
            return len(inner)
        except ValueError:
            pass
    return sum(1 for line in data.splitlines() if line.strip())


def fetch_metadata_file(
    name: str, urls: Iterable[str], out: str | os.PathLike, expected_sha256: str | None = None, *,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Download ``name`` to ``out`` from the first URL that answers with the expected bytes.

    Each URL is tried in order; a network error or a sha256 mismatch moves on to the next one. The file is
    written atomically together with ``<out>.sha256.json`` (``name, url, sha256, size, rows, fetched_utc,
    pinned_sha256, tried``). Raises :class:`FetchError` naming every URL and why it failed.
    """
    urls = list(urls)
    if not urls:
        raise FetchError(f"metadata file {name!r}: no URL to download it from")
    failures: list[str] = []
    for url in urls:
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "avbench-metadata-fetch"})
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http(s) URLs only)
                data = response.read()
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            failures.append(f"{url}: {exc}")
            log.warning("metadata %s: %s failed: %s", name, url, exc)
            continue
        digest = hashlib.sha256(data).hexdigest()
        if expected_sha256 and digest != expected_sha256:
            failures.append(f"{url}: sha256 {digest} != pinned {expected_sha256}")
            log.warning("metadata %s: %s has sha256 %s, expected %s", name, url, digest, expected_sha256)
            continue
        record = {
            "name": name, "url": url, "sha256": digest, "size": len(data), "rows": _count_rows(data),
            "fetched_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "pinned_sha256": expected_sha256, "tried": failures,
        }
        io.write_bytes(out, data)
        io.write_json(f"{out}.sha256.json", record)
        log.info("metadata %s: %d bytes, %d rows from %s", name, len(data), record["rows"], url)
        return record
    raise FetchError(f"could not fetch metadata file {name!r} from any of {len(urls)} URL(s):\n  "
                     + "\n  ".join(failures)
                     + "\nPlace the file by hand under metadata_dir (same relative path) or set metadata_urls.")


# --- which metadata each dataset needs -------------------------------------------------------------------
VGGSS_TRAIN_LISTS = {
    "vggss_10k": "vggsound_subsets/vggss_10k.txt",
    "vggss_144k": "vggsound_subsets/vggss_144k.txt",
    "vggss_heard": "vggsound_subsets/vggss_heard.txt",
    "acl_vggss_10k": "vggsound_subsets/acl-ssl/vggss_10k.csv",
    "acl_vggss_heard": "vggsound_subsets/acl-ssl/vggss_heard.csv",
}
VGGSS_TEST_LISTS = {
    "vggss": None,  # all 5,158 clips of vggss.json
    "vggss_heard": "vggss/vggss_heard_test.csv",
    "vggss_unheard": "vggss/vggss_unheard_test.csv",
    "ssl_alignment": "vggss/ssl-alignment/ours_vggss.txt",
}
# Extended VGG-SS (SLAVC; PROTOCOLS 1.2, 4.5). Its 379 off-screen-sound negatives (rows video == audio) are clips of
# their own, outside VGG-SS and VGGSound-test, so no test list brings them in: a dataset that evaluates the full
# VGG-SS test set (the 5,158 clips the list was built on) gets them as the extra split OFFSCREEN_SPLIT, downloaded,
# sliced and sharded like its other clips, and its evaluation scores them (avbench.evaluate.official_negatives).
VGGSS_EXTENDED_LIST = "vggss_extended/vggss_test_plus_silent.csv"
OFFSCREEN_SPLIT = "extended_offscreen"
SINGLE_TRAIN_LISTS = ("all221", "all221_trainsplit")
INSTRUMENT_TRAIN_LISTS = {
    "avgn": "vggsound_instruments/vgginstruments_train.txt",
    "deepavfusion": "vggsound_instruments/deepavfusion/vgginstruments_train.txt",
}
MUSIC_TRAIN_LISTS = {
    "solo": ("music/MUSIC_solo_videos.json",),
    "solo21": ("music/MUSIC21_solo_videos.json",),
    "solo_duet": ("music/MUSIC_solo_videos.json", "music/MUSIC_duet_videos.json"),
}
MUSIC_TEST_LISTS = ("avgn", "mix_and_localize", "sop")
FLICKR_TRAIN_LISTS = {
    "flickr_10k": "flickr/slavc/flickr_10k.txt",
    "flickr_144k": "flickr/slavc/flickr_144k.txt",
    "senocak_144k": "flickr/senocak/Flickr_train_144k.txt",
    "flickr_sup_train": "flickr/slavc/flickr_sup_train.txt",
    "acl_flickr_10k": "flickr/acl-ssl/flickr_10k.csv",
}
FLICKR_TEST_LISTS = {
    "slavc": "flickr/slavc/flickr_test.csv",
    "lvs": "flickr/flickr_test.csv",
    "senocak": "flickr/senocak/test_list.txt",
    "ssl_alignment": "flickr/ssl-alignment/flickr_test.csv",
}
FLICKR_ALL_TESTS = tuple(FLICKR_TEST_LISTS.values()) + ("flickr/acl-ssl/flickr_test.csv",)
AVSBENCH_SUBSETS = ("s4", "ms3")
KINETICS_LISTS = {"train": "kinetics400/train.csv", "validate": "kinetics400/validate.csv",
                  "test": "kinetics400/test.csv"}
# Kinetics-400 is a pre-training set here (OneAVM T4): by default it has no test split, so only the train list is
# downloaded; a test list is read only when one is configured.
KINETICS_NO_TEST = "none"
VGG_TEST_FILES = ("vggsound/test.csv", "vggss/vggss.json")  # what `clean` subtracts from VGGSound train lists

DEFAULTS: dict[str, dict[str, Any]] = {
    "vggsound": {},
    "vggss": {"train_list": "vggss_144k", "test_list": "vggss"},
    "vggsound_single": {"train_list": "all221_trainsplit", "test_list": "vggsound_single"},
    "vggsound_instruments": {"train_list": "avgn", "test_list": "vgginstruments"},
    "vggsound_music": {"train_list": "vggmusic", "test_list": "vggmusic_eval_ss"},
    "music": {"train_list": "solo", "test_list": "avgn"},
    "avsbench": {"train_list": "s4", "test_list": "s4"},
    "flickr": {"train_list": "flickr_144k", "test_list": "slavc"},
    "kinetics400": {"train_list": "train", "test_list": KINETICS_NO_TEST},
}


def _opt(cfg: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = cfg.get(key)
    if value is None:
        value = DEFAULTS.get(cfg["source"], {}).get(key, default)
    return value if value is not None else default


def _pick(table: Mapping[str, Any], value: str, key: str, source: str) -> Any:
    if value not in table:
        raise ValueError(f"dataset source {source!r}: {key} must be one of {sorted(table)}, got {value!r}")
    return table[value]


def has_offscreen_split(cfg: Mapping[str, Any]) -> bool:
    """Whether the dataset's manifest has the :data:`OFFSCREEN_SPLIT` of Extended VGG-SS: a VGG-SS dataset on the
    full test list. Subsets (heard / unheard / SSLalignment's 4,655) are not the set the list pairs up, so they keep
    counting the off-screen rows without scoring them."""
    return cfg["source"] == "vggss" and _opt(cfg, "test_list") == "vggss"


def required_metadata(cfg: Mapping[str, Any]) -> list[str]:
    """Metadata files (paths relative to ``metadata_dir``) that the manifest of this dataset reads."""
    source = cfg["source"]
    train, test = _opt(cfg, "train_list"), _opt(cfg, "test_list")
    clean = _opt(cfg, "train_list_mode", "original") == "clean"
    files: list[str] = []
    if source == "vggsound":
        files = ["vggsound/vggsound.csv"]
    elif source == "vggss":
        files = ["vggss/vggss.json"]
        rel = _pick(VGGSS_TEST_LISTS, test, "test_list", source)
        files += [rel] if rel else []
        if train in SINGLE_TRAIN_LISTS:
            files.append("vggsound/vggsound.csv")
        else:
            rel = _pick(VGGSS_TRAIN_LISTS, train, "train_list", source)
            files.append(rel)
            if not rel.endswith(".csv"):  # id-only lists take their labels from vggsound.csv
                files.append("vggsound/vggsound.csv")
        files += list(VGG_TEST_FILES) if clean else []
        files += [VGGSS_EXTENDED_LIST] if has_offscreen_split(cfg) else []
    elif source == "vggsound_single":
        _pick(dict.fromkeys(SINGLE_TRAIN_LISTS), train, "train_list", source)
        files = ["vggss/vggss.json", "vggsound_single/vggsound_single_test.csv",
                 "vggsound_single/vggsound_duet_test.csv", "vggsound/vggsound.csv"]
        files += list(VGG_TEST_FILES) if clean else []
    elif source == "vggsound_instruments":
        files = [_pick(INSTRUMENT_TRAIN_LISTS, train, "train_list", source),
                 "vggsound_instruments/vgginstruments_test.csv", "vggsound_instruments/vgginstruments_multi_test.csv"]
        files += list(VGG_TEST_FILES) if clean else []
    elif source == "vggsound_music":
        files = ["vggsound_music/vggmusic_train.txt", "vggsound_music/vggmusic_eval_ss.csv", "vggss/vggss.json"]
        files += list(VGG_TEST_FILES) if clean else []
    elif source == "music":
        files = list(_pick(MUSIC_TRAIN_LISTS, train, "train_list", source))
        _pick(dict.fromkeys(MUSIC_TEST_LISTS), test, "test_list", source)
        if test == "avgn":
            files += ["music/avgn/music_solo.json", "music/avgn/music_duet.json"]
        elif test == "mix_and_localize":
            files += ["music/mix-and-localize/solo/val.csv", "music/mix-and-localize/solo/test.csv"]
    elif source == "flickr":
        files = [_pick(FLICKR_TRAIN_LISTS, train, "train_list", source),
                 _pick(FLICKR_TEST_LISTS, test, "test_list", source)]
        files += list(FLICKR_ALL_TESTS) if clean else []
    elif source == "avsbench":
        _pick(dict.fromkeys(AVSBENCH_SUBSETS), test, "test_list", source)
        files = [f"avsbench/ssl-alignment/{test}_box.json"]
    elif source == "kinetics400":
        files = [_pick(KINETICS_LISTS, train, "train_list", source)]
        if test != KINETICS_NO_TEST:
            files.append(_pick(KINETICS_LISTS, test, "test_list", source))
    else:
        raise ValueError(f"not a real dataset source: {source!r} (one of {REAL_SOURCES})")
    return list(dict.fromkeys(files))


def list_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset's list choices with the per-source defaults filled in (for reports and table notes):
    ``train_list``, ``test_list``, ``train_list_mode``, ``train_from`` (None when it trains on itself)."""
    source = cfg["source"]
    uses_mode = source in ("vggss", "vggsound_single", "vggsound_instruments", "vggsound_music", "flickr")
    return {
        "source": source, "train_list": None if cfg.get("train_from") else _opt(cfg, "train_list"),
        "test_list": _opt(cfg, "test_list"),
        "train_list_mode": _opt(cfg, "train_list_mode", "original") if uses_mode else None,
        "train_from": cfg.get("train_from"),
    }


def manifest_splits(cfg: Mapping[str, Any]) -> tuple[str, ...]:
    """Splits a real dataset's manifest has members in (the shard sets the DAG can build): ``train`` (absent for a
    ``train_from`` dataset), ``test``, ``duet`` for MUSIC with the AVGN test list (real duet frames), and
    :data:`OFFSCREEN_SPLIT` for a VGG-SS dataset on the full test list (:func:`has_offscreen_split`)."""
    splits = () if cfg.get("train_from") else ("train",)
    if not (cfg["source"] == "kinetics400" and _opt(cfg, "test_list") == KINETICS_NO_TEST):
        splits += ("test",)
    if cfg["source"] == "music" and _opt(cfg, "test_list") == "avgn":
        splits += ("duet",)
    if has_offscreen_split(cfg):
        splits += (OFFSCREEN_SPLIT,)
    return splits


def needs_placed(cfg: Mapping[str, Any]) -> bool:
    """Whether the dataset has media that are placed by hand under ``root`` (never downloaded)."""
    return cfg["source"] in PLACED_SOURCES


# --- placed media ----------------------------------------------------------------------------------------
class PlacedDataError(FileNotFoundError):
    """A placed dataset is missing or incomplete; the message says where and how to obtain it."""


FLICKR_HELP = (
    "SoundNet-Flickr frames, audio and XML annotations are not downloadable automatically: get the archive "
    "from https://drive.google.com/open?id=1P93CTiQV71YLZCmBbZA0FvdwFxreydLt (Senocak et al.; research use only) "
    "and place it as <root>/Annotations/<id>.xml, <root>/frames/<id>.jpg, <root>/audio/<id>.wav (PROTOCOLS 1.9)."
)
INSTRUMENTS_HELP = (
    "The 446 VGGSound-Instruments test samples (frames, audio, masks) come only from the Mix-and-Localize "
    "archive at https://web.eecs.umich.edu/~ahowens/mix-localize/ ; place it as <root>/frames/sampleNNNN.jpg, "
    "<root>/audio/sampleNNNN.wav and <root>/masks/sampleNNNN.pkl (PROTOCOLS 1.5)."
)


def _missing(paths: Iterable[Path]) -> list[str]:
    return [str(p) for p in paths if not p.exists()]


def _root(dataset: str, cfg: Mapping[str, Any]) -> Path:
    root = cfg.get("root")
    if not root:
        raise PlacedDataError(f"dataset {dataset!r} ({cfg['source']}) needs placed media: set "
                              f"datasets.{dataset}.root to the folder that holds them")
    return Path(root)


def _fail(dataset: str, root: Path, missing: list[str], help_text: str) -> None:
    if missing:
        shown = "\n  ".join(missing[:10]) + (f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise PlacedDataError(f"dataset {dataset!r}: placed media incomplete under {root}; missing:\n  {shown}\n"
                              f"{help_text}")


def flickr_item_paths(root: Path, fid: str) -> dict[str, Path]:
    return {"image": root / "frames" / f"{fid}.jpg", "audio": root / "audio" / f"{fid}.wav",
            "annotation": root / "Annotations" / f"{fid}.xml"}


def instrument_item_paths(root: Path, sample: str) -> dict[str, Path]:
    return {"image": root / "frames" / f"{sample}.jpg", "audio": root / "audio" / f"{sample}.wav",
            "mask": root / "masks" / f"{sample}.pkl"}


def check_placed_tree(dataset: str, cfg: Mapping[str, Any], files: Mapping[str, str | os.PathLike]) -> dict:
    """Check the placed tree of one dataset; raise :class:`PlacedDataError` (one message: the missing paths and
    how to obtain the data) or return a summary ``{dataset, source, root, n_items, checked}``."""
    from avbench.sources import avsbench, subsets

    source = cfg["source"]
    root = _root(dataset, cfg)
    if source == "avsbench":
        subset = _opt(cfg, "test_list")
        try:
            avsbench.require_avsbench_tree(root, subset)
        except FileNotFoundError as exc:
            raise PlacedDataError(f"dataset {dataset!r}: {exc}") from None
        n_items = len(avsbench.read_avsbench_meta(root, subset))
        checked = [str(avsbench.meta_csv_path(root, subset))]
    elif source == "flickr":
        ids = flickr_test_ids_of(cfg, files)
        expected = [root / d for d in ("Annotations", "frames", "audio")]
        missing = _missing(expected)
        if not missing:  # the test items must all be there; training media are checked per item at ingest
            missing = _missing(p for fid in ids for p in flickr_item_paths(root, fid).values())
        _fail(dataset, root, missing, FLICKR_HELP)
        n_items, checked = len(ids), [str(p) for p in expected]
    elif source == "vggsound_instruments":
        test = subsets.read_instruments_test(_file(files, "vggsound_instruments/vgginstruments_test.csv"))
        expected = [root / d for d in ("frames", "audio", "masks")]
        missing = _missing(expected) or _missing(
            p for s in test["sample_id"] for p in instrument_item_paths(root, s).values())
        _fail(dataset, root, missing, INSTRUMENTS_HELP)
        n_items, checked = len(test), [str(p) for p in expected]
    else:
        raise ValueError(f"dataset {dataset!r}: source {source!r} has no placed media")
    return {"dataset": dataset, "source": source, "root": str(root.resolve()), "n_items": n_items,
            "checked": checked}


def placed_items(dataset: str, cfg: Mapping[str, Any], files: Mapping[str, str | os.PathLike]) -> pd.DataFrame:
    """Items whose media are placed: ``clip_id, image, audio`` (+ ``mask`` where the GT is a mask file)."""
    from avbench.sources import avsbench, subsets

    source = cfg["source"]
    root = _root(dataset, cfg)
    rows: list[dict[str, Any]] = []
    if source == "flickr":
        test = flickr_test_ids_of(cfg, files)
        train = _flickr_train_ids(cfg, files, test)  # [] for a train_from dataset
        for fid in dict.fromkeys([*test, *train]):  # a test id kept in the train list is ingested once
            p = flickr_item_paths(root, fid)
            rows.append({"clip_id": fid, "image": str(p["image"]), "audio": str(p["audio"]), "mask": ""})
    elif source == "vggsound_instruments":
        test = subsets.read_instruments_test(_file(files, "vggsound_instruments/vgginstruments_test.csv"))
        for sample in test["sample_id"]:
            p = instrument_item_paths(root, sample)
            rows.append({"clip_id": sample, "image": str(p["image"]), "audio": str(p["audio"]),
                         "mask": str(p["mask"])})
    elif source == "avsbench":
        subset = _opt(cfg, "test_list")
        meta = avsbench.read_avsbench_meta(root, subset)
        wanted = ("test",) if cfg.get("train_from") else ("train", "test")
        for name, split, category in zip(meta["name"], meta["split"], meta["category"], strict=True):
            if split not in wanted:
                continue
            p = avsbench.avsbench_paths(root, subset, name, split, category)
            masks = {m.stem: m for m in p["masks"]}
            for k, frame in enumerate(p["frames"], start=1):
                uid = f"{name}_{k}"
                rows.append({"clip_id": uid, "image": str(frame), "audio": str(p["audio"]),
                             "mask": str(masks.get(uid, ""))})
    else:
        raise ValueError(f"dataset {dataset!r}: source {source!r} has no placed media")
    return pd.DataFrame(rows, columns=["clip_id", "image", "audio", "mask"])


def _audio_window(audio: Path, duration_s: float) -> float:
    """Start of the ``duration_s`` window centred in the audio file (0 when shorter or unreadable)."""
    import soundfile as sf

    try:
        total = sf.info(str(audio)).duration
    except RuntimeError:
        return 0.0
    return max((total - duration_s) / 2.0, 0.0)


def mux_still(image: str | os.PathLike, audio: str | os.PathLike, out: str | os.PathLike, *,
              duration_s: float = 10.0) -> None:
    """Still frame + audio -> ``out`` (.mkv: MJPEG video looped for ``duration_s``, PCM audio, never padded)."""
    from avbench.media.ffmpeg_bin import ffmpeg_exe

    offset = _audio_window(Path(audio), duration_s)
    with io.atomic_path(out) as tmp:
        cmd = [
            ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-loop", "1", "-framerate", "5", "-t", f"{duration_s}", "-i", os.fspath(image),
            "-ss", f"{offset:.3f}", "-t", f"{duration_s}", "-i", os.fspath(audio),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "mjpeg", "-q:v", "2", "-pix_fmt", "yuvj420p",
            "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:a", "pcm_s16le", "-f", "matroska", os.fspath(tmp),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)  # list args: no shell
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg failed for {image} + {audio}: {proc.stderr.strip()[-500:]}")


def ingest_placed(items: pd.DataFrame, video_dir: str | os.PathLike, *, duration_s: float = 10.0,
                  workers: int = 2) -> pd.DataFrame:
    """Mux every placed item into ``video_dir/{clip_id}.mkv``; one status row per item, never an exception.

    Columns: ``clip_id, status (ok | cached | missing_source | error), reason, video_path, image, audio, mask``.
    """
    video_dir = Path(video_dir)
    video_dir.mkdir(parents=True, exist_ok=True)

    def one(row: dict[str, Any]) -> dict[str, Any]:
        out = video_dir / f"{row['clip_id']}.mkv"
        status, reason = "ok", ""
        missing = [p for p in (row["image"], row["audio"]) if not Path(p).is_file()]
        if out.is_file():
            status = "cached"  # media are a cache: a rerun keeps what is there
        elif missing:
            status, reason = "missing_source", f"not found: {', '.join(missing)}"
        else:
            try:
                mux_still(row["image"], row["audio"], out, duration_s=duration_s)
            except RuntimeError as exc:
                status, reason = "error", str(exc)
        return {"clip_id": row["clip_id"], "status": status, "reason": reason, "video_path": str(out.resolve()),
                "image": row["image"], "audio": row["audio"], "mask": row.get("mask", "")}

    records = items.to_dict("records")
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        rows = list(pool.map(one, records))
    return pd.DataFrame(rows, columns=["clip_id", "status", "reason", "video_path", "image", "audio", "mask"])


# --- manifests -------------------------------------------------------------------------------------------
def _file(files: Mapping[str, str | os.PathLike], rel: str) -> Path:
    if rel not in files:
        raise KeyError(f"metadata file {rel!r} was not resolved (known: {sorted(files)})")
    return Path(files[rel])


def resolve_files(cfg: Mapping[str, Any], metadata_dir: str | os.PathLike | None,
                  paths: Iterable[str | os.PathLike] | None = None) -> dict[str, Path]:
    """``{rel: path}`` for the dataset's metadata: from rule inputs (matched by their relative path) when
    given, else from ``metadata_dir``."""
    given = [Path(p) for p in (paths or [])]
    out: dict[str, Path] = {}
    for rel in required_metadata(cfg):
        match = [p for p in given if p.as_posix() == rel or p.as_posix().endswith("/" + rel)]
        if match:
            out[rel] = match[0]
        elif metadata_dir:
            out[rel] = Path(metadata_dir) / rel
        else:
            raise FileNotFoundError(f"metadata file {rel!r}: not among the rule inputs and metadata_dir is unset")
    return out


def _vggsound(files: Mapping[str, Path]) -> pd.DataFrame:
    from avbench.sources.vggsound import read_vggsound_csv

    frame = read_vggsound_csv(_file(files, "vggsound/vggsound.csv"))
    log.info("vggsound.csv: %d rows", len(frame))
    return frame


def _vgg_test_ids(files: Mapping[str, Path]) -> set[str]:
    from avbench.sources.vggsound import read_vggsound_test
    from avbench.sources.vggss import read_vggss_json

    ids = set(read_vggsound_test(_file(files, "vggsound/test.csv"))["clip_id"])
    return ids | set(read_vggss_json(_file(files, "vggss/vggss.json"))["clip_id"])


def _train_rows(train: pd.DataFrame, test_ids: set[str], mode: str, cfg: Mapping[str, Any],
                clean_ids: set[str], dataset: str) -> pd.DataFrame:
    """Apply ``train_list_mode`` to a training list.

    ``original`` keeps the published list as is, including clips that are test clips of this manifest (they become
    members of both splits in :func:`_combine`); ``clean`` drops ``clean_ids`` (by clip or by video, ``clean_by``)
    and every test clip of this manifest.
    """
    if mode not in ("original", "clean"):
        raise ValueError(f"dataset {dataset!r}: train_list_mode must be 'original' or 'clean', got {mode!r}")
    n0 = len(train)
    train = train.drop_duplicates("clip_id")
    leaked = int(train["clip_id"].isin(test_ids).sum())
    if mode == "clean":
        keep = set(clean_train_list(train["clip_id"], clean_ids, by=cfg.get("clean_by") or "clip"))
        train = train[train["clip_id"].isin(keep) & ~train["clip_id"].isin(test_ids)]
        log.info("dataset %s: train list %d rows, %d after mode=clean (%d test clips of this manifest dropped)",
                 dataset, n0, len(train), leaked)
    else:
        log.info("dataset %s: train list %d rows, %d kept (mode=original); %d of them are test clips of this "
                 "manifest and stay in both splits", dataset, n0, len(train), leaked)
    return train.assign(split="train")


def _combine(train: pd.DataFrame, test: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Training rows + evaluation rows, one row per clip. A clip in both keeps its evaluation row (label, boxes,
    URL) as primary split and gets ``splits = [<its split>, "train"]``."""
    both = set(train["clip_id"]) & set(test["clip_id"])
    if both:
        train_label = dict(zip(train["clip_id"], train["label"], strict=True))
        differ = [c for c, lab in zip(test["clip_id"], test["label"], strict=True)
                  if c in both and train_label[c] != lab]
        if differ:
            log.warning("dataset %s: %d clips in train and test carry different labels in the two lists; the "
                        "test label is kept (e.g. %s)", dataset, len(differ), differ[:3])
    test = test.copy()
    test["splits"] = [[s, "train"] if c in both else [s] for c, s in zip(test["clip_id"], test["split"], strict=True)]
    train = train[~train["clip_id"].isin(both)].copy()
    train["split"] = "train"
    train["splits"] = [["train"] for _ in range(len(train))]
    return pd.concat([train, test], ignore_index=True)


def eval_only(frame: pd.DataFrame, n_chunks: int) -> pd.DataFrame:
    """A finalized manifest without its ``train`` membership (datasets with ``train_from``): train-only clips are
    dropped, clips of several splits keep the others; chunks are reassigned and label indices recomputed over the
    labels that remain (the manifest contract: index into the sorted label list of the manifest; an
    :data:`~avbench.manifest.UNKNOWN_LABEL` clip keeps index -1)."""
    kept = [[s for s in members if s != "train"] for members in split_lists(frame)]
    mask = [bool(k) for k in kept]
    out = frame.loc[mask].copy()
    remaining = [k for k in kept if k]
    out["split"] = [k[0] for k in remaining]
    out["splits"] = [json.dumps(k) for k in remaining]
    out = out.reset_index(drop=True)
    sources = [json.loads(v) for v in out["sources"]]
    labels = sorted((set(out["label"]) | {src["label"] for entry in sources for src in entry}) - {UNKNOWN_LABEL})
    index = {label: i for i, label in enumerate(labels)}
    index[UNKNOWN_LABEL] = UNKNOWN_LABEL_IDX
    out["label_idx"] = out["label"].map(index).astype("int64")
    out["sources"] = [json.dumps([{**src, "label_idx": index[src["label"]]} for src in entry]) for entry in sources]
    out["chunk"] = assign_chunks(out, n_chunks)
    return out


def _with_labels(ids: pd.DataFrame, labels: pd.DataFrame, dataset: str) -> pd.DataFrame:
    joined = ids.drop(columns=[c for c in ("label", "split") if c in ids]).merge(
        labels[["clip_id", "label"]].drop_duplicates("clip_id"), on="clip_id", how="left")
    unlabelled = joined["label"].isna()
    if unlabelled.any():  # copies of vggsound.csv differ between years: record, do not fail
        log.warning("dataset %s: %d train ids have no vggsound.csv row and are dropped (e.g. %s)", dataset,
                    int(unlabelled.sum()), joined.loc[unlabelled, "clip_id"].head(3).tolist())
    return joined[~unlabelled]


def _youtube(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(url=frame["ytid"].map(youtube_url))


def _vggss_test(cfg: Mapping[str, Any], files: Mapping[str, Path]) -> pd.DataFrame:
    from avbench.sources import vggss

    boxes = vggss.read_vggss_json(_file(files, "vggss/vggss.json"))
    boxes = vggss.apply_bad_gt_policy(boxes, cfg.get("vggss_bad_gt") or "keep")
    rel = VGGSS_TEST_LISTS[_opt(cfg, "test_list")]
    if rel and rel.endswith("ours_vggss.txt"):
        boxes = boxes[boxes["clip_id"].isin(set(vggss.read_ms_id_list(_file(files, rel))["clip_id"]))]
    elif rel:
        boxes = boxes[boxes["clip_id"].isin(set(vggss.read_vggss_test_list(_file(files, rel))["clip_id"]))]
    return boxes[["clip_id", "ytid", "start_s", "end_s", "label", "boxes"]].assign(split="test")


def _finish(frame: pd.DataFrame, dataset: str, n_chunks: int) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    if "boxes" in frame:
        frame["boxes"] = [b if isinstance(b, list) else [] for b in frame["boxes"]]
    # UNKNOWN_LABEL is not a class: it stays out of the label list (index -1), so labelled clips keep their indices
    labels = sorted(set(frame["label"]) - {UNKNOWN_LABEL})
    return finalize_manifest(frame, dataset=dataset, n_chunks=n_chunks, labels=labels)


def _with_offscreen(frame: pd.DataFrame, files: Mapping[str, Path], dataset: str) -> pd.DataFrame:
    """Add Extended VGG-SS's off-screen-sound clips (rows ``video == audio`` of :data:`VGGSS_EXTENDED_LIST`) as
    members of :data:`OFFSCREEN_SPLIT` to a combined (not yet finalized) VGG-SS manifest frame.

    A clip that is not in the frame gets a row of its own: label :data:`~avbench.manifest.UNKNOWN_LABEL` (index -1:
    without vggsound.csv nothing names its class, and the negatives do not need one), no boxes. A clip that is
    already a training clip keeps its row and label and becomes a member of the split too. A listed off-screen clip
    that is a test clip contradicts the list (those are VGG-SS frames with their own, on-screen sound): an error
    naming the file and row.
    """
    from avbench.sources._io import clip_frame, row_error
    from avbench.sources.vggss import read_vggss_plus_silent

    path = _file(files, VGGSS_EXTENDED_LIST)
    listed = read_vggss_plus_silent(path)
    own = listed[listed["same_clip"]].drop_duplicates("video")
    members = {cid: list(m) for cid, m in zip(frame["clip_id"], frame["splits"], strict=True)}
    for cid, row in zip(own["video"], own["row"], strict=True):
        if "test" in members.get(cid, []):
            raise row_error(path, int(row), f"off-screen clip {cid!r} is a test clip of dataset {dataset!r}; "
                            "Extended VGG-SS lists only clips outside VGG-SS as off-screen negatives")
    present = own["video"].isin(members.keys())
    out = frame.copy()
    if present.any():
        shared = set(own.loc[present, "video"])
        out["splits"] = [[*m, OFFSCREEN_SPLIT] if c in shared else list(m)
                         for c, m in zip(out["clip_id"], out["splits"], strict=True)]
    new = clip_frame(own.loc[~present, "video"])
    new = new.assign(label=UNKNOWN_LABEL, split=OFFSCREEN_SPLIT, boxes=[[] for _ in range(len(new))],
                     splits=[[OFFSCREEN_SPLIT] for _ in range(len(new))])
    log.info("dataset %s: %d off-screen clips of %s in split %s (%d of them also training clips)", dataset,
             len(own), path.name, OFFSCREEN_SPLIT, int(present.sum()))
    return pd.concat([out, new], ignore_index=True)


def _vggss_manifest(dataset: str, cfg: Mapping[str, Any], files: Mapping[str, Path], n_chunks: int,
                    mode: str) -> pd.DataFrame:
    from avbench.sources import subsets
    from avbench.sources.vggss import read_labeled_clip_list

    test = _vggss_test(cfg, files)
    train_name = _opt(cfg, "train_list")
    if train_name in SINGLE_TRAIN_LISTS:
        train = subsets.vggsound_single_train(_vggsound(files), set(test["label"]), mode=train_name)
    else:
        rel = VGGSS_TRAIN_LISTS[train_name]
        if rel.endswith(".csv"):
            train = read_labeled_clip_list(_file(files, rel))
        else:
            train = _with_labels(subsets.read_clip_ids(_file(files, rel)), _vggsound(files), dataset)
    clean_ids = _vgg_test_ids(files) if mode == "clean" else set()
    train = _train_rows(train, set(test["clip_id"]), mode, cfg, clean_ids, dataset)
    frame = _combine(train, test, dataset)
    if has_offscreen_split(cfg):
        frame = _with_offscreen(frame, files, dataset)
    return _finish(_youtube(frame), dataset, n_chunks)


def _vggsound_manifest(dataset: str, files: Mapping[str, Path], n_chunks: int) -> pd.DataFrame:
    return _finish(_youtube(_vggsound(files)), dataset, n_chunks)


def _single_manifest(dataset: str, cfg: Mapping[str, Any], files: Mapping[str, Path], n_chunks: int,
                     mode: str) -> pd.DataFrame:
    from avbench.sources import subsets
    from avbench.sources.labels import to_canonical
    from avbench.sources.vggss import read_vggss_json

    boxes = read_vggss_json(_file(files, "vggss/vggss.json")).set_index("clip_id")
    test = subsets.read_vggsound_single_test(_file(files, "vggsound_single/vggsound_single_test.csv"))
    canonical = set(boxes["label"])
    test["label"] = to_canonical(test["label"], canonical, "avgn")  # AVGN underscores -> VGGSound labels
    test["boxes"] = [list(boxes["boxes"].get(c, [])) for c in test["clip_id"]]
    test = test.assign(split="test")
    train = subsets.vggsound_single_train(_vggsound(files), canonical, mode=_opt(cfg, "train_list"))
    clean_ids = _vgg_test_ids(files) if mode == "clean" else set()
    train = _train_rows(train, set(test["clip_id"]), mode, cfg, clean_ids, dataset)
    return _finish(_youtube(_combine(train, test, dataset)), dataset, n_chunks)


def _placed_urls(frame: pd.DataFrame, ingest: pd.DataFrame | None) -> pd.Series:
    videos = {} if ingest is None else dict(zip(ingest["clip_id"], ingest["video_path"], strict=True))
    return pd.Series([Path(videos[c]).as_uri() if c in videos else "" for c in frame["clip_id"]],
                     index=frame.index, dtype=object)


def _instruments_manifest(dataset: str, cfg: Mapping[str, Any], files: Mapping[str, Path], n_chunks: int,
                          mode: str, ingest: pd.DataFrame | None) -> pd.DataFrame:
    from avbench.sources import subsets

    train = subsets.read_instruments_train(_file(files, INSTRUMENT_TRAIN_LISTS[_opt(cfg, "train_list")]))
    clean_ids = _vgg_test_ids(files) if mode == "clean" else set()
    train = _youtube(_train_rows(train, set(), mode, cfg, clean_ids, dataset))
    test = subsets.read_instruments_test(_file(files, "vggsound_instruments/vgginstruments_test.csv"))
    test = pd.DataFrame({
        "clip_id": test["sample_id"], "ytid": test["sample_id"], "start_s": 0.0, "end_s": 10.0,
        "label": test["label"].fillna(UNLABELLED), "split": "test",
    })
    test["url"] = _placed_urls(test, ingest)  # GT masks: the ingest table's `mask` column
    return _finish(_combine(train, test, dataset), dataset, n_chunks)


def vggmusic_test_clips(files: Mapping[str, Path]) -> pd.DataFrame:
    """Distinct clips of ``vggmusic_eval_ss.csv`` (both sources), labelled in the train-list spelling via their
    canonical VGG-SS label (``playing violin, fiddle`` -> ``violin``), with their VGG-SS boxes."""
    from avbench.sources import subsets
    from avbench.sources.labels import instrument_label
    from avbench.sources.vggss import read_vggss_json

    pairs = subsets.read_vggmusic_eval_ss(_file(files, "vggsound_music/vggmusic_eval_ss.csv"))
    ids = list(dict.fromkeys([*pairs["source_1"], *pairs["source_2"]]))
    boxes = read_vggss_json(_file(files, "vggss/vggss.json")).set_index("clip_id")
    missing = [c for c in ids if c not in boxes.index]
    if missing:
        raise ValueError(f"vggmusic_eval_ss.csv: {len(missing)} sources are not VGG-SS clips, e.g. {missing[:3]}")
    sel = boxes.loc[ids]
    return pd.DataFrame({
        "clip_id": ids, "ytid": sel["ytid"].to_numpy(), "start_s": sel["start_s"].to_numpy(),
        "end_s": sel["end_s"].to_numpy(), "label": [instrument_label(lab) for lab in sel["label"]],
        "boxes": [list(b) for b in sel["boxes"]], "split": "test",
    })


def _music_vggsound_manifest(dataset: str, cfg: Mapping[str, Any], files: Mapping[str, Path], n_chunks: int,
                             mode: str) -> pd.DataFrame:
    from avbench.sources import subsets

    test = vggmusic_test_clips(files)
    train = subsets.read_vggmusic_train(_file(files, "vggsound_music/vggmusic_train.txt"))
    clean_ids = _vgg_test_ids(files) if mode == "clean" else set()
    train = _train_rows(train, set(test["clip_id"]), mode, cfg, clean_ids, dataset)
    return _finish(_youtube(_combine(train, test, dataset)), dataset, n_chunks)


def _first_frame_per_second(boxes: pd.DataFrame) -> pd.DataFrame:
    """AVGN annotates 4 frames per second; clip ids hold whole seconds, so keep the first frame of each second."""
    first = boxes.groupby(["ytid", "sec"])["frame"].transform("min")
    return boxes[boxes["frame"] == first]


def _music_manifest(dataset: str, cfg: Mapping[str, Any], files: Mapping[str, Path], n_chunks: int
                    ) -> pd.DataFrame:
    from avbench.sources import music

    policy = {"centre_s": 30.0, "n_clips": 1, "stride_s": 10.0, **(cfg.get("music_clip_policy") or {})}
    videos = pd.concat([music.read_music_videos_json(_file(files, rel))
                        for rel in MUSIC_TRAIN_LISTS[_opt(cfg, "train_list")]], ignore_index=True)
    videos = videos.drop_duplicates("ytid")
    test_name = _opt(cfg, "test_list")
    held_out: set[str] = set()
    parts: list[pd.DataFrame] = []
    if test_name == "avgn":
        fmt = cfg.get("music_box_format") or "xywh"
        solo = _first_frame_per_second(music.read_music_boxes(_file(files, "music/avgn/music_solo.json"), fmt))
        solo = solo.assign(start_s=(solo["sec"] - 5).clip(lower=0).astype(float))
        solo["clip_id"] = [make_clip_id(y, s) for y, s in zip(solo["ytid"], solo["start_s"], strict=True)]
        solo = solo.drop_duplicates("clip_id")  # seconds < 5 collapse onto one clip starting at 0
        parts.append(pd.DataFrame({
            "clip_id": solo["clip_id"], "ytid": solo["ytid"], "start_s": solo["start_s"],
            "end_s": solo["start_s"] + 10.0, "label": solo["label"], "boxes": [[list(b)] for b in solo["box"]],
            "split": "test",
        }))
        duet = _first_frame_per_second(music.read_music_boxes(_file(files, "music/avgn/music_duet.json"), fmt))
        duet_labels = sorted(set(duet["label"]) | set(solo["label"]) | set(videos["label"]))
        duets = duet_clips(duet, {lab: i for i, lab in enumerate(duet_labels)})
        if len(duets):
            duets = duets.drop_duplicates("clip_id")
            # label indices are recomputed by finalize_manifest; sources keep their names
            parts.append(duets)
        held_out = set(solo["ytid"]) | set(duet["ytid"])
    else:
        if test_name == "mix_and_localize":
            held = [music.read_mix_localize_split(_file(files, f"music/mix-and-localize/solo/{s}.csv"))
                    for s in ("val", "test")]
            test_ids, held_out = set(held[1]["ytid"]), set(held[0]["ytid"]) | set(held[1]["ytid"])
        else:  # sop: per class the first video is val, the second test (Sound-of-Pixels / Qian convention)
            order = videos.groupby("label", sort=False)["ytid"].agg(list)
            test_ids = {ids[1] for ids in order if len(ids) > 1}
            held_out = test_ids | {ids[0] for ids in order}
        test_videos = videos[videos["ytid"].isin(test_ids)]
        parts.append(music.music_clips(test_videos, **policy).drop(columns="clip_index").assign(split="test"))
    train = music.music_clips(videos[~videos["ytid"].isin(held_out)], **policy).drop(columns="clip_index")
    frame = pd.concat([train.assign(split="train"), *parts], ignore_index=True)
    frame = frame.drop_duplicates("clip_id", keep="last")  # a clip both cut for training and annotated: test
    labels = sorted(set(frame["label"]) | {s["label"] for ss in frame.get("sources", pd.Series(dtype=object))
                                           if isinstance(ss, list) for s in ss})
    frame = _youtube(frame.reset_index(drop=True))
    frame["boxes"] = [b if isinstance(b, list) else [] for b in frame.get("boxes", [None] * len(frame))]
    index = {lab: i for i, lab in enumerate(labels)}
    if "sources" in frame:
        frame["sources"] = [
            [{**s, "label_idx": index[s["label"]]} for s in ss] if isinstance(ss, list)
            else [{"label": lab, "label_idx": index[lab], "boxes": b}]
            for ss, lab, b in zip(frame["sources"], frame["label"], frame["boxes"], strict=True)
        ]
    return finalize_manifest(frame, dataset=dataset, n_chunks=n_chunks, labels=labels)


def flickr_test_ids_of(cfg: Mapping[str, Any], files: Mapping[str, Path]) -> list[str]:
    from avbench.sources import flickr

    ids = flickr.read_flickr_list(_file(files, FLICKR_TEST_LISTS[_opt(cfg, "test_list")]))["flickr_id"]
    return flickr.flickr_test_ids(ids, cfg.get("flickr_test") or "249")


def _flickr_train_ids(cfg: Mapping[str, Any], files: Mapping[str, Path], test: list[str]) -> list[str]:
    """The Flickr training ids under ``train_list_mode`` (``original`` keeps test ids that are in the list: they
    become members of both splits; ``clean`` drops every Flickr test id); none for a ``train_from`` dataset."""
    from avbench.sources import flickr

    if cfg.get("train_from"):
        return []
    ids = list(dict.fromkeys(flickr.read_flickr_list(
        _file(files, FLICKR_TRAIN_LISTS[_opt(cfg, "train_list")]))["flickr_id"]))
    mode = _opt(cfg, "train_list_mode", "original")
    if mode not in ("original", "clean"):
        raise ValueError(f"dataset source flickr: train_list_mode must be 'original' or 'clean', got {mode!r}")
    if mode == "clean":
        all_test: list[str] = []
        for rel in FLICKR_ALL_TESTS:
            all_test += list(flickr.read_flickr_list(_file(files, rel))["flickr_id"])
        test_set = set(test)
        ids = [i for i in clean_train_list(ids, flickr.flickr_test_ids(all_test, "250_fixed")) if i not in test_set]
    return ids


def _flickr_manifest(dataset: str, cfg: Mapping[str, Any], files: Mapping[str, Path], n_chunks: int,
                     ingest: pd.DataFrame | None) -> pd.DataFrame:
    from avbench.sources.flickr import SRC_SIZE, parse_flickr_xml

    test = flickr_test_ids_of(cfg, files)
    train_ids = _flickr_train_ids(cfg, files, test)
    root = Path(cfg["root"]) if cfg.get("root") else None
    boxes: list[list[list[float]]] = []
    for fid in test:
        xml = flickr_item_paths(root, fid)["annotation"] if root else None
        # every annotator's box, normalised by the 256 px frame: gt.consensus_map(boxes x 256, 256) rebuilds the GT
        raw = parse_flickr_xml(xml) if xml is not None and xml.is_file() else []
        boxes.append([[v / SRC_SIZE for v in box] for box in raw])
    common = {"start_s": 0.0, "end_s": 10.0, "label": UNLABELLED}
    test_rows = pd.DataFrame({"clip_id": test, "ytid": test, **common, "split": "test", "boxes": boxes})
    train = pd.DataFrame({"clip_id": train_ids, "ytid": train_ids, **common, "split": "train",
                          "boxes": [[] for _ in train_ids]})
    n_both = len(set(train_ids) & set(test))
    log.info("dataset %s: %d Flickr train ids (%d of them test ids kept in both splits), %d test ids",
             dataset, len(train_ids), n_both, len(test))
    frame = _combine(train, test_rows, dataset)
    frame["url"] = _placed_urls(frame, ingest)
    return _finish(frame, dataset, n_chunks)


def _avsbench_manifest(dataset: str, cfg: Mapping[str, Any], files: Mapping[str, Path], n_chunks: int,
                       ingest: pd.DataFrame | None) -> pd.DataFrame:
    from avbench.sources import avsbench

    subset = _opt(cfg, "test_list")
    root = _root(dataset, cfg)
    meta = avsbench.read_avsbench_meta(root, subset)
    box_table = avsbench.read_ssl_alignment_json(_file(files, f"avsbench/ssl-alignment/{subset}_box.json"))
    box_of = {f"{n}_{k}": b for n, k, b in zip(box_table["name"], box_table["k"], box_table["box"], strict=True)}
    rows = []
    for name, split, category in zip(meta["name"], meta["split"], meta["category"], strict=True):
        if split not in ("train", "test"):
            continue
        for k in range(1, avsbench.FRAMES_PER_VIDEO + 1):
            uid = f"{name}_{k}"
            box = box_of.get(uid)
            # SSLalignment boxes are pixel xyxy on 224 px; an all-zero box is an empty mask
            norm = [[v / 224.0 for v in box]] if box and any(box) else []
            rows.append({"clip_id": uid, "ytid": name[:11], "start_s": float(k - 1), "end_s": float(k),
                         "label": category or UNLABELLED, "split": split, "boxes": norm})
    frame = pd.DataFrame(rows)
    frame["url"] = _placed_urls(frame, ingest)
    return _finish(frame, dataset, n_chunks)


def _kinetics_manifest(dataset: str, cfg: Mapping[str, Any], files: Mapping[str, Path], n_chunks: int
                       ) -> pd.DataFrame:
    from avbench.sources.kinetics import read_kinetics_csv

    train_name, test_name = _opt(cfg, "train_list"), _opt(cfg, "test_list")
    train = read_kinetics_csv(_file(files, KINETICS_LISTS[train_name]), expect_split=train_name)
    train = train.assign(split="train").drop_duplicates("clip_id")
    if test_name == KINETICS_NO_TEST:  # pre-training only: the validation clips are never downloaded
        return _finish(_youtube(train.reset_index(drop=True)), dataset, n_chunks)
    test = read_kinetics_csv(_file(files, KINETICS_LISTS[test_name]), expect_split=test_name).assign(split="test")
    train = train[~train["clip_id"].isin(set(test["clip_id"]))]
    return _finish(_youtube(pd.concat([train, test.drop_duplicates("clip_id")], ignore_index=True)),
                   dataset, n_chunks)


def real_manifest(
    dataset: str, dataset_cfg: Mapping[str, Any], *, metadata_dir: str | os.PathLike | None, n_chunks: int,
    files: Iterable[str | os.PathLike] | Mapping[str, str | os.PathLike] | None = None,
    ingest: str | os.PathLike | pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Clip manifest (ARCHITECTURE "Clip manifest") of one real dataset.

    ``files``: the rule's metadata inputs (paths whose tail is the relative metadata path) or a ``{rel: path}``
    mapping; missing ones are taken from ``metadata_dir``. ``ingest``: the ``ingest_placed`` status table of a
    placed dataset (its ``video_path`` becomes the ``file://`` URL of each placed item).
    """
    cfg = dict(dataset_cfg)
    if isinstance(files, Mapping):
        resolved = {rel: Path(p) for rel, p in files.items()}
        resolved = {**resolve_files(cfg, metadata_dir, resolved.values()), **resolved}
    else:
        resolved = resolve_files(cfg, metadata_dir, files)
    table = pd.read_parquet(ingest) if isinstance(ingest, (str, os.PathLike)) else ingest
    frame = _source_manifest(dataset, cfg, resolved, n_chunks, table)
    if cfg.get("train_from"):
        n_before = len(frame)
        frame = eval_only(frame, n_chunks)
        log.info("dataset %s: train_from %s, so no train split here: %d of %d clips kept", dataset,
                 cfg["train_from"], len(frame), n_before)
    return frame


def _source_manifest(dataset: str, cfg: Mapping[str, Any], resolved: Mapping[str, Path], n_chunks: int,
                     table: pd.DataFrame | None) -> pd.DataFrame:
    mode = _opt(cfg, "train_list_mode", "original")
    source = cfg["source"]
    if source == "vggss":
        return _vggss_manifest(dataset, cfg, resolved, n_chunks, mode)
    if source == "vggsound":
        return _vggsound_manifest(dataset, resolved, n_chunks)
    if source == "vggsound_single":
        return _single_manifest(dataset, cfg, resolved, n_chunks, mode)
    if source == "vggsound_instruments":
        return _instruments_manifest(dataset, cfg, resolved, n_chunks, mode, table)
    if source == "vggsound_music":
        return _music_vggsound_manifest(dataset, cfg, resolved, n_chunks, mode)
    if source == "music":
        return _music_manifest(dataset, cfg, resolved, n_chunks)
    if source == "flickr":
        return _flickr_manifest(dataset, cfg, resolved, n_chunks, table)
    if source == "avsbench":
        return _avsbench_manifest(dataset, cfg, resolved, n_chunks, table)
    if source == "kinetics400":
        return _kinetics_manifest(dataset, cfg, resolved, n_chunks)
    raise ValueError(f"dataset {dataset!r}: not a real dataset source: {source!r}")


# --- official multi-source / separation pair sets --------------------------------------------------------
PAIR_COLUMNS = ["pair_id", "id_a", "cls_a", "id_b", "cls_b", "seed", "boxes_a", "boxes_b", "sep_type"]


def official_pairs(dataset: str, dataset_cfg: Mapping[str, Any], files: Mapping[str, Path],
                   manifest: pd.DataFrame) -> pd.DataFrame:
    """The published pair set of a dataset in the mixtures layout ``separate`` (PROTOCOLS 5.1/5.5): AVGN
    VGGSound-Duet, VGGSound-Instruments multi test, VGGSound-Music ``eval_ss``. Labels and boxes come from the
    manifest (so they use its label space); ``seed`` is -1 (not generated)."""
    from avbench.sources import subsets

    source = dataset_cfg["source"]
    if source == "vggsound_single":
        raw = subsets.read_vggsound_duet_test(_file(files, "vggsound_single/vggsound_duet_test.csv"))
        ida, idb, sep = raw["id_a"], raw["id_b"], ["" for _ in range(len(raw))]
    elif source == "vggsound_instruments":
        raw = subsets.read_instruments_multi_test(_file(files, "vggsound_instruments/vgginstruments_multi_test.csv"))
        ida, idb, sep = raw["sample_a"], raw["sample_b"], ["" for _ in range(len(raw))]
    elif source == "vggsound_music":
        raw = subsets.read_vggmusic_eval_ss(_file(files, "vggsound_music/vggmusic_eval_ss.csv"))
        ida, idb, sep = raw["source_1"], raw["source_2"], list(raw["sep_type"])
    else:
        return pd.DataFrame(columns=PAIR_COLUMNS)
    rows = manifest.set_index("clip_id")
    missing = sorted((set(ida) | set(idb)) - set(rows.index))
    if missing:
        raise ValueError(f"dataset {dataset!r}: {len(missing)} pair members are not in the manifest: {missing[:3]}")
    return pd.DataFrame({
        "pair_id": range(len(ida)), "id_a": list(ida), "cls_a": rows.loc[list(ida), "label"].to_numpy(),
        "id_b": list(idb), "cls_b": rows.loc[list(idb), "label"].to_numpy(), "seed": -1,
        "boxes_a": rows.loc[list(ida), "boxes"].to_numpy(), "boxes_b": rows.loc[list(idb), "boxes"].to_numpy(),
        "sep_type": sep,
    })[PAIR_COLUMNS]


def has_official_pairs(cfg: Mapping[str, Any]) -> bool:
    return cfg["source"] in ("vggsound_single", "vggsound_instruments", "vggsound_music")


# --- leakage ---------------------------------------------------------------------------------------------
def leakage_files() -> list[str]:
    """Metadata read by :func:`avbench.leakage.build_leakage_report` (relative paths)."""
    from avbench import leakage

    return [*leakage.VGGSOUND_TRAIN.values(), "vggsound/test.csv", "vggss/vggss_test.csv",
            *leakage.FLICKR_TRAIN.values(), *leakage.FLICKR_TEST_FILES]


def leakage_report_from(files: Iterable[str | os.PathLike], workdir: str | os.PathLike, *,
                        manifests: Mapping[str, str | os.PathLike] | None = None,
                        dataset_cfgs: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """Leakage report from resolved files that may live in two roots (metadata_dir and the download folder):
    they are linked into one ``workdir`` tree with the standard layout first.

    With ``manifests`` (dataset key -> manifest path) and their ``dataset_cfgs`` the report also has the
    ``configured`` scope (:func:`avbench.leakage.configured_leakage`); the frame then has
    :data:`avbench.leakage.FULL_COLUMNS`, else the published-list columns only.
    """
    from avbench.leakage import build_leakage_report, configured_leakage, full_report

    work = Path(workdir)
    given = [Path(p) for p in files]
    for rel in leakage_files():
        match = [p for p in given if p.as_posix().endswith("/" + rel) or p.as_posix() == rel]
        if not match:
            raise FileNotFoundError(f"leakage report: metadata file {rel!r} is not among the inputs")
        link = work / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(match[0].resolve())
    published = build_leakage_report(work)
    if manifests is None:
        return published
    cfgs = dict(dataset_cfgs or {})
    missing = sorted(set(manifests) - set(cfgs))
    if missing:
        raise KeyError(f"leakage report: no dataset config for manifests of {missing}")
    frames = {d: pd.read_parquet(p) for d, p in manifests.items()}
    configured = configured_leakage(frames, {d: list_settings(cfgs[d]) for d in frames})
    return full_report(published, configured)


def summary_counts(frame: pd.DataFrame) -> dict[str, Any]:
    """Small JSON-able summary of a manifest (for logs)."""
    from avbench.manifest import split_counts

    return {"n_clips": int(len(frame)), "splits": split_counts(frame),
            "n_labels": int(frame["label"].nunique()),
            "n_with_boxes": int((frame["boxes"] != "[]").sum()) if "boxes" in frame else 0}
