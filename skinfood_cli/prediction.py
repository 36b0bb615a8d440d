"""Prediction records: inputs -> engine -> `Prediction`, one shape for every command.

`predict`, `explain` and `serve` all build their answers with `make_prediction`,
so a record means the same thing whichever way it was asked for.
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from skinfood_cli.checkpoint import DEFAULT_THRESHOLD
from skinfood_cli.data.images import is_image_path
from skinfood_cli.descriptions import NOT_A_DIAGNOSIS as NOT_A_DIAGNOSIS  # re-exported for the CLI
from skinfood_cli.descriptions import notice
from skinfood_cli.errors import UsageError

# What a record, the human output and the page lead with when the photo is out of scope.
OUT_OF_SCOPE = {
    "en": "This does not look like a photo of a skin condition this model was trained on.",
    "ko": "이 사진은 이 모델이 학습한 피부 질환 사진으로 보이지 않습니다.",
}


@dataclass
class Prediction:
    """One input's answer. `error` is set (and the rest empty) when it failed."""

    path: str
    label: str | None = None
    disease_name: str | None = None
    confidence: float | None = None
    uncertain: bool | None = None
    top_k: list[dict] = field(default_factory=list)
    description: str | None = None
    urgency: str | None = None
    advice: str | None = None
    error: str | None = None
    # The scope check (trust/): in_scope False means the photo does not look like the
    # training photos, and the label is only the closest of the known classes.
    in_scope: bool | None = None
    scope_score: float | None = None  # >= 0 in scope, higher = more typical; None: no scope check
    prediction_set: list[str] | None = None  # conformal set, most probable first
    # "Not a diagnosis ..." in the answer's language: every answer with a label carries it, so
    # an app built on the JSON or the API shows it beside the summary and the advice.
    notice: str | None = None
    # Photo-quality hints (data/quality.py: "dark", "blurred", "small", "compressed"); [] when fine.
    quality: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class InputItem:
    """An input path, or the reason it can't be one (a missing file, an empty glob)."""

    path: str
    error: str | None = None


def expand_inputs(
    inputs: Iterable[str], *, recursive: bool = True, stdin=None, shard: tuple[int, int] | None = None
) -> list[InputItem]:
    """Files, folders, glob patterns and `-` (paths on stdin) -> an ordered list.

    Folders are walked in sorted order and contribute only files with an image
    extension; a file named explicitly is always tried, whatever its name.
    `shard=(i, n)` keeps every n-th item starting at i, for job arrays.
    """
    items: list[InputItem] = []
    for raw in inputs:
        if raw == "-":
            stream = stdin if stdin is not None else sys.stdin
            items.extend(_expand_one(line.rstrip("\r\n"), recursive) for line in stream if line.strip())
            continue
        items.extend(_expand_group(raw, recursive))
    flat: list[InputItem] = []
    for item in items:
        flat.extend(item if isinstance(item, list) else [item])
    if shard is not None:
        index, count = shard
        flat = flat[index::count]
    return flat


def _expand_group(raw: str, recursive: bool) -> list[InputItem]:
    if not os.path.lexists(raw) and glob.has_magic(raw):
        matches = sorted(glob.glob(raw, recursive=True))
        if not matches:
            return [InputItem(raw, "no files match this pattern")]
        out: list[InputItem] = []
        for m in matches:
            out.extend(_flatten(_expand_one(m, recursive)))
        return out
    return _flatten(_expand_one(raw, recursive))


def _flatten(x) -> list[InputItem]:
    return x if isinstance(x, list) else [x]


def _expand_one(raw: str, recursive: bool):
    path = Path(raw).expanduser()
    try:
        if path.is_dir():
            files = _folder_images(path, recursive)
            return files or [InputItem(str(path), "folder holds no image files")]
        if path.is_file():
            return InputItem(str(path))
        if os.path.lexists(path):
            return InputItem(str(path), "not a regular file (broken link or special file)")
        return InputItem(str(path), "file not found")
    except OSError as exc:  # symlink loops, permission problems
        return InputItem(str(path), exc.strerror or str(exc))


