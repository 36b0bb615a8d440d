"""skinfood: train, evaluate and run a skin-condition photo classifier locally.

Not a medical device: its answers are a hint to discuss with a doctor, never a
diagnosis.

In Python (docs/python.md): `from skinfood_cli import load_model`.
"""

__version__ = "0.1.0"

__all__ = ["SkinModel", "__version__", "load_model"]


def __getattr__(name: str):
    # Lazily, so `import skinfood_cli` (and with it the CLI's start-up) stays free of torch.
    if name in ("load_model", "SkinModel"):
        from skinfood_cli import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "SkinModel", "load_model"])
