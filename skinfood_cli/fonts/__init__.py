"""The font every picture skinfood draws uses: Hangul, Latin and punctuation.

Pillow's default font has no Hangul, so Korean captions came out as rows of
boxes. skinfood ships a subset of Noto Sans CJK KR Regular (SIL OFL 1.1, licence
in OFL.txt beside it; tools/subset_font.py rebuilds it): Latin-1, punctuation,
Hangul jamo and the 2,350 KS X 1001 syllables, ~470 KB instead of ~16 MB. A
bundled file, not a system lookup, so a picture looks the same on every machine
skinfood is installed on, including minimal containers with no fonts at all.
"""

from __future__ import annotations

from importlib import resources

FONT_FILE = "NotoSansCJKkr-Regular-subset.otf"


def font_path() -> str:
    """The bundled font file's path on disk."""
    return str(resources.files(__name__).joinpath(FONT_FILE))


def load_font(size: int):
    """The bundled font at `size` px, or Pillow's default if FreeType can't load it.

    Loaded per call (~0.2 ms), not cached: a FreeType face is not safe to share
    between the server's threads.

    The fallback keeps pictures coming (Latin text still reads) on a Pillow built
    without FreeType or a package that lost its data file; it is never expected.
    """
    from PIL import ImageFont

    try:
        return ImageFont.truetype(font_path(), size)
    except (OSError, ImportError):
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1 has one bitmap size
            return ImageFont.load_default()
