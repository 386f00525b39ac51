"""Label-string normalisation rules (PROTOCOLS 1.0 table).

The same VGGSound class is spelled differently by every third-party list; these are the explicit, tested
rules that map a canonical VGGSound label (``playing violin, fiddle``) onto each spelling, plus the reverse
lookup built from a canonical label set (never by guessing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence


def avgn_label(label: str) -> str:
    """AVGN ``vggsound_single/duet_test.csv``: drop commas, spaces -> ``_`` (keeps ``-`` and ``()``)."""
    return label.replace(",", "").replace(" ", "_")


# The comma rule keeps the first name, but AVGN calls ``playing marimba, xylophone`` ``xylophone``.
INSTRUMENT_EXCEPTIONS = {"playing marimba, xylophone": "xylophone"}


def instrument_label(label: str) -> str:
    """AVGN / DeepAVFusion instrument lists: strip ``playing ``, drop text after a comma, spaces -> ``_``.

    One explicit exception (:data:`INSTRUMENT_EXCEPTIONS`): ``playing marimba, xylophone`` -> ``xylophone``.
    """
    if label in INSTRUMENT_EXCEPTIONS:
        return INSTRUMENT_EXCEPTIONS[label]
    text = label[len("playing ") :] if label.startswith("playing ") else label
    return text.split(",", 1)[0].strip().replace(" ", "_")


def underscore_label(label: str) -> str:
    """DeepAVFusion ``vggmusic_eval_ss.csv`` (``violin,_fiddle``) and AVSBench S4 (``playing_violin``)."""
    return label.replace(" ", "_")


def vggmusic_eval_label(label: str) -> str:
    """``vggmusic_eval_ss.csv`` classes: the instrument rule's text but commas kept (``violin,_fiddle``)."""
    text = label[len("playing ") :] if label.startswith("playing ") else label
    return underscore_label(text)


def rejoin_fields(fields: Sequence[str], start: int = 1) -> str:
    """DeepAVFusion ``vgginstruments_train.txt`` writes ``violin,_fiddle`` unquoted: re-join fields start..n."""
    return ",".join(fields[start:])


RULES: dict[str, Callable[[str], str]] = {
    "canonical": lambda s: s,
    "avgn": avgn_label,
    "instrument": instrument_label,
    "underscore": underscore_label,
    "vggmusic_eval": vggmusic_eval_label,
}


def reverse_map(canonical: Iterable[str], rule: str | Callable[[str], str]) -> dict[str, str]:
    """``{normalised: canonical}`` for a canonical label set; raises if the rule merges two classes."""
    func = RULES[rule] if isinstance(rule, str) else rule
    out: dict[str, str] = {}
    for label in sorted(set(canonical)):
        key = func(label)
        if key in out and out[key] != label:
            raise ValueError(f"label rule {rule!r} maps both {out[key]!r} and {label!r} to {key!r}")
        out[key] = label
    return out


def to_canonical(
    labels: Iterable[str], canonical: Iterable[str], rule: str | Callable[[str], str]
) -> list[str]:
    """Map normalised labels back to canonical VGGSound labels; unknown labels raise with the label named."""
    lookup = reverse_map(canonical, rule)
    out = []
    for label in labels:
        if label not in lookup:
            raise KeyError(f"label {label!r} has no canonical VGGSound label under rule {rule!r}")
        out.append(lookup[label])
    return out
