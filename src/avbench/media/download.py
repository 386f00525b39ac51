"""Clip downloads through the yt-dlp Python API (ARCHITECTURE "Download status").

One status row per manifest row, never an exception for a per-clip failure (PROTOCOLS 1.0 "Availability").

Files in ``media_dir``:

- ``{clip_id}.{ext}``: a finished download. yt-dlp writes into ``.partial/{clip_id}/`` and the file is renamed
  here only after ffmpeg has read its header, so a name of this form always means "complete" and a rerun
  skips it (``attempts == 0``, ``reason == "cached"``).
- ``.meta/{clip_id}.json``: how the file was obtained (section or whole file, ``offset_s``). It is written
  before the rename, so a cached file reports the offset it was made with even if ``sections`` changed.

Section downloads (``sections=True``) go through yt-dlp's ffmpeg downloader, which reads the remote URL
with ``-ss start -t duration`` and re-encodes (``force_keyframes_at_cuts``), so the file is exactly the clip
(``offset_s = 0``). yt-dlp cannot section-download ``file://`` URLs, so those are always taken whole
(``offset_s = start_s``); so are all rows with ``sections=False``, where rows sharing a URL share one
download (hard-linked per clip id).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import os
import random
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from avbench.io import atomic_path, write_json, write_parquet
from avbench.media.ffmpeg_bin import ffmpeg_exe

log = logging.getLogger(__name__)

STATUSES = ("ok", "unavailable", "private", "age_restricted", "geo_restricted", "rate_limited", "error")
STATUS_COLUMNS: dict[str, str] = {
    "clip_id": "str",
    "url": "str",
    "status": "str",
    "reason": "str",
    "path": "str",
    "offset_s": "float64",
    "attempts": "int64",
    "seconds": "float64",
}
MEDIA_EXTS = ("mp4", "mkv", "webm", "mov", "m4a", "mp3", "ogg", "wav", "flv", "3gp")
PARTIAL_DIR = ".partial"
META_DIR = ".meta"
# Clip ids become file names: no dots (the extension starts at the first one), no separators.
_SAFE_ID_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


@dataclasses.dataclass(frozen=True)
class DownloadOptions:
    """Knobs for one download run. Defaults are polite settings for YouTube."""

    # Small format whose short side is >= 224 px (models take 224 px crops). The filter drops tiny formats
    # when heights are known (height is the long side of portrait videos, so it is a necessary condition
    # only; direct links without metadata fall through to the last alternative). `res` in format_sort is
    # min(width, height), so "res:360" takes the largest format whose short side is <= 360.
    format: str = "bv*[height>=224]+ba/b[height>=224]/bv*+ba/b"
    format_sort: tuple[str, ...] = ("res:360", "ext:mp4:m4a", "vcodec:h264")
    merge_output_format: str = "mp4"
    sleep_interval: float | None = None  # yt-dlp: sleep before each download ...
    max_sleep_interval: float | None = None  # ... randomised up to this bound
    sleep_interval_requests: float | None = None  # yt-dlp: sleep between extraction requests
    ratelimit: int | None = None  # bytes/s
    retries: int = 2  # outer attempts after the first, transient failures only
    ytdlp_retries: int = 3  # yt-dlp's own HTTP/fragment retries inside one attempt
    backoff_s: float = 10.0  # first outer backoff; doubles per attempt, with jitter
    max_backoff_s: float = 300.0
    rate_limit_backoff_s: float = 600.0  # YouTube rate limits last "up to an hour"
    socket_timeout: float = 30.0
    cookiefile: str | None = None
    proxy: str | None = None
    max_workers: int = 4
    # Anything else for yt_dlp.YoutubeDL (e.g. {"js_runtimes": {"deno": {"path": ...}}}); wins over ours.
    extra_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> DownloadOptions:
        """Options from the config's ``download`` block; ``None`` values mean "keep the default"."""
        config = dict(config or {})
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:  # the schema forbids extra keys; catch callers that bypass it
            raise ValueError(f"unknown download options: {unknown}")
        if "format_sort" in config and config["format_sort"] is not None:
            config["format_sort"] = tuple(config["format_sort"])
        return cls(**{key: value for key, value in config.items() if value is not None})


