"""The terminal view of `skinfood check`: copies first, then counts, sizes, skin tones."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from skinfood_cli.cli.output import console

SHOWN = 20  # rows of each list printed; the JSON has them all


class ScanProgress:
    """A bar over the photos being read; silent when stderr isn't a terminal."""

    def __init__(self, description: str):
        self.description = description
        self.bar = None
        self.task = None

    def __enter__(self):
        err = console(stderr=True)
        if err.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.description, total=None)
        return self

    def update(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def _short(path: str, root: str) -> str:
    return path[len(root) :].lstrip("/") if path.startswith(root) else path


def print_check(report) -> None:
    from skinfood_cli.data.quality import PROBLEMS
    from skinfood_cli.data.skin_tone import GROUP_NAMES, NOTE, group_range

    out = console()
    d = report.to_dict()
    root = str(report.root).rstrip("/")
    total = sum(d["photos"].values())
    out.print(
        f"[bold]{escape(root)}[/bold]: {total} readable photo(s) in {escape(report.layout)} "
        f"({', '.join(f'{s} {n}' for s, n in d['photos'].items())}), read in {report.seconds:.1f}s "
        f"({report.cache.get('cached', 0)} from the cache)"
    )

    leaks = report.leaks
    if leaks:
        per = ", ".join(f"{n} {s}" for s, n in d["cross_split_photos"].items() if s != "train")
        out.print(
            f"\n[bold red]{len(leaks)} cross-split copy pair(s)[/bold red]: {per} photo(s) have a copy in "
            "another split, so a model is scored on pictures it trained on"
        )
    else:
        out.print("\n[green]no copies across splits[/green]")
    if report.pairs:
        table = Table(show_edge=False, header_style="bold", title=f"copies (within {report.threshold} of 256 bits)")
        for col in ("bits", "kind", "photo", "copy"):
            table.add_column(col, justify="right" if col == "bits" else "left")
        for p in report.pairs[:SHOWN]:
            kind = "exact" if p.exact else "mirrored" if p.mirrored else "near"
            if p.class_a != p.class_b:
                kind += ", other class"
            style = "red" if p.cross_split else "yellow"
            table.add_row(
                str(p.distance), f"[{style}]{kind}[/{style}]", escape(_short(p.a, root)), escape(_short(p.b, root))
            )
        out.print(table)
        if len(report.pairs) > SHOWN:
            out.print(f"[dim]... and {len(report.pairs) - SHOWN} more (--format json lists them all)[/dim]")
    if d["nearest_train_distance"]:
        bins = "  ".join(f"{k}: {v}" for k, v in d["nearest_train_distance"].items())
        out.print(f"[dim]nearest training photo of each val/test photo, in differing bits: {bins}[/dim]")

    counts = Table(show_edge=False, header_style="bold", title="photos per class")
    counts.add_column("class")
    splits = list(report.counts)
    for s in splits:
        counts.add_column(s, justify="right")
    classes = sorted({c for split in report.counts.values() for c in split})
    for c in classes:
        counts.add_row(escape(c), *(str(report.counts[s].get(c, 0)) for s in splits))
    out.print()
    out.print(counts)
    if report.imbalance_ratio:
        out.print(f"imbalance: the largest class has {report.imbalance_ratio:.1f}x the photos of the smallest (train)")

    sizes = report.sizes
    if sizes:
        ss, ls = sizes["short_side"], sizes["long_side"]
        out.print(
            f"sizes: shorter side {ss['min']}-{ss['max']} px (median {ss['median']:g}), longer side "
            f"{ls['min']}-{ls['max']} px; most common {', '.join(f'{s} ({n})' for s, n in sizes['most_common'][:3])}"
        )

    tones = Table(show_edge=False, header_style="bold", title="skin tone (estimated ITA)")
    tones.add_column("group")
    tones.add_column("ITA", justify="right")
    for s in splits:
        tones.add_column(s, justify="right")
    for g in GROUP_NAMES:
        tones.add_row(g, group_range(g), *(str(report.skin_tone[s].get(g, 0)) for s in splits))
    out.print()
    out.print(tones)
    out.print(f"[dim]{NOTE}[/dim]")

    for title, items in (
        ("unreadable", [f"{_short(u['path'], root)}: {u['reason']}" for u in report.unreadable]),
        (
            f"tiny (shorter side < {report.min_side} px)",
            [f"{_short(t['path'], root)} ({t['width']}x{t['height']})" for t in report.tiny],
        ),
        ("grayscale", [_short(p, root) for p in report.grayscale]),
        *(
            (f"{PROBLEMS['en'][code]} (photo-quality hint)", [_short(p, root) for p in paths])
            for code, paths in report.quality.items()
        ),
    ):
        if items:
            out.print(f"\n[yellow]{len(items)} {title}[/yellow]")
            for line in items[:SHOWN]:
                out.print(f"  {escape(line)}", soft_wrap=True)
            if len(items) > SHOWN:
                out.print(f"  [dim]... and {len(items) - SHOWN} more[/dim]")
