"""`skinfood evaluate`: the confusion table and the error analysis.

Every test here scores the session model (trained once in conftest) on the
generated photos; none trains a model of its own.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
from pathlib import Path

import pytest
from conftest import CLASSES, PHOTO_SIZE
from PIL import Image

from skinfood_cli.data.synthetic import make_image

TEST_PER_CLASS = 8
NUM_TEST = TEST_PER_CLASS * len(CLASSES)  # 24
SPLIT_KEYS = ("accuracy", "balanced_accuracy", "macro_f1")


# --- helpers ----------------------------------------------------------------------------------


def evaluate_json(cli, *args):
    r = cli("evaluate", "--format", "json", *args)
    data = json.loads(r.stdout) if r.stdout.strip() else None
    return r, data


def copy_test_set(dataset: Path, tmp_path: Path) -> Path:
    """A writable copy of the dataset's test/ folder (a folder of class folders)."""
    target = tmp_path / "testcopy"
    shutil.copytree(dataset / "test", target)
    return target


def recorded_val_files(model_path: Path) -> list[str]:
    from skinfood_cli.checkpoint import load_checkpoint

    data = load_checkpoint(model_path)["data"]
    assert data["val_files"], "the session model should record the val split it drew from train"
    assert len(data["val_files"]) == data["num_val"]
    root = Path(data["root"])
    return [str(root / rel) for rel in data["val_files"]]


def confusion_rows(stdout: str, classes) -> list[list[int]]:
    """The numbers of each row of the printed confusion table ("1 acne │ 8 │ 0 │ 0")."""
    rows = []
    for i, name in enumerate(classes):
        match = re.search(rf"^\s*{i + 1} {re.escape(name)}\b(.*)$", stdout, re.MULTILINE)
        assert match, f"no confusion-table row for {name!r} in:\n{stdout}"
        rows.append([int(x) for x in re.findall(r"\d+", match.group(1))])
    return rows


def summary_value(stdout: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}\s+(\d+\.\d{{3}})", stdout, re.MULTILINE)
    assert match, f"no {label!r} line in:\n{stdout}"
    return match.group(1)


def assert_internally_consistent(data: dict) -> None:
    classes = data["classes"]
    cm = data["confusion_matrix"]
    K = len(classes)
    assert len(cm) == K and all(len(row) == K for row in cm)
    total = sum(map(sum, cm))
    assert total == data["num_images"]
    trace = sum(cm[i][i] for i in range(K))
    assert data["accuracy"] == pytest.approx(trace / total)
    recalls = []
    for i, name in enumerate(classes):
        s = data["per_class"][name]
        assert s["support"] == sum(cm[i])
        column = sum(cm[r][i] for r in range(K))
        assert s["recall"] == pytest.approx(cm[i][i] / s["support"] if s["support"] else 0.0)
        assert s["precision"] == pytest.approx(cm[i][i] / column if column else 0.0)
        recalls.append(s["recall"])
    present = [r for r, name in zip(recalls, classes) if data["per_class"][name]["support"]]
    assert data["balanced_accuracy"] == pytest.approx(sum(present) / len(present))


# --- the default run ------------------------------------------------------------------------


@pytest.mark.slow
def test_bare_evaluate_scores_the_latest_model_on_its_test_split(cli, installed_run, dataset):
    r = cli("evaluate")
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    assert "confusion matrix" in out
    rows = confusion_rows(out, CLASSES)
    assert [sum(row) for row in rows] == [TEST_PER_CLASS] * len(CLASSES)
    # the test split recorded in the checkpoint: the dataset's own test/ folder
    assert f"{NUM_TEST} images (test split of {dataset.resolve()})" in " ".join(out.split())
    for name in CLASSES:
        assert re.search(rf"^\s*{name}\b", out, re.MULTILINE), f"no per-class row for {name}"


