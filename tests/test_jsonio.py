"""Strict JSON: a figure small data leaves undefined is written as null and read back as what it meant."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from skinfood_cli.backends.base import LoadedModel
from skinfood_cli.jsonio import dumps, loads_strict, plain


def test_non_finite_numbers_become_null_and_the_rest_stays():
    value = {"qhat": math.inf, "nan": float("nan"), "neg": -math.inf, "ok": 0.25, "n": np.int64(3),
             "arr": np.array([1.5, np.nan]), "path": Path("a/b"), "t": (1, 2), "flag": True}  # fmt: skip
    text = dumps(value)
    assert loads_strict(text) == {
        "qhat": None, "nan": None, "neg": None, "ok": 0.25, "n": 3, "arr": [1.5, None], "path": "a/b",
        "t": [1, 2], "flag": True,
    }  # fmt: skip
    assert plain(np.float32(0.5)) == 0.5


def test_the_strict_parser_refuses_what_python_writes_by_default():
    with pytest.raises(ValueError, match="NaN"):
        loads_strict(json.dumps({"x": float("nan")}))
    with pytest.raises(ValueError, match="Infinity"):
        loads_strict(json.dumps([math.inf]))


@pytest.mark.parametrize(
    ("conformal", "expected"),
    [
        (None, None),  # a model from before prediction sets: no sets
        ({"qhat": 0.83, "coverage": 0.9}, 0.83),
        ({"qhat": math.inf, "reason": "6 validation photos cannot calibrate"}, math.inf),  # a .pt
        ({"qhat": None, "reason": "6 validation photos cannot calibrate"}, math.inf),  # the same, from JSON
    ],
)
def test_a_quantile_written_as_null_reads_back_as_full_sets(conformal, expected):
    trust = {"conformal": conformal} if conformal is not None else None
    model = LoadedModel(path=Path("m"), module=None, classes=["a", "b"], image_size=64, mean=(0,) * 3,
                        std=(1,) * 3, trust=trust)  # fmt: skip
    assert model.qhat == expected
