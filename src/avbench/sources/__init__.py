"""Readers of every real metadata format (PROTOCOLS 1). SynthAV writes the same formats.

Every reader returns a pandas DataFrame with the columns named in its docstring, uses canonical clip ids
``<ytid>_<start:06d>`` (:mod:`avbench.ids`) and raises ``MetadataError`` (a ``ValueError``) whose message
starts with ``<file> row <n>:``.

Modules: ``vggsound`` (vggsound.csv, test.csv, stat.csv, Common.txt, AStest.csv), ``vggss`` (boxes + defects,
test lists, heard/unheard, ms ids, extended negatives), ``subsets`` (10k/144k/heard, Instruments, Music,
Single/Duet), ``music``, ``avsbench``, ``flickr``, ``kinetics``, ``labels`` (label spelling rules).
"""

from avbench.sources._io import MetadataError, read_rows

__all__ = ["MetadataError", "read_rows"]
