"""Clip downloads through the yt-dlp Python API (ARCHITECTURE "Download status").

One status row per manifest row, never an exception for a per-clip failure (PROTOCOLS 1.0 "Availability").

Media live in one store per results directory, shared by every dataset key: a clip that several datasets list
(the VGG-SS test clips are VGGSound clips too; presets configure several keys over the same videos) is fetched
once. Store files are named by what was fetched, not by a dataset's clip id (:func:`media_key`): the video
(YouTube id, else a hash of the URL) and the section in milliseconds, or ``whole``; two datasets that cut
different sections of one video get two files. Each dataset still writes its own status tables.

Files in ``store_dir``:

- ``{key}.{ext}``: a finished download. Every attempt downloads into its own ``.partial/{key}.<random>/`` folder
  (so concurrent jobs never share partial files), and the file is hard-linked to its final name only after
  ffmpeg has read its header, so a name of this form always means "complete". A link that fails because the
  name exists means another job finished first; its file is used.
- ``.locks/{key}.lock``: an advisory ``flock`` held while a key is looked up and fetched, so a second job (another
  dataset's chunk, or another thread) waits and then reuses the file instead of fetching it a second time.
- ``.meta/{key}.json``: provenance (URL, section, the dataset and clip it was fetched for). Offsets do not need
  it: a section file starts at its clip (``offset_s = 0``), a whole file at 0 s of the video (``offset_s =
  start_s``).

Failures are not recorded in the store: a clip that failed for one dataset is tried again by the next job that
needs it (another dataset's, or a rerun), as reruns are meant to retry failures.

Section downloads (``sections=True``) go through yt-dlp's ffmpeg downloader, which reads the remote URL
with ``-ss start -t duration`` and re-encodes (``force_keyframes_at_cuts``), so the file is exactly the clip.
yt-dlp cannot section-download ``file://`` URLs, so those are always taken whole; so are all rows with
``sections=False``, where the rows of one URL share one file. A section row also reuses a whole file of its URL
when the store has one.

Before the store, each dataset cached ``{clip_id}.{ext}`` files in its own folder (``legacy_dir``); such a file
is hard-linked into the store when its sidecar shows the same URL and section, so an old results directory is
not fetched again.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from avbench.ids import YTID_RE
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
    "reused": "bool",  # ok without a fetch by this row: the media were already in the store
}
MEDIA_EXTS = ("mp4", "mkv", "webm", "mov", "m4a", "mp3", "ogg", "wav", "flv", "3gp")
PARTIAL_DIR = ".partial"
META_DIR = ".meta"
LOCK_DIR = ".locks"
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


# ---------------------------------------------------------------------------------------------- store
Section = tuple[float, float]


def _youtube_id(url: str) -> str | None:
    """The video id of a YouTube watch or youtu.be link, else None."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in ("www.youtube.com", "youtube.com", "m.youtube.com") and parts.path == "/watch":
        candidate = (urllib.parse.parse_qs(parts.query).get("v") or [""])[0]
    elif host == "youtu.be":
        candidate = parts.path.lstrip("/")
    else:
        return None
    return candidate if YTID_RE.match(candidate) else None


def media_key(url: str, section: Section | None) -> str:
    """Store name (no extension) of one download: the video, then the section in ms or ``whole``.

    YouTube videos are named by their id (``yt-<ytid>``), so every link form of one video shares a file; other
    URLs by a readable stem plus a hash of the whole URL (two SynthAV presets render different files under the
    same names). Sections are rounded to milliseconds, the precision of every id form in PROTOCOLS 1.0.
    """
    ytid = _youtube_id(url)
    if ytid is not None:
        video = f"yt-{ytid}"
    else:
        stem = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).stem
        readable = re.sub(r"[^A-Za-z0-9_-]+", "_", stem)[:40] or "media"
        video = f"{readable}-{hashlib.sha256(url.encode('utf-8')).hexdigest()[:16]}"
    if section is None:
        return f"{video}_whole"
    start_ms, end_ms = (round(float(t) * 1000) for t in section)
    return f"{video}_{start_ms}-{end_ms}"


def _find_existing(media_dir: Path, name: str) -> Path | None:
    """The finished file ``{name}.{ext}``; empty files are leftovers, never finished downloads."""
    for ext in MEDIA_EXTS:
        path = media_dir / f"{name}.{ext}"
        if path.is_file() and path.stat().st_size > 0:
            return path
    return None


def _lookup(store: Path, url: str, section: Section | None) -> tuple[Path, bool] | None:
    """(file, is_whole) already in the store for this URL and section: the section's own file, else (a section
    is inside the video) a whole download of the URL made for a dataset that does not cut sections."""
    found = _find_existing(store, media_key(url, section))
    if found is not None:
        return found, section is None
    if section is not None:
        whole = _find_existing(store, media_key(url, None))
        if whole is not None:
            return whole, True
    return None


