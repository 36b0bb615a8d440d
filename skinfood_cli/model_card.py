"""MODEL_CARD.md: what a trained model is, what it learned from, how good it is, where it fails.

Laid out as Hugging Face model cards are (Mitchell et al., "Model Cards for
Model Reporting"): YAML front matter whose `model-index` holds the metrics in
machine form, then prose sections. Training writes it at the end of a run from
best.pt's metadata (the validation figures training/card_figures.py gathered);
`evaluate` on the test split writes it again with the test figures, the very
numbers its JSON reports; `export` copies it beside the exported file.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from skinfood_cli.archs import get_arch
from skinfood_cli.checkpoint import DEFAULT_THRESHOLD

CARD_NAME = "MODEL_CARD.md"
NOT_A_DEVICE = (
    "Not a medical device. skinfood's answers are hints to discuss with a doctor, never a diagnosis; "
    "this model has not been cleared or approved by any regulator for clinical use."
)
# The test figures put into the front matter, under these model-index names.
TEST_METRICS = (
    ("accuracy", "accuracy", "accuracy"),
    ("balanced_accuracy", "balanced_accuracy", "balanced accuracy"),
    ("macro_f1", "f1", "macro-F1"),
    ("top_k_accuracy", "top_k_accuracy", "top-k accuracy"),
    ("ece", "ece", "expected calibration error"),
    ("loss", "loss", "cross-entropy"),
)


# --- rendering -------------------------------------------------------------------------


def render_model_card(meta: dict, test: dict | None = None) -> str:
    """The card's text from a checkpoint's metadata and, optionally, an evaluate result on test."""
    import yaml

    name = meta.get("run_name") or "skinfood model"
    arch = get_arch(meta.get("arch"))
    front = {
        "license": "other",
        "library_name": "pytorch",
        "pipeline_tag": "image-classification",
        "tags": ["skinfood", "image-classification", "dermatology", arch.name, "timm"],
        "model-index": [{"name": name, "results": _results(meta, test)}],
    }
    parts = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {name}",
        "",
        f"> **{NOT_A_DEVICE}**",
        "",
    ]
    parts += _details(meta) + _data(meta) + _recipe(meta) + _evaluation(meta, test) + _closing(meta)
    return "\n".join(parts).rstrip() + "\n"


def _results(meta: dict, test: dict | None) -> list[dict]:
    data_name = Path((meta.get("data") or {}).get("root") or "data").name
    out = []
    val = meta.get("validation")
    if val:
        out.append(
            {
                "task": {"type": "image-classification"},
                "dataset": {"name": data_name, "type": "imagefolder", "split": "validation"},
                "metrics": [
                    {"type": "accuracy", "value": val["accuracy"], "name": "validation accuracy"},
                    {
                        "type": "f1",
                        "value": val["macro_f1"],
                        "name": "validation macro-F1",
                        "args": {"average": "macro"},
                    },
                ],
            }
        )
    if test:
        metrics = [
            {"type": kind, "value": test[key], "name": f"test {label}"}
            for key, kind, label in TEST_METRICS
            if test.get(key) is not None
        ]
        out.append(
            {
                "task": {"type": "image-classification"},
                "dataset": {"name": Path(test.get("data") or data_name).name, "type": "imagefolder", "split": "test"},
                "metrics": metrics,
            }
        )
    return out


def _details(meta: dict) -> list[str]:
    cfg = meta.get("config") or {}
    classes = meta.get("classes") or []
    arch = get_arch(meta.get("arch"))
    source = meta.get("weights_source") or ("ImageNet weights" if cfg.get("pretrained") else "random initialisation")
    licence = f"; the ImageNet weights' licence: {arch.weights.licence}" if source.startswith("ImageNet") else ""
    return [
        "## Model details",
        "",
        f"- Architecture: {arch.name} (timm `{arch.timm_name}`), fine-tuned by skinfood "
        f"{meta.get('skinfood_version', '')} (PyTorch {meta.get('torch_version', '')})",
        f"- Started from: {source}{licence}",
        (
            f"- Input: {meta.get('image_size')} x {meta.get('image_size')} RGB, squashed (no crop), "
            f"normalised with mean {tuple(meta.get('mean') or arch.mean)} and std {tuple(meta.get('std') or arch.std)}"
            + _trained_on(meta)
        ),
        f"- Classes ({len(classes)}): {', '.join(classes)}",
        f"- Trained: {meta.get('created', '')}, run `{meta.get('run_name', '')}`",
        "",
    ]


def _trained_on(meta: dict) -> str:
    """Where the training crops' side differs from the input's (`predict_size`), say so."""
    read, trained = meta.get("image_size"), meta.get("train_image_size", meta.get("image_size"))
    if trained == read:
        return ""
    return f"; trained on {trained} x {trained} crops, whole photos read at {read} px (`predict_size`)"


def _data(meta: dict) -> list[str]:
    data = meta.get("data") or {}
    counts = (meta.get("dataset_summary") or {}).get("class_counts") or {}
    lines = [
        "## Training data",
        "",
        f"- Folder: `{data.get('root', '')}` (layout {data.get('layout', '')}); validation "
        + (
            "from its val/ folder"
            if data.get("val_source") == "folder"
            else "carved from train/, recorded in the checkpoint"
        ),
        f"- Photos: {data.get('num_train', '?')} trained on, {data.get('num_val', '?')} for validation",
        "",
    ]
    if counts:
        splits = list(counts)
        lines += ["| class | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]
        for c in meta.get("classes") or []:
            lines.append(f"| {c} | " + " | ".join(str(counts[s].get(c, 0)) for s in splits) + " |")
        lines.append("")
    leaks = data.get("leaks")
    if leaks:
        if leaks.get("num_pairs"):
            what = (
                f"the {leaks['num_dropped']} training photo(s) involved were left out of training (`--leaks drop`)"
                if leaks.get("policy") == "drop"
                else "they were kept in training (`--leaks keep`): validation and test figures are optimistic"
            )
            lines += [
                (
                    f"**Copies across splits:** {leaks['num_pairs']} pair(s) of a training photo and a validation or "
                    f"test photo within {leaks['threshold']} of 256 difference-hash bits; {what}."
                ),
                "",
            ]
        else:
            lines += [
                (f"**Copies across splits:** none found (within {leaks['threshold']} of 256 difference-hash bits)."),
                "",
            ]
    return lines


_SELECTED = {
    "best": "is the epoch with the best validation macro-F1 (never test).",
    "last": "holds the weights at the end of the schedule; validation only calibrates them.",
}


def _recipe(meta: dict) -> list[str]:
    cfg = meta.get("config") or {}
    keys = (  # noqa: SIM905 (a list literal would take 18 lines)
        "epochs minutes progressive select batch_size lr weight_decay label_smoothing freeze_epochs freeze_at "
        "freeze_backbone balance patience image_size predict_size val_fraction seed arch pretrained precision leaks"
    ).split()
    rows = [f"| {k} | {cfg[k]} |" for k in keys if k in cfg]
    # What auto and unset settings came to (runs from before it was recorded: a tenth, as then).
    recipe = meta.get("recipe") or {}
    rows += [f"| {k} (settled) | {v} |" for k, v in recipe.items()]
    ratio = recipe.get("backbone_lr_ratio", 0.1)
    freeze_at = cfg.get("freeze_at", 0)  # runs from before --freeze-at trained every layer
    kept = f" but its first {freeze_at} layer groups (kept at their ImageNet weights, `freeze_at`)" if freeze_at else ""
    rate = "the head's rate" if ratio == 1 else f"{ratio:g} x the head's rate"
    best = meta.get("metrics") or {}
    lines = [
        "## Training recipe",
        "",
        (
            "AdamW, warmup then cosine decay; the new head trains alone for `freeze_epochs`, then the whole "
            f"network{kept} with the backbone at {rate}, over `epochs` or a `minutes` budget; best.pt "
            + _SELECTED[cfg.get("select", "best")]
        ),
        "",
        "| setting | value |",
        "|---|---|",
        *rows,
        "",
    ]
    if best:
        of = (f" of {cfg['epochs']}" if cfg.get("epochs") else "") + (
            f", within {cfg['minutes']:g} minutes" if cfg.get("minutes") else ""
        )
        lines += [f"Model from epoch {best.get('epoch')}{of}.", ""]
    return lines


def _fmt(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(ci: dict, key: str) -> str:
    lo_hi = (ci or {}).get(key)
    return f"{lo_hi[0]:.3f} to {lo_hi[1]:.3f}" if lo_hi else "-"


def _metric_table(figures: dict) -> list[str]:
    ci = figures.get("ci") or {}
    return [
        "| metric | value | 95% interval |",
        "|---|---:|---|",
        *(
            f"| {label} | {_fmt(figures.get(key))} | {_ci(ci, key)} |"
            for key, label in (
                ("accuracy", "accuracy"),
                ("balanced_accuracy", "balanced accuracy"),
                ("macro_f1", "macro-F1"),
            )
        ),
        "",
    ]


def _evaluation(meta: dict, test: dict | None) -> list[str]:
    from skinfood_cli.data.skin_tone import NOTE

    val = meta.get("validation")
    lines = ["## Evaluation", ""]
    if val:
        lines += [f"### Validation ({val['num_images']} photos)", "", *_metric_table(val)]
    if test:
        lines += [
            f"### Test ({test['num_images']} photos)",
            "",
            (
                f"From `skinfood evaluate` on `{test.get('data')}` ({test.get('split')} split), "
                f"{time.strftime('%Y-%m-%d %H:%M')}."
            ),
            "",
            *_metric_table(test),
            (
                f"Top-{test.get('top_k')} accuracy {_fmt(test.get('top_k_accuracy'))}, cross-entropy "
                f"{_fmt(test.get('loss'))}."
            ),
            "",
        ]
        leaks = test.get("leaks")
        if leaks and leaks.get("count"):
            w = leaks["without"]
            lines += [
                (
                    f"**{leaks['count']} test photo(s) have a near copy among the training photos** (within "
                    f"{leaks['threshold']} bits). Without them ({w['count']} photos): accuracy "
                    f"{_fmt(w['accuracy'])} ({_ci(w['ci'], 'accuracy')}), macro-F1 {_fmt(w['macro_f1'])} "
                    f"({_ci(w['ci'], 'macro_f1')})."
                ),
                "",
            ]
        elif leaks:
            lines += ["No test photo has a near copy among the training photos.", ""]
    elif val:
        lines += ["No test figures yet: `skinfood evaluate` on the test split writes them here.", ""]
    lines += [
        "### Calibration",
        "",
        (
            f"Temperature {meta.get('temperature', 1.0):.3f} (fitted on validation); answers below "
            f"{meta.get('threshold', DEFAULT_THRESHOLD):.0%} confidence are flagged uncertain."
        ),
    ]
    if val:
        lines.append(
            f"Validation expected calibration error: {_fmt(val.get('ece_uncalibrated'))} before, "
            f"{_fmt(val.get('ece'))} after the temperature."
        )
    if test:
        lines.append(f"Test expected calibration error: {_fmt(test.get('ece'))}.")
    lines.append("")
    source, figures = ("test", test) if test else ("validation", val)
    if figures and figures.get("per_class"):
        lines += [
            f"### Per class ({source})",
            "",
            "| class | precision | recall | F1 | photos |",
            "|---|---:|---:|---:|---:|",
        ]
        for c, s in figures["per_class"].items():
            lines.append(f"| {c} | {_fmt(s['precision'])} | {_fmt(s['recall'])} | {_fmt(s['f1'])} | {s['support']} |")
        lines.append("")
    tones = (test or {}).get("by_skin_tone") or (val or {}).get("by_skin_tone")
    if tones:
        where = "test" if (test or {}).get("by_skin_tone") else "validation"
        lines += [
            f"### Per skin tone ({where})",
            "",
            f"_{NOTE}._",
            "",
            "| group | ITA | photos | accuracy | 95% interval | macro-F1 | 95% interval |",
            "|---|---|---:|---:|---|---:|---|",
        ]
        for g in tones["groups"]:
            lines.append(
                f"| {g['group']} | {g['ita']} | {g['count']} | {_fmt(g['accuracy'])} | "
                f"{_ci(g['ci'], 'accuracy')} | {_fmt(g['macro_f1'])} | {_ci(g['ci'], 'macro_f1')} |"
            )
        lines.append("")
    ood = meta.get("out_of_scope") or (test or {}).get("out_of_scope")
    if isinstance(ood, dict) and ood:
        lines += [
            "### Out-of-scope photos",
            "",
            "| figure | value |",
            "|---|---|",
            *(f"| {k} | {v} |" for k, v in ood.items() if not isinstance(v, (dict, list))),
            "",
        ]
    return lines


def _closing(meta: dict) -> list[str]:
    return [
        "## Intended use",
        "",
        (
            "Research, teaching and trying out skin-photo classification on one's own machine: a hint about which "
            f"of these {len(meta.get('classes') or [])} conditions a photo most resembles, to discuss with a doctor."
        ),
        "",
        (
            "Out of scope: diagnosis, triage or any clinical decision; conditions outside the class list (the model "
            "still answers with one of its classes); photos unlike the training set (other cameras, dermoscopy, "
            "other body sites)."
        ),
        "",
        "## Limitations",
        "",
        (
            "- Trained on a small atlas photo set: figures carry wide intervals, and atlas photos are cleaner than "
            "phone photos."
        ),
        (
            "- Dermatology photo sets lean to light skin; see the per-skin-tone table, whose groups are estimated "
            "from pixels and depend on light and camera."
        ),
        "- A confident answer can still be wrong; low-confidence answers are flagged uncertain.",
        "",
        "## Not a medical device",
        "",
        NOT_A_DEVICE,
        "",
    ]


# --- files -------------------------------------------------------------------------------


def write_model_card(run_dir: str | os.PathLike, meta: dict, test: dict | None = None) -> Path:
    """Write MODEL_CARD.md into a run folder (atomically) and return its path."""
    path = Path(run_dir) / CARD_NAME
    tmp = path.with_name(f".{CARD_NAME}.tmp")
    tmp.write_text(render_model_card(meta, test), encoding="utf-8")
    os.replace(tmp, path)
    return path


def update_model_card(model_path: str | os.PathLike, meta: dict, result: dict) -> Path | None:
    """After `evaluate` on a test split: rewrite the card of the model's run folder with `result`.

    Only checkpoints inside a run folder (one with config.yaml or a card) have a card to update.
    """
    model_path = Path(model_path)
    folder = model_path.parent
    if model_path.suffix.lower() not in (".pt", ".pth") or result.get("split") not in ("test", "all"):
        return None
    if not ((folder / CARD_NAME).is_file() or (folder / "config.yaml").is_file()):
        return None
    return write_model_card(folder, meta, {k: v for k, v in result.items() if k != "predictions"})


def copy_model_card(model_path: str | os.PathLike, exported: str | os.PathLike) -> Path | None:
    """Put the run's MODEL_CARD.md beside an exported file (nothing to do when it is already there)."""
    source = Path(model_path).parent / CARD_NAME
    target = Path(exported).parent / CARD_NAME
    if not source.is_file():
        return None
    if target.exists() and os.path.samefile(source, target):
        return target
    shutil.copyfile(source, target)
    return target
