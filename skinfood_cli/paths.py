"""Where skinfood keeps its files, and how `--model` finds a checkpoint.

Everything lives under one data home: platformdirs' user data dir for
"skinfood", or `$SKINFOOD_HOME` when set.

    <home>/weights/          downloaded ImageNet weights (hash-checked)
    <home>/runs/<name>/      one training run: best.pt, last.pt, metrics.csv,
                             config.yaml, skipped.txt
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from skinfood_cli.errors import ModelError, UsageError

HOME_ENV = "SKINFOOD_HOME"
HUB_PREFIX = "hf://"  # a `--model` value that names a Hub model: sources.resolve_model, hub/download.py


def open_mode(fd: int) -> None:
    """Give a `tempfile.mkstemp` file (always 0600) the mode a plain open() would: 0666 less the umask.

    Checkpoints and weights are written to a temp file and renamed; without this a
    model in a shared folder would be unreadable to everyone but its trainer.
    """
    if not hasattr(os, "fchmod"):  # Windows: no POSIX modes to fix
        return
    umask = os.umask(0)  # the only way to read it; set straight back
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def data_dir() -> Path:
    """The data home, created on demand."""
    override = os.environ.get(HOME_ENV)
    if override:
        home = Path(override).expanduser()
    else:
        import platformdirs

        home = Path(platformdirs.user_data_dir("skinfood", appauthor=False))
    home.mkdir(parents=True, exist_ok=True)
    return home


def runs_dir() -> Path:
    return data_dir() / "runs"


def weights_dir() -> Path:
    return data_dir() / "weights"


@dataclass(frozen=True)
class RunInfo:
    """One run folder in the model store."""

    name: str
    path: Path
    modified: datetime

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"


def list_runs() -> list[RunInfo]:
    """Runs that hold a usable checkpoint, newest first."""
    root = runs_dir()
    if not root.is_dir():
        return []
    runs = []
    for path in root.iterdir():
        ckpt = path / "best.pt"
        if not ckpt.is_file():
            ckpt = path / "last.pt"
        if path.is_dir() and ckpt.is_file():
            runs.append(RunInfo(path.name, path, datetime.fromtimestamp(ckpt.stat().st_mtime)))
    return sorted(runs, key=lambda r: (r.modified, r.name), reverse=True)


def new_run_dir(name: str | None) -> Path:
    """Create the folder for a new run; an existing name is never overwritten.

    Without a name the run is named after the current time. `mkdir(exist_ok=False)`
    is the lock: two trainings started in the same second get different folders.
    """
    root = runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    if name:
        if os.sep in name or name in (".", "..") or (os.altsep and os.altsep in name):
            raise UsageError(f"run name {name!r} must not contain a path separator")
        path = root / name
        try:
            path.mkdir()
        except FileExistsError:
            raise UsageError(
                f"a run named {name!r} already exists in {root}: choose another --name "
                f"or continue it with --resume {name}"
            ) from None
        return path
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        path = root / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UsageError(f"could not create a run folder in {root}")


def find_run(name: str) -> Path:
    """The folder of an existing run by name."""
    path = runs_dir() / name
    if not path.is_dir():
        raise ModelError(f"no run named {name!r} in {runs_dir()}: see `skinfood models`")
    return path


def resolve_model(spec: str | os.PathLike | None) -> Path:
    """Turn a `--model` value into a checkpoint file.

    Accepts a checkpoint path, a run folder, a run name or a model folder
    (config.json + model.safetensors); with nothing given the most recently trained
    run's best.pt is used. `sources.resolve_model` adds `hf://ORG/NAME[@REVISION]`.
    """
    if spec is None or str(spec) == "":
        runs = list_runs()
        if not runs:
            raise ModelError(
                "no trained model yet: run `skinfood train --data DIR` (or `skinfood demo`) or pass --model FILE"
            )
        run = runs[0]
        return run.best if run.best.is_file() else run.last
    if str(spec).startswith(HUB_PREFIX):
        raise UsageError(f"{spec}: a Hub model is resolved by skinfood_cli.sources.resolve_model, not here")
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in (path / "best.pt", path / "last.pt"):
            if candidate.is_file():
                return candidate
        if (path / "config.json").is_file():  # a portable model folder
            return path
        raise ModelError(f"{path} holds no best.pt, last.pt or config.json")
    folder = runs_dir() / str(spec)
    if "/" not in str(spec) and folder.is_dir():
        for candidate in (folder / "best.pt", folder / "last.pt"):
            if candidate.is_file():
                return candidate
        raise ModelError(f"run {spec!r} has no checkpoint yet")
    raise ModelError(f"no model file or run named {str(spec)!r}: see `skinfood models`")