def _meta_path(media_dir: Path, name: str) -> Path:
    return media_dir / META_DIR / f"{name}.json"


def _read_meta(media_dir: Path, name: str) -> dict[str, Any] | None:
    try:
        return json.loads(_meta_path(media_dir, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _key_lock(store: Path, key: str) -> Iterator[bool]:
    """Hold an exclusive advisory lock on ``key`` for the lookup and fetch of its media; yields whether it is held.

    ``flock`` locks belong to an open file description, so they exclude other processes (another dataset's
    download job) and other threads of this job alike. Where the filesystem refuses locks the fetch goes ahead
    unlocked: the link-if-absent publish still keeps one complete file, at the cost of a possible second fetch.
    """
    path = store / LOCK_DIR / f"{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("[%s] another job is fetching these media; waiting for it", key)
                fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as exc:
            log.warning("[%s] no lock on %s (%s); fetching without one", key, path, exc)
            locked = False
        else:
            locked = True
        try:
            yield locked
        finally:
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _clear_leftovers(store: Path, key: str) -> None:
    """Staging folders of killed jobs and empty final names of ``key``. Only called under the key's lock: then no
    live job can be writing them (keys have no dots, so the ``{key}.`` prefix matches this key only)."""
    for stage in (store / PARTIAL_DIR).glob(f"{key}.*"):
        shutil.rmtree(stage, ignore_errors=True)
    for ext in MEDIA_EXTS:
        path = store / f"{key}.{ext}"
        if path.is_file() and path.stat().st_size == 0:
            path.unlink()


def _publish(store: Path, key: str, src: Path, meta: Mapping[str, Any], *, move: bool) -> tuple[Path, bool]:
    """Give the checked file ``src`` its final name ``{key}.{ext}``; returns (final file, whether this call made it).

    The hard link fails if the name exists, so a file that a slice job may be reading is never replaced, and a
    job that loses a race takes the winner's (complete) file. Without hard links: rename (``move``) or an atomic
    copy, which can only replace a concurrent winner's equally complete file.
    """
    existing = _find_existing(store, key)
    if existing is not None:
        return existing, False
    dest = store / f"{key}{src.suffix}"
    try:
        os.link(src, dest)
    except FileExistsError:
        if dest.stat().st_size > 0:
            return dest, False
        _replace(src, dest, move=move)  # an empty leftover (unlocked stores only) is not a winner's file
    except OSError:
        _replace(src, dest, move=move)
    write_json(
        _meta_path(store, key), meta
    )  # provenance only (offsets follow from the key), so after the link
    return dest, True


def _replace(src: Path, dest: Path, *, move: bool) -> None:
    if move:
        os.replace(src, dest)
    else:  # keep the source (a legacy cache file); the copy appears under its final name only when complete
        with atomic_path(dest) as tmp:
            shutil.copy2(src, tmp)


def _adopt_legacy(
    legacy_dir: Path, group: Sequence[Mapping[str, Any]], store: Path, key: str, section: Section | None
) -> Path | None:
    """Link a file of the per-dataset cache that preceded the store into it, when its sidecar shows the same URL
    and section (``{clip_id}.{ext}`` + ``.meta/{clip_id}.json``); None when there is none."""
    for row in group:
        old = _find_existing(legacy_dir, row["clip_id"])
        meta = _read_meta(legacy_dir, row["clip_id"]) if old is not None else None
        if old is None or meta is None or meta.get("url") != row["url"]:
            continue
        old_section = tuple(meta["section"]) if meta.get("section") else None
        if media_key(row["url"], old_section) != key:  # made in the other mode (whole vs section)
            continue
        header = _probe_header(old)
        if header["error"] or not (header["has_video"] or header["has_audio"]):
            continue
        provenance = {**meta, "key": key, "adopted_from": str(old)}
        path, _ = _publish(store, key, old, provenance, move=False)
        log.info("[%s] adopted %s from the per-dataset cache", key, old)
        return path
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
    reused: bool = False,
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
        "reused": bool(reused),
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
    options: DownloadOptions, outtmpl: str, name: str, url: str, section: tuple[float, float] | None
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
        "logger": _YdlLogger(name),
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
    url: str, stage: Path, name: str, section: tuple[float, float] | None, options: DownloadOptions
) -> Path:
    """One yt-dlp run into ``stage`` as ``{name}.{ext}`` (``name`` is the store key); returns the finished file.
    Raises on any failure."""
    import yt_dlp
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

    # yt-dlp's FFmpegFD.available() ignores the ffmpeg_location param and reads this context variable
    # (set by the CLI only); without it section downloads fail with "ffmpeg is not installed". Context
    # variables are per thread, so set it in the worker.
    location = getattr(FFmpegPostProcessor, "_ffmpeg_location", None)
    if location is not None:
        location.set(ffmpeg_exe())

    outtmpl = str(stage / f"{name}.%(ext)s")
    with yt_dlp.YoutubeDL(_ydl_params(options, outtmpl, name, url, section)) as ydl:
        info = ydl.extract_info(url, download=True)
    candidates = [
        Path(d["filepath"]) for d in (info or {}).get("requested_downloads") or [] if d.get("filepath")
    ]
    candidates += sorted(stage.glob(f"{name}.*"))
    for path in candidates:
        if path.is_file() and path.suffix.lstrip(".") in MEDIA_EXTS and path.stem == name:
            return path
    raise RuntimeError(f"yt-dlp reported success but left no media file in {stage}")


def _backoff(options: DownloadOptions, attempt: int, status: str) -> float:
    base = options.rate_limit_backoff_s if status == "rate_limited" else options.backoff_s
    delay = min(base * 2 ** (attempt - 1), max(options.max_backoff_s, base))
    return delay * random.uniform(0.75, 1.25)  # jitter: parallel workers should not retry in lockstep


def _download_with_retries(
    url: str,
    key: str,
    section: Section | None,
    store: Path,
    options: DownloadOptions,
    cooldown: _Cooldown,
) -> tuple[Path | None, str, str, int]:
    """Returns (checked file inside its own staging folder, or None; status; reason; attempts). The caller removes
    the staging folder (``path.parent``). Retries transient classes only."""
    partial_root = store / PARTIAL_DIR
    partial_root.mkdir(parents=True, exist_ok=True)
    attempts = 0
    while True:
        cooldown.wait()
        attempts += 1
        # A fresh folder per attempt and per job: partial files of a failed attempt are never reused, and two
        # jobs fetching the same key (unlocked stores) never write into one folder.
        stage = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=partial_root))
        try:
            path = _fetch_once(url, stage, key, section, options)
            header = _probe_header(path)
            if not header["error"] and (header["has_video"] or header["has_audio"]):
                return path, "ok", "", attempts
            message = f"downloaded file is not readable media: {header['error'] or 'no streams'}"
            # A local source reads the same bytes again; only a network transfer may come out whole next time.
            status, transient = "error", not url.startswith("file:")
        except Exception as exc:  # noqa: BLE001 - yt-dlp raises many types; every one becomes a status row
            message = str(exc) or type(exc).__name__
            status, transient = classify_error(message)
        shutil.rmtree(stage, ignore_errors=True)
        if not transient or attempts > options.retries:
            return None, status, _clean_reason(message), attempts
        delay = _backoff(options, attempts, status)
        log.info(
            "[%s] %s (attempt %d), retrying in %.0f s: %s",
            key,
            status,
            attempts,
            delay,
            _clean_reason(message, 200),
        )
        if status == "rate_limited":
            cooldown.extend(delay)
        else:
            time.sleep(delay)


