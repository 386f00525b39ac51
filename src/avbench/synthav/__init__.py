"""SynthAV: an embedded, seeded synthetic audio-visual corpus that the offline demo and tests run on.

`make_spec` draws the corpus (classes, clips, ground truth), `render_chunk` renders source videos
(H.264 + AAC) and `write_metadata` writes the official VGGSound / VGG-SS / MUSIC / AVGN / AVSBench formats.
"""

from .metadata import corpus_summary, write_metadata
from .presets import CENTER_FRAME, CENTER_TIME_S, CLIP_SECONDS, FPS, MASK_TIMES_S, PRESETS, resolve_params
from .render import render_chunk, render_clip, source_url
from .spec import SynthSpec, load_spec, make_spec, save_spec

__all__ = [
    "CENTER_FRAME",
    "CENTER_TIME_S",
    "CLIP_SECONDS",
    "FPS",
    "MASK_TIMES_S",
    "PRESETS",
    "SynthSpec",
    "corpus_summary",
    "load_spec",
    "make_spec",
    "render_chunk",
    "render_clip",
    "resolve_params",
    "save_spec",
    "source_url",
    "write_metadata",
]