@pytest.mark.slow
def test_json_report_has_every_key_and_adds_up(cli, installed_run):
    r, data = evaluate_json(cli)
    assert r.exit_code == 0, r.stderr
    for key in (
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "ci",
        "top_k_accuracy",
        "loss",
        "ece",
        "num_images",
        "classes",
        "confusion_matrix",
        "per_class",
        "most_confused",
    ):
        assert key in data, key
    assert "predictions" not in data  # the per-photo rows go to --report, not to stdout
    assert data["num_images"] == NUM_TEST
    assert data["classes"] == list(CLASSES)
    assert data["split"] == "test"

    assert set(data["ci"]) == set(SPLIT_KEYS)
    for key in SPLIT_KEYS:
        low, high = data["ci"][key]
        assert 0.0 <= low <= data[key] <= high <= 1.0, (key, low, data[key], high)

    assert_internally_consistent(data)
    assert set(data["per_class"]) == set(CLASSES)
    for s in data["per_class"].values():
        assert {"precision", "recall", "f1", "support"} <= set(s)
        assert s["support"] == TEST_PER_CLASS
        p, rc = s["precision"], s["recall"]
        assert s["f1"] == pytest.approx(2 * p * rc / (p + rc) if p + rc else 0.0)

    assert data["accuracy"] <= data["top_k_accuracy"] <= 1.0
    assert data["loss"] >= 0.0
    assert 0.0 <= data["ece"] <= 1.0
    # the model learned the lesion colours: far better than the 1/3 of guessing
    assert data["accuracy"] >= 0.6

    cm = data["confusion_matrix"]
    index = {c: i for i, c in enumerate(CLASSES)}
    off_diagonal = sum(cm[i][j] for i in range(3) for j in range(3) if i != j)
    assert sum(p["count"] for p in data["most_confused"]) == off_diagonal
    for pair in data["most_confused"]:
        assert set(pair) == {"true", "predicted", "count"}
        assert pair["true"] != pair["predicted"]
        assert pair["count"] == cm[index[pair["true"]]][index[pair["predicted"]]] > 0
    counts = [p["count"] for p in data["most_confused"]]
    assert counts == sorted(counts, reverse=True)