@dataclasses.dataclass(frozen=True)
class _Task:
    """The rows of one store key: one row for a section, every row of a URL for a whole file."""

    key: str
    url: str
    section: Section | None
    rows: tuple[Mapping[str, Any], ...]


def _ok_rows(
    task: _Task, found: tuple[Path, bool], *, reason: str, reused: bool, attempts: int, started: float
) -> list[dict[str, Any]]:
    path, is_whole = found
    seconds = time.monotonic() - started
    # A section file starts at its clip; a whole file at 0 s of the video, so the clip starts at start_s.
    return [
        _row(
            r["clip_id"],
            task.url,
            "ok",
            reason,
            path,
            float(r["start_s"]) if is_whole else 0.0,
            attempts,
            seconds,
            reused,
        )
        for r in task.rows
    ]


def _run_task(
    task: _Task,
    store: Path,
    legacy_dir: Path | None,
    dataset: str | None,
    options: DownloadOptions,
    cooldown: _Cooldown,
) -> list[dict[str, Any]]:
    """Status rows of one key: reused from the store (``reason == "cached"``), adopted from the legacy per-dataset
    cache (``"legacy"``), or fetched (``""``); failures carry the classified reason."""
    started = time.monotonic()
    # The common case on reruns and across datasets; no lock needed, a final name is only ever a complete file.
    found = _lookup(store, task.url, task.section)
    if found is not None:
        return _ok_rows(task, found, reason="cached", reused=True, attempts=0, started=started)
    with _key_lock(store, task.key) as locked:
        found = _lookup(store, task.url, task.section)  # published by the job we may have waited for
        if found is not None:
            return _ok_rows(task, found, reason="cached", reused=True, attempts=0, started=started)
        if locked:
            _clear_leftovers(store, task.key)
        if legacy_dir is not None and legacy_dir.is_dir():
            adopted = _adopt_legacy(legacy_dir, task.rows, store, task.key, task.section)
            if adopted is not None:
                return _ok_rows(
                    task,
                    (adopted, task.section is None),
                    reason="legacy",
                    reused=True,
                    attempts=0,
                    started=started,
                )
        staged, status, reason, attempts = _download_with_retries(
            task.url, task.key, task.section, store, options, cooldown
        )
        if staged is None:
            seconds = time.monotonic() - started
            return [
                _row(r["clip_id"], task.url, status, reason, "", float("nan"), attempts, seconds)
                for r in task.rows
            ]
        meta = {
            "key": task.key,
            "url": task.url,
            "section": list(task.section) if task.section else None,
            "dataset": dataset,
            "clip_id": task.rows[0]["clip_id"],
            "fetched_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        try:
            path, made = _publish(store, task.key, staged, meta, move=True)
        finally:
            shutil.rmtree(staged.parent, ignore_errors=True)
    if not made:
        log.info("[%s] another job published these media first; using its file", task.key)
    return _ok_rows(
        task,
        (path, task.section is None),
        reason="" if made else "cached",
        reused=not made,
        attempts=attempts,
        started=started,
    )


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
    rows: pd.DataFrame,
    store_dir: Path,
    *,
    sections: bool,
    options: DownloadOptions | None = None,
    legacy_dir: Path | None = None,
    dataset: str | None = None,
) -> pd.DataFrame:
    """Download every row (``clip_id, url, start_s, end_s``) into the shared ``store_dir``; one status row per
    input row, in input order.

    Media already in the store (fetched by this dataset's earlier run or by another dataset) are not fetched
    again: status ok, ``reused`` true, ``attempts`` 0. So a rerun only retries failures. ``legacy_dir`` is the
    dataset's pre-store cache (``{clip_id}.{ext}`` files), ``dataset`` is recorded as provenance.
    """
    options = options or DownloadOptions()
    store = Path(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    records = rows[["clip_id", "url", "start_s", "end_s"]].to_dict("records")

    results: dict[int, dict[str, Any]] = {}
    members: dict[str, list[int]] = {}
    sections_of: dict[str, Section | None] = {}
    for i, row in enumerate(records):
        problem = _check_row(row)
        if problem:
            results[i] = _row(str(row.get("clip_id")), str(row.get("url")), "error", problem)
            continue
        section = (
            (float(row["start_s"]), float(row["end_s"])) if _use_sections(row["url"], sections) else None
        )
        key = media_key(row["url"], section)
        members.setdefault(key, []).append(i)
        sections_of[key] = section
    tasks = {
        key: _Task(key, records[idx[0]]["url"], sections_of[key], tuple(records[i] for i in idx))
        for key, idx in members.items()
    }

    cooldown = _Cooldown()
    legacy = Path(legacy_dir) if legacy_dir is not None else None
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, options.max_workers)) as pool:
        futures = {
            pool.submit(_run_task, task, store, legacy, dataset, options, cooldown): key
            for key, task in tasks.items()
        }
        for future in concurrent.futures.as_completed(futures):
            key = futures[future]
            idx = members[key]
            try:
                task_rows = future.result()
            except Exception as exc:  # noqa: BLE001 - a bug in one task must not lose the other rows
                log.exception("download of %s failed unexpectedly", key)
                task_rows = [
                    _row(
                        records[i]["clip_id"], records[i]["url"], "error", _clean_reason(f"internal: {exc!r}")
                    )
                    for i in idx
                ]
            results.update(zip(idx, task_rows, strict=True))
    return status_frame([results[i] for i in range(len(records))])


