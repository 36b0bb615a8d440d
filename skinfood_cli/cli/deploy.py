"""Taking a model elsewhere: `export` (ONNX / TorchScript files) and `serve` (the web API and page)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from skinfood_cli.cli.app import (
    DescriptionsOpt,
    DeviceOpt,
    ModelOpt,
    Precision,
    PrecisionOpt,
    _book,
    command,
)
from skinfood_cli.serving.config import ServeConfig, serve_default, serve_help

# --- export -------------------------------------------------------------------------


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"
    hub = "hub"  # the portable folder (safetensors + config.json + README.md)


@command()
def export(
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Checkpoint file, run folder or run name (default: the most recently trained run)."
    ),
    fmt: ExportFormat = typer.Option(
        ExportFormat.onnx,
        "--format",
        "-f",
        help="onnx (apps, browsers), "
        "torchscript (PyTorch; deprecated upstream, but with --int8 the fastest "
        "--model for skinfood on a CPU), or hub (a folder to share: "
        "model.safetensors, config.json, README.md).",
    ),
    output: Optional[Path] = typer.Option(
        None,
        "--output",
        "-o",
        help="File to write (default: beside the "
        "checkpoint: best.onnx, best.int8.onnx, best[.int8].torchscript); "
        "a folder for --format hub (default: hub/ in the run).",
    ),
    with_onnx: bool = typer.Option(
        False,
        "--with-onnx",
        help="--format hub: add the verified ONNX file (model.onnx) and its sidecar to the folder.",
    ),
    int8: bool = typer.Option(
        False,
        "--int8",
        help="Store the model in 8-bit integers: about 4x smaller and up to 2x faster on a CPU, "
        "checked against the full model (run by ONNX Runtime for onnx, PyTorch's x86 kernels for torchscript).",
    ),
    calibration: Optional[Path] = typer.Option(
        None, "--calibration", help="Folder of photos to calibrate int8 on (default: the run's training photos)."
    ),
    calibration_images: int = typer.Option(300, "--calibration-images", min=8, help="How many calibration photos."),
    opset: int = typer.Option(
        18, "--opset", min=17, max=23, help="ONNX opset (18 loads in ONNX Runtime and onnxruntime-web)."
    ),
    batch: Optional[int] = typer.Option(
        None, "--batch", min=1, help="A fixed batch size instead of a dynamic batch axis."
    ),
    dynamic: bool = typer.Option(
        False, "--dynamic", help="A dynamic batch axis (the default; conflicts with --batch)."
    ),
    with_preprocessing: bool = typer.Option(
        False,
        "--with-preprocessing",
        help="Build normalisation and the "
        "calibrated softmax into the graph: feed (B, S, S, 3) uint8 RGB "
        "pixels, read probabilities.",
    ),
    verify_images: int = typer.Option(200, "--verify-images", min=8, help="Photos to check the export on."),
    descriptions: Optional[Path] = DescriptionsOpt,
):
    """Export a trained model to one ONNX or TorchScript file, and verify it.

    Every export runs beside the PyTorch model on the same photos (the run's
    validation split when it is on disk, else generated images): fp32 must match
    its probabilities to 1e-4, int8 must agree on the top class for 99% of them,
    or the command fails with exit 1. The file carries its class names and
    preprocessing in its metadata; a .json sidecar repeats them with its sha256.
    ONNX needs the export extra: pip install ".\\[export]" in the skinfood checkout;
    TorchScript needs only torch.

    Examples:

        skinfood export

        skinfood export --int8 --output skin.int8.onnx

        skinfood predict photos/ --model skin.int8.onnx

        skinfood export --format torchscript --int8    # best.int8.torchscript

        skinfood export --format hub --output skin-model/    # then: skinfood push skin-model/ ORG/NAME
    """
    from skinfood_cli.cli.output import console, print_export
    from skinfood_cli.cli.share import print_hub_export
    from skinfood_cli.errors import UsageError
    from skinfood_cli.export import check_passed
    from skinfood_cli.exporting import export as export_to
    from skinfood_cli.hub.publish import HubExport

    if dynamic and batch is not None:
        raise UsageError("--dynamic and --batch N contradict each other: pick one")
    err = console(stderr=True)
    result = export_to(
        model,
        fmt=fmt.value,
        output=output,
        int8=int8,
        with_onnx=with_onnx,
        calibration=calibration,
        calibration_images=calibration_images,
        opset=opset,
        batch=batch,
        with_preprocessing=with_preprocessing,
        verify_images=verify_images,
        book=_book(descriptions),
        log=lambda msg: err.print(f"[dim]{msg}[/dim]"),
    )
    if isinstance(result, HubExport):
        check_passed(result)  # a folder whose ONNX file fails is not shown as ready to share
        print_hub_export(result)
        return
    print_export(result)
    if result.card:
        err.print(f"[dim]model card: {result.card}[/dim]")
    check_passed(result)


# --- serve --------------------------------------------------------------------------


def _serve_opt(name: str, *flags: str, **kw):
    """A Typer option whose default and help come from ServeConfig, the one source of both."""
    return typer.Option(serve_default(name), *flags, help=serve_help(name), **kw)


@command()
def serve(
    model: Optional[str] = ModelOpt,
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on; 0.0.0.0 for phones on your network (then a token is required).",
    ),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, help="Port to listen on."),
    device: Optional[str] = DeviceOpt,
    precision: Precision = PrecisionOpt,
    max_batch_size: int = _serve_opt("max_batch_size", "--max-batch-size", min=1, max=256),
    batch_timeout_ms: float = _serve_opt("batch_timeout_ms", "--batch-timeout-ms", min=0, max=1000),
    max_queue: int = _serve_opt("max_queue", "--max-queue", min=1),
    max_upload_mb: float = _serve_opt("max_upload_mb", "--max-upload-mb", min=0.01),
    request_timeout: float = _serve_opt("request_timeout_s", "--request-timeout", min=0.001),
    token: Optional[str] = typer.Option(
        None,
        "--token",
        envvar="SKINFOOD_TOKEN",
        show_envvar=True,
        help="Token clients must send. When serving to other devices (--host other than 127.0.0.1) "
        "without one, a random token is made and printed.",
    ),
    no_auth: bool = typer.Option(
        False,
        "--no-auth",
        help="Serve other devices (--host other than 127.0.0.1) without a token: anyone on the network can use it.",
    ),
    cors_origin: List[str] = typer.Option(
        [], "--cors-origin", help="Allow browser pages from this origin (repeatable); CORS is off by default."
    ),
    access_log: bool = typer.Option(
        True, "--access-log/--no-access-log", help="Log method, path and status (never photos)."
    ),
    descriptions: Optional[Path] = DescriptionsOpt,
):
    """Serve the model: an HTTP API for programs and a page a phone opens.

    The page is at / (take or choose a photo, read the answer in English or
    Korean); the API is POST /v1/predict and /v1/explain, with its docs at
    /docs. Requests are batched dynamically on one inference thread. Photos stay
    in memory, are never written to disk and never logged. Ctrl-C or SIGTERM
    finishes the requests in flight and exits 0.
    Needs the serve extra: pip install ".\\[serve]" in the skinfood checkout.

    Examples:

        skinfood serve

        skinfood serve --host 0.0.0.0        # for phones on the same Wi-Fi

        curl -F file=@photo.jpg http://127.0.0.1:8000/v1/predict
    """
    import secrets

    from skinfood_cli.cli.output import console
    from skinfood_cli.errors import MissingExtraError
    from skinfood_cli.sources import resolve_model

    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise MissingExtraError(
            'serve needs FastAPI, uvicorn and python-multipart: pip install ".[serve]" in the skinfood checkout'
        ) from None
    from skinfood_cli.serving.runner import LOOPBACK, lan_address, run_server

    err = console(stderr=True)
    exposed = host not in LOOPBACK
    made_up = False
    if exposed and not token and not no_auth:
        token, made_up = secrets.token_urlsafe(16), True
    cfg = ServeConfig(
        model=str(resolve_model(model)),
        device=device,
        precision=precision.value if precision else None,
        max_batch_size=max_batch_size,
        batch_timeout_ms=batch_timeout_ms,
        max_queue=max_queue,
        max_upload_mb=max_upload_mb,
        request_timeout_s=request_timeout,
        token=token or None,
        cors_origins=list(_cors_origins(cors_origin)),
        descriptions=str(descriptions) if descriptions else None,
    )
    err.print(f"[dim]loading {cfg.model} and warming up...[/dim]")

    def say(text):
        err.print(text, soft_wrap=True)  # addresses must stay whole to be copied

    def announce(state, sock):
        bound_port = sock.getsockname()[1]
        shown = (lan_address() or host) if host in ("0.0.0.0", "::") else host
        shown = f"[{shown}]" if ":" in shown else shown
        url = f"http://{shown}:{bound_port}/"
        e = state.engine
        say(
            f"[bold green]ready[/bold green]: run {e.model.run_name} on {e.device} ({e.precision.name}), "
            f"batches of up to {max_batch_size}, listening on {host}:{bound_port}"
        )
        if token:
            where = " on a phone on the same network" if exposed else ""
            say(f"open [bold]{url}#token={token}[/bold]{where}")
            if made_up:
                say("[dim]the token was made up for this run; pass --token or set SKINFOOD_TOKEN to keep one[/dim]")
        else:
            warning = "  [yellow](no token: anyone on the network can use it)[/yellow]" if exposed else ""
            say(f"open [bold]{url}[/bold]{warning}")
        say(f"API docs {url}docs · Ctrl-C stops (requests in flight finish)")
        if not e.has_scope_check:
            from skinfood_cli.trust.scope import NO_SCOPE_CHECK

            say(f"[yellow]warning:[/yellow] {e.model.path.name}: {NO_SCOPE_CHECK}")

    run_server(cfg, host, port, announce, access_log=access_log)
    err.print("stopped")


def _cors_origins(origins):
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            from skinfood_cli.errors import UsageError

            raise UsageError(f"--cors-origin {origin!r}: give an origin like https://app.example.com")
        yield origin.rstrip("/")
