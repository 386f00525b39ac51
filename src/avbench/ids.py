"""Clip identifiers (PROTOCOLS 1.0): YouTube ids may start with '-' and contain '_', so never split on '_'."""

from __future__ import annotations

import re

YTID_RE = re.compile(r"^[A-Za-z0-9_-]{11}$")
CLIP_ID_RE = re.compile(r"^(?P<ytid>[A-Za-z0-9_-]{11})_(?P<start>\d{6})$")
MS_ID_RE = re.compile(r"^(?P<ytid>[A-Za-z0-9_-]{11})_(?P<start_ms>\d+)_(?P<end_ms>\d+)$")


def clip_id(ytid: str, start_s: int | float) -> str:
    """Canonical clip id ``<ytid>_<start:06d>``."""
    if not YTID_RE.match(ytid):
        raise ValueError(f"not a YouTube id (11 chars of [A-Za-z0-9_-]): {ytid!r}")
    return f"{ytid}_{int(start_s):06d}"


def parse_clip_id(cid: str) -> tuple[str, int]:
    """Split ``<ytid>_<start:06d>`` into (ytid, start seconds)."""
    match = CLIP_ID_RE.match(cid)
    if not match:
        raise ValueError(f"not a canonical clip id '<ytid>_<start:06d>': {cid!r}")
    return match["ytid"], int(match["start"])


def parse_ms_id(cid: str) -> tuple[str, int, int]:
    """Split the millisecond form ``<ytid>_<start_ms>_<end_ms>`` into (ytid, start_ms, end_ms)."""
    match = MS_ID_RE.match(cid)
    if not match:
        raise ValueError(f"not a millisecond clip id '<ytid>_<start_ms>_<end_ms>': {cid!r}")
    return match["ytid"], int(match["start_ms"]), int(match["end_ms"])


def ms_id_to_clip_id(cid: str) -> str:
    ytid, start_ms, _ = parse_ms_id(cid)
    return clip_id(ytid, start_ms // 1000)


def youtube_url(ytid: str) -> str:
    """Full watch URL: a bare id starting with '-' would be parsed as a command-line option."""
    if not YTID_RE.match(ytid):
        raise ValueError(f"not a YouTube id: {ytid!r}")
    return f"https://www.youtube.com/watch?v={ytid}"


def shard_key(cid: str) -> str:
    """WebDataset keys must not contain dots (the first dot starts the field extension)."""
    if "." in cid:
        raise ValueError(f"clip id contains a dot and cannot be a WebDataset key: {cid!r}")
    return cid
