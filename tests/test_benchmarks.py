"""The benchmark scripts still run: their table, their profile, and the generated benchmarks/README.md.

No timing is asserted here; the figures come from the committed results files.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_figures_print_as_a_table_with_every_bar(capsys):
    run = _load("run")
    results = json.loads((BENCH / "results" / "run-quick-beyond.json").read_text())
    assert set(run.BARS) <= set(results), "run-quick-beyond.json lacks a measured bar"
    run.print_table(results)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.rstrip().endswith((" yes", " NO"))]
    assert len(rows) == len(run.BARS)
    assert "PyTorch x86 int8" in out and "GFLOP/s" in out


def test_a_results_file_becomes_a_table_with_its_command_date_and_bars():
    report = _load("report")
    results = json.loads((BENCH / "results" / "run-quick-beyond.json").read_text())
    results.update(
        predict_ips=123.456,
        predict_speedup=123.456 / results["study_predict_ips"],
        train_speedup=2.5,
        run={
            "command": "python benchmarks/run.py --quick",
            "date": "2030-01-02 03:04 UTC",
            "machine": "Test CPU, 2 cores, no GPU",
        },
    )
    text = report.render_one("run-quick", results)
    assert "`python benchmarks/run.py --quick`" in text
    assert "date: 2030-01-02 03:04 UTC" in text and "machine: Test CPU, 2 cores, no GPU" in text
    assert "| predict, img/s at 224 px (96 photos) | 14.0 | 123.5 | 8.81× | ≥ 2.0 ✓ |" in text
    assert "| full fine-tuning, img/s at 224 px | 3.43 | 10.6 | 2.50× | ≥ 3.0 ✗ |" in text  # a missed bar shows


def test_saving_a_serve_run_writes_its_results_file_and_regenerates_the_readme(tmp_path):
    report = _load("report")
    results = json.loads((BENCH / "results" / "serve.json").read_text())
    results["batched"]["levels"]["16"]["rps"] = 99.0
    name = report.result_name("serve", quick=True, variant="int8")
    assert name == "serve-quick-int8"
    results["run"] = report.provenance("serve", ["--quick", "--int8"])
    assert results["run"]["command"] == "python benchmarks/serve.py --quick --int8"
    path = report.save(name, results, results_dir=tmp_path / "results", readme=tmp_path / "README.md")
    assert json.loads(path.read_text())["batched"]["levels"]["16"]["rps"] == 99.0
    readme = (tmp_path / "README.md").read_text()
    assert "## serve-quick-int8" in readme and "[results/serve-quick-int8.json]" in readme
    assert "`python benchmarks/serve.py --quick --int8`" in readme and results["run"]["date"] in readme
    row = next(line for line in readme.splitlines() if line.startswith("| 16 |"))
    assert row.split(" | ")[1] == "99.0" and row.endswith(f"| {99.0 / 17.874441690738305:.2f}× |")


def test_a_recipe_table_shows_the_plain_script_read_larger_beside_its_usual_scores():
    report, recipe = _load("report"), _load("recipe")
    plain = [
        {"seed": s, "epochs": 17.0, "images_per_s": 11.0, "accuracy": a, "macro_f1": a, "balanced_accuracy": a}
        | {"read_at": {"size": 256, "accuracy": b, "macro_f1": b - 0.01, "balanced_accuracy": b}}
        for s, a, b in ((0, 0.76, 0.78), (1, 0.77, 0.80))
    ]
    results = {"data": "d6/", "arch": "efficientnet-lite0", "image_size": 224, "minutes": 15}
    text = report.render_one("recipe-x", results | {"recipes": recipe.summarise_recipes({"plain": plain})})

    rows = [line for line in text.splitlines() if line.startswith("| plain script")]
    usual = " | ".join(["0.765 ± 0.007"] * 3)
    assert rows[0] == f"| plain script, every training photo | 2 | 17.0 | 11.0 | {usual} |"
    assert rows[1].startswith("| plain script, every training photo, the same weights reading photos at 256 px | 2 |")
    assert rows[1].endswith("| 0.790 ± 0.014 | 0.780 ± 0.014 | 0.790 ± 0.014 |")


def test_the_committed_benchmarks_readme_is_what_the_committed_results_give():
    report = _load("report")
    committed = (BENCH / "README.md").read_text()
    assert committed == report.render(), "benchmarks/README.md is stale: run `python benchmarks/report.py`"
    for path in (BENCH / "results").glob("*.json"):
        assert f"## {path.stem}\n" in committed
        assert json.loads(path.read_text())["run"]["command"].startswith("python benchmarks/")


@pytest.mark.slow
def test_the_training_profile_finds_the_convolutions():
    profile = _load("profile_train")
    run = profile.profile_step("skinfood", True, True, "AdamW", batch=2, steps=1)
    groups = run["groups"]
    assert groups["convolution forward"] > 0 and groups["convolution backward"] > 0
    assert groups["batchnorm"] > 0
    # Self times of the ops cover most of the step and never more than all of it.
    assert 0.5 * run["wall"] < sum(groups.values()) <= 1.05 * run["wall"]


def test_without_the_export_extra_the_onnx_rows_are_skipped_with_one_line(capsys, monkeypatch, tmp_path):
    import sys

    run = _load("run")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as in a base install
    results = {}
    checkpoint = tmp_path / "model.pt"  # never opened: the extra is checked first
    run.unless_extra_missing("onnx", run.bench_exported, checkpoint, [], [], results=results)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "skipped the onnx rows" in lines[0] and 'pip install ".[export]"' in lines[0]
    assert set(results) == {"skipped"}

    figures = json.loads((BENCH / "results" / "run-quick-beyond.json").read_text())
    figures = {k: v for k, v in figures.items() if not k.startswith("onnx_")} | results
    run.print_table(figures)  # the rest of the table still prints
    out = capsys.readouterr().out
    assert sum("skipped (extra not installed)" in line for line in out.splitlines()) == 2
    assert "PyTorch x86 int8" in out and "ONNX fp32" not in out
    assert not {"onnx_int8_speedup", "onnx_int8_agreement"} & set(run.failed_bars(figures))


def test_the_plain_script_can_be_given_exactly_the_photos_a_skinfood_run_trained_on(tmp_path):
    """recipe.py --same-photos: the run's validation split and left-out leaks are not in the tree."""
    import torch
    from PIL import Image

    recipe = _load("recipe")
    data = tmp_path / "data"
    for split, names in (("train", ["a1", "a2", "a3", "a4"]), ("test", ["t1"])):
        for cls in ("acne", "eczema"):
            (data / split / cls).mkdir(parents=True)
            for name in names:
                Image.new("RGB", (8, 8), (120, 80, 60)).save(data / split / cls / f"{name}.jpg")
    run = tmp_path / "run"
    run.mkdir()
    held = {"root": str(data), "val_files": ["train/acne/a1.jpg", "train/eczema/a2.jpg"]}
    torch.save({"data": {**held, "leaks": {"dropped": ["train/acne/a3.jpg"]}}}, run / "last.pt")

    tree = recipe.skinfood_training_photos(run, tmp_path / "same")

    trained = sorted(p.relative_to(tree).as_posix() for p in (tree / "train").rglob("*.jpg"))
    assert trained == [
        "train/acne/a2.jpg",
        "train/acne/a4.jpg",
        "train/eczema/a1.jpg",
        "train/eczema/a3.jpg",
        "train/eczema/a4.jpg",
    ]
    assert sorted(p.name for p in (tree / "test").rglob("*.jpg")) == ["t1.jpg", "t1.jpg"]


