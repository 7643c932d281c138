"""Fonts for charts drawn by matplotlib itself (the notebook's PNGs): CJK and emoji node names.

matplotlib's own DejaVu Sans has neither CJK nor emoji; for every such glyph it warns and draws
a box. Since 3.6 it falls back along a list of families, so :func:`use_fallback_fonts` puts the
installed fonts that have them after DejaVu Sans: Droid Sans Fallback (Debian's
``fonts-droid-fallback``, CJK) and, when installed, a scalable emoji font. Noto Color Emoji
(``fonts-noto-color-emoji``) does not qualify: it is a bitmap font, which matplotlib cannot
load ("Non-scalable fonts are not supported"). A character that no installed font has is left
out of a label by :func:`drawable`, rather than drawn as a box with a warning. The health page
needs none of this: its SVG keeps text as text and the browser picks fonts itself.
"""

from __future__ import annotations

from functools import cache

import matplotlib
from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

# In order of preference; the first is matplotlib's default, always there.
FALLBACK_FAMILIES = ("DejaVu Sans", "Droid Sans Fallback", "Noto Sans CJK JP", "Noto Emoji",
                     "Symbola")


@cache
def installed_families() -> tuple[str, ...]:
    """The families of :data:`FALLBACK_FAMILIES` matplotlib can load on this machine."""
    found = []
    for family in FALLBACK_FAMILIES:
        try:
            font_manager.findfont(font_manager.FontProperties(family=family),
                                  fallback_to_default=False)
        except ValueError:
            continue
        found.append(family)
    return tuple(found)


def use_fallback_fonts() -> tuple[str, ...]:
    """Draw text with DejaVu Sans, then each installed fallback for the glyphs it lacks.
    Returns the families in use."""
    families = installed_families()
    matplotlib.rcParams["font.family"] = list(families)
    return families


@cache
def _codepoints() -> frozenset[int]:
    points: set[int] = set()
    for family in installed_families():
        path = font_manager.findfont(font_manager.FontProperties(family=family))
        points.update(FT2Font(path).get_charmap())
    return frozenset(points)


def drawable(text: str) -> str:
    """``text`` without the characters no installed font can draw (an emoji, usually), and
    without the space such a character leaves at either end."""
    points = _codepoints()
    return " ".join("".join(c for c in text if ord(c) in points or c.isspace()).split())
