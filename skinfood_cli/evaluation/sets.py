"""Which photos `evaluate` scores: `--data`/`--split`, or the model's own test split."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from skinfood_cli.errors import DataError, UsageError


@dataclass
class EvalSet:
    """The photos to score: (path, model class index), plus what was left out."""

    root: Path
    split: str
    samples: list[tuple[str, int]]
    unknown: dict[str, int] = field(default_factory=dict)  # folder -> photos skipped


def resolve_eval_set(
    meta: dict, classes: list[str], data: str | None, split: str, skip_unknown: bool = False
) -> EvalSet:
    """Which photos to evaluate: `--data`/`--split`, or the model's own test split."""
    from skinfood_cli.data.dataset import detect_layout, gather, list_class_folders, relative_key
    from skinfood_cli.data.images import is_image_path

    recorded = meta.get("data") or {}
    root_text = data or recorded.get("root")
    if not root_text:
        raise UsageError("this model records no dataset: pass --data DIR")
    root = Path(root_text).expanduser()
    folders = detect_layout(root)
    if folders.get("train") == root:  # DIR/<class>/ only: every photo in it is the test set
        folder, split = root, "all"
    elif "train" not in folders:  # DIR/test/ and/or DIR/val/ only: held-out photos
        if split not in folders and split == "test" and "val" in folders:
            split = "val"  # the default --split, and val/ is the held-out folder there is
        if split not in folders:
            raise DataError(
                f"{root} has no {split}/ folder (it holds {', '.join(f'{n}/' for n in folders)}): "
                "drop --split, or pass --split " + next(iter(folders))
            )
        folder = folders[split]
    elif split == "test":
        if "test" not in folders:
            raise DataError(f"{root} has no test/ folder: use --split val, or --data a folder of class folders")
        folder = folders["test"]
    elif split == "val" and "val" in folders:
        folder = folders["val"]
    else:
        folder = folders["train"]
    names = list_class_folders(folder)
    index = _match_classes(names, classes)
    unknown_names = [n for n in names if n not in index]
    if unknown_names and not skip_unknown:
        splits = [n for n in unknown_names if n in ("train", "val", "test")]
        hint = (
            f"; {splits[0]}/ looks like a split folder: keep only train/, val/ and test/ in {root}, "
            "each of class folders"
            if splits
            else ""
        )
        raise DataError(
            f"the model does not know the class(es) {', '.join(unknown_names)} found in {folder} "
            f"(it knows: {', '.join(classes)}); pass --skip-unknown to leave them out{hint}"
        )
    known = [n for n in names if n in index]
    samples = [(p, index[known[label]]) for p, label in gather(folder, known)]
    unknown = {n: sum(is_image_path(Path(p)) for p, _ in gather(folder, [n])) for n in unknown_names}
    if split in ("val", "train") and "val" not in folders:
        held = set(recorded.get("val_files") or [])
        # --val-fraction 0 records an empty split: then every photo in train/ was a training photo.
        none_held = "val_files" in recorded and recorded.get("num_val") == 0
        if not held and data is None and not (split == "train" and none_held):
            raise DataError("this model records no validation split: use --split test")
        samples = [s for s in samples if (relative_key(s[0], root) in held) == (split == "val")]
    samples = [s for s in samples if is_image_path(Path(s[0]))]
    if not samples:
        raise DataError(f"no images to evaluate in {folder}")
    return EvalSet(root, split, samples, unknown)


def _match_classes(folders: list[str], classes: list[str]) -> dict[str, int]:
    """Folder name -> model class index, exact first, then ignoring case and spacing."""

    def norm(s: str) -> str:
        return "".join(ch for ch in s.lower() if ch.isalnum())

    exact = {c: i for i, c in enumerate(classes)}
    loose = {norm(c): i for i, c in enumerate(classes)}
    out = {}
    for name in folders:
        if name in exact:
            out[name] = exact[name]
        elif norm(name) in loose:
            out[name] = loose[norm(name)]
    return out
