"""Using a model by name: `--model hf://ORG/NAME[@REVISION]`, and what is in the Hugging Face cache.

    hf://ORG/NAME@REV -> model_info (files, LFS sha256) -> config.json (is it ours? which version?)
                      -> model.safetensors into the Hugging Face cache -> sha256 checked -> folder

(The way up, `skinfood push`, is publish.py; the folder format, folder.py.)

Downloads go through `huggingface_hub` and its cache, so HF_HOME, HF_HUB_CACHE,
HF_ENDPOINT, HF_HUB_OFFLINE and HF_TOKEN mean what they mean for every other
Hub tool, and a model downloaded once runs offline. huggingface_hub (2.4)
names a cached file after its ETag but does not hash what it downloaded, so
skinfood compares model.safetensors with the sha256 the Hub lists for it.
Nothing on this path unpickles: the weights are safetensors, the rest JSON.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from skinfood_cli.errors import (
    HubError,
    MissingExtraError,
    ModelError,
    UsageError,
    first_line,
)
from skinfood_cli.paths import HUB_PREFIX

HUB_INSTALL = 'pip install ".[hub]" in the skinfood checkout'
DEFAULT_REVISION = "main"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def require_hub():
    """The huggingface_hub module, or MissingExtraError with the install line."""
    try:
        import huggingface_hub
    except ImportError:
        raise MissingExtraError(f"the Hugging Face Hub needs huggingface_hub: {HUB_INSTALL}") from None
    return huggingface_hub


def parse_repo_id(text: str) -> str:
    """ORG/NAME (or hf://ORG/NAME) -> ORG/NAME; UsageError for anything else."""
    repo_id = text.removeprefix(HUB_PREFIX)
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_NAME.fullmatch(p) and len(p) <= 96 for p in parts):
        raise UsageError(f"{text!r} is not a Hub repository name: give ORG/NAME (letters, digits, . _ -)")
    return repo_id


def parse_hub_spec(spec: str) -> tuple[str, str]:
    """hf://ORG/NAME[@REVISION] -> (ORG/NAME, REVISION or "main")."""
    if not spec.startswith(HUB_PREFIX):
        raise UsageError(f"{spec!r} is not a Hub model: write hf://ORG/NAME[@REVISION]")
    name, _, revision = spec[len(HUB_PREFIX) :].partition("@")
    if "@" in spec[len(HUB_PREFIX) :] and not revision:
        raise UsageError(f"{spec!r}: nothing after @; give a branch, tag or commit, or leave out the @")
    return parse_repo_id(name), revision or DEFAULT_REVISION


def hub_spec(repo_id: str, revision: str = DEFAULT_REVISION) -> str:
    """(ORG/NAME, REVISION) -> what `--model` takes: hf://ORG/NAME, with @REVISION unless it is main."""
    return f"{HUB_PREFIX}{repo_id}" + ("" if revision == DEFAULT_REVISION else f"@{revision}")


# --- using a model by name -------------------------------------------------------------


def resolve_hub_model(spec: str) -> Path:
    """Download `hf://ORG/NAME[@REVISION]` once into the Hugging Face cache; the folder it is in.

    Online, the Hub's file list is asked first (it lists model.safetensors' sha256),
    config.json is fetched and checked before the weights, and the weights are hashed
    after download. Offline (HF_HUB_OFFLINE=1, or no network) the cached copy is used;
    `load_hub_folder` checks it against the sha256 in its config.json.

    Raises:
        HubError: no network and no cached copy; repository or revision not found,
            private or gated; not a skinfood model; a config version this skinfood
            can't read; a download whose sha256 differs from the Hub's.
        MissingExtraError: huggingface_hub is not installed.
    """
    repo_id, revision = parse_hub_spec(spec)
    hub = require_hub()
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return _from_cache(spec, repo_id, revision, "HF_HUB_OFFLINE is set")
    try:
        info = hub.HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    except Exception as exc:
        if is_network_error(exc):
            return _from_cache(spec, repo_id, revision, f"no network ({endpoint()} unreachable)")
        raise _explain(exc, spec) from None
    files = {s.rfilename: s for s in info.siblings or []}
    if "config.json" not in files:
        raise HubError(f"{spec} is not a skinfood model: the repository has no config.json")
    config_path = Path(_download(spec, repo_id, "config.json", revision))
    _check_config(config_path, spec)
    if "model.safetensors" not in files:
        raise HubError(f"{spec} is damaged: its config.json says skinfood but it has no model.safetensors")
    weights = Path(_download(spec, repo_id, "model.safetensors", revision))
    if info.sha and weights.parent.name != info.sha:
        raise HubError(f"{spec} changed on the Hub while it was downloading: run the command again")
    _verify_download(spec, weights, files["model.safetensors"])
    if "README.md" in files:
        try:
            _download(spec, repo_id, "README.md", revision)
        except HubError:
            pass  # the card is for people; the model runs without it
    return weights.parent


def _download(spec: str, repo_id: str, filename: str, revision: str, **kw) -> str:
    """One file through huggingface_hub's cache (with its progress bar on stderr)."""
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(repo_id, filename, revision=revision, **kw)
    except Exception as exc:
        raise _explain(exc, spec) from None


def _from_cache(spec: str, repo_id: str, revision: str, why: str) -> Path:
    """The cached copy of a model, when the Hub can't (or may not) be asked."""
    from huggingface_hub import constants

    try:
        config = _download(spec, repo_id, "config.json", revision, local_files_only=True)
        weights = _download(spec, repo_id, "model.safetensors", revision, local_files_only=True)
    except HubError:
        raise HubError(
            f"{spec} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}: "
            "run once with network to download it"
        ) from None
    _check_config(Path(config), spec)
    return Path(weights).parent


