"""How often each photo-quality hint fires on a folder of photos (skinfood_cli/data/quality.py).

    python benchmarks/quality.py ../shared/dermnet-dev/train --stress      # how the thresholds were chosen
    python benchmarks/quality.py ../shared/dermnet-dev/test                # the false-warning rates in docs/usage.md
    python benchmarks/quality.py ../shared/dermnet-dev/train ../shared/dermnet-dev/test --stress --save

For each folder (every image below it): the share of photos each hint warns on,
and the percentiles of its measure beside its threshold. On good photos every
warning is a false one, so the rates should be small (the aim is <= 5% each).

--stress also makes from every photo the ones each hint is for, in memory: two
stops darker (in linear light), blurred (a Gaussian of 1/224 of the long side:
2 px on a 448 px photo), halved in each side, and re-saved as a quality-20 JPEG;
and prints how many of those get their hint (and how many of the darkened ones
read as blurred too). It also decodes each photo as `skinfood check` does (a
draft at >= 128 px) and counts photos whose hints differ from predict's decode,
and measures what re-saving costs at the model's 224 px: the median PSNR between
the photo and its re-save at JPEG quality 40, 30, 20 and 10 (where `compressed`
sits).

Writes nothing unless --save: then benchmarks/results/quality.json and the
regenerated benchmarks/README.md (benchmarks/report.py).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from skinfood_cli.data import quality as Q  # noqa: E402
from skinfood_cli.data.images import is_image_path, load_image_file  # noqa: E402

PREDICT_DRAFT = 224  # predict with a 224 px model decodes JPEGs at >= 224 px
RESAVE_QUALITIES = (40, 30, 20, 10)
CHECK_DRAFT = 128  # hashing.THUMB_SIDE: check's decode
MEASURE_OF = {"dark": "brightness", "blurred": "sharpness", "small": "pixels", "compressed": "jpeg_quality"}
THRESHOLD_OF = {
    "dark": Q.DARK_BELOW,
    "blurred": Q.BLUR_BELOW,
    "small": Q.SMALL_BELOW,
    "compressed": Q.COMPRESSED_BELOW,
}


def find_photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".") and is_image_path(p))


def darker(image, stops: float = 2.0):
    """`image` `stops` stops darker: sRGB -> linear, times 2^-stops, -> sRGB."""
    from PIL import Image

    a = np.asarray(image, dtype=np.float32) / 255.0
    linear = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4) * 2.0**-stops
    srgb = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return Image.fromarray((srgb * 255.0 + 0.5).clip(0, 255).astype(np.uint8))


def resave_psnr(image, quality: int) -> float:
    """PSNR (dB) at 224 px on the short side between `image` and its re-save at JPEG `quality`."""
    from PIL import Image

    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    scale = 224 / min(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    a, b = (np.asarray(im.resize(size, Image.Resampling.BOX), dtype=np.float64) for im in (image, Image.open(buf)))
    mse = max(float(((a - b) ** 2).mean()), 1e-10)
    return 10 * np.log10(255**2 / mse)


def stressed(loaded) -> dict[str, list[str]]:
    """Hint codes of the four made-worse copies of one photo, keyed by the hint each is for."""
    from PIL import Image, ImageFilter

    image, pixels = loaded.image, loaded.pixels
    blurred = image.filter(ImageFilter.GaussianBlur(max(image.size) / 224))
    half = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=20)
    resaved = load_image_file(buf.getvalue(), draft_size=PREDICT_DRAFT)
    return {
        "dark": Q.assess(Q.measure(darker(image), pixels=pixels)),
        "blurred": Q.assess(Q.measure(blurred, pixels=pixels)),
        "small": Q.assess(Q.measure(half)),
        "compressed": Q.photo_quality(resaved),
    }


def survey(folder: Path, stress: bool) -> dict:
    photos = find_photos(folder)
    if not photos:
        raise SystemExit(f"no photos under {folder}")
    started = time.perf_counter()
    measures, codes, unreadable, differ = [], [], 0, 0
    caught = dict.fromkeys(Q.CODES, 0)
    dark_as_blurred = 0
    psnr: dict[int, list[float]] = {q: [] for q in RESAVE_QUALITIES}
    measure_ms = []
    for path in photos:
        try:
            loaded = load_image_file(path, draft_size=PREDICT_DRAFT)
        except Exception:
            unreadable += 1
            continue
        tick = time.perf_counter()
        m = Q.measure(loaded.image, pixels=loaded.pixels, quantization=loaded.quantization)
        measure_ms.append((time.perf_counter() - tick) * 1000)
        measures.append(m)
        codes.append(Q.assess(m))
        if stress:
            made = stressed(loaded)
            for code in Q.CODES:
                caught[code] += code in made[code]
            dark_as_blurred += "blurred" in made["dark"]
            differ += Q.photo_quality(load_image_file(path, draft_size=CHECK_DRAFT)) != codes[-1]
            for q in RESAVE_QUALITIES:
                psnr[q].append(resave_psnr(loaded.image, q))
    n = len(measures)
    out: dict = {
        "folder": str(folder),
        "photos": n,
        "unreadable": unreadable,
        "warned": {code: round(sum(code in c for c in codes) / n, 4) for code in Q.CODES},
        "any": round(sum(bool(c) for c in codes) / n, 4),
        "measure_ms_median": round(float(np.median(measure_ms)), 2),
        "measures": {},
        "seconds": round(time.perf_counter() - started, 1),
    }
    for code in Q.CODES:
        values = [getattr(m, MEASURE_OF[code]) for m in measures]
        values = np.array([v for v in values if v is not None], dtype=np.float64)
        out["measures"][code] = {
            "measure": MEASURE_OF[code],
            "threshold": THRESHOLD_OF[code],
            "percentiles": (
                {str(p): round(float(np.percentile(values, p)), 1) for p in (1, 2, 5, 50)} if len(values) else {}
            ),
        }
    if stress:
        out["stress_caught"] = {code: round(caught[code] / n, 4) for code in Q.CODES}
        out["stress_dark_read_as_blurred"] = round(dark_as_blurred / n, 4)
        out["check_decode_differs"] = round(differ / n, 4)
        out["resave_psnr_db_median"] = {str(q): round(float(np.median(v)), 1) for q, v in psnr.items()}
    return out


def print_survey(s: dict) -> None:
    print(f"{s['folder']}: {s['photos']} photos ({s['unreadable']} unreadable), {s['seconds']:.0f} s")
    print(f"  {'hint':<11} {'warns':>6}  {'measure':<13} {'below':>8}   1% / 2% / 5% / median of the measure")
    for code in Q.CODES:
        m = s["measures"][code]
        pct = " / ".join(f"{v:g}" for v in m["percentiles"].values()) or "n/a"
        print(f"  {code:<11} {s['warned'][code]:6.1%}  {m['measure']:<13} {m['threshold']:>8g}   {pct}")
    print(f"  {'any':<11} {s['any']:6.1%}   (the measures take {s['measure_ms_median']:.2f} ms a photo, median)")
    if "stress_caught" in s:
        caught = ", ".join(f"{code} {s['stress_caught'][code]:.1%}" for code in Q.CODES)
        print(f"  made-worse copies that get their hint: {caught}")
        print(f"  two stops darker, read as blurred too: {s['stress_dark_read_as_blurred']:.1%}")
        print(f"  hints differ between check's decode and predict's: {s['check_decode_differs']:.1%}")
        db = ", ".join(f"quality {q}: {v:g} dB" for q, v in s["resave_psnr_db_median"].items())
        print(f"  re-saved, median PSNR at 224 px: {db}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders of photos (searched recursively)")
    parser.add_argument("--stress", action="store_true", help="also score made-worse copies of every photo")
    parser.add_argument("--save", action="store_true", help="write benchmarks/results/quality.json and the README")
    args = parser.parse_args(argv)
    surveys = [survey(folder, args.stress) for folder in args.folders]
    for s in surveys:
        print_survey(s)
    if args.save:
        import report  # benchmarks/report.py: provenance, and the generated benchmarks/README.md

        result: dict = {"run": report.provenance("quality", sys.argv[1:] if argv is None else argv)}
        # Top-level figures (the README's generic table) per folder, then the full surveys.
        for s in surveys:
            tag = Path(s["folder"]).name
            for code in Q.CODES:
                result[f"{tag}_{code}_warns"] = s["warned"][code]
            for code, rate in s.get("stress_caught", {}).items():
                result[f"{tag}_{code}_stress_caught"] = rate
        result["surveys"] = surveys
        print(f"saved {report.save('quality', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