# ---------------------------------------------------------------------------------------------- taxonomy
# Order matters: YouTube's rate-limit text starts with "Video unavailable", geo blocks say "available in
# your country", and "Requested format is not available" is not an unavailable video.
_TAXONOMY: tuple[tuple[str, bool, re.Pattern[str]], ...] = tuple(
    (status, transient, re.compile(pattern, re.IGNORECASE))
    for status, transient, pattern in (
        (
            "rate_limited",
            True,
            r"not a bot|HTTP Error 429|Too Many Requests|rate[- ]limit|try again later|captcha",
        ),
        ("private", False, r"private video|video is private|members[- ]only|join this channel"),
        (
            "age_restricted",
            False,
            r"confirm your age|age[- ]restrict|inappropriate for some users",
        ),
        (
            "geo_restricted",
            False,
            r"available in your country|geo[- ]?restrict|not available from your location|blocked it in your country",
        ),
        ("error", False, r"Requested format is not available|Unsupported URL"),
        (
            "unavailable",
            False,
            r"video unavailable|video is unavailable|has been removed|does not exist|no longer available"
            r"|HTTP Error 404|404: Not Found|No such file or directory|This video is not available"
            r"|account associated with this video has been terminated|copyright claim",
        ),
        (
            "error",
            True,
            r"timed out|time-?out|connection (?:reset|refused|aborted)|remote end closed|IncompleteRead"
            r"|temporary failure in name resolution|network is unreachable|EOF occurred"
            r"|HTTP Error 5\d\d|HTTP Error 403|Bad Gateway|Service Unavailable|Internal Server Error"
            r"|\[Errno (?:104|110|111|113)\]|Got error: \d+ bytes read|did not get any data blocks",
        ),
    )
)


def classify_error(message: str) -> tuple[str, bool]:
    """Map a yt-dlp error message to ``(status, transient)``; transient ones are worth a later retry."""
    for status, transient, pattern in _TAXONOMY:
        if pattern.search(message or ""):
            return status, transient
    return "error", False