@pytest.mark.slow
def test_the_plain_script_also_scores_its_weights_read_larger_when_asked(small_data):
    """recipe.py compares skinfood, which reads photos a seventh above its crops, with the
    plain script read both ways: its usual scores at its training size, and `read_at`."""
    import subprocess
    import sys

    cmd = [sys.executable, str(BENCH / "plain_script.py"), "--data", str(small_data), "--arch", "efficientnet-lite0"]
    out = subprocess.run(
        [*cmd, "--epochs", "1", "--image-size", "32", "--read-at", "40"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    row = json.loads(out.strip().splitlines()[-1])

    assert row["read_at"]["size"] == 40
    for scores in (row, row["read_at"]):
        assert 0.0 <= scores["accuracy"] <= 1.0 and 0.0 <= scores["macro_f1"] <= 1.0
    without = subprocess.run(
        [*cmd, "--epochs", "1", "--image-size", "32"], check=True, capture_output=True, text=True
    ).stdout
    assert "read_at" not in json.loads(without.strip().splitlines()[-1])


def test_calibration_sizes_show_the_spread_that_fewer_validation_photos_cost():
    """trust.py --calibration-sizes: sets and cut still hit their targets on average; fewer photos, more spread."""
    import numpy as np

    trust = _load("trust")
    rng = np.random.default_rng(0)

    def photos(n: int, far: bool = False) -> tuple:
        labels = rng.integers(0, 3, n)
        centres = np.eye(3, 8, k=5 if far else 0) * 3  # pictures that are not skin lie along other axes
        inputs = (centres[labels] + rng.normal(0, 0.7, (n, 8))).astype(np.float32)
        logits = (np.eye(3)[labels] * 2 + rng.normal(0, 1, (n, 3))).astype(np.float32)
        return inputs, logits, labels

    d = {}
    for split, n in (("train", 300), ("val", 150), ("test", 250), ("far", 100)):
        d[f"{split}_s"], d[f"{split}_z"], d[f"{split}_y"] = photos(n, far=split == "far")

    small, large = trust.calibration_noise(d, 1.0, 0.9, [20, 200], draws=200)

    for row in (small, large):
        assert 0.86 < row["coverage_mean"] < 0.96
        assert 0.01 < row["flagged_mean"] < 0.12
        assert row["flagged_far_mean"] > 0.9  # pictures far from every condition are flagged
    assert small["coverage_sd"] > large["coverage_sd"]
    assert small["p_coverage_outside_85_95"] > large["p_coverage_outside_85_95"]


def test_folds_hold_out_each_training_photo_once_stratified_and_read_as_train_and_val(tmp_path):
    """folds.py: part k is fold k's val/ (and test/); the rest is its train/; no photo is in both."""
    from PIL import Image

    from skinfood_cli.data.dataset import discover_dataset

    folds = _load("folds")
    train = tmp_path / "data" / "train"
    counts = {"acne": 7, "eczema": 5}
    for cls, n in counts.items():
        (train / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (120, 80, 60)).save(train / cls / f"{i}.jpg")
    (train / "acne" / "notes.txt").write_text("not a photo")
    (train / "acne" / "more").mkdir()  # a second 0.jpg, in a subfolder: its own photo, not a clash
    Image.new("RGB", (8, 8), (90, 60, 50)).save(train / "acne" / "more" / "0.jpg")
    counts["acne"] += 1

    roots = folds.make_folds(train, 3, 0, tmp_path / "folds")

    held = []
    for root in roots:
        ds = discover_dataset(root)
        assert ds.val_source == "folder" and sorted(ds.classes) == ["acne", "eczema"]
        val = {Path(p).resolve() for p, _ in ds.val}
        assert val.isdisjoint(Path(p).resolve() for p, _ in ds.train)
        assert len(ds.train) + len(ds.val) == 13 and {Path(p).resolve() for p, _ in ds.test} == val
        for cls, n in counts.items():  # stratified: each part holds a third of each condition, give or take one
            assert len([p for p in val if cls in p.parts]) in (n // 3, n // 3 + 1)
        held += val
    assert len(held) == len(set(held)) == 13
    again = folds.make_folds(train, 3, 0, tmp_path / "again")  # the same seed cuts the same parts
    assert [sorted(p.name for p in (r / "val").rglob("*.jpg")) for r in again] == [
        sorted(p.name for p in (r / "val").rglob("*.jpg")) for r in roots
    ]


def test_folds_compare_each_variant_with_the_first_on_the_parts_both_ran():
    folds = _load("folds")
    report = _load("report")

    def row(variant, fold, accuracy):
        return {
            "variant": variant,
            "options": "" if variant == "default" else "--progressive",
            "fold": fold,
            "epochs": 40,
            "images_per_s": 20.0,
            "accuracy": accuracy,
            "macro_f1": accuracy,
            "loss": 0.9,
        }

    rows = [
        row("default", 0, 0.70),
        row("progressive", 0, 0.67),
        row("default", 1, 0.72),
        row("progressive", 1, 0.60),
        row("progressive", 1, 0.69),
        row("progressive", 2, 0.80),
    ]

    summary = folds.summarise(rows)

    assert summary["default"]["folds"] == [0, 1] and "difference" not in summary["default"]
    assert summary["progressive"]["folds"] == [0, 1, 2]  # a part run twice counts once: the later run
    assert summary["progressive"]["shared_folds"] == [0, 1]
    assert summary["progressive"]["difference"]["accuracy"] == pytest.approx([-0.03, -0.03])
    results = {"data": "d6/", "arch": "efficientnet-lite0", "minutes": 15, "folds": 3, "variants": summary}
    table = report.render_one("folds-efficientnet-lite0", results)
    assert "| progressive | `--progressive` | 3 |" in table and "-0.030, -0.030" in table
    assert "| default | `(defaults)` | 2 |" in table
