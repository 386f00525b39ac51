"""avbench: audio-visual benchmark data preparation and evaluation."""

__version__ = "0.1.0"