def _clean_reason(message: str, limit: int = 500) -> str:
    text = _ANSI_RE.sub("", message).strip()
    text = re.sub(r"^ERROR:\s*", "", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------- probing
class MediaProbeError(RuntimeError):
    pass


def media_duration(path: str | os.PathLike, stream: str = "v") -> float:
    """Duration in seconds of the first video (``stream="v"``) or audio (``"a"``) stream, by decoding it.

    There is no ffprobe in the imageio-ffmpeg wheel; decoding is exact where container headers are not
    (it counts what a reader gets). ``-progress`` reports the end time of the last frame in microseconds.
    """
    if stream not in ("v", "a"):
        raise ValueError(f"stream must be 'v' or 'a': {stream!r}")
    cmd = [
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-i",
        os.fspath(path),
        "-map",
        f"0:{stream}:0",
        "-f",
        "null",
        "-progress",
        "pipe:1",
        "-",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    times = re.findall(r"^out_time_us=(\d+)$", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or not times:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise MediaProbeError(f"ffmpeg could not decode {path}: {tail[0]}")
    return int(times[-1]) / 1e6


def _probe_header(path: Path) -> dict[str, Any]:
    """Cheap container check (no decoding): duration and which stream kinds the header lists."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", os.fspath(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    err = proc.stderr  # ffmpeg exits 1 here ("no output file"); the header dump is what we want
    match = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", err)
    duration = int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3]) if match else None
    return {
        "duration_s": duration,
        "has_video": bool(re.search(r"Stream #\S+.*: Video:", err)),
        "has_audio": bool(re.search(r"Stream #\S+.*: Audio:", err)),
        "error": None if "Stream #" in err else (err.strip().splitlines()[-1:] or ["unreadable"])[0],
    }


# ---------------------------------------------------------------------------------------------- helpers
def _find_existing(media_dir: Path, clip_id: str) -> Path | None:
    for ext in MEDIA_EXTS:
        path = media_dir / f"{clip_id}.{ext}"
        if path.is_file() and path.stat().st_size > 0:
            return path
    return None


def _meta_path(media_dir: Path, clip_id: str) -> Path:
    return media_dir / META_DIR / f"{clip_id}.json"


def _read_meta(media_dir: Path, clip_id: str) -> dict[str, Any] | None:
    try:
        return json.loads(_meta_path(media_dir, clip_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _row(
    clip_id: str,
    url: str,
    status: str,
    reason: str = "",
    path: Path | str = "",
    offset_s: float = float("nan"),
    attempts: int = 0,
    seconds: float = 0.0,
) -> dict[str, Any]:
    return {
        "clip_id": clip_id,
        "url": url,
        "status": status,
        "reason": reason,
        "path": str(path),
        "offset_s": float(offset_s),
        "attempts": int(attempts),
        "seconds": float(seconds),
    }


def status_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Status rows with the contract's columns and dtypes (also for zero rows)."""
    frame = pd.DataFrame(list(records), columns=list(STATUS_COLUMNS))
    return frame.astype(STATUS_COLUMNS)


class _YdlLogger:
    """yt-dlp logger interface -> Python logging. Failures land in the status table, so errors are warnings."""

    def __init__(self, clip_id: str) -> None:
        self.prefix = f"[{clip_id}] "

    def debug(self, msg: str) -> None:
        log.debug("%s%s", self.prefix, msg)

    def info(self, msg: str) -> None:
        log.info("%s%s", self.prefix, msg)

    def warning(self, msg: str) -> None:
        log.warning("%s%s", self.prefix, _clean_reason(msg))

    def error(self, msg: str) -> None:
        log.warning("%s%s", self.prefix, _clean_reason(msg).splitlines()[0] if msg else msg)


class _Cooldown:
    """Shared pause: once any worker is rate limited, no worker starts a new attempt before it ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0

    def extend(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self) -> None:
        while (left := self._until - time.monotonic()) > 0:
            time.sleep(min(left, 5.0))


def _ydl_params(
    options: DownloadOptions, outtmpl: str, clip_id: str, url: str, section: tuple[float, float] | None
) -> dict[str, Any]:
    import yt_dlp

    params: dict[str, Any] = {
        "format": options.format,
        "format_sort": list(options.format_sort),
        "merge_output_format": options.merge_output_format,
        "outtmpl": {"default": outtmpl},
        "overwrites": True,
        "noplaylist": True,  # watch URLs with &list= must not pull the playlist
        "quiet": True,
        "noprogress": True,
        "logger": _YdlLogger(clip_id),
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "ffmpeg_location": ffmpeg_exe(),
        "retries": options.ytdlp_retries,
        "fragment_retries": options.ytdlp_retries,
        "extractor_retries": options.ytdlp_retries,
        "socket_timeout": options.socket_timeout,
        # file:// is off by default in yt-dlp for security; allow it only for the URLs that need it.
        "enable_file_urls": url.startswith("file:"),
    }
    optional = {
        "sleep_interval": options.sleep_interval,
        "max_sleep_interval": options.max_sleep_interval,
        "sleep_interval_requests": options.sleep_interval_requests,
        "ratelimit": options.ratelimit,
        "cookiefile": options.cookiefile,
        "proxy": options.proxy,
    }
    params.update({key: value for key, value in optional.items() if value is not None})
    if section is not None:
        params["download_ranges"] = yt_dlp.utils.download_range_func(None, [section])
        params["force_keyframes_at_cuts"] = True  # re-encode so the cut is frame-exact, not keyframe-snapped
    params.update(options.extra_params)
    return params


def _fetch_once(
    url: str, stage: Path, clip_id: str, section: tuple[float, float] | None, options: DownloadOptions
) -> Path:
    """One yt-dlp run into ``stage``; returns the finished file. Raises on any failure."""
    import yt_dlp
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

    # yt-dlp's FFmpegFD.available() ignores the ffmpeg_location param and reads this context variable
    # (set by the CLI only); without it section downloads fail with "ffmpeg is not installed". Context
    # variables are per thread, so set it in the worker.
    location = getattr(FFmpegPostProcessor, "_ffmpeg_location", None)
    if location is not None:
        location.set(ffmpeg_exe())

    outtmpl = str(stage / f"{clip_id}.%(ext)s")
    with yt_dlp.YoutubeDL(_ydl_params(options, outtmpl, clip_id, url, section)) as ydl:
        info = ydl.extract_info(url, download=True)
    candidates = [
        Path(d["filepath"]) for d in (info or {}).get("requested_downloads") or [] if d.get("filepath")
    ]
    candidates += sorted(stage.glob(f"{clip_id}.*"))
    for path in candidates:
        if path.is_file() and path.suffix.lstrip(".") in MEDIA_EXTS and path.stem == clip_id:
            return path
    raise RuntimeError(f"yt-dlp reported success but left no media file in {stage}")


def _finalize(
    media_dir: Path,
    clip_id: str,
    url: str,
    src: Path,
    offset_s: float,
    section: tuple[float, float] | None,
    *,
    link: bool = False,
) -> Path:
    """Sidecar first, then rename (or hard-link) into the final name: the final name means complete."""
    ext = src.suffix.lstrip(".")
    dest = media_dir / f"{clip_id}.{ext}"
    write_json(
        _meta_path(media_dir, clip_id),
        {"clip_id": clip_id, "url": url, "offset_s": offset_s, "section": list(section) if section else None},
    )
    for other in MEDIA_EXTS:  # a stale file with another extension would shadow the new one
        stale = media_dir / f"{clip_id}.{other}"
        if other != ext and stale.exists():
            stale.unlink()
    if link:
        with atomic_path(dest) as tmp:
            tmp.unlink()
            try:
                os.link(src, tmp)
            except OSError:  # filesystems without hard links
                shutil.copy2(src, tmp)
    else:
        os.replace(src, dest)
    return dest


def _backoff(options: DownloadOptions, attempt: int, status: str) -> float:
    base = options.rate_limit_backoff_s if status == "rate_limited" else options.backoff_s
    delay = min(base * 2 ** (attempt - 1), max(options.max_backoff_s, base))
    return delay * random.uniform(0.75, 1.25)  # jitter: parallel workers should not retry in lockstep


def _download_with_retries(
    url: str,
    clip_id: str,
    section: tuple[float, float] | None,
    media_dir: Path,
    options: DownloadOptions,
    cooldown: _Cooldown,
) -> tuple[Path | None, str, str, int]:
    """Returns (staged file or None, status, reason, attempts). Retries transient classes only."""
    stage = media_dir / PARTIAL_DIR / clip_id
    attempts = 0
    while True:
        cooldown.wait()
        attempts += 1
        shutil.rmtree(stage, ignore_errors=True)  # partial files of a failed attempt are never reused
        stage.mkdir(parents=True, exist_ok=True)
        try:
            path = _fetch_once(url, stage, clip_id, section, options)
            header = _probe_header(path)
            if header["error"] or not (header["has_video"] or header["has_audio"]):
                message = f"downloaded file is not readable media: {header['error'] or 'no streams'}"
                # A local source reads the same bytes again; only a network transfer may come out whole next time.
                status, transient = "error", not url.startswith("file:")
            else:
                return path, "ok", "", attempts
        except Exception as exc:  # noqa: BLE001 - yt-dlp raises many types; every one becomes a status row
            message = str(exc) or type(exc).__name__
            status, transient = classify_error(message)
        if not transient or attempts > options.retries:
            return None, status, _clean_reason(message), attempts
        delay = _backoff(options, attempts, status)
        log.info(
            "[%s] %s (attempt %d), retrying in %.0f s: %s",
            clip_id,
            status,
            attempts,
            delay,
            _clean_reason(message, 200),
        )
        if status == "rate_limited":
            cooldown.extend(delay)
        else:
            time.sleep(delay)


def _run_group(
    group: list[dict[str, Any]],
    media_dir: Path,
    sections: bool,
    options: DownloadOptions,
    cooldown: _Cooldown,
) -> list[dict[str, Any]]:
    """Rows sharing one download: a single row for section downloads, all rows of a URL otherwise."""
    url = group[0]["url"]
    out: dict[str, dict[str, Any]] = {}
    pending: list[dict[str, Any]] = []
    whole_source: Path | None = None  # a cached whole-file download that other clips of this URL can share
    for row in group:
        cid = row["clip_id"]
        existing = _find_existing(media_dir, cid)
        if existing is None:
            pending.append(row)
            continue
        meta = _read_meta(media_dir, cid)
        if meta is not None:
            offset = float(meta["offset_s"])
            if meta.get("section") is None:
                whole_source = existing
        else:  # a file from before sidecars: assume it was made in the current mode
            log.warning("[%s] cached file has no %s sidecar; assuming sections=%s", cid, META_DIR, sections)
            offset = 0.0 if _use_sections(url, sections) else float(row["start_s"])
        out[cid] = _row(cid, url, "ok", "cached", existing, offset, 0, 0.0)

    if pending:
        started = time.monotonic()
        first = pending[0]
        section = (float(first["start_s"]), float(first["end_s"])) if _use_sections(url, sections) else None
        attempts = 0
        if whole_source is None:
            staged, status, reason, attempts = _download_with_retries(
                url, first["clip_id"], section, media_dir, options, cooldown
            )
        else:
            staged, status, reason = whole_source, "ok", ""
        for i, row in enumerate(pending):
            cid = row["clip_id"]
            if staged is None:
                out[cid] = _row(
                    cid, url, status, reason, "", float("nan"), attempts, time.monotonic() - started
                )
                continue
            offset = 0.0 if section is not None else float(row["start_s"])
            link = whole_source is not None or i > 0
            path = _finalize(media_dir, cid, url, staged, offset, section, link=link)
            if not link:
                staged = path  # later rows of this URL link to the final file
            out[cid] = _row(cid, url, "ok", "", path, offset, attempts, time.monotonic() - started)
        shutil.rmtree(media_dir / PARTIAL_DIR / first["clip_id"], ignore_errors=True)
    return [out[row["clip_id"]] for row in group]


def _use_sections(url: str, sections: bool) -> bool:
    # yt-dlp's ffmpeg downloader (the only one that cuts sections) does not accept file:// URLs.
    return sections and not url.startswith("file:")


def _check_row(row: Mapping[str, Any]) -> str | None:
    cid, url = row.get("clip_id"), row.get("url")
    if not isinstance(cid, str) or not _SAFE_ID_RE.match(cid):
        return f"clip id is not a safe file name: {cid!r}"
    if not isinstance(url, str) or not url:
        return f"no url: {url!r}"
    start, end = row.get("start_s"), row.get("end_s")
    if pd.isna(start) or pd.isna(end) or float(end) <= float(start) or float(start) < 0:
        return f"bad time range: [{start}, {end})"
    return None


# ---------------------------------------------------------------------------------------------- public API
def download_clips(
    rows: pd.DataFrame, media_dir: Path, *, sections: bool, options: DownloadOptions | None = None
) -> pd.DataFrame:
    """Download every row (``clip_id, url, start_s, end_s``) into ``media_dir``; one status row per input row.

    Already-finished files are kept (status ok, attempts 0), so a rerun only retries failures.
    """
    options = options or DownloadOptions()
    media_dir = Path(media_dir)
    media_dir.mkdir(parents=True, exist_ok=True)
    records = rows[["clip_id", "url", "start_s", "end_s"]].to_dict("records")

    results: dict[int, dict[str, Any]] = {}
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(records):
        problem = _check_row(row)
        if problem:
            results[i] = _row(str(row.get("clip_id")), str(row.get("url")), "error", problem)
            continue
        # Whole files are shared by the clips of one URL; sections are per clip.
        key = (row["url"], row["clip_id"] if _use_sections(row["url"], sections) else "")
        groups.setdefault(key, []).append(i)

    cooldown = _Cooldown()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.max_workers)) as pool:
        futures = {
            pool.submit(_run_group, [records[i] for i in idx], media_dir, sections, options, cooldown): idx
            for idx in groups.values()
        }
        for future in concurrent.futures.as_completed(futures):
            idx = futures[future]
            try:
                group_rows = future.result()
            except Exception as exc:  # noqa: BLE001 - a bug in one group must not lose the other rows
                log.exception("download group failed unexpectedly")
                group_rows = [
                    _row(
                        records[i]["clip_id"], records[i]["url"], "error", _clean_reason(f"internal: {exc!r}")
                    )
                    for i in idx
                ]
            results.update(zip(idx, group_rows, strict=True))
    return status_frame([results[i] for i in range(len(records))])


def download_chunk(
    manifest_path: str | os.PathLike,
    chunk: int,
    media_dir: str | os.PathLike,
    status_out: str | os.PathLike,
    *,
    sections: bool,
    options: DownloadOptions | None = None,
) -> pd.DataFrame:
    """Download the manifest rows with ``chunk == chunk`` and write their status parquet atomically."""
    manifest = pd.read_parquet(manifest_path, columns=["clip_id", "url", "start_s", "end_s", "chunk"])
    rows = manifest[manifest["chunk"] == chunk].reset_index(drop=True)
    status = download_clips(rows, Path(media_dir), sections=sections, options=options)
    write_parquet(status_out, status)
    ok = int((status["status"] == "ok").sum())
    log.info(
        "chunk %d: %d/%d clips ok (%s)", chunk, ok, len(status), status["status"].value_counts().to_dict()
    )
    return status
