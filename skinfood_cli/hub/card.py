"""The README.md of a model folder: the run's own MODEL_CARD.md under the Hub's front matter,
or a generated card with the same sections when the run has none."""

from __future__ import annotations


def model_card(config: dict, run_card: str | None, repo_id: str | None = None) -> str:
    """README.md: the run's own card under Hub front matter, or a generated card."""
    front = _front_matter(config)
    if run_card is not None:
        return run_card if run_card.lstrip().startswith("---") else front + "\n" + run_card
    metrics = config.get("metrics") or {}
    data = config.get("data") or {}
    rows = [f"| {k} | {_fmt(v)} |" for k, v in metrics.items() if isinstance(v, (int, float))]
    table = "\n".join(["| metric | value |", "|---|---|", *rows]) if rows else "(none recorded)"
    classes = ", ".join(config["classes"])
    name = config.get("run_name") or "skinfood model"
    repo = repo_id or "ORG/NAME"
    return f"""{front}
# {name}

A skin-condition photo classifier ({config.get("arch", "resnet50")}) trained with
skinfood. **Not a medical device**: its answers are
hints to discuss with a doctor, never a diagnosis.

## Intended use

Sorting a photo of a skin condition into one of: {classes}. For learning, triage practice and
research. Not for diagnosing anyone, and not for conditions outside this list: photos unlike
its training photos are flagged as out of scope, but that check is imperfect, and an unflagged
answer is still one of these classes.

    pip install ".[hub]"        # in a skinfood checkout
    skinfood predict photo.jpg --model hf://{repo}

## Data

Trained on a folder of {data.get("num_train", "?")} photos ({data.get("layout", "unknown")} layout,
folder `{data.get("root_name", "?")}`), validated on {data.get("num_val", "?")}. No photo is part of this
repository: only the weights (`model.safetensors`) and their settings (`config.json`).

## Metrics

On the validation photos, at the best epoch:

{table}

Calibration: temperature {_fmt(config.get("temperature"))}, uncertainty threshold
{_fmt(config.get("threshold"))}. Image size {config.get("image_size")} px.

## Limitations

- Validation photos come from the same collection as the training photos; other cameras,
  lighting and skin tones may score lower. Evaluate on your own photos first
  (`skinfood evaluate --model hf://{repo} --data DIR`).
- Photo collections under-represent darker skin; check per-class results before relying on it.
- The licence of the training photos carries over to questions about these weights: check it
  before redistributing or using the model commercially.

## Not a medical device

This model has not been cleared or approved by any regulator. Do not use it to decide on
treatment. See a doctor for anything that worries you, changes, bleeds or spreads.
"""


def _front_matter(config: dict) -> str:
    tags = ["skinfood", "image-classification", "dermatology", "not-a-medical-device"]
    lines = [
        "---",
        "library_name: skinfood",
        "pipeline_tag: image-classification",
        "license: unknown  # choose one: see docs/sharing.md on the training photos' licence",
        "tags:",
    ]
    lines += [f"- {t}" for t in tags]
    return "\n".join(lines + ["---", ""])


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "?" if value is None else str(value)
