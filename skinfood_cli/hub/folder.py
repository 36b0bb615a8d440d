"""The portable model folder: what `skinfood push` uploads and `--model DIR` / `hf://` load.

    DIR/model.safetensors   the weights, and nothing else (no pickle: loading runs no code)
    DIR/config.json         what the checkpoint carries besides its tensors: classes, display
                            names, image size, normalisation, architecture, temperature,
                            threshold, metrics, versions, the weights' sha256
    DIR/README.md           the model card (the run's MODEL_CARD.md, else a generated one)
    DIR/model.onnx[.json]   optional (`--with-onnx`): the verified ONNX export and its sidecar

`load_hub_folder` rebuilds the dict `checkpoint.load_checkpoint` returns, so every
command downstream (engine, export, serve) sees no difference between a `.pt`
and a folder. Local paths (the dataset's folder, validation file names) stay on
the trainer's machine: file names of clinical photos can identify people.
backends/pytorch.py loads folders through this module, so it imports nothing of
`backends` at the top (tensor_tree.py only inside the functions that need it).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from skinfood_cli.checkpoint import DEFAULT_THRESHOLD
from skinfood_cli.errors import ModelError, UsageError, first_line
from skinfood_cli.hub.card import model_card
from skinfood_cli.jsonio import dumps, plain

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
RUN_CARD_FILE = "MODEL_CARD.md"  # a run's own model card, when something wrote one
ONNX_FILE = "model.onnx"
LIBRARY = "skinfood"
CONFIG_VERSION = 1
# Keys of a checkpoint that are not part of the model: the optimiser and the
# resume state. `state_dict` goes to model.safetensors.
_NOT_CONFIG = {"state_dict", "optimizer", "scheduler", "rng", "scaler", "train_state", "format", "format_version"}
# Fields a folder must carry, with the JSON types they must have.
_REQUIRED = {
    "library": str,
    "skinfood_config_version": int,
    "arch": str,
    "classes": list,
    "image_size": int,
    "mean": list,
    "std": list,
    "temperature": (int, float),
    "weights": dict,
}


@dataclass
class HubFolder:
    """A written folder and what is in it."""

    path: Path
    files: list[str]
    weights_sha256: str
    size_bytes: int


def is_hub_folder(path: str | os.PathLike) -> bool:
    path = Path(path)
    return path.is_dir() and (path / CONFIG_FILE).is_file()


# --- writing -------------------------------------------------------------------------


def write_hub_folder(
    source: str | os.PathLike, output: str | os.PathLike, *, book=None, repo_id: str | None = None
) -> HubFolder:
    """Write the portable folder for the model at `source` into `output`, and read it back.

    Args:
        source: a `.pt` checkpoint, or a model folder (copied; left as it is when `output` is the folder).
        output: the folder to write; created, or refreshed if it already holds a skinfood folder.
        book: descriptions, for the display names (English and Korean) in config.json.
        repo_id: the Hub repository it is going to, for the generated card's examples.

    Raises:
        ModelError: the source does not load.
        UsageError: `output` is a file, or a non-empty folder that is not a skinfood folder.
        SkinfoodError (exit 1): the folder written does not read back as the same weights.
    """
    from skinfood_cli.backends.tensor_tree import split_tensors

    source, output = Path(source), Path(output)
    if output.exists() and not output.is_dir():
        raise UsageError(f"--output {output} is a file: give a folder")
    if output.is_dir() and any(output.iterdir()) and not is_hub_folder(output):
        raise UsageError(f"--output {output} is not empty and holds no skinfood model: give a new folder")
    if source.is_dir() and output.resolve() == source.resolve():
        load_hub_folder(source)  # checked, and kept byte for byte
        return describe_folder(output, read_config(output)["weights"]["sha256"])
    ckpt = _load_source(source)
    output.mkdir(parents=True, exist_ok=True)
    for stale in (ONNX_FILE, ONNX_FILE + ".json"):  # an earlier export's, for other weights
        with contextlib.suppress(FileNotFoundError):
            (output / stale).unlink()
    # The scope check's tensors travel in model.safetensors too; config.json holds markers for them.
    trust, extra = split_tensors(ckpt.get("trust"), "trust")
    sha, size = _write_weights({**ckpt["state_dict"], **extra}, output / WEIGHTS_FILE)
    config = build_config({**ckpt, "trust": trust} if trust is not None else ckpt, book, sha256=sha, size_bytes=size)
    _write_text(output / CONFIG_FILE, dumps(config, indent=2) + "\n")
    _write_text(output / CARD_FILE, model_card(config, _source_card(source), repo_id))
    _check_round_trip(ckpt["state_dict"], output)
    return describe_folder(output, sha)


def _load_source(source: Path) -> dict:
    from skinfood_cli.checkpoint import load_checkpoint

    if source.is_dir():
        ckpt = load_hub_folder(source)
        ckpt.pop("display_names", None)  # rebuilt from the descriptions
        return ckpt
    return load_checkpoint(source)


def _source_card(source: Path) -> str | None:
    """The card to publish: a folder's README.md, else the run's MODEL_CARD.md."""
    card = source / CARD_FILE if source.is_dir() else source.parent / RUN_CARD_FILE
    return card.read_text(encoding="utf-8") if card.is_file() else None


def _check_round_trip(state: dict, output: Path) -> None:
    """The folder must give back exactly the tensors it was written from."""
    import torch

    from skinfood_cli.errors import EXIT_SOME_FAILED, SkinfoodError

    back = load_hub_folder(output)["state_dict"]  # the network's weights (the trust tensors apart)
    same = back.keys() == state.keys() and all(torch.equal(back[k], state[k].cpu()) for k in state)
    if not same:
        raise SkinfoodError(
            f"{output / WEIGHTS_FILE} does not read back as the checkpoint's weights: do not share it",
            exit_code=EXIT_SOME_FAILED,
        )


def describe_folder(output: Path, sha: str) -> HubFolder:
    files = sorted(p.name for p in output.iterdir() if p.is_file() and not p.name.startswith("."))
    return HubFolder(output, files, sha, sum((output / f).stat().st_size for f in files))


def build_config(ckpt: dict, book, *, sha256: str, size_bytes: int) -> dict:
    """config.json: the checkpoint's metadata as plain JSON, local paths reduced to folder names."""
    from skinfood_cli import __version__

    config = {"library": LIBRARY, "skinfood_config_version": CONFIG_VERSION}
    config.update({k: v for k, v in ckpt.items() if k not in _NOT_CONFIG})
    config["display_names"] = _display_names(ckpt["classes"], book)
    config["weights"] = {
        "file": WEIGHTS_FILE,
        "format": "safetensors",
        "dtype": "float32",
        "sha256": sha256,
        "size_bytes": size_bytes,
    }
    config["checkpoint_format_version"] = ckpt.get("format_version")
    config["exported_by"] = {"skinfood_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _strip_local_paths(config)
    return plain(config)


def _display_names(classes: list[str], book) -> dict:
    from skinfood_cli.descriptions import LANGUAGES, display_names, load_descriptions

    if book is None:  # the bundled descriptions
        book = load_descriptions(None)
    return {lang: display_names(classes, book, lang) for lang in LANGUAGES}


def _strip_local_paths(config: dict) -> None:
    """Keep folder names, drop absolute paths and the validation split's file names."""
    data = dict(config.get("data") or {})
    root = data.pop("root", None)  # without it `evaluate` asks for --data instead of guessing a folder
    if root:
        data["root_name"] = Path(str(root)).name
    data.pop("val_files", None)  # photo file names can name patients; `evaluate` then needs --data
    if data:
        config["data"] = data
    train = dict(config.get("config") or {})
    for key in ("data", "weights"):
        if train.get(key):
            train[key] = Path(str(train[key])).name
    if train:
        config["config"] = train


def _write_weights(state: dict, path: Path) -> tuple[str, int]:
    """state dict -> model.safetensors (atomic); returns its sha256 and size."""
    from safetensors.torch import save_file

    from skinfood_cli.paths import open_mode
    from skinfood_cli.weights import sha256_of

    # safetensors stores contiguous tensors with no shared storage; a ResNet50 has none.
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={"format": "pt", "library": LIBRARY})
        fd = os.open(tmp, os.O_RDONLY)
        try:
            open_mode(fd)  # safetensors creates it 0600; a shared model folder must be readable
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return sha256_of(path), path.stat().st_size


