"""Photo-quality hints: too dark, blurred, too small, heavily compressed.

The study's wrong answers came from photos like these (shadows above all), and
a retake is usually the right advice, so `predict` (a `quality` list in each
record), the serve page and `check` say so. Each hint is one cheap measure on the
decoded photo and its file's header (`images.LoadedImage`), no second decode:

    dark        brightness: the 90th percentile of the grey copy's luminance (0-255).
                The brightest tenth of a well-exposed photo is bright whatever its
                background; the mean is not (a lit hand on black cloth is fine).
    blurred     sharpness: the variance of the 3x3 Laplacian of the grey copy, with
                the copy first scaled so its 90th percentile is 128. Plain Laplacian
                variance also falls with exposure (contrast), so an underexposed
                photo would read as blurred too; scaled, it reads as dark only.
    small       pixels: the stored width x height, from the header (the decode may
                be a DCT-reduced draft); fewer than the model's 224 x 224 input.
    compressed  jpeg_quality: the IJG quality (the 1-100 of libjpeg, Pillow, most
                cameras) whose luminance table has the file's mean quantiser step;
                exact for IJG tables, a fair equivalent for a camera's own.

The grey copy is the photo box-downscaled to a shorter side of ANALYSIS_SIDE:
`check` decodes drafts at >= 128 px and predict at >= the model's input, and the
box filter makes both nearly the same picture (the hints differ on 0.8% of
dermnet-dev's train photos). Thresholds were chosen on dermnet-dev's
train/ photos (real clinical photos, so nearly all of them should pass) with
photos darkened, blurred, shrunk and re-compressed from them as the ones that
should not; `python benchmarks/quality.py DIR` reprints the rates, and
docs/usage.md gives them for test/.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from skinfood_cli.data.images import LoadedImage

CODES = ("dark", "blurred", "small", "compressed")
ANALYSIS_SIDE = 128  # px, shorter side of the grey copy

# Chosen on dermnet-dev train/ (benchmarks/quality.py --stress; docs/usage.md):
# 1.8% of train warns as dark, and 95% of train photos made two stops darker do.
DARK_BELOW = 120.0
# 1.8% of train warns as blurred, and 99.5% of train photos blurred by a 2 px Gaussian (of 448) do.
BLUR_BELOW = 110.0
# The model's input (224 x 224): fewer pixels means the photo is enlarged to be seen.
SMALL_BELOW = 224 * 224
# Below IJG quality 30 the loss at 224 px grows steeply (dermnet-dev train re-saved,
# median PSNR: 36.5 dB at 40, 35.3 at 30, 33.5 at 20, 30.2 at 10).
COMPRESSED_BELOW = 30.0

# libjpeg's standard luminance table (ITU T.81 Annex K), the one IJG quality scales.
_IJG_LUMA_SUM = sum(
    (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56)
    + (14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92)
    + (49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
)

# What a person reads: the hint names the problems and gives the advice once.
HINT = {
    "en": "Photo quality: {problems}. A retake in daylight, in focus and from closer usually gives a better answer.",
    "ko": "사진 품질: {problems}. 밝은 곳에서 초점을 맞춰 더 가까이 다시 찍으면 보통 더 나은 답을 얻습니다.",
}
PROBLEMS = {
    "en": {"dark": "too dark", "blurred": "blurred", "small": "too small", "compressed": "heavily compressed"},
    "ko": {"dark": "너무 어두움", "blurred": "흐림", "small": "너무 작음", "compressed": "압축이 심함"},
}


@dataclass(frozen=True)
class QualityMeasures:
    """The four numbers the hints compare with their thresholds."""

    brightness: float  # 90th percentile luminance, 0-255
    sharpness: float  # exposure-scaled Laplacian variance
    pixels: int  # stored width x height
    jpeg_quality: float | None  # IJG-equivalent quality; None: not a JPEG

    def to_dict(self) -> dict:
        return asdict(self)


def grey_copy(image: Image.Image, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """(H, W) float32 luminance of `image`, box-downscaled to a shorter side of `side` (never up)."""
    import numpy as np
    from PIL import Image

    grey = image.convert("L")
    short = min(grey.size)
    if short > side:
        scale = side / short
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        grey = grey.resize(size, Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.float32)


def brightness(grey: np.ndarray) -> float:
    """The 90th percentile of a grey copy's luminance (0-255)."""
    import numpy as np

    return float(np.percentile(grey, 90))


def sharpness(grey: np.ndarray, bright: float | None = None) -> float:
    """Variance of the 4-neighbour Laplacian of `grey` scaled to a 90th percentile of 128.

    `bright` is `brightness(grey)` when the caller has it. 0 for a photo too small
    to have an inside (under 3 x 3 px).
    """
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    bright = brightness(grey) if bright is None else bright
    g = grey * (128.0 / max(bright, 8.0))  # a near-black photo is not stretched into noise
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]  # (H-2, W-2)
    return float(lap.var())


def jpeg_quality(quantization: dict[int, list[int]] | None) -> float | None:
    """The IJG quality (1-100) whose luminance table has the mean step of table 0; None without tables.

    libjpeg scales its base table by s = 5000/q (q < 50) or 200 - 2q (q >= 50),
    in percent, so the mean step gives s and s gives q. Steps clamp at 1 and 255,
    so the ends read as about 15 and 100.
    """
    if not quantization or 0 not in quantization:
        return None
    scale = 100.0 * sum(quantization[0]) / _IJG_LUMA_SUM
    return round((200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale, 1)


def measure(image: Image.Image, *, pixels: int | None = None, quantization=None) -> QualityMeasures:
    """The measures of one RGB photo.

    Args:
        image: the decoded photo (any size; a draft decode is fine).
        pixels: its stored pixel count (default: the decoded image's).
        quantization: the JPEG's quantisation tables (Pillow's `im.quantization`), if any.
    """
    grey = grey_copy(image)
    bright = brightness(grey)
    return QualityMeasures(
        brightness=round(bright, 3),
        sharpness=round(sharpness(grey, bright), 3),
        pixels=int(pixels if pixels is not None else image.width * image.height),
        jpeg_quality=jpeg_quality(quantization),
    )


def assess(measures: QualityMeasures) -> list[str]:
    """The hint codes (in CODES order) whose measure is past its threshold; [] for a fine photo."""
    found = {
        "dark": measures.brightness < DARK_BELOW,
        "blurred": measures.sharpness < BLUR_BELOW,
        "small": measures.pixels < SMALL_BELOW,
        "compressed": measures.jpeg_quality is not None and measures.jpeg_quality < COMPRESSED_BELOW,
    }
    return [code for code in CODES if found[code]]


def photo_quality(loaded: LoadedImage) -> list[str]:
    """The hint codes of a photo the image loader read (`images.load_image_file`)."""
    return assess(measure(loaded.image, pixels=loaded.pixels, quantization=loaded.quantization))


def quality_hint(codes: list[str], lang: str = "en") -> str | None:
    """One sentence naming the problems and advising a retake; None when there are none."""
    if not codes:
        return None
    names = PROBLEMS.get(lang, PROBLEMS["en"])
    separator = ", "
    return HINT.get(lang, HINT["en"]).format(problems=separator.join(names.get(c, c) for c in codes))
