"""curves.png and confusion.png: drawn from plain data (fast), and written by real runs (slow)."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skinfood_cli.jsonio import loads_strict
from skinfood_cli.training import Reporter, TrainConfig, pictures, train
from skinfood_cli.training.pictures import (
    BUDGET_COLOUR,
    CONFUSION,
    CURVES,
    UNFROZEN_COLOUR,
    draw_confusion,
    draw_curves,
    save_run_pictures,
    write_pictures,
)

LINE_COLOURS = [colour for _, series, _ in pictures.PANELS for _, _, colour, _ in series]


def history(epochs: int = 6, head: int = 2) -> list[dict]:
    """Rows as loop.py writes them: the head alone for `head` epochs, then the whole network."""
    return [
        {
            "epoch": e,
            "phase": "head" if e <= head else "full",
            "lr": 1e-3 * 0.5 * (1 + math.cos(math.pi * e / (epochs + 1))),
            "train_loss": 1.1 / e + 0.1,
            "train_acc": min(1.0, 0.4 + 0.1 * e),
            "val_loss": 1.0 / e + 0.2,
            "val_acc": min(1.0, 0.35 + 0.1 * e),
            "val_macro_f1": min(1.0, 0.3 + 0.1 * e),
        }
        for e in range(1, epochs + 1)
    ]


def colours(img: Image.Image) -> set[tuple[int, int, int]]:
    found = img.convert("RGB").getcolors(maxcolors=1 << 22)
    assert found is not None
    return {c for _, c in found}


def assert_a_real_plot(path: Path) -> set[tuple[int, int, int]]:
    """At least 800 x 500, not blank, several colours (not a grey page of text)."""
    with Image.open(path) as img:
        img.load()
        assert img.width >= 800 and img.height >= 500, img.size
        found = colours(img)
    assert len(found) > 20, f"{path.name}: {len(found)} colours"
    saturated = {c for c in found if max(c) - min(c) > 80}  # colour, not black, white or grey
    assert len(saturated) >= 4, f"{path.name}: hardly any colour"
    return found


# --- drawing, on plain data ------------------------------------------------------------


def test_curves_mark_the_unfreezing_and_the_end_of_a_time_budget(tmp_path):
    written = write_pictures(tmp_path, history(), budget_end=5.4, title="run: training")
    assert written == [tmp_path / CURVES]  # no matrix: no confusion.png
    found = assert_a_real_plot(tmp_path / CURVES)
    for colour in [*LINE_COLOURS, UNFROZEN_COLOUR, BUDGET_COLOUR]:
        assert colour in found, colour

    plain = colours(draw_curves(history(head=0)))
    assert UNFROZEN_COLOUR not in plain and BUDGET_COLOUR not in plain  # no dashed lines to draw
    assert set(LINE_COLOURS) <= plain


def test_where_the_curves_put_each_epoch():
    rows = history(6, head=2)
    assert pictures._unfrozen_at(rows) == 2.0  # between epoch 2 (head) and 3 (full)
    assert pictures._unfrozen_at(history(6, head=0)) is None
    assert pictures._unfrozen_at(history(6, head=6)) is None
    assert pictures._epoch_ends(rows, None) == [1, 2, 3, 4, 5, 6]
    assert pictures._epoch_ends(rows, 5.4)[-1] == 5.4  # the last epoch, cut short by --minutes
    assert pictures._epoch_ends(rows, 6.0)[-1] == 6  # the budget ran out between epochs


def test_curves_survive_gaps_one_epoch_and_no_epochs():
    rows = history(3)
    rows[1]["val_loss"] = float("nan")  # a validation split too small to score
    del rows[2]["lr"]
    for data in (rows, history(1, head=0), []):
        img = draw_curves(data)
        assert img.width >= 800 and img.height >= 500


def test_ticks_are_round_numbers():
    assert pictures._ticks(0, 1.05) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert pictures._ticks(0, 7.6, integer=True) == [0, 2, 4, 6]
    assert pictures._ticks(0, 1.3, integer=True) == [0, 1]
    labels = [pictures._tick_label(v, (0, 0.0021)) for v in pictures._ticks(0, 0.0021)]
    assert labels == ["0", "0.0005", "0.001", "0.0015", "0.002"]


def test_confusion_shows_counts_and_shares_with_korean_class_names(tmp_path):
    matrix = [[5, 1, 0], [2, 3, 1], [0, 0, 6]]
    write_pictures(tmp_path, history(2), matrix=matrix, classes=["백반증", "건선", "acne"])
    assert_a_real_plot(tmp_path / CONFUSION)
    korean = np.asarray(draw_confusion(matrix, ["백반증", "건선", "acne"]).convert("L"), dtype=int)
    other = np.asarray(draw_confusion(matrix, ["대상포진", "건선", "acne"]).convert("L"), dtype=int)
    h, w = min(korean.shape[0], other.shape[0]), min(korean.shape[1], other.shape[1])
    assert np.abs(korean[:h, :w] - other[:h, :w]).sum() > 0  # the names are drawn, not boxes alike


def test_many_classes_and_long_names_still_fit(tmp_path):
    classes = [f"Psoriasis pictures Lichen Planus and related diseases {i}" for i in range(23)]
    matrix = np.eye(23, dtype=int) * 3
    img = draw_confusion(matrix, classes)
    assert img.width >= 800 and img.height >= 500
    # the longest name ends inside the picture: the right-most 10 px column is white
    assert (np.asarray(img.convert("L"))[:, -10:] == 255).all()


def test_a_run_without_a_validation_matrix_drops_an_old_confusion_png(tmp_path):
    write_pictures(tmp_path, history(2), matrix=[[1, 0], [0, 1]], classes=["a", "b"])
    assert (tmp_path / CONFUSION).is_file()
    write_pictures(tmp_path, history(3), matrix=None)
    assert not (tmp_path / CONFUSION).exists()
    assert not list(tmp_path.glob(".*.tmp"))


class Warnings(Reporter):
    def __init__(self):
        self.warnings: list[str] = []

    def warning(self, text):
        self.warnings.append(text)


def the_runs_end(run_dir: Path, reporter: Reporter, *, budget_end: float | None = None) -> dict:
    """What the loop hands save_run_pictures at the end of a run."""
    logits = np.array([[2.0, 0.1], [0.2, 1.5], [1.0, 0.3]], dtype=np.float32)  # (N, K)
    return dict(
        run_dir=run_dir,
        history=history(3),
        validation=(logits, np.array([0, 1, 1])),
        classes=["a", "b"],
        budget_end=budget_end,
        warn=reporter.warning,
    )


def test_the_loops_call_draws_from_the_runs_history_and_validation_logits(tmp_path, monkeypatch):
    seen = {}

    def spy(folder, rows, **kw):
        seen.update(kw, folder=folder)
        return []

    monkeypatch.setattr(pictures, "write_pictures", spy)
    save_run_pictures(**the_runs_end(tmp_path, Reporter(), budget_end=2.5))
    assert seen["folder"] == tmp_path and seen["budget_end"] == 2.5
    assert seen["matrix"].tolist() == [[1, 0], [1, 1]] and seen["classes"] == ["a", "b"]


def test_a_failure_to_draw_is_a_warning_not_a_failed_run(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(pictures, "write_pictures", broken)
    reporter = Warnings()
    assert save_run_pictures(**the_runs_end(tmp_path, reporter)) == []
    assert len(reporter.warnings) == 1 and "No space left on device" in reporter.warnings[0]

    monkeypatch.undo()
    written = save_run_pictures(**the_runs_end(tmp_path, reporter))
    assert [p.name for p in written] == [CURVES, CONFUSION] and len(reporter.warnings) == 1


def test_models_name_lists_the_run_folder_with_its_pictures(cli, tmp_path):
    run = tmp_path / "home" / "runs" / "pics"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"x" * 2_500_000)
    write_pictures(run, history(2), matrix=[[1, 0], [0, 1]], classes=["a", "b"])
    r = cli("models", "pics")
    assert r.exit_code == 0, r.output
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert {"best.pt", CURVES, CONFUSION} <= set(lines)
    assert "2.5 MB" in lines["best.pt"] and "KB" in lines[CURVES]
    rows = loads_strict(cli("models", "pics", "--format", "json").stdout)
    assert {row["file"]: row["bytes"] for row in rows}[CURVES] == (run / CURVES).stat().st_size
    missing = cli("models", "nope")
    assert missing.exit_code != 0 and "no run named 'nope'" in missing.stderr


# --- written by real runs (slow) -------------------------------------------------------

TINY = ("--image-size", "32", "--batch-size", "8", "--no-pretrained", "--precision", "fp32", "--device", "cpu")


@pytest.mark.slow
def test_train_writes_the_pictures_and_a_resume_rewrites_them(small_data, cli, tmp_path):
    r = cli(
        "train", "--data", small_data, "--name", "pics", "--epochs", "1", "--freeze-epochs", "1", *TINY, "-f", "json"
    )
    assert r.exit_code == 0, r.output
    out = loads_strict(r.stdout)  # exactly one JSON object: anything else on stdout fails to parse
    assert isinstance(out, dict) and out["best"] and out["epochs"] == 1
    run = Path(out["run_dir"])
    assert out["pictures"] == {"confusion": str(run / CONFUSION), "curves": str(run / CURVES)}
    assert UNFROZEN_COLOUR not in assert_a_real_plot(run / CURVES)  # one epoch, the head's: nothing unfrozen yet
    assert_a_real_plot(run / CONFUSION)
    before = {name: ((run / name).read_bytes(), (run / name).stat().st_mtime_ns) for name in (CURVES, CONFUSION)}

    r = cli("train", "--resume", "pics", "--epochs", "2", "--format", "json")
    assert r.exit_code == 0, r.output
    out = loads_strict(r.stdout)
    assert out["epochs"] == 2 and set(out["pictures"]) == {"curves", "confusion"}
    assert (run / CURVES).read_bytes() != before[CURVES][0]
    assert UNFROZEN_COLOUR in assert_a_real_plot(run / CURVES)  # --freeze-epochs 1: unfrozen after epoch 1
    assert (run / CONFUSION).stat().st_mtime_ns > before[CONFUSION][1]


@pytest.mark.slow
def test_an_interrupted_run_draws_nothing(small_data):
    class InterruptAt(Reporter):
        def step(self, step, steps, loss, acc, rate):
            if step == 2:
                os.kill(os.getpid(), signal.SIGINT)

    cfg = TrainConfig(
        data=str(small_data),
        name="cut",
        epochs=2,
        image_size=32,
        batch_size=8,
        pretrained=False,
        device="cpu",
        precision="fp32",
    )
    result = train(cfg, InterruptAt())
    assert result.interrupted
    assert not list(result.run_dir.glob("*.png")) and result.to_dict()["pictures"] == {}
