"""The benchmark scripts still run: their table and their profile (no timing is asserted here)."""

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
    results = json.loads((BENCH / "latest-quick.json").read_text())
    assert set(run.BARS) <= set(results), "latest-quick.json lacks a measured bar"
    run.print_table(results)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.rstrip().endswith((" yes", " NO"))]
    assert len(rows) == len(run.BARS)
    assert "PyTorch x86 int8" in out and "GFLOP/s" in out


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
    assert len(lines) == 1 and "skipped the onnx rows" in lines[0] and 'pip install "skinfood[export]"' in lines[0]
    assert set(results) == {"skipped"}

    figures = json.loads((BENCH / "latest-quick.json").read_text())
    figures = {k: v for k, v in figures.items() if not k.startswith("onnx_")} | results
    run.print_table(figures)  # the rest of the table still prints
    out = capsys.readouterr().out
    assert sum("skipped (extra not installed)" in line for line in out.splitlines()) == 2
    assert "PyTorch x86 int8" in out and "ONNX fp32" not in out
    assert not {"onnx_int8_speedup", "onnx_int8_agreement"} & set(run.failed_bars(figures))
