"""Copies at training and evaluation time, skin-tone scores, and the run's MODEL_CARD.md."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from skinfood_cli.data.leaks import left_out
from skinfood_cli.training import Reporter, TrainConfig
from skinfood_cli.training.prepare import prepare_data


class Said(Reporter):
    def __init__(self):
        self.lines, self.warnings = [], []

    def message(self, text):
        self.lines.append(text)

    def warning(self, text):
        self.warnings.append(text)


def _leaky_copy(dataset: Path, tmp_path: Path) -> tuple[Path, str]:
    """The session dataset with one photo of the training split (not the carved validation) also in test/."""
    from skinfood_cli.data.dataset import discover_dataset

    root = tmp_path / "leaky"
    shutil.copytree(dataset, root)
    source = Path(discover_dataset(root).train[0][0])
    shutil.copy(source, root / "test" / source.parent.name / "copied.jpg")
    return root, source.relative_to(root).as_posix()


def test_leaks_drop_leaves_the_training_copy_out_and_says_so(dataset, tmp_path):
    root, key = _leaky_copy(dataset, tmp_path)
    said = Said()
    ds = prepare_data(TrainConfig(data=str(root), leaks="drop"), said)
    trained_on = {Path(p).relative_to(root).as_posix() for p, _ in ds.train}
    assert key not in trained_on and ds.leaks.dropped == [key]
    assert left_out(ds.leaks.record(), root) == {(root / key).resolve()}  # what benchmarks rebuild from a run
    assert any("left 1 training photo(s) out" in line for line in said.lines), said.lines
    assert len(ds.leaks.train_hashes) == len(ds.train)
    assert ds.leaks.record()["pairs"][0]["other"].endswith("/copied.jpg")


def test_leaks_keep_trains_on_everything_and_warns(dataset, tmp_path):
    root, _ = _leaky_copy(dataset, tmp_path)
    said = Said()
    dropped = prepare_data(TrainConfig(data=str(root), leaks="drop"), Said())
    ds = prepare_data(TrainConfig(data=str(root), leaks="keep"), said)
    assert len(ds.train) == len(dropped.train) + 1 and ds.leaks.dropped == []
    assert any("kept them in train" in w for w in said.warnings), said.warnings


def test_no_leaks_changes_nothing(dataset):
    said = Said()
    ds = prepare_data(TrainConfig(data=str(dataset)), said)
    assert ds.leaks.pairs == [] and ds.leaks.dropped == []
    assert not said.lines and not said.warnings  # a clean set adds no line to training's output
    assert ds.leaks.record()["pairs"] == []  # ... and the run still records that it looked


def test_an_unknown_leak_policy_is_a_usage_error(cli, dataset):
    result = cli("train", "--data", dataset, "--leaks", "maybe", "--epochs", "1")
    assert result.exit_code == 2, result.output
    assert "--leaks" in result.stderr and "'drop', 'keep'" in result.stderr


def test_the_card_figures_come_from_the_validation_logits_handed_in(dataset):
    import numpy as np

    from skinfood_cli.training.card_figures import card_fields

    ds = prepare_data(TrainConfig(data=str(dataset)), Said())
    n, k = len(ds.val), len(ds.classes)
    labels = np.array([label for _, label in ds.val])
    logits = np.eye(k, dtype=np.float32)[labels] * 4.0  # (N, K): every answer right
    fields = card_fields(ds, (logits, labels), temperature=1.0)
    val = fields["validation"]
    assert val["num_images"] == n and val["accuracy"] == 1.0 and set(val["per_class"]) == set(ds.classes)
    assert sum(fields["dataset_summary"]["class_counts"]["val"].values()) == n
    # Too few photos to calibrate on: class counts, no validation figures.
    assert set(card_fields(ds, None, temperature=1.0)) == {"dataset_summary"}


def test_a_card_renders_a_recipe_recorded_before_its_newer_fields():
    from skinfood_cli.model_card import render_model_card

    old = {"pretrained": True, "freeze_epochs": 1, "progressive": False, "augment": "strong"}
    card = render_model_card({"arch": "resnet50", "classes": ["a", "b"], "config": {"select": "last"}, "recipe": old})
    assert "| augment (settled) | strong |" in card and "device (settled)" not in card
    assert "the backbone at 0.1 x the head's rate" in card  # from before the ratio was recorded: a tenth, as then
    assert "below 50% confidence are flagged uncertain" in card  # no threshold recorded: the default
    assert "layer groups" not in card  # from before --freeze-at: every layer trained
    assert "whole photos read at" not in card  # from before predict_size: read at the size trained on
    kept = render_model_card({"arch": "resnet50", "classes": ["a", "b"], "config": {"freeze_at": 2}, "recipe": old})
    assert "the whole network but its first 2 layer groups (kept at their ImageNet weights" in kept


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def _metric(front: dict, split: str, kind: str) -> float:
    for result in front["model-index"][0]["results"]:
        if result["dataset"]["split"] == split:
            return next(m["value"] for m in result["metrics"] if m["type"] == kind)
    raise KeyError(split)


@pytest.mark.slow
def test_training_writes_a_card_and_records_its_photos(trained):
    import torch

    card = (trained.run_dir / "MODEL_CARD.md").read_text()
    front = _front_matter(card)
    ckpt = torch.load(trained.best_path, map_location="cpu", weights_only=True)
    assert _metric(front, "validation", "accuracy") == ckpt["validation"]["accuracy"]
    for section in (
        "## Training data",
        "## Training recipe",
        "### Validation",
        "### Calibration",
        "### Per class (",  # validation, or test once another test's evaluate updated the shared run's card
        "### Per skin tone (",
        "## Intended use",
        "## Limitations",
        "Not a medical device",
    ):
        assert section in card, section
    assert len(ckpt["data"]["train_hashes"]) == ckpt["data"]["num_train"]
    assert ckpt["data"]["leaks"]["policy"] == "drop" and ckpt["config"]["leaks"] == "drop"
    assert yaml.safe_load((trained.run_dir / "config.yaml").read_text())["leaks"] == "drop"


@pytest.mark.slow
def test_evaluate_writes_its_test_figures_into_the_card(cli, installed_run):
    result = cli("evaluate", "--model", installed_run.name, "--format", "json", "--by", "skin-tone")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    front = _front_matter((installed_run / "MODEL_CARD.md").read_text())
    assert _metric(front, "test", "accuracy") == d["accuracy"]
    assert _metric(front, "test", "f1") == d["macro_f1"]
    assert _metric(front, "test", "balanced_accuracy") == d["balanced_accuracy"]
    assert _metric(front, "test", "ece") == d["ece"]
    card = (installed_run / "MODEL_CARD.md").read_text()
    assert f"### Test ({d['num_images']} photos)" in card and "### Per skin tone (test)" in card
    groups = d["by_skin_tone"]["groups"]
    assert sum(g["count"] for g in groups) == d["num_images"]
    assert "not the person's Fitzpatrick type" in d["by_skin_tone"]["note"]
    assert d["leaks"]["count"] == 0  # the session set has no copies


@pytest.mark.slow
def test_evaluate_by_skin_tone_table_and_report_file(cli, model_path, tmp_path):
    result = cli("evaluate", "--model", model_path, "--by", "skin-tone", "--report", tmp_path / "r")
    assert result.exit_code == 0, result.output
    assert "by estimated skin tone" in result.stdout and "Fitzpatrick" in result.stdout
    rows = (tmp_path / "r" / "skin_tone.csv").read_text().splitlines()
    assert rows[0].startswith("group,ita,count") and len(rows) == 1 + 7
    assert "by_skin_tone" in json.loads((tmp_path / "r" / "metrics.json").read_text())


@pytest.mark.slow
def test_evaluate_warns_about_test_photos_copied_from_training(cli, model_path, dataset, tmp_path):
    root = tmp_path / "other"
    shutil.copytree(dataset / "test", root / "test")
    shutil.copytree(dataset / "train", root / "train")
    from skinfood_cli.data.dataset import discover_dataset

    # Photos the model trained on: train/ less the validation photos carved from it.
    copies = [Path(p) for p, _ in discover_dataset(dataset).train][:2]
    for i, src in enumerate(copies):
        shutil.copy(src, root / "test" / "acne" / f"leak{i}.jpg")
    result = cli("evaluate", "--model", model_path, "--data", root, "--format", "json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["leaks"]["count"] == 2
    assert {Path(p["path"]).name for p in d["leaks"]["photos"]} == {"leak0.jpg", "leak1.jpg"}
    assert d["leaks"]["without"]["count"] == d["num_images"] - 2
    assert "near copy among the model's training photos" in result.stderr


@pytest.mark.slow
def test_export_puts_the_card_beside_the_file(cli, model_path, tmp_path):
    out = tmp_path / "shipped" / "model.torchscript"
    result = cli("export", "--model", model_path, "--format", "torchscript", "--output", out, "--verify-images", "8")
    assert result.exit_code == 0, result.output
    assert (out.parent / "MODEL_CARD.md").read_text() == (model_path.parent / "MODEL_CARD.md").read_text()
