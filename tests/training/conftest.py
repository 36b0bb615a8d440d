"""Fixtures of the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from skinfood_cli.data.synthetic import make_dataset


@pytest.fixture
def small_data(tmp_path) -> Path:
    """Three classes of 14 training and 3 test photos: enough for a tiny run at 32 px."""
    return make_dataset(
        tmp_path / "small", ("acne", "psoriasis", "vitiligo"), train_per_class=14, test_per_class=3, size=(48, 40)
    )
