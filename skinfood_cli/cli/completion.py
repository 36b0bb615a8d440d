"""Shell completion: run names for --model, disease keys for `diseases show` (no torch, no model loaded)."""

from __future__ import annotations


def complete_model(incomplete: str) -> list[str]:
    """Names of the trained runs that start with what was typed, newest first."""
    from skinfood_cli.paths import list_runs

    try:
        return [run.name for run in list_runs() if run.name.startswith(incomplete)]
    except Exception:
        return []


def complete_disease(incomplete: str) -> list[str]:
    """Keys of the bundled descriptions that start with what was typed."""
    from skinfood_cli.descriptions import load_descriptions

    try:
        return [key for key in load_descriptions(None).keys() if key.startswith(incomplete)]
    except Exception:
        return []
