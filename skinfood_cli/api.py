"""The Python API: a trained model in a notebook or a script, answering as the CLI does.

    from skinfood_cli import load_model

    model = load_model("my-run")             # what `--model` takes: a run, a file, a folder, hf://ORG/NAME
    records = model.predict("photos/")       # [Prediction]: the records `predict --format json` prints
    report = model.evaluate("dermnet/")      # the figures `evaluate` prints (.accuracy, .per_class, ...)
    why = model.explain("photo.jpg")         # Grad-CAM: .heatmap (H, W), .overlay, .prediction
    made = model.export("skin.onnx")         # the verified file `export` writes (.path, .verification, .passed)

Nothing here decides anything of its own: the model is found by `sources.resolve_model`,
loaded by `engine.load_model` and run by one `Engine`; records come from `prediction`,
figures from `evaluation` and heatmaps from `explanation`, as for the commands.
Errors are the CLI's: a missing model raises `ModelError` with the line the CLI
prints; a file that is not a photo becomes a record with `error` set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

# evaluate's report: one type for the command and the API (EvaluationReport is its older name here)
from skinfood_cli.evaluation.report import ClassScores, EvalReport
from skinfood_cli.evaluation.report import EvalReport as EvaluationReport

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from skinfood_cli.engine import Engine
    from skinfood_cli.export import ExportResult
    from skinfood_cli.hub.publish import HubExport
    from skinfood_cli.prediction import Prediction

__all__ = ["ClassScores", "EvalReport", "EvaluationReport", "Explanation", "SkinModel", "load_model"]


def load_model(
    model: str | os.PathLike | None = None,
    *,
    lang: str | None = None,
    device: str | None = None,
    precision: str = "auto",
    descriptions: str | os.PathLike | None = None,
    batch_size: int = 32,
) -> SkinModel:
    """Load a trained model for Python use.

    Args:
        model: a run name (`skinfood models`), a .pt / .onnx / .torchscript file, a
            model folder, or `hf://ORG/NAME[@REVISION]`; None: the newest run.
        lang: the language of names and descriptions, "en" or "ko" (default: the locale's).
        device: "cpu", "cuda", "cuda:N", "mps" or "auto" (default: $SKINFOOD_DEVICE, else auto).
        precision: "auto", "fp32", "bf16" or "fp16", as `--precision`.
        descriptions: a YAML file that adds or overrides descriptions, as `--descriptions`.
        batch_size: photos per forward pass.

    Raises:
        ModelError: no such run or file (the message says what to do), or it does not load.
        UsageError: an unknown language.
    """
    from skinfood_cli.descriptions import default_language, load_descriptions, validate_language
    from skinfood_cli.engine import Engine
    from skinfood_cli.engine import load_model as load_file
    from skinfood_cli.sources import resolve_model

    language = validate_language(lang) if lang else default_language()
    book = load_descriptions(Path(descriptions) if descriptions else None)
    engine = Engine(load_file(resolve_model(model)), device=device, precision=precision, batch_size=batch_size)
    return SkinModel(engine, book, lang=language)


class SkinModel:
    """One loaded model (an `Engine`) and the descriptions its answers quote."""

    def __init__(self, engine: Engine, book, *, lang: str = "en"):
        self.engine = engine
        self.book = book
        self.lang = lang

    def __repr__(self) -> str:
        m = self.engine.model
        return f"SkinModel({m.path.name!r}, classes={len(m.classes)}, device={self.engine.device.type!r})"

    @property
    def classes(self) -> list[str]:
        return list(self.engine.classes)

    @property
    def path(self) -> Path:
        """The checkpoint file or model folder that was loaded."""
        return self.engine.model.path

    def predict(
        self, inputs, *, top_k: int = 3, threshold: float | None = None, recursive: bool = True
    ) -> list[Prediction]:
        """Records for photos, in input order: always a list, one record per photo.

        Args:
            inputs: a path (a file, a folder, a glob pattern), a PIL image, or a list
                mixing them. A PIL image's record has the path "<image N>", N its place
                in `inputs`.
            top_k: alternatives in each record's `top_k`.
            threshold: the older rule, uncertain below this confidence (default: the
                model's prediction sets decide, as the CLI).
            recursive: look inside sub-folders of a folder.

        A file that can't be read as a photo gets a record with `error` set.
        """
        from skinfood_cli.prediction import expand_inputs, predict_items

        entries = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        records: list[Prediction] = []
        start = 0
        while start < len(entries):  # runs of paths stream through the engine; runs of images go in memory
            images = _is_image(entries[start])
            end = start
            while end < len(entries) and _is_image(entries[end]) == images:
                end += 1
            if images:
                records += self._predict_images(entries[start:end], start, top_k=top_k, threshold=threshold)
            else:
                items = expand_inputs([os.fspath(p) for p in entries[start:end]], recursive=recursive)
                records += predict_items(
                    items, self.engine, self.book, lang=self.lang, top_k=top_k, threshold=threshold
                )
            start = end
        return records

    def _predict_images(self, images: list, first: int, *, top_k: int, threshold: float | None) -> list[Prediction]:
        from skinfood_cli.data.images import prepare_image
        from skinfood_cli.data.quality import assess, measure
        from skinfood_cli.prediction import make_prediction

        engine = self.engine
        # As predict_items: an explicit threshold keeps the confidence rule, else the conformal set decides.
        qhat = engine.model.qhat if threshold is None else None
        threshold = engine.model.threshold if threshold is None else threshold
        out = []
        for offset in range(0, len(images), engine.batch_size):
            batch = images[offset : offset + engine.batch_size]
            rgb = [prepare_image(img) for img in batch]
            logits, scope = engine.run_images_scoped(rgb)  # (B, K), (B,) or None
            for i, (original, image) in enumerate(zip(batch, rgb)):
                tables = getattr(original, "quantization", None) if original.format == "JPEG" else None
                out.append(
                    make_prediction(
                        f"<image {first + offset + i}>",
                        engine.probabilities(logits[i]),
                        engine.classes,
                        self.book,
                        lang=self.lang,
                        top_k=top_k,
                        threshold=threshold,
                        scope_score=None if scope is None else float(scope[i]),
                        qhat=qhat,
                        set_rule=engine.model.set_rule,
                        quality=assess(measure(image, quantization=tables)),
                    )
                )
        return out

    def evaluate(
        self,
        data: str | os.PathLike | None = None,
        *,
        split: str = "test",
        top_k: int = 3,
        bootstrap: int = 1000,
        seed: int = 0,
        skip_unknown: bool = False,
        by_skin_tone: bool = False,
    ) -> EvalReport:
        """Score the model on held-out photos, as `skinfood evaluate --format json` does.

        Args:
            data: a dataset folder in any layout `train` takes (default: the model's own).
            split: "test", "val" or "train" (a folder of class folders is all test).
            bootstrap: resamples for the 95% intervals (0: none).
            skip_unknown: leave out class folders the model does not know (else DataError).
            by_skin_tone: add the per-skin-tone table (`report["by_skin_tone"]`).

        Unlike the command, it writes nothing (no model card update, no report files).
        The report is `evaluation.evaluate_model`'s, the command's own.
        """
        from skinfood_cli.evaluation import evaluate_model

        return evaluate_model(
            self.engine,
            data=data,
            split=split,
            skip_unknown=skip_unknown,
            top_k=top_k,
            bootstrap=bootstrap,
            seed=seed,
            by_skin_tone=by_skin_tone,
            update_card=False,
        )

    def export(
        self,
        output: str | os.PathLike | None = None,
        *,
        fmt: str = "onnx",
        int8: bool = False,
        verify_images: int | None = None,
    ) -> ExportResult | HubExport:
        """Write the model as an ONNX or TorchScript file, or a hub folder, verified, as `skinfood export` does.

        Args:
            output: the file (or, for "hub", the folder) to write; None: beside the checkpoint.
            fmt: "onnx", "torchscript" or "hub".
            int8: an 8-bit copy, calibrated on the run's training photos (files only).
            verify_images: photos to check the file on (None: as many as `skinfood export`).

        Returns the command's own result: `.path`, `.verification` (`.agreement`,
        `.max_abs_diff` against PyTorch fp32), `.passed`, `.card`. A file that fails its
        verification is returned with `passed` False, not raised: the command exits 1 there.
        """
        from skinfood_cli.export import VERIFY_IMAGES
        from skinfood_cli.exporting import export

        photos = VERIFY_IMAGES if verify_images is None else verify_images
        return export(self.path, fmt=fmt, output=output, int8=int8, verify_images=photos, book=self.book)

    def explain(self, photo, *, target_class: str | None = None, top_k: int = 3) -> Explanation:
        """Grad-CAM for one photo (a path or a PIL image): where the model found its evidence.

        Args:
            target_class: explain this class instead of the top one (a class or a
                description's name, as `--class`).

        Raises:
            ImageError: the file can't be read as a photo.
            UsageError: an exported model (.onnx, .torchscript) carries no gradients,
                or `target_class` is not one of the model's classes.
        """
        from skinfood_cli.data.images import load_image_file, prepare_image
        from skinfood_cli.data.quality import assess, measure, photo_quality
        from skinfood_cli.errors import UsageError
        from skinfood_cli.explanation import class_index, explain_image, heatmap_overlay
        from skinfood_cli.prediction import Prediction

        engine = self.engine
        target = None
        if target_class is not None:
            target = class_index(target_class, engine.classes, self.book)
            if target is None:
                raise UsageError(f"class {target_class!r} is not one of the model's classes: {', '.join(self.classes)}")
        if _is_image(photo):
            name, image = "<image 0>", prepare_image(photo)
            tables = getattr(photo, "quantization", None) if photo.format == "JPEG" else None
            quality = assess(measure(image, quantization=tables))
        else:
            name = os.fspath(photo)
            loaded = load_image_file(name)
            image, quality = loaded.image, photo_quality(loaded)
        record, cam, picture = explain_image(
            engine,
            image,
            self.book,
            name,
            lang=self.lang,
            top_k=top_k,
            target=target,
            threshold=engine.model.threshold,
            quality=quality,
        )
        explained = record.pop("explained_label")
        return Explanation(
            prediction=Prediction(**record),
            heatmap=cam.cam,
            overlay=heatmap_overlay(image, cam.cam),
            picture=picture,
            explained_label=explained,
        )


def _is_image(value) -> bool:
    """A PIL image (checked by duck type: importing PIL for an isinstance check is not needed)."""
    return hasattr(value, "getbands") and hasattr(value, "size")


@dataclass
class Explanation:
    """Grad-CAM for one photo, and the record `predict` gives for it."""

    prediction: Prediction
    heatmap: np.ndarray  # (H, W) float32 in [0, 1], the photo's size: 1 = strongest evidence
    overlay: Image.Image  # the photo with the heatmap blended over it
    picture: Image.Image  # photo | overlay with the caption: what `skinfood explain` writes
    explained_label: str  # the class the heatmap is for (the top one unless target_class)

    def save(self, path: str | os.PathLike) -> Path:
        """Write `picture` (PNG by the suffix, as `skinfood explain --output`)."""
        self.picture.save(path)
        return Path(path)
