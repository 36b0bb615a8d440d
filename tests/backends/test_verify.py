"""An int8 file is judged on the photos the model is decided about: near-ties are reported, not counted.

A photo whose two likeliest conditions are within TIE_BAND in fp32 changes top-1 with any
change of arithmetic; a file that flips only those is faithful, one that flips a clear
decision is not.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from skinfood_cli import engine, export

CLEAR = [0.80, 0.15, 0.05]  # fp32 decided: top two 0.65 apart
TIE = [0.46, 0.44, 0.10]  # fp32 undecided: 0.02 apart


class Photos:
    source = "validation photos"

    def __init__(self, rows):
        self.rows = rows

    def batches(self):
        for i in range(0, len(self.rows), 16):
            yield list(range(i, min(i + 16, len(self.rows))))  # stand-ins for PIL images: row numbers


def check(monkeypatch, reference_rows, flipped: set[int], int8: bool = True) -> export.Verification:
    reference = np.array(reference_rows, dtype=np.float64)
    exported = reference.copy()
    for i in flipped:
        exported[i, [0, 1]] = exported[i, [1, 0]]

    class Reference:
        def __init__(self, loaded, device, precision):
            pass

        def run_images_scoped(self, images):
            return reference[images], None

        def probabilities(self, logits):
            return logits

    monkeypatch.setattr(engine, "Engine", Reference)
    monkeypatch.setattr(export, "_file_runner", lambda path: lambda images: (exported[images], None))
    loaded = types.SimpleNamespace(trust=None)
    return export.verify(loaded, "file.onnx", Photos(reference_rows), int8=int8)


def test_flipped_near_ties_are_reported_and_the_file_passes(monkeypatch):
    rows = [CLEAR] * 98 + [TIE] * 2
    v = check(monkeypatch, rows, flipped={98, 99})
    assert v.agreement == pytest.approx(0.98)
    assert v.decisive_agreement == 1.0 and v.near_ties == 2 and v.passed
    assert "near-ties" in v.criterion
    assert v.agreement_text() == "98.0%, 100.0% with 2 near-tie(s) aside"


def test_a_flipped_clear_decision_fails_the_file(monkeypatch):
    rows = [CLEAR] * 98 + [TIE] * 2
    v = check(monkeypatch, rows, flipped={0, 1})
    assert v.decisive_agreement == pytest.approx(96 / 98) and not v.passed


def test_when_every_photo_is_a_near_tie_every_photo_counts(monkeypatch):
    # A barely trained model decides nothing: setting every photo aside would check nothing.
    v = check(monkeypatch, [TIE] * 20, flipped={3})
    assert v.near_ties == 20 and v.decisive_agreement == pytest.approx(0.95) and not v.passed


def test_fp32_files_are_still_held_to_every_probability(monkeypatch):
    v = check(monkeypatch, [CLEAR] * 9 + [TIE], flipped={9}, int8=False)
    assert not v.passed and v.decisive_agreement is None and v.near_ties == 0
    assert v.agreement_text() == "90.0%"


def _splits(monkeypatch, val: list[str], train: list[str]) -> None:
    import skinfood_cli.evaluation as evaluation

    def resolve(meta, classes, data, split):
        return types.SimpleNamespace(samples=[(p, 0) for p in {"val": val, "train": train}[split]])

    monkeypatch.setattr(evaluation, "resolve_eval_set", resolve)


def test_a_small_validation_split_is_topped_up_with_photos_the_calibration_left(monkeypatch):
    """59 validation photos would make the 99% bar 100%: the check tops them up to --verify-images
    from the training split, never with a photo int8 was calibrated on."""
    val = [f"val/{i}.jpg" for i in range(3)]
    train = [f"train/{i}.jpg" for i in range(10)]
    _splits(monkeypatch, val, train)
    loaded = types.SimpleNamespace(meta={}, classes=["a"], image_size=64)
    photos = export.verification_photos(loaded, 8, calibrated_on=train[:4])
    assert photos.paths[:3] == val and len(photos.paths) == photos.count == 8
    assert not set(photos.paths) & set(train[:4])
    assert photos.source == "validation and training photos"
    only_val = export.verification_photos(loaded, 3)
    assert only_val.paths == val and only_val.source == "validation photos"


def test_without_photos_on_disk_the_check_runs_on_generated_images(monkeypatch):
    _splits(monkeypatch, [], [])
    loaded = types.SimpleNamespace(meta={}, classes=["a"], image_size=64)
    photos = export.verification_photos(loaded, 200)
    assert photos.paths is None and photos.source == "generated images" and photos.count == 64
