"""Grad-CAM: where in the photo the model found evidence for a class.

Grad-CAM (Selvaraju et al., 2017) on the backbone's last feature stage (the
registry's `cam_layer`: ResNet50's `layer4`, a (2048, S/32, S/32) map; EfficientNet-
Lite's `bn2`, (1280, S/32, S/32)): a forward hook keeps the activations A,
autograd gives dScore/dA, and

    weights_c = mean over positions of dScore/dA_c        (C,)
    cam       = ReLU(sum_c weights_c * A_c)               (S/32, S/32)

upsampled to the photo. It is ~40 lines on two hooks, so no library is pulled
in for it. A heatmap is a hint, not a proof: the model can key on shadows, hair
or background (the study saw vitiligo predictions led by exactly those).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

HEATMAP_NOTE = {
    "en": "Heatmap = where the model looked. A hint, not a proof: it can key on shadows, hair or background.",
    "ko": "히트맵은 모델이 주목한 곳입니다. 근거가 아닌 힌트일 뿐이며, 그림자·털·배경에 반응할 수 있습니다.",
}
MAX_SIDE = 1024
# What an explain record adds to the prediction record (prediction.Prediction's fields):
# the class the heatmap is for, and where the picture was written (None for an input that failed).
EXPLAIN_FIELDS = ("explained_label", "heatmap")


@dataclass
class GradCam:
    """The class explained, its probabilities, and the map (H, W) in [0, 1] at photo size."""

    target: int
    probs: np.ndarray  # (K,) calibrated
    cam: np.ndarray  # (H, W) float32


def grad_cam(engine, image, target: int | None = None) -> GradCam:
    """Grad-CAM for one RGB PIL image on `engine`'s model, in fp32.

    Autocast is off here on purpose: gradients of a bf16 forward are coarse, and
    one image costs a fraction of a second in fp32.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    if not engine.supports_gradients:
        from skinfood_cli.errors import UsageError

        raise UsageError(
            "explain needs the PyTorch checkpoint (.pt): Grad-CAM needs gradients, "
            "which an exported file does not carry"
        )
    model = engine.module
    stage = model.get_submodule(engine.model.arch.cam_layer)  # the last feature stage
    saved: dict = {}
    handle = stage.register_forward_hook(lambda _m, _i, out: saved.__setitem__("act", out))
    try:
        x = engine.transform(image).unsqueeze(0).to(engine.device)  # (1, 3, S, S)
        with torch.enable_grad():
            logits = model(x)  # (1, K)
            act = saved["act"]  # (1, C, S/32, S/32): C = 2048 for ResNet50
            if target is None:
                target = int(logits[0].argmax())
            (grads,) = torch.autograd.grad(logits[0, target], act)
        weights = grads.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1)
        cam = F.relu((weights * act).sum(dim=1, keepdim=True)).detach()  # (1, 1, h, w)
        cam = F.interpolate(cam, size=(image.height, image.width), mode="bilinear", align_corners=False)
        heat = cam[0, 0].float().cpu().numpy()  # (H, W)
        peak = heat.max()
        heat = heat / peak if peak > 0 else heat
        probs = engine.probabilities(logits.detach().float().cpu().numpy()[0])
    finally:
        handle.remove()
    return GradCam(target=target, probs=probs, cam=heat.astype(np.float32))


def colormap(values):
    """A perceptual blue-to-red ramp (turbo-like) for values in [0, 1] -> (H, W, 3) uint8."""
    import numpy as np

    v = np.clip(values, 0, 1)[..., None]
    stops = np.array(
        [[48, 18, 59], [50, 136, 255], [26, 228, 182], [165, 252, 60], [250, 186, 57], [228, 70, 10], [122, 4, 3]],
        dtype=np.float32,
    )
    pos = v * (len(stops) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(stops) - 2)
    frac = pos - lo
    return (stops[lo[..., 0]] * (1 - frac) + stops[lo[..., 0] + 1] * frac).astype(np.uint8)


def font(size: int):
    """The font every skinfood picture draws with (Hangul included): skinfood_cli/fonts."""
    from skinfood_cli.fonts import load_font

    return load_font(size)


# What the picture says, in the terminal's words (output.py prints the same facts).
CAPTION_TEXT = {
    "en": {
        "not sure": "(the model is not sure)",
        "closest": "Closest trained condition (not an answer):",
        "heatmap for": "Heatmap shows the evidence for",
    },
    "ko": {
        "not sure": "(모델이 확신하지 못합니다)",
        "closest": "학습한 질환 중 가장 가까운 것 (답이 아님):",
        "heatmap for": "히트맵이 보여주는 근거:",
    },
}