def _check_config(path: Path, spec: str) -> None:
    from skinfood_cli.hub.folder import read_config

    try:
        read_config(path.parent)
    except ModelError as exc:
        raise HubError(
            exc.message.replace(str(path.parent / "config.json"), f"{spec} (config.json)").replace(
                str(path.parent), spec
            )
        ) from None


def _verify_download(spec: str, weights: Path, sibling) -> None:
    """model.safetensors against the Hub's own record: LFS sha256, or the git blob id for small files."""
    import hashlib

    from skinfood_cli.weights import sha256_of

    lfs = getattr(sibling, "lfs", None)
    expected = getattr(lfs, "sha256", None) if lfs is not None else None
    if expected:
        actual, what = sha256_of(weights), "sha256"
    elif getattr(sibling, "blob_id", None):
        expected, what = sibling.blob_id, "git blob id"
        digest = hashlib.sha1(b"blob %d\0" % weights.stat().st_size)
        with open(weights, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        actual = digest.hexdigest()
    else:
        return  # the Hub listed no hash: config.json's sha256 is still checked on load
    if actual != expected.lower():
        _evict(weights)
        raise HubError(
            f"{spec}: the downloaded model.safetensors does not match the Hub's {what} "
            f"({actual[:12]}... != {expected[:12]}...); removed from the cache, run again"
        )


def _evict(pointer: Path) -> None:
    """Remove a bad cached file: the snapshot's link and the blob it points to."""
    blob = pointer.resolve()
    for path in {pointer, blob}:
        try:
            path.unlink()
        except OSError:
            pass


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT or "the Hub"


def is_network_error(exc: BaseException) -> bool:
    """Connection refused, DNS, timeouts, offline mode: for requests (hub < 1.0) and httpx alike."""
    names = {
        "ConnectError",
        "ConnectionError",
        "ConnectTimeout",
        "Timeout",
        "TimeoutException",
        "ReadTimeout",
        "NetworkError",
        "TransportError",
        "OfflineModeIsEnabled",
        "ProxyError",
    }
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(c.__name__ in names for c in type(current).__mro__):
            return True
        current = current.__cause__ or current.__context__
    return False


def _explain(exc: BaseException, spec: str) -> BaseException:
    """A huggingface_hub exception -> one HubError line; anything unknown is returned unchanged."""
    from huggingface_hub.utils import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        return HubError(
            f"{spec} is gated: accept its conditions on the Hub's page, then log in (hf auth login) or set HF_TOKEN"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return HubError(
            f"{spec}: repository not found, or private and you are not logged in with access "
            "(hf auth login, or set HF_TOKEN)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return HubError(f"{spec}: no such branch, tag or commit on the Hub")
    if isinstance(exc, LocalEntryNotFoundError):  # before EntryNotFoundError: it is one
        reason = "offline" if is_network_error(exc) or "outgoing traffic" in str(exc) else "no network"
        return HubError(f"{spec}: not in the Hugging Face cache and {reason}")
    if isinstance(exc, EntryNotFoundError):
        return HubError(f"{spec} is not a skinfood model: a file it needs is missing ({first_line(exc, 120)})")
    if is_network_error(exc):
        return HubError(f"{spec}: no network ({endpoint()} unreachable: {first_line(exc, 120)})")
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401:
            return HubError(f"{spec}: the Hub refused your token (401): log in again (hf auth login) or fix HF_TOKEN")
        if status == 403:
            return HubError(f"{spec}: your token has no access to it (403)")
        return HubError(f"{spec}: the Hub answered {status or 'an error'}: {first_line(exc, 160)}")
    return exc


# --- what is in the cache -------------------------------------------------------------------


def describe_hub_models() -> list[dict]:
    """Downloaded skinfood models in the Hugging Face cache, one row per cached revision.

    Rows have the keys of `store.describe_runs` rows; `name` is what --model takes.
    Without huggingface_hub, or with no cache yet, there are none.
    """
    import json

    try:
        from huggingface_hub import constants, scan_cache_dir
    except ImportError:
        return []
    try:
        # The cache folder as hf_hub_download sees it (scan_cache_dir's default is bound at import).
        cache = scan_cache_dir(constants.HF_HUB_CACHE)
    except Exception:
        return []
    rows = []
    for repo in cache.repos:
        if repo.repo_type != "model":
            continue
        for rev in repo.revisions:
            config_file = Path(rev.snapshot_path) / "config.json"
            try:
                config = json.loads(config_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if not isinstance(config, dict) or config.get("library") != "skinfood":
                continue
            refs = sorted(rev.refs)
            ref = DEFAULT_REVISION if DEFAULT_REVISION in refs else (refs[0] if refs else rev.commit_hash)
            name = hub_spec(repo.repo_id, ref)
            metrics: dict = config["metrics"] if isinstance(config.get("metrics"), dict) else {}
            classes = [str(c) for c in config.get("classes") or []]
            rows.append(
                {
                    "name": name,
                    "default": False,
                    "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(rev.last_modified)),
                    "classes": classes,
                    "num_classes": len(classes),
                    "val_macro_f1": _number(metrics.get("val_macro_f1")),
                    "val_acc": _number(metrics.get("val_acc")),
                    "epochs": config.get("epoch"),
                    "size_mb": round(rev.size_on_disk / 1e6, 1),
                    "path": str(rev.snapshot_path),
                    "source": "hub",
                }
            )
    return sorted(rows, key=lambda r: r["name"])


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
