"""avbench.media.download: offline tests (file:// and a loopback HTTP server with byte ranges)."""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from avbench.media import download as dl
from avbench.media.download import (
    STATUS_COLUMNS,
    DownloadOptions,
    classify_error,
    download_chunk,
    download_clips,
    media_duration,
)
from avbench.media.ffmpeg_bin import ffmpeg_exe

FAST = DownloadOptions(
    retries=1, ytdlp_retries=0, backoff_s=0.0, rate_limit_backoff_s=0.0, socket_timeout=10.0, max_workers=2
)
FRAME = 0.04  # one frame at 25 fps


def _make_mp4(path: Path, seconds: float, *, faststart: bool) -> Path:
    """160x120 testsrc2 + 440 Hz sine, H.264 (keyframe every 1 s) + AAC."""
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-nostdin",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size=160x120:rate=25:duration={seconds}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate=16000:duration={seconds}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "25",
        "-keyint_min",
        "25",
        "-sc_threshold",
        "0",
        "-c:a",
        "aac",
        "-b:a",
        "32k",
        "-shortest",
    ]
    if faststart:
        cmd += ["-movflags", "+faststart"]
    subprocess.run([*cmd, os.fspath(path)], check=True)
    return path


@pytest.fixture(scope="session")
def media_src(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("download_src")
    return {
        "short": _make_mp4(root / "short.mp4", 12, faststart=True),
        # moov atom at the end: a reader must seek (HTTP Range) past the media data to find the index
        "long": _make_mp4(root / "long.mp4", 18, faststart=False),
    }


# ------------------------------------------------------------------------------------ loopback HTTP server
class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Static files with single ``Range: bytes=a-b`` support (206/416), which http.server lacks."""

    protocol_version = "HTTP/1.1"
    root: Path
    seen: list[tuple[str, str | None]]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        rng = self.headers.get("Range")
        self.seen.append((self.command, rng))
        path = self.root / self.path.split("?", 1)[0].lstrip("/")
        if not path.is_file() or path.parent != self.root:
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        size = len(data)
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip()) if rng else None
        if match and (match[1] or match[2]):
            if match[1]:
                first = int(match[1])
                last = min(int(match[2]), size - 1) if match[2] else size - 1
            else:  # suffix range: the last N bytes
                first, last = max(size - int(match[2]), 0), size - 1
            if first >= size or first > last:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
            payload = data[first : last + 1]
        else:
            self.send_response(200)
            payload = data
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            # clients (the generic extractor sniffing the first bytes) stop reading once they have enough
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # resets by clients that stop reading early are normal here


@pytest.fixture(scope="module")
def http_server(media_src: dict[str, Path]) -> Iterator[tuple[str, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (_RangeHandler,), {"root": media_src["long"].parent, "seen": seen})
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _rows(*items: tuple[str, str, float, float]) -> pd.DataFrame:
    return pd.DataFrame(items, columns=["clip_id", "url", "start_s", "end_s"])


# ------------------------------------------------------------------------------------------- taxonomy
@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable", ("unavailable", False)),
        (
            "ERROR: [youtube] abcdefghijk: Video unavailable. This video has been removed by the uploader",
            ("unavailable", False),
        ),
        (
            "ERROR: [youtube] abcdefghijk: Video unavailable. This video is no longer available because the "
            "YouTube account associated with this video has been terminated.",
            ("unavailable", False),
        ),
        (
            "ERROR: [youtube] abcdefghijk: This video has been removed for violating YouTube's Terms of Service",
            ("unavailable", False),
        ),
        (
            "ERROR: [generic] Unable to download webpage: HTTP Error 404: Not Found (caused by "
            "<HTTPError 404: Not Found>)",
            ("unavailable", False),
        ),
        (
            "ERROR: [generic] nope: Unable to download webpage: [Errno 2] No such file or directory: "
            "'/data/synthav/nope.mp4'",
            ("unavailable", False),
        ),
        (
            "ERROR: [youtube] abcdefghijk: Private video. Sign in if you've been granted access to this video. "
            "Use --cookies-from-browser or --cookies for the authentication.",
            ("private", False),
        ),
        (
            "ERROR: [youtube] abcdefghijk: Join this channel to get access to members-only content like this "
            "video, and other exclusive perks.",
            ("private", False),
        ),
        (
            "ERROR: [youtube] abcdefghijk: Sign in to confirm your age. This video may be inappropriate for "
            "some users. Use --cookies-from-browser or --cookies for the authentication.",
            ("age_restricted", False),
        ),
        (
            "ERROR: [youtube] abcdefghijk: The uploader has not made this video available in your country. "
            "This video is available in Japan. You might want to use a VPN or a proxy server (with --proxy) "
            "to workaround.",
            ("geo_restricted", False),
        ),
        (
            "ERROR: [vimeo] 12345: This video is not available from your location due to geo restriction",
            ("geo_restricted", False),
        ),
        (
            "ERROR: [youtube] abcdefghijk: Sign in to confirm you\u2019re not a bot. Use --cookies-from-browser "
            "or --cookies for the authentication.",
            ("rate_limited", True),
        ),
        (
            "ERROR: [youtube] abcdefghijk: Sign in to confirm you're not a bot. This helps protect our community.",
            ("rate_limited", True),
        ),
        (
            "ERROR: [youtube] abcdefghijk: Video unavailable. This content isn't available, try again later. The "
            "current session has been rate-limited by YouTube for up to an hour.",
            ("rate_limited", True),
        ),
        ("ERROR: unable to download video data: HTTP Error 429: Too Many Requests", ("rate_limited", True)),
        (
            "ERROR: [youtube] abcdefghijk: Unable to download API page: <urlopen error _ssl.c:990: The handshake "
            "operation timed out> (caused by TransportError('_ssl.c:990: The handshake operation timed out'))",
            ("error", True),
        ),
        ("ERROR: unable to download video data: HTTP Error 503: Service Unavailable", ("error", True)),
        (
            "ERROR: [download] Got error: ('Connection aborted.', ConnectionResetError(104, "
            "'Connection reset by peer'))",
            ("error", True),
        ),
        (
            "ERROR: [youtube] abcdefghijk: Requested format is not available. Use --list-formats for a list of "
            "available formats",
            ("error", False),
        ),
        ("ERROR: Postprocessing: Conversion failed!", ("error", False)),
        ("", ("error", False)),
    ],
)
def test_classify_error(message: str, expected: tuple[str, bool]) -> None:
    assert classify_error(message) == expected


def test_status_schema_empty_and_invalid_rows(tmp_path: Path) -> None:
    empty = download_clips(_rows(), tmp_path, sections=True, options=FAST)
    assert list(empty.columns) == list(STATUS_COLUMNS)
    assert empty.dtypes.astype(str).to_dict() == STATUS_COLUMNS
    bad = download_clips(
        _rows(("../escape", "file:///x.mp4", 0.0, 10.0), ("okid_000000", "file:///x.mp4", 5.0, 5.0)),
        tmp_path,
        sections=False,
        options=FAST,
    )
    assert bad["status"].tolist() == ["error", "error"]
    assert "safe file name" in bad.loc[0, "reason"] and "time range" in bad.loc[1, "reason"]
    assert bad.dtypes.astype(str).to_dict() == STATUS_COLUMNS


# ------------------------------------------------------------------------------------------- file:// path
def test_file_url_whole_download_and_rerun(
    media_src: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = media_src["short"].as_uri()
    rows = _rows(("synthav0001_000002", url, 2.0, 12.0), ("missing0001_000000", url + ".gone", 0.0, 10.0))
    # sections=True, but yt-dlp cannot cut file:// URLs: the whole file is kept and offset_s says where
    status = download_clips(rows, tmp_path, sections=True, options=FAST)
    assert list(status.columns) == list(STATUS_COLUMNS)
    assert status.dtypes.astype(str).to_dict() == STATUS_COLUMNS
    ok, missing = status.iloc[0], status.iloc[1]
    assert ok["status"] == "ok" and ok["reason"] == "" and ok["attempts"] == 1
    assert ok["offset_s"] == 2.0
    path = Path(ok["path"])
    assert path == tmp_path / f"{dl.media_key(url, None)}.mp4"  # named by what was fetched, not by the clip
    assert path.read_bytes() == media_src["short"].read_bytes()
    assert abs(media_duration(path) - 12.0) <= FRAME
    assert missing["status"] == "unavailable" and "No such file" in missing["reason"]
    assert missing["path"] == "" and missing["attempts"] == 1  # not transient: no retry
    assert not ok["reused"] and not missing["reused"]
    assert not list((tmp_path / dl.PARTIAL_DIR).iterdir())  # every attempt's staging folder is gone

    # Rerun: the finished clip is not fetched again, only the failure is retried.
    mtime = path.stat().st_mtime_ns
    fetched: list[str] = []
    real_fetch = dl._fetch_once
    monkeypatch.setattr(
        dl, "_fetch_once", lambda url, stage, cid, *a: fetched.append(cid) or real_fetch(url, stage, cid, *a)
    )
    again = download_clips(rows, tmp_path, sections=True, options=FAST)
    assert fetched == [dl.media_key(url + ".gone", None)]
    assert again.loc[0, ["status", "attempts", "reason", "reused"]].tolist() == ["ok", 0, "cached", True]
    assert again.loc[1, "status"] == "unavailable" and not again.loc[1, "reused"]
    assert again.loc[0, "offset_s"] == 2.0 and path.stat().st_mtime_ns == mtime
    # sidecar keeps the offset even when the mode changes
    assert download_clips(rows[:1], tmp_path, sections=False, options=FAST).loc[0, "offset_s"] == 2.0


def test_partial_files_are_not_done(media_src: dict[str, Path], tmp_path: Path) -> None:
    cid = "partial0001_000000"
    url = media_src["short"].as_uri()
    key = dl.media_key(url, None)
    (tmp_path / f"{key}.mp4.part").write_bytes(b"\0" * 100)  # yt-dlp partial name
    (tmp_path / f".{key}.mp4.tmp123").write_bytes(b"\0" * 100)  # avbench.io temp name
    stage = tmp_path / dl.PARTIAL_DIR / f"{key}.killedjob"
    stage.mkdir(parents=True)
    (stage / f"{key}.mp4").write_bytes(b"truncated")  # attempt of a killed job
    (tmp_path / f"{key}.webm").write_bytes(b"")  # empty final name: not a finished download
    status = download_clips(_rows((cid, url, 0.0, 10.0)), tmp_path, sections=False, options=FAST)
    assert status.loc[0, "status"] == "ok" and status.loc[0, "attempts"] == 1 and not status.loc[0, "reused"]
    assert Path(status.loc[0, "path"]).read_bytes() == media_src["short"].read_bytes()
    assert not (tmp_path / f"{key}.webm").exists()  # empty leftover removed under the key's lock
    assert not stage.exists()  # so is the killed job's staging folder


def test_clips_of_one_url_share_one_download(
    media_src: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = media_src["short"].as_uri()
    calls: list[str] = []
    real_fetch = dl._fetch_once
    monkeypatch.setattr(
        dl, "_fetch_once", lambda u, stage, cid, *a: calls.append(cid) or real_fetch(u, stage, cid, *a)
    )
    status = download_clips(
        _rows(("sharedvid01_000000", url, 0.0, 10.0), ("sharedvid01_000001", url, 1.0, 11.0)),
        tmp_path,
        sections=False,
        options=FAST,
    )
    assert calls == [dl.media_key(url, None)]
    assert status["status"].tolist() == ["ok", "ok"] and status["offset_s"].tolist() == [0.0, 1.0]
    assert status["path"].nunique() == 1  # one whole file; each clip's offset says where it starts


def test_transient_failures_retry_then_stop(
    media_src: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yt_dlp

    real_fetch = dl._fetch_once
    failures = {
        "flaky000001_000000": ["ERROR: unable to download video data: HTTP Error 503: Service Unavailable"],
        "privat00001_000000": ["ERROR: [youtube] privat00001: Private video. Sign in"] * 5,
        "botchk00001_000000": ["ERROR: [youtube] x: Sign in to confirm you\u2019re not a bot"] * 5,
    }

    def fake_fetch(url: str, stage: Path, name: str, section: object, options: DownloadOptions) -> Path:
        cid = url.rsplit("/", 1)[-1]  # `name` is the store key; the URL names the clip
        if failures.get(cid):
            raise yt_dlp.utils.DownloadError(failures[cid].pop(0))
        return real_fetch(media_src["short"].as_uri(), stage, name, None, options)  # file:// cannot be cut

    monkeypatch.setattr(dl, "_fetch_once", fake_fetch)
    # one URL per clip so each is its own section task; the fake never lets yt-dlp see these URLs
    rows = _rows(*((cid, f"https://example.invalid/{cid}", 0.0, 10.0) for cid in failures))
    status = download_clips(rows, tmp_path, sections=True, options=FAST).set_index("clip_id")
    assert status.loc["flaky000001_000000", ["status", "attempts"]].tolist() == ["ok", 2]
    assert status.loc["privat00001_000000", ["status", "attempts"]].tolist() == ["private", 1]
    assert status.loc["botchk00001_000000", ["status", "attempts"]].tolist() == [
        "rate_limited",
        2,
    ]  # 1 + retries


def test_download_chunk_writes_status(media_src: dict[str, Path], tmp_path: Path) -> None:
    url = media_src["short"].as_uri()
    manifest = pd.DataFrame(
        {
            "clip_id": ["chunkaa0001_000000", "chunkbb0001_000000"],
            "url": [url, url + ".gone"],
            "start_s": [0.0, 0.0],
            "end_s": [10.0, 10.0],
            "chunk": [0, 1],
            "label": ["x", "y"],
        }
    )
    manifest.to_parquet(tmp_path / "clips.parquet", index=False)
    out = tmp_path / "status" / "chunk001.parquet"
    returned = download_chunk(
        tmp_path / "clips.parquet", 1, tmp_path / "media", out, sections=False, options=FAST
    )
    written = pd.read_parquet(out)
    pd.testing.assert_frame_equal(written, returned)
    assert written["clip_id"].tolist() == ["chunkbb0001_000000"] and written.loc[0, "status"] == "unavailable"


# ------------------------------------------------------------------------------------------- HTTP sections
def test_http_section_download_is_exact(http_server: tuple[str, list], tmp_path: Path) -> None:
    """Exercises yt-dlp's generic extractor (direct .mp4 link) + its ffmpeg downloader: ffmpeg reads the URL
    with ``-ss 3.0 -t 10.0`` and re-encodes (force_keyframes_at_cuts), seeking by HTTP Range requests."""
    base, seen = http_server
    seen.clear()
    status = download_clips(
        _rows(("httpsec0001_000003", f"{base}/long.mp4", 3.0, 13.0)), tmp_path, sections=True, options=FAST
    )
    row = status.iloc[0]
    assert row["status"] == "ok", row["reason"]
    assert row["offset_s"] == 0.0 and row["attempts"] == 1
    path = Path(row["path"])
    assert abs(media_duration(path, "v") - 10.0) <= FRAME
    assert abs(media_duration(path, "a") - 10.0) <= 0.1  # AAC frames are 64 ms at 16 kHz
    ranges = [int(m[1]) for _, rng in seen if rng and (m := re.match(r"bytes=(\d+)-", rng))]
    assert any(start > 0 for start in ranges), seen  # moov at the end: ffmpeg had to seek by Range


def test_http_404_is_unavailable(http_server: tuple[str, list], tmp_path: Path) -> None:
    base, _ = http_server
    status = download_clips(
        _rows(("http4040001_000000", f"{base}/nothere.mp4", 0.0, 10.0)), tmp_path, sections=True, options=FAST
    )
    assert status.loc[0, "status"] == "unavailable" and "404" in status.loc[0, "reason"]


def test_options_from_config() -> None:
    opts = DownloadOptions.from_config(
        {
            "format": "b",
            "sleep_interval": 0,
            "max_sleep_interval": 0,
            "ratelimit": None,
            "retries": 3,
            "socket_timeout": 30,
            "cookiefile": None,
            "max_workers": 2,
        }
    )
    assert (opts.format, opts.retries, opts.ratelimit, opts.max_workers) == ("b", 3, None, 2)
    assert DownloadOptions.from_config(None) == DownloadOptions()
    with pytest.raises(ValueError, match="unknown"):
        DownloadOptions.from_config({"formats": "b"})


# ------------------------------------------------------------------------------------ shared media store
def test_media_key_is_video_and_section() -> None:
    key = dl.media_key
    watch = "https://www.youtube.com/watch?v=-0BIyqJj9ZU"
    assert key(watch, (30.0, 40.0)) == "yt--0BIyqJj9ZU_30000-40000"
    # every link form of one video shares its files; another section or the whole video does not
    assert key("https://youtu.be/-0BIyqJj9ZU", (30.0, 40.0)) == key(watch, (30.0, 40.0))
    assert (
        len({key(watch, (30.0, 40.0)), key(watch, (30.0, 35.0)), key(watch, (31.0, 41.0)), key(watch, None)})
        == 4
    )
    # non-YouTube URLs: readable stem + URL hash (two presets render different files under the same name)
    a, b = key("file:///r/tiny/videos/s0001.mp4", None), key("file:///r/demo/videos/s0001.mp4", None)
    assert a != b and a.startswith("s0001-") and b.endswith("_whole")
    odd = key("https://example.org/we%20ird/..%2F-x.y.mp4?q=1", (0.0, 10.0))
    assert dl._SAFE_ID_RE.match(odd) and "." not in odd and "/" not in odd


def _manifest(path: Path, dataset: str, *items: tuple[str, str, float, float]) -> Path:
    frame = _rows(*items).assign(chunk=0, dataset=dataset, label="x")
    frame.to_parquet(path, index=False)
    return path


def test_datasets_sharing_a_clip_fetch_it_once(http_server: tuple[str, list], tmp_path: Path) -> None:
    """Two datasets' manifests list one clip (VGG-SS test clips are VGGSound clips): one network fetch into the
    shared store, both datasets' status tables say ok, and both slice jobs read the one store file."""
    from avbench.media.slice import run_slice

    base, seen = http_server
    url = f"{base}/long.mp4"
    store = tmp_path / "media_store"
    shared = ("httpshr0001_000003", url, 3.0, 13.0)
    ma = _manifest(tmp_path / "a.parquet", "vggss", shared)
    # the second dataset also cuts another section of the same video: that one is a separate file and fetch
    mb = _manifest(tmp_path / "b.parquet", "vggsound", shared, ("httpshr0001_000005", url, 5.0, 15.0))

    seen.clear()
    first = download_chunk(ma, 0, store, tmp_path / "status/a.parquet", sections=True, options=FAST)
    hits_a = len(seen)
    assert first.loc[0, ["status", "attempts", "reused"]].tolist() == ["ok", 1, False], first.loc[0, "reason"]
    assert hits_a > 0

    seen.clear()
    only_shared = _manifest(tmp_path / "b1.parquet", "vggsound", shared)
    second = download_chunk(
        only_shared, 0, store, tmp_path / "status/b1.parquet", sections=True, options=FAST
    )
    assert seen == []  # not one request for the shared clip
    assert second.loc[0, ["status", "reason", "attempts", "reused"]].tolist() == ["ok", "cached", 0, True]
    assert second.loc[0, "path"] == first.loc[0, "path"] and second.loc[0, "offset_s"] == 0.0

    both = download_chunk(mb, 0, store, tmp_path / "status/b.parquet", sections=True, options=FAST)
    assert both["status"].tolist() == ["ok", "ok"] and both["reused"].tolist() == [True, False]
    assert both.loc[0, "path"] == first.loc[0, "path"] != both.loc[1, "path"]
    assert seen  # the other section was fetched
    assert sorted(p.name for p in store.glob("*.mp4")) == sorted(
        f"{dl.media_key(url, s)}.mp4" for s in [(3.0, 13.0), (5.0, 15.0)]
    )
    meta = dl._read_meta(store, dl.media_key(url, (3.0, 13.0)))
    assert meta is not None and meta["dataset"] == "vggss" and meta["clip_id"] == "httpshr0001_000003"

    # the slice stage of each dataset reads the store file its status row names
    for name, manifest in (("a", ma), ("b", mb)):
        sliced = run_slice(
            tmp_path / f"status/{name}.parquet",
            manifest,
            0,
            tmp_path / name / "clips",
            tmp_path / f"status/{name}_slice.parquet",
            workers=1,
        ).set_index("clip_id")
        assert sliced.loc["httpshr0001_000003", "status"] == "ok"
    wav_a = (tmp_path / "a/clips/httpshr0001_000003/audio.wav").read_bytes()
    assert wav_a == (tmp_path / "b/clips/httpshr0001_000003/audio.wav").read_bytes()


def test_section_rows_reuse_a_whole_file_of_their_video(
    media_src: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset that takes whole files (sections=False) leaves one that cuts sections nothing to fetch."""
    url = "https://example.invalid/video.mp4"
    whole = tmp_path / f"{dl.media_key(url, None)}.mp4"
    whole.write_bytes(media_src["short"].read_bytes())
    monkeypatch.setattr(dl, "_fetch_once", lambda *a: pytest.fail("nothing should be fetched"))
    status = download_clips(
        _rows(("wholevid001_000002", url, 2.0, 12.0)), tmp_path, sections=True, options=FAST
    )
    assert status.loc[0, ["status", "reused", "path", "offset_s"]].tolist() == ["ok", True, str(whole), 2.0]


def _gated_fetch(monkeypatch: pytest.MonkeyPatch, calls: list[str], gate: threading.Barrier | None) -> None:
    """Count real fetches; with a gate, hold every fetch until all parties are inside one (a forced race)."""
    real_fetch = dl._fetch_once

    def fetch(url: str, stage: Path, name: str, *rest: object) -> Path:
        calls.append(name)
        path = real_fetch(url, stage, name, *rest)
        if gate is not None:
            gate.wait(timeout=30)
        return path

    monkeypatch.setattr(dl, "_fetch_once", fetch)


def _run_concurrently(jobs: list[pd.DataFrame], store: Path) -> list[pd.DataFrame]:
    out: list[pd.DataFrame | BaseException] = [RuntimeError("not run")] * len(jobs)

    def work(i: int) -> None:
        try:
            out[i] = download_clips(jobs[i], store, sections=True, options=FAST)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            out[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert all(isinstance(o, pd.DataFrame) for o in out), out
    return out  # type: ignore[return-value]


def _assert_one_clean_file(store: Path, key: str, expected: bytes) -> None:
    finals = sorted(p for p in store.iterdir() if p.is_file())
    assert [p.name for p in finals] == [f"{key}.mp4"]  # one final file, no temp names
    assert finals[0].read_bytes() == expected  # complete, not an interleaving of two writers
    assert not list((store / dl.PARTIAL_DIR).iterdir())  # no staging folder left behind


def test_concurrent_jobs_fetch_a_clip_once(
    media_src: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two datasets' jobs (threads here; flock excludes processes the same way) want one clip at once: the key's
    lock makes the second wait and reuse the first one's file."""
    caplog.set_level(logging.INFO, logger=dl.__name__)
    url = media_src["short"].as_uri()
    calls: list[str] = []
    _gated_fetch(monkeypatch, calls, None)
    real_lookup = dl._lookup
    entered = threading.Barrier(2)
    missed: set[int] = set()

    def lookup(*args: object) -> object:
        found = real_lookup(*args)
        if found is None and threading.get_ident() not in missed:
            missed.add(threading.get_ident())
            entered.wait(timeout=30)  # both jobs miss the store before either takes the lock
        return found

    monkeypatch.setattr(dl, "_lookup", lookup)
    jobs = [_rows(("concurr0001_000000", url, 0.0, 10.0)), _rows(("concurr0001_000000", url, 0.0, 10.0))]
    a, b = _run_concurrently(jobs, tmp_path)
    key = dl.media_key(url, None)
    assert calls == [key]
    assert "another job is fetching" in caplog.text  # the second job really waited on the lock
    assert a.loc[0, "status"] == b.loc[0, "status"] == "ok" and a.loc[0, "path"] == b.loc[0, "path"]
    assert sorted([a.loc[0, "reused"], b.loc[0, "reused"]]) == [False, True]
    _assert_one_clean_file(tmp_path, key, media_src["short"].read_bytes())


def test_unlocked_race_keeps_one_complete_file(
    media_src: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the filesystem refuses locks both jobs fetch; per-job staging folders and the link-if-absent publish
    still leave exactly one complete file, and the loser records the winner's file as reused."""
    url = media_src["short"].as_uri()

    @contextlib.contextmanager
    def no_lock(store: Path, key: str) -> Iterator[bool]:
        yield False

    monkeypatch.setattr(dl, "_key_lock", no_lock)
    calls: list[str] = []
    _gated_fetch(monkeypatch, calls, threading.Barrier(2))  # both downloads finish before either publishes
    jobs = [_rows(("racing00001_000000", url, 0.0, 10.0)), _rows(("racing00001_000007", url, 7.0, 17.0))]
    a, b = _run_concurrently(jobs, tmp_path)
    key = dl.media_key(url, None)
    assert calls == [key, key]
    assert a.loc[0, "status"] == b.loc[0, "status"] == "ok" and a.loc[0, "path"] == b.loc[0, "path"]
    assert sorted([a.loc[0, "reused"], b.loc[0, "reused"]]) == [False, True]
    assert (a.loc[0, "offset_s"], b.loc[0, "offset_s"]) == (0.0, 7.0)
    _assert_one_clean_file(tmp_path, key, media_src["short"].read_bytes())


def test_legacy_per_dataset_cache_is_adopted(
    media_src: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A results dir from before the store keeps its downloads: a file whose sidecar shows the same URL and
    section is linked into the store; one made in the other mode (whole vs section) is not."""
    legacy, store = tmp_path / "media/vggss/raw", tmp_path / "media_store"
    (legacy / dl.META_DIR).mkdir(parents=True)
    url_a, url_b = (
        "https://www.youtube.com/watch?v=aaaaaaaaaaa",
        "https://www.youtube.com/watch?v=bbbbbbbbbbb",
    )
    for cid, url, section in (
        ("aaaaaaaaaaa_000004", url_a, [4.0, 14.0]),
        ("bbbbbbbbbbb_000000", url_b, None),
    ):
        (legacy / f"{cid}.mp4").write_bytes(media_src["short"].read_bytes())
        (legacy / dl.META_DIR / f"{cid}.json").write_text(
            json.dumps({"clip_id": cid, "url": url, "offset_s": 0.0, "section": section})
        )
    calls: list[str] = []

    def refuse(url: str, stage: Path, name: str, *rest: object) -> Path:
        calls.append(name)
        raise RuntimeError(f"network fetch of {name}")  # becomes an error status row

    monkeypatch.setattr(dl, "_fetch_once", refuse)
    rows = _rows(("aaaaaaaaaaa_000004", url_a, 4.0, 14.0), ("bbbbbbbbbbb_000000", url_b, 0.0, 10.0))
    status = download_clips(rows, store, sections=True, options=DownloadOptions(retries=0), legacy_dir=legacy)
    assert status.loc[0, ["status", "reason", "reused", "offset_s"]].tolist() == ["ok", "legacy", True, 0.0]
    assert Path(status.loc[0, "path"]) == store / f"{dl.media_key(url_a, (4.0, 14.0))}.mp4"
    assert (legacy / "aaaaaaaaaaa_000004.mp4").exists()  # linked, not moved
    assert status.loc[1, "status"] == "error" and calls == [dl.media_key(url_b, (0.0, 10.0))]
