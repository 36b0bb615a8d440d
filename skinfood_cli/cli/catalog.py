"""What skinfood has: `models` (trained runs), `home` (the data home), `diseases` (the descriptions)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from skinfood_cli.cli.app import (
    DescriptionsOpt,
    Lang,
    LangOpt,
    ShowFormat,
    TableFormat,
    _book,
    _lang,
    command,
    diseases_app,
    handle_errors,
)
from skinfood_cli.cli.completion import complete_disease, complete_model
from skinfood_cli.cli.metavars import Command

# --- models, diseases, home ------------------------------------------------------


@command()
def models(
    name: Optional[str] = typer.Argument(
        None,
        metavar="NAME",
        autocompletion=complete_model,
        help="A run: list the files in its folder (pictures included).",
    ),
    fmt: TableFormat = typer.Option(TableFormat.table, "--format", "-f", help="table, json or csv."),
):
    """List trained runs and models downloaded from the Hub (hf://...); the default (without --model) is marked.

    With a run's NAME: the files in its folder (best.pt, curves.png, confusion.png, ...) and their sizes.
    """
    if name is not None:
        _print_run_files(name, fmt)
        return
    from skinfood_cli.cli.output import RecordWriter, console, print_json
    from skinfood_cli.hub.download import describe_hub_models
    from skinfood_cli.paths import runs_dir
    from skinfood_cli.store import describe_runs

    rows = [{**row, "source": "local"} for row in describe_runs()] + describe_hub_models()
    if fmt is TableFormat.json:
        print_json(rows)
        return
    if fmt is TableFormat.csv:
        writer = RecordWriter(
            "csv",
            sys.stdout,
            [
                "name",
                "default",
                "created",
                "classes",
                "num_classes",
                "val_macro_f1",
                "val_acc",
                "epochs",
                "size_mb",
                "path",
                "source",
            ],
        )
        for row in rows:
            writer.write({**row, "classes": "|".join(row["classes"])})
        writer.close()
        return
    from rich.table import Table

    out = console()
    if not rows:
        out.print(f"no trained models in {runs_dir()}: run `skinfood train --data DIR` or `skinfood demo`")
        return
    from rich import box

    # Fits 80 columns: the name (what a user copies into --model) is never cut, the class list
    # wraps; accuracy and the full path are in --format json/csv.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", padding=(0, 1, 0, 0))
    table.add_column("name", no_wrap=True, min_width=max(len(r["name"]) for r in rows) + 2)
    table.add_column("created", no_wrap=True)
    table.add_column("classes", ratio=1, overflow="fold")
    table.add_column("val F1", justify="right", no_wrap=True)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    for row in rows:
        names = ", ".join(row["classes"][:3]) + (f" (+{row['num_classes'] - 3})" if row["num_classes"] > 3 else "")
        f1 = "" if row["val_macro_f1"] is None else f"{row['val_macro_f1']:.3f}"
        table.add_row(
            ("* " if row["default"] else "  ") + row["name"],
            row["created"] or "",
            names,
            f1,
            str(row["epochs"] or ""),
            f"{row['size_mb']:.0f} MB",
        )
    out.print(table)
    local = [row for row in rows if row.get("source") != "hub"]
    total = sum(row["size_mb"] for row in local)
    if local:
        out.print(
            f"[dim]* default model; runs are kept in {runs_dir()} ({total:.0f} MB); "
            "to free space, delete a run's folder[/dim]"
        )
    else:
        out.print(f"[dim]no trained runs in {runs_dir()}[/dim]")
    if any(row.get("source") == "hub" for row in rows):
        out.print("[dim]hf://... models are in the Hugging Face cache: `hf cache ls`, `hf cache rm` manage it[/dim]")


def _print_run_files(name: str, fmt: TableFormat) -> None:
    from skinfood_cli.cli.output import RecordWriter, console, print_json
    from skinfood_cli.store import describe_run_files

    rows = describe_run_files(name)
    if fmt is TableFormat.json:
        print_json(rows)
        return
    if fmt is TableFormat.csv:
        writer = RecordWriter("csv", sys.stdout, ["file", "bytes", "what", "path"])
        for row in rows:
            writer.write(row)
        writer.close()
        return
    from rich.markup import escape

    out = console()
    width = max((len(row["file"]) for row in rows), default=0)
    for row in rows:
        name_col = escape(row["file"].ljust(width))
        out.print(f"{name_col}  {_size(row['bytes']):>9}  [dim]{row['what']}[/dim]", highlight=False)
    folder = Path(rows[0]["path"]).parent if rows else name
    out.print(f"[dim]in {escape(str(folder))}[/dim]", highlight=False)


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    size = n / 1000
    for unit in ("KB", "MB"):
        if size < 1000:
            return f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


@command()
def home():
    """Print the folder where skinfood keeps weights and trained runs ($SKINFOOD_HOME)."""
    from skinfood_cli.paths import data_dir

    typer.echo(str(data_dir()))


@diseases_app.callback()
@handle_errors
def diseases_list(
    ctx: typer.Context,
    lang: Optional[Lang] = LangOpt,
    fmt: TableFormat = typer.Option(TableFormat.table, "--format", "-f", help="table, json or csv."),
    descriptions: Optional[Path] = DescriptionsOpt,
):
    """List the conditions skinfood can describe."""
    if ctx.invoked_subcommand is not None:
        return
    from skinfood_cli.cli.output import RecordWriter, console, print_json

    language = _lang(lang)
    book = _book(descriptions)
    rows = book.summaries(language)
    if fmt is TableFormat.json:
        print_json(rows)
        return
    if fmt is TableFormat.csv:
        writer = RecordWriter("csv", sys.stdout, ["key", "name", "urgency"])
        for row in rows:
            writer.write(row)
        writer.close()
        return
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("key")
    table.add_column("name")
    table.add_column("urgency")
    for row in rows:
        table.add_row(row["key"], row["name"], row["urgency"])
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS

    out = console()
    out.print(table)
    out.print(f"[dim]{NOT_A_DIAGNOSIS[language]}[/dim]")


@diseases_app.command("show", cls=Command)
@handle_errors
def diseases_show(
    name: str = typer.Argument(..., autocompletion=complete_disease, help="A key, a class folder name or an alias."),
    lang: Optional[Lang] = LangOpt,
    fmt: ShowFormat = typer.Option(ShowFormat.table, "--format", "-f", help="table, or json for scripts."),
    descriptions: Optional[Path] = DescriptionsOpt,
):
    """Print one condition's description, signs, look-alikes and advice."""
    from rich.markup import escape

    from skinfood_cli.cli.output import URGENCY_TEXT, console, label, print_json
    from skinfood_cli.errors import UsageError
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS
    from skinfood_cli.red_flags import advice_sentences

    language = _lang(lang)
    entry = _book(descriptions).get(name, language)
    if entry is None:
        raise UsageError(f"no description for {name!r}: see `skinfood diseases`")
    if fmt is ShowFormat.json:
        print_json(entry.to_dict())
        return
    out = console()
    out.print(f"[bold]{escape(entry.name)}[/bold]  [dim]({entry.key})[/dim]")
    out.print(escape(entry.summary))
    for title, items in (("signs", entry.signs), ("look-alikes", entry.look_alikes), ("self-care", entry.self_care)):
        out.print(f"\n[bold]{label(language, title)}[/bold]")
        for item in items:
            out.print(f"  • {escape(item)}")
    urgency = URGENCY_TEXT.get(language, URGENCY_TEXT["en"]).get(entry.urgency, entry.urgency)
    out.print(f"\n[bold]{label(language, 'when to see a doctor')}[/bold] ({escape(urgency)})")
    for sentence in advice_sentences(entry.red_flags, language) or [entry.see_a_doctor]:
        out.print(f"  {escape(sentence)}")
    for link in entry.links:
        out.print(f"  {link}")
    out.print(f"\n[dim]{NOT_A_DIAGNOSIS[language]}[/dim]")
