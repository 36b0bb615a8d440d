"""Publishing a model: build the portable folder (folder.py) and upload it with huggingface_hub.

    RUN or DIR -> portable folder [+ verified model.onnx] -> create_repo -> upload_folder

`build_hub_folder` is also `skinfood export --format hub` (through `exporting.export`);
`push_model` is `skinfood push`. The token comes from HF_TOKEN or `hf auth login`;
skinfood never stores it.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from skinfood_cli.errors import HubError, UsageError, first_line
from skinfood_cli.hub.download import (
    DEFAULT_REVISION,
    endpoint,
    hub_spec,
    is_network_error,
    parse_repo_id,
    require_hub,
)
from skinfood_cli.hub.folder import CARD_FILE, ONNX_FILE, HubFolder, describe_folder, is_hub_folder, write_hub_folder

if TYPE_CHECKING:
    from skinfood_cli.export import ExportResult, Verification


@dataclass
class HubExport:
    """A folder built for the Hub, and the ONNX export in it, if any.

    `path`, `format`, `precision`, `verification`, `passed` and `card` read as an
    `export.ExportResult`'s do, so a caller of `exporting.export` needs no branch for them.
    """

    folder: HubFolder
    onnx: ExportResult | None
    seconds: float

    format = "hub"
    precision = "fp32"  # safetensors weights (and a plain fp32 ONNX file)

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def verification(self) -> Verification | None:
        """The ONNX file's check against PyTorch; None without one (the weights are checked byte for byte)."""
        return None if self.onnx is None else self.onnx.verification

    @property
    def passed(self) -> bool:
        return self.onnx is None or self.onnx.passed

    @property
    def card(self) -> Path | None:
        """The folder's README.md: the model card."""
        return self.folder.path / CARD_FILE if CARD_FILE in self.folder.files else None


@dataclass
class PushResult:
    url: str
    repo_id: str
    revision: str
    files: list[str]
    size_bytes: int
    commit_url: str | None

    @property
    def model_spec(self) -> str:
        """What `--model` takes to use it: hf://ORG/NAME[@REVISION]."""
        return hub_spec(self.repo_id, self.revision)


def build_hub_folder(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    with_onnx: bool = False,
    book=None,
    repo_id: str | None = None,
    verify_images: int | None = None,
    check: bool = True,
    log: Callable[[str], None] = lambda _msg: None,
) -> HubExport:
    """The portable folder for `source` (a checkpoint or a folder), with the verified ONNX file if asked.

    Args:
        check: raise when the ONNX file fails verification (as `export.check_passed`);
            False returns the result, with `passed` False, for the caller to decide.

    Raises:
        ModelError: the source does not load.
        MissingExtraError: `with_onnx` without the export extra.
        SkinfoodError (exit 1): model.safetensors does not read back as the checkpoint's weights;
            with `check`, the ONNX export does not match PyTorch.
    """
    started = time.perf_counter()
    if with_onnx:
        from skinfood_cli.export import require_export_extra

        require_export_extra()  # before writing anything
    log(f"writing model.safetensors, config.json and README.md: {output}")
    folder = write_hub_folder(source, output, book=book, repo_id=repo_id)
    onnx = None
    if with_onnx:
        from skinfood_cli.export import VERIFY_IMAGES, check_passed, export_model

        onnx = export_model(
            Path(source),
            fmt="onnx",
            output=Path(output) / ONNX_FILE,
            book=book,
            log=log,
            verify_images=VERIFY_IMAGES if verify_images is None else verify_images,
        )
        if check:
            check_passed(onnx)
        folder = describe_folder(Path(output), folder.weights_sha256)
    return HubExport(folder, onnx, time.perf_counter() - started)


def default_hub_output(source: Path) -> Path:
    """Where `skinfood export --format hub` writes: `hub/` beside the checkpoint; a folder in place."""
    if source.is_dir():
        if source.parent.name == "snapshots":  # the Hugging Face cache is not ours to write in
            return Path.cwd() / source.parent.parent.name.split("--")[-1]
        return source
    return source.parent / "hub"


def push_model(
    run_or_dir: str | None,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    with_onnx: bool = False,
    book=None,
    log: Callable[[str], None] = lambda _msg: None,
    api=None,
) -> PushResult:
    """Build the portable folder for a run (or take a folder) and upload it to the Hub.

    The token is huggingface_hub's: HF_TOKEN, or what `hf auth login` stored.
    skinfood never reads, prints or stores it.

    Args:
        run_or_dir: a run name, run folder, checkpoint or model folder (None: the latest run).
        repo_id: ORG/NAME on the Hub; created if missing (private if asked).
        revision: a branch to upload to (created from main if missing); None: main.
        api: an `HfApi` (tests pass a stand-in); None: a new one.

    Returns:
        PushResult with the model's URL.

    Raises:
        MissingExtraError: huggingface_hub is not installed.
        HubError: not logged in, no write access, no network.
    """
    from skinfood_cli.paths import resolve_model

    repo_id = parse_repo_id(repo_id)
    hub = require_hub()
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise HubError(f"HF_HUB_OFFLINE is set: unset it to push {repo_id}")
    spec = str(run_or_dir) if run_or_dir else None
    source = Path(spec).expanduser() if spec and is_hub_folder(Path(spec).expanduser()) else resolve_model(spec)
    if source.is_dir() and source.parent.name == "snapshots":
        raise UsageError(f"{spec} is a downloaded model: push your own run or folder")
    api = api if api is not None else hub.HfApi()
    with tempfile.TemporaryDirectory(prefix=".skinfood-push-") as tmp:
        staging = Path(tmp) / "model"
        built = build_hub_folder(
            source, staging, with_onnx=with_onnx or _has_onnx(source), book=book, repo_id=repo_id, log=log
        )
        files = list(built.folder.files)
        target = revision or DEFAULT_REVISION
        log(f"uploading {', '.join(files)} ({built.folder.size_bytes / 1e6:.1f} MB) to {repo_id}@{target}")
        try:
            url = str(api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model"))
            if revision and revision != DEFAULT_REVISION:
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=str(staging),
                repo_type="model",
                revision=revision,
                allow_patterns=files,
                commit_message=f"Upload skinfood model ({', '.join(files)})",
            )
        except (HubError, UsageError):
            raise
        except Exception as exc:
            raise _push_error(exc, repo_id) from None
    url = url.rstrip("/")
    if revision and revision != DEFAULT_REVISION:
        url = f"{url}/tree/{revision}"
    return PushResult(
        url=url,
        repo_id=repo_id,
        revision=target,
        files=files,
        size_bytes=built.folder.size_bytes,
        commit_url=getattr(commit, "commit_url", None),
    )


def _has_onnx(source: Path) -> bool:
    """A folder that already carries an ONNX file keeps it (re-exported and verified) when pushed."""
    return source.is_dir() and (source / ONNX_FILE).is_file()


def _push_error(exc: BaseException, repo_id: str) -> BaseException:
    from huggingface_hub.utils import HfHubHTTPError

    if is_network_error(exc):
        return HubError(f"could not reach {endpoint()} to push {repo_id}: no network ({first_line(exc, 120)})")
    if isinstance(exc, HfHubHTTPError) or "token" in str(exc).lower():
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (None, 401) or "token" in str(exc).lower():
            return HubError(
                f"not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN "
                f"(a token with write access) to push {repo_id}"
            )
        if status == 403:
            return HubError(f"your token cannot write to {repo_id} (403): use a write token, or an ORG you belong to")
        return HubError(f"the Hub refused the upload to {repo_id} ({status}): {first_line(exc, 160)}")
    return exc