@dataclass
class Caption:
    """The text under an explain picture: bold-size headline lines, then smaller notes."""

    lines: list[str]
    notes: list[str]


def build_caption(
    record: dict, *, lang: str, explained_name: str | None = None, explained_probability: float | None = None
) -> Caption:
    """The caption for one prediction record (the fields `predict --format json` gives).

    Carries what the terminal says: the condition and its confidence, the
    uncertain state, the out-of-scope state (`record["in_scope"]` False: the
    out-of-scope sentence leads, and the condition is only "the closest"), which
    class the heatmap explains if not the top one, the heatmap caveat and the
    not-a-diagnosis line.
    """
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS, OUT_OF_SCOPE

    words = CAPTION_TEXT.get(lang, CAPTION_TEXT["en"])
    headline = f"{record['disease_name'] or record['label']}: {record['confidence'] * 100:.1f}%"
    if record.get("in_scope") is False:
        lines = [OUT_OF_SCOPE.get(lang, OUT_OF_SCOPE["en"]), f"{words['closest']} {headline}"]
    else:
        if record.get("uncertain"):
            headline += f"  {words['not sure']}"
        lines = [headline]
    if explained_name is not None and explained_name != record["disease_name"]:
        lines.append(
            f"{words['heatmap for']} {explained_name}"
            + (f" ({explained_probability * 100:.1f}%)" if explained_probability is not None else "")
        )
    notes = [HEATMAP_NOTE.get(lang, HEATMAP_NOTE["en"]), NOT_A_DIAGNOSIS.get(lang, NOT_A_DIAGNOSIS["en"])]
    return Caption(lines, notes)