def download_chunk(
    manifest_path: str | os.PathLike,
    chunk: int,
    store_dir: str | os.PathLike,
    status_out: str | os.PathLike,
    *,
    sections: bool,
    options: DownloadOptions | None = None,
    legacy_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Download the manifest rows with ``chunk == chunk`` into the store and write their status parquet atomically."""
    manifest = pd.read_parquet(manifest_path)
    missing = sorted({"clip_id", "url", "start_s", "end_s", "chunk"} - set(manifest.columns))
    if missing:
        raise ValueError(f"manifest {manifest_path} lacks the columns {missing}")
    rows = manifest[manifest["chunk"] == chunk].reset_index(drop=True)
    datasets = sorted(set(rows["dataset"].astype(str))) if "dataset" in rows else []
    status = download_clips(
        rows,
        Path(store_dir),
        sections=sections,
        options=options,
        legacy_dir=Path(legacy_dir) if legacy_dir is not None else None,
        dataset=",".join(datasets) or None,
    )
    write_parquet(status_out, status)
    ok = int((status["status"] == "ok").sum())
    log.info(
        "chunk %d: %d/%d clips ok, %d reused from the store (%s)",
        chunk,
        ok,
        len(status),
        int(status["reused"].sum()),
        status["status"].value_counts().to_dict(),
    )
    return status