def _write_text(path: Path, text: str) -> None:
    from skinfood_cli.paths import open_mode

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        open_mode(fd)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_config(folder: str | os.PathLike) -> dict:
    """Read and check a folder's config.json; ModelError with one line when it is not ours."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ModelError(f"{folder} is not a skinfood model: it has no {CONFIG_FILE}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path} is not valid JSON ({first_line(exc)}): download or copy it again") from None
    check_config(config, path)
    return config


def check_config(config, where) -> None:
    """The checks every config.json passes before its weights are read."""
    if not isinstance(config, dict):
        raise ModelError(f"{where} is not a skinfood config (not a JSON object)")
    library = config.get("library")
    if library != LIBRARY:
        found = f"library {library!r}" if library else 'no "library" field'
        raise ModelError(f"{where} is not a skinfood model ({found}): skinfood runs models it exported")
    version = config.get("skinfood_config_version")
    if isinstance(version, int) and not isinstance(version, bool) and version != CONFIG_VERSION:
        newer = version > CONFIG_VERSION
        raise ModelError(
            f"{where} has config version {version}; this skinfood reads version {CONFIG_VERSION}"
            + (": upgrade skinfood (git pull, then pip install . in its checkout)" if newer else "")
        )
    for key, kind in _REQUIRED.items():
        value = config.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):  # type: ignore[arg-type]
            names = kind.__name__ if isinstance(kind, type) else "number"
            raise ModelError(f"{where} is damaged: field {key!r} is missing or not a {names}")
    if not all(isinstance(c, str) for c in config["classes"]):
        raise ModelError(f'{where} is damaged: "classes" must be a list of names')
    for key in ("mean", "std"):
        value = config[key]
        if len(value) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ModelError(f"{where} is damaged: {key!r} must be three numbers")
    weights = config["weights"]
    if weights.get("file") != WEIGHTS_FILE or not isinstance(weights.get("sha256"), str):
        raise ModelError(f'{where} is damaged: "weights" must name {WEIGHTS_FILE} and its sha256')


def load_hub_folder(folder: str | os.PathLike) -> dict:
    """A folder -> the checkpoint dict `load_checkpoint` returns; weights read with safetensors only.

    Raises:
        ModelError: a missing, foreign, tampered or newer config.json; a missing,
            truncated or altered model.safetensors; weights that don't fit the classes.
    """
    from skinfood_cli.backends.tensor_tree import PREFIX, join_tensors
    from skinfood_cli.checkpoint import FORMAT, validate_checkpoint

    folder = Path(folder)
    config = read_config(folder)
    tensors = load_weights(folder / WEIGHTS_FILE, config["weights"]["sha256"])
    state = {k: v for k, v in tensors.items() if not k.startswith(PREFIX)}
    skip = {
        "library",
        "skinfood_config_version",
        "weights",
        "display_names",
        "exported_by",
        "checkpoint_format_version",
    }
    ckpt = {k: v for k, v in config.items() if k not in skip}
    ckpt.update(
        format=FORMAT,
        format_version=config.get("checkpoint_format_version") or 1,
        state_dict=state,
        temperature=float(config["temperature"]),
        mean=[float(v) for v in config["mean"]],
        std=[float(v) for v in config["std"]],
        display_names=config.get("display_names"),
        threshold=float(config.get("threshold", DEFAULT_THRESHOLD)),
    )
    if config.get("trust") is not None:
        try:
            ckpt["trust"] = join_tensors(config["trust"], tensors)
        except KeyError as exc:
            raise ModelError(f"{folder}: config.json names a tensor {exc} that model.safetensors lacks") from None
    return validate_checkpoint(ckpt, folder)


def load_weights(path: Path, sha256: str | None) -> dict:
    """model.safetensors -> {name: tensor} on the CPU, after checking its sha256."""
    from skinfood_cli.weights import sha256_of

    if not path.is_file():
        raise ModelError(f"{path.parent} has no {path.name}: download or copy the whole folder again")
    # ~60 ms for a ResNet50's 94 MB, and it catches truncation and flipped bits alike,
    # in a folder copied by hand as much as in the Hugging Face cache.
    if sha256 is not None and sha256_of(path) != sha256.lower():
        raise ModelError(
            f"{path} does not match the sha256 in {CONFIG_FILE} (truncated or altered): download or copy it again"
        )
    try:
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    except ImportError:
        from skinfood_cli.errors import MissingExtraError

        raise MissingExtraError("loading a model folder needs safetensors: pip install safetensors") from None
    except Exception as exc:
        raise ModelError(
            f"{path} is not a valid safetensors file ({first_line(exc)}): download or copy it again"
        ) from None


def default_export_path(folder: Path, fmt: str, int8: bool) -> Path:
    """Where `skinfood export --model DIR` writes: in the folder, or the current one for the Hub cache."""
    suffix = (".int8." if int8 else ".") + fmt
    if folder.parent.name == "snapshots":  # the Hugging Face cache: never write into it
        repo = folder.parent.parent.name.split("--")[-1]
        return Path.cwd() / f"{repo}{suffix}"
    return folder / f"model{suffix}"
