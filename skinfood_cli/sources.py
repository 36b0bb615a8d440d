"""Where a `--model` value points: a local checkpoint, run or model folder, or a Hub model.

`hf://ORG/NAME[@REVISION]` is downloaded once into the Hugging Face cache (hub/download.py);
everything else is on this machine (paths.py). Kept apart from paths.py so that the
data home's module never imports the Hub client.
"""

from __future__ import annotations

import os
from pathlib import Path

from skinfood_cli import paths


def resolve_model(spec: str | os.PathLike | None) -> Path:
    """A `--model` value -> the checkpoint file or model folder to load."""
    if spec is not None and str(spec).startswith(paths.HUB_PREFIX):
        from skinfood_cli.hub.download import resolve_hub_model

        return resolve_hub_model(str(spec))
    return paths.resolve_model(spec)
