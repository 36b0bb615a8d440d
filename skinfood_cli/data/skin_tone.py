"""Skin tone from pixels: the individual typology angle (ITA) and its six groups.

    ITA = arctan((L* - 50) / b*) * 180 / pi        (CIELAB, D65)

Chardon et al. (1991) defined it; Del Bino et al. (2006, 2013) binned it:

    very light > 55 >= light > 41 >= intermediate > 28 >= tan > 10 >= brown > -30 >= dark

An estimate from a photo's pixels, under whatever light it was taken in: not a
Fitzpatrick type, which is about how skin reacts to the sun and is asked, not
measured. Every output that shows these groups says so.

Which pixels are skin (documented, deliberately simple):
  1. a YCbCr box that holds skin of every tone under ordinary light
     (Chai & Ngan 1999: 77 <= Cb <= 127, 133 <= Cr <= 173), which leaves out
     background, clothes, blue and green cast, and most hair;
  2. minus the most saturated quarter of those pixels by CIELAB chroma: the
     lesion (erythema, purpura, a naevus) is usually the most saturated part of
     a dermatology photo, and it is not the patient's skin tone;
  3. L* and b* are the medians of what is left, so specular highlights and
     shadow edges move them little.
With fewer than MIN_SKIN_SHARE of the pixels left the photo gets no ITA (group
"unknown") rather than a guess from the background.
"""

from __future__ import annotations

import math

import numpy as np

# (name, lower bound exclusive) from lightest to darkest; the last has no bound.
GROUPS = (
    ("very light", 55.0),
    ("light", 41.0),
    ("intermediate", 28.0),
    ("tan", 10.0),
    ("brown", -30.0),
    ("dark", None),
)
UNKNOWN = "unknown"
GROUP_NAMES = tuple(name for name, _ in GROUPS) + (UNKNOWN,)
NOTE = (
    "skin tone is estimated from the photo's pixels (ITA, CIELAB; Del Bino groups): a rough proxy "
    "that depends on light and camera, not the person's Fitzpatrick type"
)
MIN_SKIN_SHARE = 0.05
SATURATED_SHARE = 0.25  # the most saturated quarter of the skin pixels is taken for the lesion

# sRGB (D65) -> XYZ, IEC 61966-2-1
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def _linearize(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


_LINEAR = _linearize(np.arange(256) / 255.0)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 or [0, 1] float sRGB -> (..., 3) CIELAB (L* 0..100), D65 white."""
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        linear = _LINEAR[rgb]  # a table lookup: the power law is most of the cost otherwise
    else:
        linear = _linearize(rgb.astype(np.float64))
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE_D65
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    L = 116 * f[..., 1] - 16
    a = 500 * (f[..., 0] - f[..., 1])
    b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([L, a, b], axis=-1)


def lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) CIELAB -> (..., 3) sRGB floats in [0, 1] (clipped): the inverse, for tests and fixtures."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    fx, fz = fy + lab[..., 1] / 500, fy - lab[..., 2] / 200
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.stack([fx, fy, fz], axis=-1)
    xyz = np.where(f**3 > eps, f**3, (116 * f - 16) / kappa) * _WHITE_D65
    linear = np.clip(xyz @ np.linalg.inv(_RGB_TO_XYZ).T, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """(H, W) bools: pixels inside the YCbCr skin box (rule 1 of the module docstring)."""
    c = np.asarray(rgb, dtype=np.float64)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return (cb >= 77) & (cb <= 127) & (cr >= 133) & (cr <= 173)


def ita_from_lab(L: float, b: float) -> float:
    """ITA in degrees; atan2 keeps it defined (±90) when b* is 0."""
    return math.degrees(math.atan2(L - 50.0, b)) if b > 0 else math.copysign(90.0, L - 50.0)


def estimate_ita(rgb: np.ndarray) -> float | None:
    """The ITA of a photo's skin, or None when too few pixels look like skin.

    Args:
        rgb: (H, W, 3) uint8, a thumbnail is plenty (the hash loader gives ~128-256 px).
    """
    mask = skin_mask(rgb)
    if mask.mean() < MIN_SKIN_SHARE:
        return None
    lab = srgb_to_lab(rgb[mask])  # (N, 3)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    keep = chroma <= np.quantile(chroma, 1 - SATURATED_SHARE)
    lab = lab[keep]
    return round(ita_from_lab(float(np.median(lab[:, 0])), float(np.median(lab[:, 2]))), 2)


def ita_group(ita: float | None) -> str:
    """The Del Bino group name of an ITA value ("unknown" for None)."""
    if ita is None:
        return UNKNOWN
    for name, bound in GROUPS:
        if bound is None or ita > bound:
            return name
    return GROUPS[-1][0]


def group_range(name: str) -> str:
    """The ITA range of a group, as text: "41-55°"."""
    bounds = [b for _, b in GROUPS]
    names = [n for n, _ in GROUPS]
    if name not in names:
        return "-"
    i = names.index(name)
    hi = bounds[i - 1] if i else None
    lo = bounds[i]
    if hi is None:
        return f"> {lo:g}°"
    if lo is None:
        return f"< {hi:g}°"
    return f"{lo:g} to {hi:g}°"
