"""`skinfood check`: copies across splits and other troubles of a photo set, before training."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from skinfood_cli.cli.app import command
from skinfood_cli.errors import EXIT_SOME_FAILED


class CheckFormat(str, Enum):
    table = "table"
    json = "json"


@command()
def check(
    data: Path = typer.Option(..., "--data", "-d", help="Dataset folder, in any layout `train` accepts."),
    fmt: CheckFormat = typer.Option(CheckFormat.table, "--format", "-f", help="table, or json for scripts."),
    threshold: int = typer.Option(
        12,
        "--threshold",
        min=0,
        max=64,
        help="Most differing bits of 256 (difference hash) for two photos to count as copies.",
    ),
    min_side: int = typer.Option(64, "--min-side", min=1, help="List photos whose shorter side is below this."),
    workers: int = typer.Option(
        None, "--workers", min=1, help="Threads reading photos (default: sized to the machine)."
    ),
):
    """Find photos that repeat across train/val/test, and other troubles of a photo set.

    Exact copies (same bytes) and near copies (the same picture resized,
    re-compressed, lightly re-cropped or mirrored), unreadable files, tiny and
    grey photos, class counts and imbalance, image sizes and the skin-tone mix,
    and photos too dark, blurred, small or heavily compressed (a retake helps).
    Each photo is read once; later runs reuse what was computed (cached in the
    data home by path, size and modification time).

    Exit status: 0 when no photo has a copy in another split, 1 when one has
    (a copy in train and in test inflates every test figure).

    Examples:

        skinfood check --data dermnet/

        skinfood check --data dermnet/ --format json | jq '.pairs[] | select(.cross_split)'
    """
    from skinfood_cli.cli.check_view import ScanProgress
    from skinfood_cli.cli.output import print_json
    from skinfood_cli.data.check import check_dataset

    with ScanProgress("reading photos") as bar:
        report = check_dataset(data, threshold=threshold, min_side=min_side, workers=workers, progress=bar.update)
    if fmt is CheckFormat.json:
        print_json(report.to_dict())
    else:
        from skinfood_cli.cli.check_view import print_check

        print_check(report)
    if report.leaks:
        raise typer.Exit(EXIT_SOME_FAILED)
