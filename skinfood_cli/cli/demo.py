"""`skinfood demo`: generate photos, train, evaluate, predict and explain, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from skinfood_cli.cli.app import (
    app,
    command,
)

# --- demo -----------------------------------------------------------------------------


@command()
def demo(
    workdir: Optional[Path] = typer.Option(
        None, "--workdir", help="Where to write the synthetic photos (default: a new temporary folder)."
    ),
    epochs: int = typer.Option(8, "--epochs", min=1, help="Training epochs."),
):
    """A first run with no data of your own: generate, train, evaluate, predict, explain.

    The photos are SYNTHETIC (coloured blobs on skin-toned noise), made up so the
    whole pipeline runs in about a minute on a laptop CPU. The trained model is
    saved as a run named demo-<time>, so `skinfood predict` works afterwards.
    """
    import tempfile
    import time

    from skinfood_cli.cli.output import console
    from skinfood_cli.data.synthetic import make_dataset

    err = console(stderr=True)
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="skinfood-demo-"))
    data = make_dataset(
        root / "data",
        ("acne", "psoriasis", "vitiligo"),
        train_per_class=40,
        test_per_class=10,
        size=(128, 96),
        lesion_scale=0.4,
    )
    err.print(
        f"[bold]1/4[/bold] wrote a SYNTHETIC photo set (not real skin photos) to {data}: "
        "train/ and test/ folders of acne, psoriasis, vitiligo"
    )
    name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    photo = sorted((data / "test" / "vitiligo").glob("*.jpg"))[0]
    steps = [
        (
            f"[bold]2/4[/bold] training ResNet50 from scratch at 64 px on the CPU as run {name!r}",
            [
                "train",
                "--data",
                str(data),
                "--name",
                name,
                "--epochs",
                str(epochs),
                "--image-size",
                "64",
                "--batch-size",
                "16",
                "--lr",
                "2e-3",
                "--no-pretrained",
                "--device",
                "cpu",
            ],
        ),
        (
            "[bold]3/4[/bold] evaluating it on the held-out test/ photos",
            ["evaluate", "--model", name, "--bootstrap", "200"],
        ),
        (
            f"[bold]4/4[/bold] predicting and explaining one test photo: {photo}",
            ["predict", str(photo), "--model", name],
        ),
        (None, ["explain", str(photo), "--model", name, "--output-dir", str(root / "explain")]),
    ]
    cli = typer.main.get_command(app)
    for message, args in steps:
        if message:
            err.print(message)
        code = cli.main(args=args, prog_name="skinfood", standalone_mode=False)
        if code:
            raise typer.Exit(code)
    err.print(
        f"\ndone. Everything the demo wrote is in {root}; the model is run {name!r} "
        "(see `skinfood models`). Next: `skinfood train --data YOUR_PHOTOS/`."
    )