def caption_sizes(width: int) -> tuple[int, int]:
    """(headline, note) font sizes in px for a picture `width` px wide (photo + overlay)."""
    text_size = max(12, min(28, width // 40))
    return text_size, max(10, text_size * 2 // 3)


def render_caption(caption: Caption, width: int):
    """The caption band: white, `width` px wide, as tall as its wrapped lines need."""
    from PIL import Image, ImageDraw

    text_size, note_size = caption_sizes(width)
    big, small = font(text_size), font(note_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    rows: list[tuple[str, Any, int, str | tuple[int, int, int]]]
    rows = [(line, big, text_size, "black") for text in caption.lines for line in _wrap(probe, text, big, width - 16)]
    rows += [
        (line, small, note_size, (90, 90, 90))
        for text in caption.notes
        for line in _wrap(probe, text, small, width - 16)
    ]
    # Baselines ("ls" anchor) 1.35 em apart: CJK fonts' own line gap (~1.45 em)
    # would leave a tall empty strip above every line.
    height = 6 + sum(int(size * 1.35) for _, _, size, _ in rows) + 6
    band = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(band)
    y = 6
    for line, font_, size, colour in rows:
        draw.text((8, y + size), line, fill=colour, font=font_, anchor="ls")
        y += int(size * 1.35)
    return band


def render_explanation(image, cam, caption: Caption | str, note: str | None = None) -> object:
    """Photo | photo with heatmap overlay, side by side, the caption band underneath.

    Kept at the photo's own resolution unless its long side exceeds MAX_SIDE.
    `caption` may be plain text (one headline) with `note` under it.
    """
    import numpy as np
    from PIL import Image

    if isinstance(caption, str):
        caption = Caption([caption], [note] if note else [])
    scale = min(1.0, MAX_SIDE / max(image.width, image.height))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
        cam = np.asarray(Image.fromarray((cam * 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)) / 255.0
    w, h = image.size
    band = render_caption(caption, 2 * w)
    canvas = Image.new("RGB", (2 * w, h + band.height), "white")
    canvas.paste(image, (0, 0))
    canvas.paste(heatmap_overlay(image, cam), (w, 0))
    canvas.paste(band, (0, h))
    return canvas


def heatmap_overlay(image, cam):
    """The photo with the heatmap (H, W) in [0, 1] blended over it, as an RGB PIL image of its size."""
    import numpy as np
    from PIL import Image

    heat = colormap(cam)  # (H, W, 3)
    alpha = (0.25 + 0.45 * np.asarray(cam))[..., None]  # stronger where the model looked
    overlay = np.asarray(image, dtype=np.float32) * (1 - alpha) + heat * alpha
    return Image.fromarray(overlay.astype(np.uint8))


def _wrap(draw, text: str, font_, width: int) -> list[str]:
    """Greedy word wrap to a pixel width; a word wider than a line is cut between characters."""
    lines, line = [], ""
    for word in text.split():
        while draw.textlength(word, font=font_) > width and len(word) > 1:
            cut = next(i for i in range(len(word), 0, -1) if draw.textlength(word[:i], font=font_) <= width or i == 1)
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:cut])
            word = word[cut:]
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font_) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + ([line] if line else [])


def check_output(output: str | os.PathLike | None) -> None:
    """Refuse, before any work, an --output that can't be written as a picture.

    Raises:
        UsageError: a folder (that is --output-dir's job), or a name without a picture's extension.
    """
    if output is None:
        return
    from PIL import Image

    from skinfood_cli.errors import UsageError

    path = Path(output)
    if path.is_dir():
        raise UsageError(f"--output {path} is a folder: use --output-dir {path}, or name a file like {path}/why.png")
    if path.suffix.lower() not in Image.registered_extensions():
        raise UsageError(
            f"--output {path} has no picture extension: name a file like {path.with_suffix('.png')} "
            "(or use --output-dir for a folder)"
        )


def output_path_for(source: str, output: str | None, output_dir: str | Path, used: set) -> Path:
    """Where an explanation PNG goes; never the input itself, never a name used twice in a run."""
    if output:
        path = Path(output)
    else:
        path = Path(output_dir) / f"{Path(source).stem}.explain.png"
        n = 1
        while path in used:
            n += 1
            path = Path(output_dir) / f"{Path(source).stem}.explain-{n}.png"
    if path.resolve() == Path(source).resolve():
        from skinfood_cli.errors import UsageError

        raise UsageError(f"--output {path} is the input photo: choose another file name")
    used.add(path)
    return path


def explain_items(
    items,
    engine,
    book,
    *,
    lang: str,
    top_k: int,
    target_class: str | None,
    output: str | None,
    output_dir: str | Path,
    threshold: float | None = None,
):
    """Yield (record, GradCam or None) per input, in order.

    A record is the Prediction's fields and EXPLAIN_FIELDS (`explained_label`, `heatmap`);
    an input that failed has `error` set and the rest empty.
    """
    from skinfood_cli.data.images import load_image_file
    from skinfood_cli.data.quality import photo_quality
    from skinfood_cli.errors import ImageError, UsageError
    from skinfood_cli.prediction import Prediction

    target = None
    if target_class is not None:
        target = class_index(target_class, engine.classes, book)
        if target is None:
            raise UsageError(f"--class {target_class!r} is not one of the model's classes: {', '.join(engine.classes)}")
    threshold = engine.model.threshold if threshold is None else threshold
    used: set = set()
    for item in items:
        error = item.error
        if error is None:
            try:
                loaded = load_image_file(item.path)
            except ImageError as exc:
                error = str(exc)
        if error is not None:
            yield {**Prediction(item.path, error=error).to_dict(), **dict.fromkeys(EXPLAIN_FIELDS)}, None
            continue
        record, result, picture = explain_image(
            engine,
            loaded.image,
            book,
            item.path,
            lang=lang,
            top_k=top_k,
            target=target,
            threshold=threshold,
            quality=photo_quality(loaded),
        )
        path = output_path_for(item.path, output, output_dir, used)
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path)
        yield {**record, "heatmap": str(path)}, result


def explain_image(
    engine,
    image,
    book,
    name: str,
    *,
    lang: str,
    top_k: int,
    target: int | None,
    threshold: float,
    quality: list[str] | None = None,
):
    """One loaded photo -> (record with `explained_label`, GradCam, the rendered PIL picture).

    `quality` is the photo's quality hints (data/quality.py), put in the record as given.
    """
    from skinfood_cli.prediction import make_prediction

    result = grad_cam(engine, image, target)
    _, scope = engine.run_images_scoped([image])  # the scope check: one more no-grad pass
    record = make_prediction(
        name,
        result.probs,
        engine.classes,
        book,
        lang=lang,
        top_k=top_k,
        threshold=threshold,
        scope_score=None if scope is None else float(scope[0]),
        qhat=engine.model.qhat,
        set_rule=engine.model.set_rule,
        quality=quality,
    ).to_dict()
    explained = engine.classes[result.target]
    entry = book.get(explained, lang) if book is not None else None
    caption = build_caption(
        record,
        lang=lang,
        explained_name=entry.name if entry else explained,
        explained_probability=float(result.probs[result.target]),
    )
    picture = render_explanation(image, result.cam, caption)
    return {**record, "explained_label": explained}, result, picture


def class_index(name: str, classes: list[str], book) -> int | None:
    """The index of a class named as the model, any case, or a description's name or alias says it."""
    if name in classes:
        return classes.index(name)
    lowered = [c.lower() for c in classes]
    if name.lower() in lowered:
        return lowered.index(name.lower())
    if book is not None:
        key = book.resolve_key(name)
        for i, c in enumerate(classes):
            if key is not None and book.resolve_key(c) == key:
                return i
    return None
