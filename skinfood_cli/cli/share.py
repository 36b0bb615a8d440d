"""Sharing a model: `push` (to the Hugging Face Hub), and the printout of `export --format hub`."""

from __future__ import annotations

from pathlib import Path

import typer

from skinfood_cli.cli.app import DescriptionsOpt, _book, command


@command()
def push(
    model: str = typer.Argument(
        ...,
        metavar="RUN_OR_DIR",
        help="A run name, run folder, checkpoint, or a folder written by `skinfood export --format hub`.",
    ),
    repo: str = typer.Argument(..., metavar="ORG/NAME", help="The Hub repository; created if missing."),
    private: bool = typer.Option(
        False, "--private", help="Create the repository private (only you and your organisation see it)."
    ),
    revision: str | None = typer.Option(
        None, "--revision", help="Upload to this branch (created if missing) instead of main."
    ),
    with_onnx: bool = typer.Option(
        False, "--with-onnx", help="Add the verified ONNX export and its .json sidecar (needs the export extra)."
    ),
    descriptions: Path | None = DescriptionsOpt,
):
    """Publish a trained model on the Hugging Face Hub, for anyone to use by name.

    Uploads model.safetensors (the weights), config.json (classes, preprocessing,
    calibration, metrics) and README.md (the model card), never a photo. The token
    is huggingface_hub's: `hf auth login` once, or set HF_TOKEN; skinfood never
    stores it. Needs the hub extra: pip install ".\\[hub]" in the skinfood checkout.

    Examples:

        skinfood push my-run my-lab/skin-resnet50 --private

        skinfood predict photo.jpg --model hf://my-lab/skin-resnet50
    """
    from skinfood_cli.cli.output import console
    from skinfood_cli.hub.publish import push_model

    err = console(stderr=True)
    result = push_model(
        model,
        repo,
        private=private,
        revision=revision,
        with_onnx=with_onnx,
        book=_book(descriptions),
        log=lambda msg: err.print(f"[dim]{msg}[/dim]", soft_wrap=True),
    )
    err.print(
        f"[green]pushed[/green] {', '.join(result.files)} ({result.size_bytes / 1e6:.1f} MB) "
        f"to {result.repo_id}@{result.revision}"
    )
    typer.echo(result.url)
    err.print(f"[dim]use it anywhere: skinfood predict PHOTO --model {result.model_spec}[/dim]", soft_wrap=True)


def print_hub_export(result) -> None:
    """What `skinfood export --format hub` wrote."""
    from rich.markup import escape

    from skinfood_cli.cli.output import console

    out = console()
    folder = result.folder
    out.print(f"[bold]{escape(str(folder.path))}[/bold]  {folder.size_bytes / 1e6:.1f} MB: {', '.join(folder.files)}")
    out.print("  [green]verified[/green]: model.safetensors reads back as the checkpoint's weights")
    out.print(f"  sha256 of model.safetensors {folder.weights_sha256}")
    if result.onnx is not None:
        v = result.onnx.verification
        out.print(
            f"  {result.onnx.path.name}: [green]verified[/green] against PyTorch fp32 on {v.images} "
            f"{v.source}: max |Δp| {v.max_abs_diff:.1e}"
        )
    out.print(
        f"[dim]use it: skinfood predict PHOTO --model {escape(str(folder.path))} · "
        f"publish it: skinfood push {escape(str(folder.path))} ORG/NAME[/dim]",
        soft_wrap=True,
    )
