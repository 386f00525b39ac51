"""avbench.media.download: offline tests (file:// and a loopback HTTP server with byte ranges)."""

from __future__ import annotations

import contextlib
import http.server
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
    assert (
        path == tmp_path / "synthav0001_000002.mp4" and path.read_bytes() == media_src["short"].read_bytes()
    )
    assert abs(media_duration(path) - 12.0) <= FRAME
    assert missing["status"] == "unavailable" and "No such file" in missing["reason"]
    assert missing["path"] == "" and missing["attempts"] == 1  # not transient: no retry
    assert not (tmp_path / dl.PARTIAL_DIR / "synthav0001_000002").exists()

    # Rerun: the finished clip is not fetched again, only the failure is retried.
    mtime = path.stat().st_mtime_ns
    fetched: list[str] = []
    real_fetch = dl._fetch_once
    monkeypatch.setattr(
        dl, "_fetch_once", lambda url, stage, cid, *a: fetched.append(cid) or real_fetch(url, stage, cid, *a)
    )
    again = download_clips(rows, tmp_path, sections=True, options=FAST)
    assert fetched == ["missing0001_000000"]
    assert (
        again.loc[0, "status"] == "ok"
        and again.loc[0, "attempts"] == 0
        and again.loc[0, "reason"] == "cached"
    )
    assert again.loc[0, "offset_s"] == 2.0 and path.stat().st_mtime_ns == mtime
    # sidecar keeps the offset even when the mode changes
    assert download_clips(rows[:1], tmp_path, sections=False, options=FAST).loc[0, "offset_s"] == 2.0


def test_partial_files_are_not_done(media_src: dict[str, Path], tmp_path: Path) -> None:
    cid = "partial0001_000000"
    (tmp_path / f"{cid}.mp4.part").write_bytes(b"\0" * 100)  # yt-dlp partial name
    (tmp_path / f".{cid}.mp4.tmp123").write_bytes(b"\0" * 100)  # avbench.io temp name
    stage = tmp_path / dl.PARTIAL_DIR / cid
    stage.mkdir(parents=True)
    (stage / f"{cid}.mp4").write_bytes(b"truncated")  # interrupted attempt
    (tmp_path / f"{cid}.webm").write_bytes(b"")  # empty final name: not a finished download
    status = download_clips(
        _rows((cid, media_src["short"].as_uri(), 0.0, 10.0)), tmp_path, sections=False, options=FAST
    )
    assert status.loc[0, "status"] == "ok" and status.loc[0, "attempts"] == 1
    assert Path(status.loc[0, "path"]).read_bytes() == media_src["short"].read_bytes()
    assert not (tmp_path / f"{cid}.webm").exists()  # stale other-extension file removed


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
    assert calls == ["sharedvid01_000000"]
    assert status["status"].tolist() == ["ok", "ok"] and status["offset_s"].tolist() == [0.0, 1.0]
    a, b = (Path(p) for p in status["path"])
    assert a.read_bytes() == b.read_bytes() and a != b


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

    def fake_fetch(url: str, stage: Path, cid: str, section: object, options: DownloadOptions) -> Path:
        if failures.get(cid):
            raise yt_dlp.utils.DownloadError(failures[cid].pop(0))
        return real_fetch(media_src["short"].as_uri(), stage, cid, None, options)  # file:// cannot be cut

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
