"""Rebuild skinfood's bundled Hangul font: a subset of Noto Sans CJK KR Regular.

Why a subset: the full font is ~16 MB per face (CJK ideographs, Japanese, Chinese);
skinfood draws English and Korean only. The subset keeps

* ASCII, Latin-1, basic Greek, general punctuation, arrows and a few math signs;
* Hangul Jamo, Hangul Compatibility Jamo and the CJK symbols/fullwidth forms;
* the 2,350 Hangul syllables of KS X 1001 (the set every Korean legacy encoding
  and most keyboards' everyday text stays within), so descriptions users write
  render too, not only today's bundled strings;
* every character found in descriptions/*.yaml and skinfood's own sources.

Source: Debian's fonts-noto-cjk (`apt-get download fonts-noto-cjk; dpkg -x ...`),
NotoSansCJK-Regular.ttc, face 1 (KR). Licence: SIL OFL 1.1, Reserved Font Name
"Source" (not used by "Noto Sans CJK KR"); the licence ships beside the font.

    python tools/subset_font.py /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "skinfood_cli" / "fonts" / "NotoSansCJKkr-Regular-subset.otf"

RANGES = [
    (0x20, 0x7E),
    (0xA0, 0xFF),  # ASCII, Latin-1
    (0x391, 0x3C9),  # basic Greek (Δ, μ ...)
    (0x2010, 0x2027),
    (0x2030, 0x203B),  # general punctuation: dashes, quotes, •, …, ‰
    (0x2190, 0x2195),
    (0x2212, 0x2212),
    (0x2264, 0x2265),  # arrows, minus, ≤ ≥
    (0x1100, 0x11FF),
    (0x3131, 0x318E),  # Hangul Jamo, compatibility jamo
    (0x3000, 0x3011),  # CJK spaces, 、。 and brackets 「」『』【】
    (0xFF01, 0xFF5E),  # fullwidth forms (，！？（）)
]


def ks_x_1001_hangul() -> set[str]:
    """The 2,350 precomposed syllables of KS X 1001 (EUC-KR rows 0xB0-0xC8)."""
    return {bytes([a, b]).decode("euc_kr") for a in range(0xB0, 0xC9) for b in range(0xA1, 0xFF)}


def project_characters() -> set[str]:
    found = set()
    files = [
        *(ROOT / "descriptions").glob("*.yaml"),
        *(p for ext in ("py", "js", "html") for p in (ROOT / "skinfood_cli").rglob(f"*.{ext}")),
    ]
    for path in files:
        found |= {c for c in path.read_text(encoding="utf-8") if ord(c) > 0x7E}
    return found


def main(source: str) -> None:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    chars = {chr(c) for lo, hi in RANGES for c in range(lo, hi + 1)} | ks_x_1001_hangul() | project_characters()
    font = TTFont(source, fontNumber=1) if source.endswith((".ttc", ".otc")) else TTFont(source)
    options = subset.Options()
    options.layout_features = ["kern", "liga", "ljmo", "vjmo", "tjmo", "locl", "ccmp"]
    options.hinting = False  # Pillow renders with FreeType's auto-hinter anyway
    options.name_IDs = ["*"]
    options.notdef_outline = True  # a visible box for characters outside the subset
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(c) for c in chars])
    subsetter.subset(font)
    font.save(OUT)
    cmap = font.getBestCmap()
    missing = sorted(c for c in chars if ord(c) not in cmap and not (0x1100 <= ord(c) <= 0x11FF))
    print(
        f"{OUT.name}: {OUT.stat().st_size / 1024:.0f} KiB, {len(cmap)} characters; "
        f"not in the source font: {''.join(missing) or 'none'}"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