@pytest.mark.slow
def test_table_and_json_show_the_same_numbers(cli, model_path):
    # fp32 on both runs, so the two runs can't differ by a reduced-precision kernel choice
    table = cli("evaluate", "--model", model_path, "--precision", "fp32")
    assert table.exit_code == 0, table.stderr
    r, data = evaluate_json(cli, "--model", model_path, "--precision", "fp32")
    assert r.exit_code == 0, r.stderr
    out = table.stdout

    assert confusion_rows(out, data["classes"]) == data["confusion_matrix"]
    assert summary_value(out, "accuracy") == f"{data['accuracy']:.3f}"
    assert summary_value(out, "balanced accuracy") == f"{data['balanced_accuracy']:.3f}"
    assert summary_value(out, "macro-F1") == f"{data['macro_f1']:.3f}"
    assert summary_value(out, f"top-{data['top_k']} accuracy") == f"{data['top_k_accuracy']:.3f}"
    assert summary_value(out, "calibration (ECE)") == f"{data['ece']:.3f}"
    # the bootstrap is seeded, so the intervals match too
    low, high = data["ci"]["accuracy"]
    assert f"(95% CI {low:.3f}–{high:.3f})" in out
    # per-class rows: precision, recall, F1, support
    for name, s in data["per_class"].items():
        match = re.search(rf"^\s*{re.escape(name)}\b(.*)$", out, re.MULTILINE)
        assert match, name
        numbers = re.findall(r"\d+\.\d{3}|\d+", match.group(1))
        assert numbers[:4] == [f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", str(s["support"])]
    for pair in data["most_confused"]:
        assert f"{pair['true']} → {pair['predicted']}: {pair['count']}" in out


@pytest.mark.slow
def test_normalize_prints_row_percentages(cli, model_path):
    r = cli("evaluate", "--model", model_path, "--normalize", "--precision", "fp32")
    assert r.exit_code == 0, r.stderr
    _, data = evaluate_json(cli, "--model", model_path, "--precision", "fp32")
    assert "% of each row" in r.stdout
    rows = confusion_rows(r.stdout, CLASSES)
    for row, counts in zip(rows, data["confusion_matrix"]):
        total = sum(counts)
        assert row == [round(100 * v / total) for v in counts]
        assert abs(sum(row) - 100) <= len(row)  # percentages, up to rounding
    # correct answers: a row with all 8 right reads 100, not 8
    for i, counts in enumerate(data["confusion_matrix"]):
        if counts[i] == sum(counts):
            assert rows[i][i] == 100


# --- report files -----------------------------------------------------------------------------


@pytest.mark.slow
def test_report_writes_metrics_confusion_predictions_and_png(cli, model_path, tmp_path):
    report = tmp_path / "report"
    r, data = evaluate_json(cli, "--model", model_path, "--report", report)
    assert r.exit_code == 0, r.stderr

    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["accuracy"] == data["accuracy"]
    assert metrics["confusion_matrix"] == data["confusion_matrix"]

    with open(report / "confusion.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == list(CLASSES)
    assert len(rows) == 1 + len(CLASSES)
    for name, row, counts in zip(CLASSES, rows[1:], data["confusion_matrix"]):
        assert row[0] == name
        assert [int(x) for x in row[1:]] == counts

    with open(report / "predictions.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == [
            "path",
            "true",
            "predicted",
            "confidence",
            "correct",
            "in_scope",
            "scope_score",
            "prediction_set",
        ]
        preds = list(reader)
    assert len(preds) == NUM_TEST
    assert len({p["path"] for p in preds}) == NUM_TEST
    for p in preds:
        assert Path(p["path"]).is_file()
        assert p["true"] == Path(p["path"]).parent.name
        assert p["predicted"] in CLASSES
        assert 0.0 < float(p["confidence"]) <= 1.0
        assert p["correct"] == str(p["true"] == p["predicted"])
    right = sum(p["true"] == p["predicted"] for p in preds)
    assert right / NUM_TEST == pytest.approx(data["accuracy"])

    with Image.open(report / "confusion.png") as png:
        png.load()
        assert png.width >= 150 and png.height >= 150
        assert png.getextrema() != ((255, 255), (255, 255), (255, 255))  # not a blank page

    # where the files went is said on stderr, not mixed into the JSON on stdout
    assert "metrics.json" in r.stderr


# --- which photos --------------------------------------------------------------------------------


def add_unknown_class(folder: Path, name: str = "eczema", count: int = 3) -> Path:
    target = folder / name
    target.mkdir()
    for i in range(count):
        img, _ = make_image(name, PHOTO_SIZE, random.Random(100 + i), lesion_scale=0.4)
        img.save(target / f"{name}_{i}.jpg", quality=92)
    return target


@pytest.mark.slow
def test_unknown_class_folder_is_an_error_that_names_it(cli, model_path, dataset, tmp_path):
    data_dir = copy_test_set(dataset, tmp_path)
    add_unknown_class(data_dir)
    r = cli("evaluate", "--model", model_path, "--data", data_dir)
    assert r.exit_code == 2, r.stdout
    assert "eczema" in r.stderr
    assert "--skip-unknown" in r.stderr  # says how to go on
    assert r.stdout.strip() == ""


@pytest.mark.slow
def test_skip_unknown_leaves_the_folder_out_and_says_how_many(cli, model_path, dataset, tmp_path):
    data_dir = copy_test_set(dataset, tmp_path)
    add_unknown_class(data_dir, count=3)
    r, data = evaluate_json(cli, "--model", model_path, "--data", data_dir, "--skip-unknown")
    assert r.exit_code == 0, r.stderr
    assert data["num_images"] == NUM_TEST
    assert data["skipped_unknown"] == {"eczema": 3}
    line = next((ln for ln in r.stderr.splitlines() if "eczema" in ln), None)
    assert line is not None, r.stderr
    assert re.search(r"\b3\b", line), line


@pytest.mark.slow
def test_skipped_unknown_count_is_photos_only(cli, model_path, dataset, tmp_path):
    data_dir = copy_test_set(dataset, tmp_path)
    folder = add_unknown_class(data_dir, count=3)
    (folder / "notes.txt").write_text("where these photos came from\n", encoding="utf-8")
    r, data = evaluate_json(cli, "--model", model_path, "--data", data_dir, "--skip-unknown")
    assert r.exit_code == 0, r.stderr
    assert data["skipped_unknown"] == {"eczema": 3}


@pytest.mark.slow
def test_data_folder_of_class_folders_evaluates_every_photo_in_it(cli, model_path, dataset, tmp_path):
    data_dir = tmp_path / "flat"
    for name in CLASSES:
        (data_dir / name).mkdir(parents=True)
        for src in sorted((dataset / "train" / name).glob("*.jpg"))[:3]:
            shutil.copy(src, data_dir / name / src.name)
    r, data = evaluate_json(cli, "--model", model_path, "--data", data_dir)
    assert r.exit_code == 0, r.stderr
    assert data["num_images"] == 9
    assert data["split"] == "all"
    assert [sum(row) for row in data["confusion_matrix"]] == [3, 3, 3]
    assert_internally_consistent(data)


@pytest.mark.slow
def test_unreadable_images_are_listed_and_the_rest_evaluated(cli, model_path, dataset, tmp_path):
    data_dir = copy_test_set(dataset, tmp_path)
    (data_dir / "acne" / "empty.jpg").write_bytes(b"")
    (data_dir / "psoriasis" / "notes.jpg").write_text("this is not a photo\n", encoding="utf-8")
    r, data = evaluate_json(cli, "--model", model_path, "--data", data_dir)
    assert r.exit_code == 1, r.stderr
    assert data["num_images"] == NUM_TEST
    assert [sum(row) for row in data["confusion_matrix"]] == [TEST_PER_CLASS] * 3
    assert "empty.jpg" in r.stderr and "notes.jpg" in r.stderr
    assert {Path(item["path"]).name for item in data["unreadable"]} == {"empty.jpg", "notes.jpg"}


@pytest.mark.slow
def test_unreadable_images_still_print_the_table(cli, model_path, dataset, tmp_path):
    data_dir = copy_test_set(dataset, tmp_path)
    (data_dir / "acne" / "empty.jpg").write_bytes(b"")
    r = cli("evaluate", "--model", model_path, "--data", data_dir)
    assert r.exit_code == 1, r.stderr
    assert [sum(row) for row in confusion_rows(r.stdout, CLASSES)] == [TEST_PER_CLASS] * 3
    assert "empty.jpg" in r.stderr


@pytest.mark.slow
def test_split_val_scores_the_validation_photos_recorded_in_the_checkpoint(cli, installed_run, model_path, tmp_path):
    val_files = recorded_val_files(model_path)
    report = tmp_path / "val-report"
    r, data = evaluate_json(cli, "--split", "val", "--report", report)
    assert r.exit_code == 0, r.stderr
    assert data["split"] == "val"
    assert data["num_images"] == len(val_files)
    with open(report / "predictions.csv", newline="", encoding="utf-8") as f:
        scored = {row["path"] for row in csv.DictReader(f)}
    assert scored == set(val_files)
    assert all("/train/" in Path(p).as_posix() for p in scored)  # drawn from train/, not test/


@pytest.mark.slow
def test_split_train_leaves_out_the_validation_photos(cli, model_path, dataset):
    val_files = recorded_val_files(model_path)
    r, data = evaluate_json(cli, "--model", model_path, "--split", "train", "--bootstrap", "0")
    assert r.exit_code == 0, r.stderr
    train_total = sum(1 for _ in (dataset / "train").rglob("*.jpg"))
    assert data["num_images"] == train_total - len(val_files)


@pytest.mark.slow
def test_split_val_with_a_relative_data_path(cli, model_path, dataset, monkeypatch):
    val_files = recorded_val_files(model_path)
    monkeypatch.chdir(dataset.parent)
    r, data = evaluate_json(cli, "--model", model_path, "--data", dataset.name, "--split", "val", "--bootstrap", "0")
    assert r.exit_code == 0, r.stderr
    assert data["num_images"] == len(val_files)


@pytest.mark.slow
def test_split_val_survives_a_moved_dataset(cli, model_path, dataset, tmp_path):
    """The val split is recorded relative to the dataset root, so it follows the data."""
    from skinfood_cli.checkpoint import load_checkpoint

    recorded = load_checkpoint(model_path)["data"]["val_files"]
    assert all(not Path(p).is_absolute() and p.startswith("train/") for p in recorded)
    moved = tmp_path / "moved"
    shutil.copytree(dataset, moved)
    r, data = evaluate_json(cli, "--model", model_path, "--data", moved, "--split", "val", "--bootstrap", "0")
    assert r.exit_code == 0, r.stderr
    assert data["num_images"] == len(recorded)


# --- options --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_top_k_larger_than_the_number_of_classes_is_clamped(cli, model_path):
    r, data = evaluate_json(cli, "--model", model_path, "--top-k", "10", "--bootstrap", "0")
    assert r.exit_code == 0, r.stderr
    assert data["top_k"] == 3
    assert data["top_k_accuracy"] == 1.0


@pytest.mark.slow
def test_bootstrap_zero_gives_no_intervals(cli, model_path):
    r, data = evaluate_json(cli, "--model", model_path, "--bootstrap", "0")
    assert r.exit_code == 0, r.stderr
    assert data["ci"] == {}


def test_no_model_at_all_says_to_train_one(cli):
    r = cli("evaluate")
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "skinfood train" in lines[0]
    assert "Traceback" not in r.stderr
    assert r.stdout.strip() == ""


# --- one core call: evaluate_model -> EvalReport ------------------------------------------------

# The keys of `evaluate --format json`, in the order it prints them (leaks and by_skin_tone when present).
JSON_KEYS = [
    "model",
    "data",
    "split",
    "num_images",
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "ci",
    "top_k",
    "top_k_accuracy",
    "loss",
    "ece",
    "temperature",
    "classes",
    "confusion_matrix",
    "per_class",
    "most_confused",
    "trust",
    "unreadable",
    "skipped_unknown",
]


def scores_dict() -> dict:
    """A small result in the shape `evaluation.evaluate` returns (two classes, three photos)."""
    row = {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2, "never_predicted": False}
    return {
        "model": "/runs/x/best.pt",
        "data": "/data",
        "split": "test",
        "num_images": 3,
        "accuracy": 2 / 3,
        "balanced_accuracy": 0.75,
        "macro_f1": 2 / 3,
        "ci": {"accuracy": [0.3, 1.0]},
        "top_k": 2,
        "top_k_accuracy": 1.0,
        "loss": 0.5,
        "ece": 0.1,
        "temperature": 1.2,
        "classes": ["a", "b"],
        "confusion_matrix": [[1, 1], [0, 1]],
        "per_class": {"a": row, "b": {**row, "precision": 0.5, "recall": 1.0, "support": 1}},
        "most_confused": [{"true": "a", "predicted": "b", "count": 1}],
        "trust": {"scope_check": False},
        "unreadable": [{"path": "/data/bad.jpg", "error": "not an image file"}],
        "skipped_unknown": {"c": 2},
        "predictions": [{"path": "/data/a/1.jpg", "true": "a", "predicted": "a"}],
    }


def test_eval_report_to_dict_is_the_json_object_in_its_order():
    from skinfood_cli.breakdown import LeakCheck, LeakedPhoto, SubsetScores
    from skinfood_cli.evaluation import ClassScores, EvalReport

    scores = scores_dict()
    report = EvalReport.from_scores(scores)
    assert list(report.to_dict()) == JSON_KEYS
    assert report.to_dict() == {k: v for k, v in scores.items() if k != "predictions"}
    assert report.per_class["b"] == ClassScores(0.5, 1.0, 2 / 3, 1, False)
    assert report["skipped_unknown"] == report.skipped_unknown == {"c": 2}
    assert report["predictions"] is report.predictions
    assert (report.leaks, report.by_skin_tone, report.files, report.card_path) == (None, None, [], None)
    with pytest.raises(KeyError):
        report["leaks"]  # a model that records no training photos: no leak check, no key

    leaks = LeakCheck(7, 1, [LeakedPhoto("/data/a/1.jpg", 3)], SubsetScores(2, 0.5, 0.5, 0.4, {}))
    tones = {"note": "rough", "groups": [], "total": 3}
    both = EvalReport.from_scores(scores, leaks=leaks, by_skin_tone=tones)
    assert list(both.to_dict()) == [*JSON_KEYS, "leaks", "by_skin_tone"]
    assert both["leaks"] == {
        "threshold": 7,
        "count": 1,
        "photos": [{"path": "/data/a/1.jpg", "distance": 3}],
        "without": {"count": 2, "accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.4, "ci": {}},
    }
    assert both["by_skin_tone"] == tones


def test_the_api_report_is_the_core_report():
    from skinfood_cli import api
    from skinfood_cli.evaluation import ClassScores, EvalReport

    assert api.EvaluationReport is EvalReport and api.ClassScores is ClassScores


@pytest.mark.slow
def test_evaluate_model_is_the_whole_command_in_one_call(cli, installed_run, tmp_path):
    """The command's JSON, its report files and its card update are evaluate_model's."""
    from skinfood_cli import load_model
    from skinfood_cli.breakdown import LeakCheck
    from skinfood_cli.evaluation import ClassScores, evaluate_model
    from skinfood_cli.jsonio import dumps
    from skinfood_cli.model_card import CARD_NAME

    best = installed_run / "best.pt"
    args = ["--model", best, "--precision", "fp32", "--bootstrap", "50", "--format", "json"]
    r = cli("evaluate", *args, "--report", tmp_path / "by-cli")
    assert r.exit_code == 0, r.stderr
    printed = json.loads(r.stdout)
    assert list(printed) == [*JSON_KEYS, "leaks", "by_skin_tone"]  # the card is due: it gets the skin tones
    assert f"test figures written into {installed_run / CARD_NAME}" in " ".join(r.stderr.split())
    assert "report written:" in r.stderr

    card = installed_run / CARD_NAME
    card.write_text("stale\n")
    engine = load_model(best, precision="fp32").engine
    report = evaluate_model(engine, bootstrap=50, report_dir=tmp_path / "by-core")
    assert json.loads(dumps(report.to_dict())) == printed
    assert report.card_path == card and f"### Test ({NUM_TEST} photos)" in card.read_text()
    assert [f.name for f in report.files] == [
        "metrics.json",
        "confusion.csv",
        "predictions.csv",
        "confusion.png",
        "index.html",
        "skin_tone.csv",
    ]
    assert all(f.parent == tmp_path / "by-core" for f in report.files)
    assert json.loads((tmp_path / "by-core" / "metrics.json").read_text()) == printed
    for name in ("predictions.csv", "confusion.csv", "skin_tone.csv"):
        assert (tmp_path / "by-core" / name).read_bytes() == (tmp_path / "by-cli" / name).read_bytes(), name
    assert isinstance(report.leaks, LeakCheck) and report.leaks.count == 0
    assert all(isinstance(s, ClassScores) for s in report.per_class.values())
    assert len(report.predictions) == report.num_images == NUM_TEST

    # No card update asked for: the card is left as it is, and the skin tones come only when asked for.
    card.write_text("stale\n")
    quiet = evaluate_model(engine, bootstrap=0, update_card=False)
    assert quiet.card_path is None and quiet.by_skin_tone is None and quiet.files == []
    assert card.read_text() == "stale\n"


# --- held-out-only folders: DIR/test/<class>/ or DIR/val/<class>/ ---------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("split", ["test", "val"])
def test_a_folder_holding_only_one_split_is_read_as_that_split(cli, model_path, dataset, tmp_path, split):
    data_dir = tmp_path / "my-photos"
    shutil.copytree(dataset / "test", data_dir / split)
    r, data = evaluate_json(cli, "--model", model_path, "--data", data_dir)
    assert r.exit_code == 0, r.stderr
    assert data["split"] == split and data["num_images"] == NUM_TEST
    assert data["classes"] == list(CLASSES) and data["skipped_unknown"] == {}
    assert [sum(row) for row in data["confusion_matrix"]] == [TEST_PER_CLASS] * len(CLASSES)


@pytest.mark.slow
def test_unknown_class_in_a_test_only_folder_is_named_and_test_is_not(cli, model_path, dataset, tmp_path):
    data_dir = tmp_path / "my-photos"
    shutil.copytree(dataset / "test", data_dir / "test")
    add_unknown_class(data_dir / "test")
    r = cli("evaluate", "--model", model_path, "--data", data_dir)
    assert r.exit_code == 2, r.stdout
    assert "class(es) eczema found in" in r.stderr and "class(es) test" not in r.stderr
    r = cli("evaluate", "--model", model_path, "--data", data_dir, "--split", "val")
    assert r.exit_code == 2 and "has no val/ folder" in r.stderr and "Traceback" not in r.stderr


def test_a_test_only_folder_is_not_mistaken_for_training_data(cli, dataset, tmp_path):
    from skinfood_cli.data.dataset import detect_layout

    data_dir = tmp_path / "my-photos"
    shutil.copytree(dataset / "test", data_dir / "test")
    assert detect_layout(data_dir) == {"test": data_dir / "test"}
    r = cli("train", "--data", data_dir, "--no-pretrained", "--epochs", "1")
    assert r.exit_code == 2 and "holds only test/" in r.stderr and "skinfood evaluate" in r.stderr
    # A class that happens to be called "test", beside others, is still a class.
    (data_dir / "acne").mkdir()
    assert detect_layout(data_dir) == {"train": data_dir}
