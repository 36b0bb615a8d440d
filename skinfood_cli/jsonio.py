"""Strict JSON for everything skinfood writes or answers: no NaN, no Infinity.

JSON has no NaN or Infinity, and strict parsers (browsers' `JSON.parse`, the Hub,
Go, Rust, Swift) reject Python's `NaN`/`Infinity` extensions. On small data some
figures are legitimately absent or infinite (a conformal quantile that n photos
can't calibrate is +inf; a metric over an empty split is NaN): they are written
as `null`, and the record that holds them says why in words (`reason`). Readers
map the `null` back (`LoadedModel.qhat`: null -> every set is the full list).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any


def plain(value: Any) -> Any:
    """`value` as plain JSON data: tuples -> lists, paths -> strings, NaN/inf -> None.

    numpy scalars and arrays become Python numbers and lists; anything else
    unknown becomes its `str`.
    """
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, torch tensors
    if callable(tolist):
        return plain(tolist())
    return str(value)


def dumps(value: Any, **kwargs: Any) -> str:
    """`json.dumps` of `plain(value)`, refusing NaN/Infinity should one slip through."""
    kwargs.setdefault("ensure_ascii", False)
    return json.dumps(plain(value), allow_nan=False, **kwargs)


def loads_strict(text: str | bytes) -> Any:
    """`json.loads` that rejects NaN and Infinity, as a browser's `JSON.parse` does (for tests and readers)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)