def _folder_images(folder: Path, recursive: bool) -> list[InputItem]:
    found: list[Path] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(Path(dirpath) / f for f in filenames if not f.startswith(".") and is_image_path(Path(f)))
        # One sorted order over the whole tree (by path components), as `find | sort` gives.
        found.sort(key=lambda p: p.relative_to(folder).parts)
    else:
        found = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and is_image_path(p))
    return [InputItem(str(p)) for p in found]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' -> (I, N) with 0 <= I < N."""
    if not text:
        return None
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard takes I/N, like 0/4, not {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text}: need 0 <= I < N")
    return index, count


def make_prediction(
    path: str,
    probs,
    classes: list[str],
    book,
    *,
    lang: str = "en",
    top_k: int = 3,
    threshold: float = DEFAULT_THRESHOLD,
    scope_score: float | None = None,
    qhat: float | None = None,
    set_rule: str = "aps",
    quality: list[str] | None = None,
) -> Prediction:
    """Build the record for one image from its calibrated probabilities (K,).

    With a conformal quantile `qhat` the record carries its prediction set and is
    uncertain when the set holds more than one condition; without one (an older
    model) the set is the top class and `threshold` on the confidence decides.
    With a `scope_score` below 0 the photo is out of scope: the record keeps its
    label and top-k for scripts, but its description is the out-of-scope sentence.
    `quality` is the photo's quality hints (data/quality.py), carried as given.
    """
    import numpy as np

    from skinfood_cli.descriptions import NO_DESCRIPTION

    probs = np.asarray(probs, dtype=np.float64)
    order = np.argsort(-probs, kind="stable")[: max(1, min(top_k, len(classes)))]

    def describe(label: str):
        return book.get(label, lang) if book is not None else None

    best = classes[order[0]]
    entry = describe(best)
    alternatives = []
    for i in order:
        e = describe(classes[i])
        alternatives.append(
            {"label": classes[i], "disease_name": e.name if e else classes[i], "probability": round(float(probs[i]), 6)}
        )
    confidence = float(probs[order[0]])
    in_scope = scope_score is None or scope_score >= 0
    if qhat is not None:
        from skinfood_cli.trust.conformal import prediction_sets

        members = [classes[i] for i in prediction_sets(probs[None], qhat, set_rule)[0]]
        uncertain = len(members) > 1
    else:
        members, uncertain = [best], confidence < threshold
    if in_scope:
        description = entry.summary if entry else NO_DESCRIPTION.get(lang, NO_DESCRIPTION["en"])
        urgency, advice = (entry.urgency, entry.see_a_doctor) if entry else (None, None)
    else:  # the closest condition is no answer: its description and advice would read as one
        description, urgency, advice = OUT_OF_SCOPE.get(lang, OUT_OF_SCOPE["en"]), None, None
    return Prediction(
        path=path,
        label=best,
        disease_name=entry.name if entry else best,
        confidence=round(confidence, 6),
        uncertain=bool(uncertain),
        top_k=alternatives,
        description=description,
        urgency=urgency,
        advice=advice,
        in_scope=in_scope,
        scope_score=None if scope_score is None else round(float(scope_score), 6),
        prediction_set=members,
        notice=notice(lang),
        quality=list(quality or []),
    )


def predict_items(
    items: list[InputItem], engine, book, *, lang: str = "en", top_k: int = 3, threshold: float | None = None
) -> Iterator[Prediction]:
    """Stream records for `items` in order; failures become error records."""
    # An explicit --threshold keeps the confidence rule; by default the conformal set decides.
    qhat = engine.model.qhat if threshold is None else None
    threshold = engine.model.threshold if threshold is None else threshold
    runnable = [item.path for item in items if item.error is None]
    results = engine.run_paths(runnable, quality=True)
    for item in items:
        if item.error is not None:
            yield Prediction(path=item.path, error=item.error)
            continue
        result = next(results)
        if result.error is not None:
            yield Prediction(path=item.path, error=result.error)
        else:
            yield make_prediction(
                item.path,
                engine.probabilities(result.logits),
                engine.classes,
                book,
                lang=lang,
                top_k=top_k,
                threshold=threshold,
                scope_score=result.scope,
                qhat=qhat,
                set_rule=engine.model.set_rule,
                quality=result.quality,
            )


def missing_descriptions(classes: list[str], book) -> list[str]:
    """Classes with no entry in the descriptions (each gets one warning)."""
    return [c for c in classes if book.resolve_key(c) is None]
