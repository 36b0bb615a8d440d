"""The `skinfood` command line: parse options, call the core, print.

Imports nothing heavy at module level: torch and torchvision are loaded inside
the commands that need them, so `skinfood --help` answers at once.
"""

from __future__ import annotations

import functools
import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from skinfood_cli import __version__
from skinfood_cli.errors import EXIT_INTERRUPTED, EXIT_SOME_FAILED, SkinfoodError

app = typer.Typer(
    name="skinfood",
    help="Train, evaluate and run a skin-condition photo classifier on your own machine.\n\n"
    "Not a medical device: answers are hints to discuss with a doctor, never a diagnosis.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
diseases_app = typer.Typer(help="The bundled disease descriptions (English and Korean).",
                           invoke_without_command=True)
app.add_typer(diseases_app, name="diseases")

_debug = {"on": os.environ.get("SKINFOOD_DEBUG", "") not in ("", "0")}


class Lang(str, Enum):
    en = "en"
    ko = "ko"


class PredictFormat(str, Enum):
    human = "human"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"


class TableFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class Split(str, Enum):
    test = "test"
    val = "val"
    train = "train"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def handle_errors(func):
    """At the CLI boundary: SkinfoodError -> one red line and its exit code;
    Ctrl-C -> 130; anything unexpected -> one line (the traceback with --debug)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from skinfood_cli.output import error_line

        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except SkinfoodError as exc:
            if _debug["on"]:
                raise
            if not exc.silent:
                error_line(exc.message)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            if _debug["on"]:
                raise
            from skinfood_cli.distributed import is_main

            if is_main():  # under torchrun every rank gets the Ctrl-C; one line is enough
                error_line("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            # `skinfood predict ... | head`: the reader left; that's not our error.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except Exception as exc:  # noqa: BLE001 - the promise is: no traceback without --debug
            if _debug["on"]:
                raise
            error_line(f"internal error: {exc.__class__.__name__}: {exc} (run with --debug for the traceback)")
            raise typer.Exit(EXIT_SOME_FAILED) from None

    return wrapper


def command(*args, **kwargs):
    def register(func):
        return app.command(*args, **kwargs)(handle_errors(func))

    return register


def _version(value: bool):
    if value:
        typer.echo(f"skinfood {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
):
    if debug:
        _debug["on"] = True


# --- shared option helpers ------------------------------------------------------

ModelOpt = typer.Option(None, "--model", "-m", help="Checkpoint file, run folder or run name "
                        "(default: the most recently trained run).")
DeviceOpt = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps "
                         "(default: $SKINFOOD_DEVICE or auto).")
PrecisionOpt = typer.Option(Precision.auto, "--precision", help="auto: bf16 on CPUs with native "
                            "bf16 and on GPUs, else fp32.")
LangOpt = typer.Option(None, "--lang", help="Language of names and descriptions (default: from the locale).")
DescriptionsOpt = typer.Option(None, "--descriptions", help="A YAML file that adds or overrides descriptions.")


def _book(descriptions: Optional[Path]):
    from skinfood_cli.descriptions import load_descriptions

    return load_descriptions(descriptions)


def _lang(lang: Optional[Lang]) -> str:
    from skinfood_cli.descriptions import default_language

    return lang.value if lang else default_language()


def _load_engine(model: Optional[str], device, precision, batch_size: int = 32, workers=None):
    from skinfood_cli.engine import Engine, load_model
    from skinfood_cli.paths import resolve_model

    loaded = load_model(resolve_model(model))
    return Engine(loaded, device=device, precision=precision.value if precision else None,
                  batch_size=batch_size, workers=workers)


def _warn_missing_descriptions(classes, book) -> None:
    from skinfood_cli.output import warn
    from skinfood_cli.prediction import missing_descriptions

    for name in missing_descriptions(classes, book):
        warn(f"no description for class {name!r}: records say \"No description available.\" "
             "(add one with --descriptions FILE)")


# --- train -------------------------------------------------------------------------


@command()
def train(
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Dataset folder: DIR/train + DIR/test "
                                        "(DermNet), DIR/train + DIR/val, or DIR/<class>/ folders."),
    name: Optional[str] = typer.Option(None, "--name", help="Run name (default: a timestamp)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Total epochs (default: 10)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per step and process: under torchrun "
                                   "the global batch is N processes x this."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate of the head; the backbone gets a tenth. "
                             "Not scaled with the number of processes."),
    image_size: int = typer.Option(224, "--image-size", help="Side of the square model input, in pixels."),
    freeze_epochs: Optional[int] = typer.Option(None, "--freeze-epochs", help="Epochs training the new "
                                                "head alone first (default: 1, or 0 with --no-pretrained)."),
    freeze_backbone: bool = typer.Option(False, "--freeze-backbone", help="Train the head only, on backbone "
                                         "features computed once (fast)."),
    balance: bool = typer.Option(False, "--balance", help="Weight the loss by inverse class frequency."),
    patience: int = typer.Option(0, "--patience", help="Stop after N epochs without a better validation "
                                 "macro-F1 (0: never)."),
    val_fraction: float = typer.Option(0.15, "--val-fraction", help="Share of train held out for validation "
                                       "when there is no val/ folder."),
    seed: int = typer.Option(0, "--seed", help="Seed for the split, initialisation and shuffling."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma-separated class folders to use."),
    pretrained: bool = typer.Option(True, "--pretrained/--no-pretrained", help="Start from ImageNet weights "
                                    "(downloaded once)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="A local torchvision ResNet50 state dict "
                                           "to start from."),
    precision: Precision = PrecisionOpt,
    device: Optional[str] = DeviceOpt,
    workers: Optional[int] = typer.Option(None, "--workers", help="Image-decoding processes (default: sized "
                                          "to the machine)."),
    strict: bool = typer.Option(False, "--strict", help="Stop on unreadable images instead of skipping them."),
    sync_bn: bool = typer.Option(False, "--sync-bn", help="Under torchrun on GPUs: BatchNorm statistics over the "
                                 "global batch (for small per-GPU batches)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue the run NAME from its last.pt."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the final summary."),
):
    """Fine-tune ResNet50 on a folder of labelled photos.

    Examples:

        skinfood train --data dermnet/

        skinfood train --data dermnet/ --classes "Eczema Photos,Psoriasis pictures Lichen Planus and related diseases"

        skinfood train --resume 20261125-101500

    On several GPUs or machines, the same command under torchrun (see the README):

        torchrun --nproc-per-node 4 -m skinfood_cli train --data dermnet/
    """
    from skinfood_cli import distributed
    from skinfood_cli.errors import UsageError
    from skinfood_cli.reporting import RichTrainReporter
    from skinfood_cli.training import TrainConfig
    from skinfood_cli.training import resume as resume_run
    from skinfood_cli.training import train as train_run

    reporter = RichTrainReporter(quiet=quiet)
    # Under torchrun the job stays joined until rank 0 has printed (a no-op alone).
    with distributed.session(exiting=True):
        try:
            if resume:
                result = resume_run(resume, epochs=epochs, reporter=reporter)
            else:
                if data is None:
                    raise UsageError("--data DIR is required (or --resume NAME to continue a run)")
                cfg = TrainConfig(
                    data=str(data), name=name, epochs=10 if epochs is None else epochs, batch_size=batch_size,
                    lr=lr, image_size=image_size, freeze_epochs=freeze_epochs, freeze_backbone=freeze_backbone,
                    balance=balance, patience=patience, val_fraction=val_fraction, seed=seed,
                    classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
                    pretrained=pretrained, weights=str(weights) if weights else None,
                    precision=precision.value, device=device, workers=workers, strict=strict, sync_bn=sync_bn)
                result = train_run(cfg, reporter)
        finally:
            reporter.close()
        if distributed.is_main():
            _print_train_result(result, torchrun=distributed.launched())
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _print_train_result(result, torchrun: bool = False) -> None:
    from skinfood_cli.output import console

    err = console(stderr=True)
    name = result.run_dir.name
    if result.interrupted:
        err.print(f"[yellow]interrupted:[/yellow] progress saved in {result.last_path}")
        if torchrun:
            err.print(f"continue with: torchrun <the same torchrun options> -m skinfood_cli train --resume {name}")
        else:
            err.print(f"continue with: skinfood train --resume {name}")
        return
    _print_history(result.history)
    if result.best:
        b = result.best
        err.print(f"best epoch {b['epoch']}: validation accuracy {b['val_acc']:.3f}, macro-F1 "
                  f"{b['val_macro_f1']:.3f}; calibrated temperature {result.temperature:.2f}, "
                  f"uncertain below {result.threshold:.0%}")
    if result.skipped:
        err.print(f"{len(result.skipped)} file(s) skipped: listed in {result.run_dir / 'skipped.txt'}")
    err.print(f"model saved to {result.best_path}")
    err.print(f"use it: skinfood evaluate --model {name}   |   skinfood predict --model {name} photo.jpg")


def _print_history(history) -> None:
    from rich.table import Table

    from skinfood_cli.output import console

    if not history:
        return
    table = Table(title="training", show_edge=False, header_style="bold")
    for col in ("epoch", "phase", "train loss", "train acc", "val loss", "val acc", "val macro-F1", "img/s"):
        table.add_column(col, justify="right")
    for h in history:
        table.add_row(str(h["epoch"]), h["phase"], f"{h['train_loss']:.3f}", f"{h['train_acc']:.3f}",
                      f"{h['val_loss']:.3f}", f"{h['val_acc']:.3f}", f"{h['val_macro_f1']:.3f}",
                      f"{h['images_per_s']:.1f}")
    console(stderr=True).print(table)


# --- predict -----------------------------------------------------------------------


@command()
def predict(
    inputs: List[str] = typer.Argument(..., help="Image files, folders, glob patterns, or - to read "
                                       "paths from stdin."),
    model: Optional[str] = ModelOpt,
    fmt: PredictFormat = typer.Option(PredictFormat.human, "--format", "-f", help="human, or json/jsonl/"
                                      "csv/tsv for scripts (data only, on stdout or --output)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write machine formats to FILE."),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="Alternatives to list."),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0.0, max=1.0, help="Below this "
                                              "confidence a record is marked uncertain (default: the "
                                              "model's calibrated value)."),
    lang: Optional[Lang] = LangOpt,
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Look inside sub-folders."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per batch."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Image-decoding processes."),
    device: Optional[str] = DeviceOpt,
    precision: Precision = PrecisionOpt,
    descriptions: Optional[Path] = DescriptionsOpt,
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: take every N-th input from the I-th "
                                        "(for job arrays; concatenate the outputs)."),
):
    """Classify photos: what the condition probably is, and how sure the model is.

    Examples:

        skinfood predict photo.jpg

        skinfood predict photos/ --format csv > out.csv

        find . -name '*.jpg' | skinfood predict - --format jsonl | jq .label
    """
    from skinfood_cli.output import (
        RecordWriter, open_output, print_prediction, print_prediction_table, warn,
    )
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS, expand_inputs, parse_shard, predict_items
    from skinfood_cli.reporting import BatchProgress

    language = _lang(lang)
    items = expand_inputs(inputs, recursive=recursive, shard=parse_shard(shard))
    book = _book(descriptions)
    engine = _load_engine(model, device, precision, batch_size, workers)
    _warn_missing_descriptions(engine.classes, book)
    records = predict_items(items, engine, book, lang=language, top_k=top_k, threshold=threshold)
    failed = 0
    if fmt is PredictFormat.human:
        collected = []
        with BatchProgress(len(items), "classifying") as bar:
            for rec in records:
                collected.append(rec.to_dict())
                bar.advance()
        failed = sum(1 for r in collected if r["error"])
        footer = NOT_A_DIAGNOSIS[language]
        single = len(collected) == 1 and len(inputs) == 1 and not Path(inputs[0]).is_dir()
        if single:
            print_prediction(collected[0], language, footer)
        elif collected:
            print_prediction_table(collected, footer)
        else:
            warn("no inputs to classify")
    else:
        stream = open_output(str(output) if output else None)
        writer = RecordWriter(fmt.value, stream)
        try:
            with BatchProgress(len(items), "classifying") as bar:
                for rec in records:
                    failed += rec.error is not None
                    writer.write(rec.to_dict())
                    bar.advance()
            writer.close()
        finally:
            if stream is not sys.stdout:
                stream.close()
    if failed:
        warn(f"{failed} of {len(items)} input(s) could not be classified")
        raise typer.Exit(EXIT_SOME_FAILED)


# --- models, diseases, home ------------------------------------------------------


@command()
def models(
    fmt: TableFormat = typer.Option(TableFormat.table, "--format", "-f", help="table, json or csv."),
):
    """List trained runs; the default (used without --model) is marked."""
    from skinfood_cli.store import describe_runs
    from skinfood_cli.output import RecordWriter, console, print_json
    from skinfood_cli.paths import runs_dir

    rows = describe_runs()
    if fmt is TableFormat.json:
        print_json(rows)
        return
    if fmt is TableFormat.csv:
        writer = RecordWriter("csv", sys.stdout, ["name", "default", "created", "classes", "num_classes",
                                                  "val_macro_f1", "val_acc", "epochs", "path"])
        for row in rows:
            writer.write({**row, "classes": "|".join(row["classes"])})
        writer.close()
        return
    from rich.table import Table

    out = console()
    if not rows:
        out.print(f"no trained models in {runs_dir()}: run `skinfood train --data DIR` or `skinfood demo`")
        return
    table = Table(show_edge=False, header_style="bold")
    for col in ("", "name", "created", "classes", "val macro-F1", "val acc", "epochs"):
        table.add_column(col)
    for row in rows:
        names = ", ".join(row["classes"][:3]) + (f" (+{row['num_classes'] - 3})" if row["num_classes"] > 3 else "")
        f1 = "" if row["val_macro_f1"] is None else f"{row['val_macro_f1']:.3f}"
        acc = "" if row["val_acc"] is None else f"{row['val_acc']:.3f}"
        table.add_row("*" if row["default"] else "", row["name"], row["created"] or "", names, f1, acc,
                      str(row["epochs"] or ""))
    out.print(table)
    out.print(f"[dim]* default model; runs are kept in {runs_dir()}[/dim]")


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
    from skinfood_cli.output import RecordWriter, console, print_json

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
    console().print(table)


@diseases_app.command("show")
@handle_errors
def diseases_show(
    name: str = typer.Argument(..., help="A key, a class folder name or an alias."),
    lang: Optional[Lang] = LangOpt,
    fmt: TableFormat = typer.Option(TableFormat.table, "--format", "-f", help="table or json."),
    descriptions: Optional[Path] = DescriptionsOpt,
):
    """Print one condition's description, signs, look-alikes and advice."""
    from rich.markup import escape

    from skinfood_cli.errors import UsageError
    from skinfood_cli.output import URGENCY_TEXT, console, label, print_json

    language = _lang(lang)
    entry = _book(descriptions).get(name, language)
    if entry is None:
        raise UsageError(f"no description for {name!r}: see `skinfood diseases`")
    if fmt is TableFormat.json:
        print_json(entry.to_dict())
        return
    out = console()
    out.print(f"[bold]{escape(entry.name)}[/bold]  [dim]({entry.key})[/dim]")
    out.print(escape(entry.summary))
    for title, items in (("signs", entry.signs), ("look-alikes", entry.look_alikes),
                         ("self-care", entry.self_care)):
        out.print(f"\n[bold]{label(language, title)}[/bold]")
        for item in items:
            out.print(f"  • {escape(item)}")
    urgency = URGENCY_TEXT.get(language, URGENCY_TEXT["en"]).get(entry.urgency, entry.urgency)
    out.print(f"\n[bold]{label(language, 'when to see a doctor')}[/bold] ({escape(urgency)})\n"
              f"  {escape(entry.see_a_doctor)}")
    for link in entry.links:
        out.print(f"  {link}")


# --- evaluate ------------------------------------------------------------------------


@command()
def evaluate(
    model: Optional[str] = ModelOpt,
    data: Optional[Path] = typer.Option(None, "--data", "-d", help="Dataset folder (default: the one the "
                                        "model was trained on)."),
    split: Split = typer.Option(Split.test, "--split", help="Which split of --data to score."),
    normalize: bool = typer.Option(False, "--normalize", help="Show row percentages instead of counts."),
    fmt: TableFormat = typer.Option(TableFormat.table, "--format", "-f", help="table, or json/csv for scripts."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write metrics.json, confusion.csv, "
                                          "predictions.csv and confusion.png to DIR."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap resamples for the 95% "
                                  "confidence intervals (0: none)."),
    top_k: int = typer.Option(3, "--top-k", min=1, help="k of the top-k accuracy."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help="Leave out class folders the model "
                                      "does not know."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per batch."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Image-decoding processes."),
    device: Optional[str] = DeviceOpt,
    precision: Precision = PrecisionOpt,
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
):
    """Score a model on held-out photos: confusion table, per-class scores, calibration, worst mix-ups.

    Examples:

        skinfood evaluate

        skinfood evaluate --model my-run --split val --normalize

        skinfood evaluate --format json | jq .macro_f1
    """
    from skinfood_cli.evaluation import evaluate as run_evaluation
    from skinfood_cli.evaluation import resolve_eval_set, write_report
    from skinfood_cli.output import RecordWriter, note, print_json, warn
    from skinfood_cli.reporting import BatchProgress

    engine = _load_engine(model, device, precision, batch_size, workers)
    eval_set = resolve_eval_set(engine.model.meta, engine.classes, str(data) if data else None,
                                split.value, skip_unknown)
    for name, count in eval_set.unknown.items():
        warn(f"left out {count} photo(s) of class {name!r}, which the model does not know")
    with BatchProgress(len(eval_set.samples), "evaluating") as bar:
        result = run_evaluation(engine, eval_set, top_k=top_k, bootstrap=bootstrap, seed=seed,
                                progress=bar.advance)
    for item in result["unreadable"]:
        warn(f"skipped {item['path']}: {item['error']}")
    if report:
        files = write_report(result, report)
        note(f"report written: {', '.join(str(f) for f in files)}")
    if fmt is TableFormat.json:
        print_json({k: v for k, v in result.items() if k != "predictions"})
    elif fmt is TableFormat.csv:
        writer = RecordWriter("csv", sys.stdout, ["class", "precision", "recall", "f1", "support"])
        for name, s in result["per_class"].items():
            writer.write({"class": name, **{k: s[k] for k in ("precision", "recall", "f1", "support")}})
        writer.close()
    else:
        from skinfood_cli.evaluation_view import print_evaluation

        print_evaluation(result, normalize=normalize)
    if result["unreadable"]:
        raise typer.Exit(EXIT_SOME_FAILED)


# --- explain ------------------------------------------------------------------------


@command()
def explain(
    inputs: List[str] = typer.Argument(..., help="Image files, folders, glob patterns, or - for stdin."),
    model: Optional[str] = ModelOpt,
    target_class: Optional[str] = typer.Option(None, "--class", help="Explain this class instead of the top one."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="PNG file to write (one input only)."),
    output_dir: Path = typer.Option(Path("skinfood-explain"), "--output-dir", help="Folder for the PNGs."),
    fmt: PredictFormat = typer.Option(PredictFormat.human, "--format", "-f", help="human, json or jsonl."),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="Alternatives to list."),
    lang: Optional[Lang] = LangOpt,
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Look inside sub-folders."),
    device: Optional[str] = DeviceOpt,
    descriptions: Optional[Path] = DescriptionsOpt,
):
    """Show where the model looked (Grad-CAM) and what the condition is.

    Writes PNGs (photo | heatmap overlay) and prints the top answers with the full description.

    Examples:

        skinfood explain photo.jpg

        skinfood explain photo.jpg --class psoriasis --output why.png
    """
    from skinfood_cli.errors import UsageError
    from skinfood_cli.explanation import HEATMAP_NOTE, explain_items
    from skinfood_cli.output import RecordWriter, print_explanation, warn
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS, expand_inputs

    if fmt not in (PredictFormat.human, PredictFormat.json, PredictFormat.jsonl):
        raise UsageError("explain writes --format human, json or jsonl")
    language = _lang(lang)
    items = expand_inputs(inputs, recursive=recursive)
    if output and len(items) > 1:
        raise UsageError(f"--output names one file but there are {len(items)} inputs: use --output-dir")
    book = _book(descriptions)
    engine = _load_engine(model, device, Precision.fp32)
    _warn_missing_descriptions(engine.classes, book)
    records = explain_items(items, engine, book, lang=language, top_k=top_k, target_class=target_class,
                            output=str(output) if output else None, output_dir=output_dir)
    failed = 0
    writer = RecordWriter(fmt.value, sys.stdout) if fmt is not PredictFormat.human else None
    for record, _cam in records:
        failed += record["error"] is not None
        if writer:
            writer.write({k: record.get(k) for k in ("path", "label", "disease_name", "confidence", "uncertain",
                                                     "top_k", "explained_label", "heatmap", "error")})
        else:
            print_explanation(record, book, language, HEATMAP_NOTE[language])
    if writer:
        writer.close()
    else:
        from skinfood_cli.output import console

        console().print(f"[dim]{NOT_A_DIAGNOSIS[language]}[/dim]")
    if failed:
        warn(f"{failed} of {len(items)} input(s) could not be explained")
        raise typer.Exit(EXIT_SOME_FAILED)


# --- export -------------------------------------------------------------------------


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


@command()
def export(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Checkpoint file, run folder or run name "
                                        "(default: the most recently trained run)."),
    fmt: ExportFormat = typer.Option(ExportFormat.onnx, "--format", "-f", help="onnx (apps, browsers), or "
                                     "torchscript (PyTorch; deprecated upstream, but with --int8 the fastest "
                                     "--model for skinfood on a CPU)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="File to write (default: beside the "
                                          "checkpoint: best.onnx, best.int8.onnx, best[.int8].torchscript)."),
    int8: bool = typer.Option(False, "--int8", help="Quantise to int8, per-channel weights: ONNX Runtime QDQ "
                              "(onnx), PyTorch's x86 kernels (torchscript). ~4x smaller, 2x faster on CPUs."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Folder of photos to calibrate int8 "
                                               "on (default: the run's training photos)."),
    calibration_images: int = typer.Option(300, "--calibration-images", min=8, help="How many calibration photos."),
    opset: int = typer.Option(18, "--opset", min=17, max=23, help="ONNX opset (18 loads in ONNX Runtime "
                              "and onnxruntime-web)."),
    batch: Optional[int] = typer.Option(None, "--batch", min=1, help="A fixed batch size instead of a "
                                        "dynamic batch axis."),
    dynamic: bool = typer.Option(False, "--dynamic", help="A dynamic batch axis (the default; conflicts with --batch)."),
    with_preprocessing: bool = typer.Option(False, "--with-preprocessing", help="Build normalisation and the "
                                            "calibrated softmax into the graph: feed (B, S, S, 3) uint8 RGB "
                                            "pixels, read probabilities."),
    verify_images: int = typer.Option(200, "--verify-images", min=8, help="Photos to check the export on."),
    descriptions: Optional[Path] = DescriptionsOpt,
):
    """Export a trained model to one ONNX or TorchScript file, and verify it.

    Every export runs beside the PyTorch model on the same photos (the run's
    validation split when it is on disk, else generated images): fp32 must match
    its probabilities to 1e-4, int8 must agree on the top class for 99% of them,
    or the command fails with exit 1. The file carries its class names and
    preprocessing in its metadata; a .json sidecar repeats them with its sha256.
    ONNX needs the extra: pip install "skinfood\\[export]"; TorchScript needs only torch.

    Examples:

        skinfood export

        skinfood export --int8 --output skin.int8.onnx

        skinfood predict photos/ --model skin.int8.onnx

        skinfood export --format torchscript --int8    # best.int8.torchscript
    """
    from skinfood_cli.errors import UsageError
    from skinfood_cli.export import check_passed, export_model
    from skinfood_cli.output import console, print_export
    from skinfood_cli.paths import resolve_model

    if dynamic and batch is not None:
        raise UsageError("--dynamic and --batch N contradict each other: pick one")
    err = console(stderr=True)
    result = export_model(
        resolve_model(model), fmt=fmt.value, output=output, int8=int8, calibration=calibration,
        calibration_images=calibration_images, opset=opset, batch=batch, with_preprocessing=with_preprocessing,
        verify_images=verify_images, book=_book(descriptions), log=lambda msg: err.print(f"[dim]{msg}[/dim]"),
    )
    print_export(result)
    check_passed(result)


# --- serve --------------------------------------------------------------------------


@command()
def serve(
    model: Optional[str] = ModelOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 for phones on your "
                             "network (then a token is required)."),
    port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, help="Port to listen on."),
    device: Optional[str] = DeviceOpt,
    precision: Precision = PrecisionOpt,
    max_batch_size: int = typer.Option(16, "--max-batch-size", min=1, max=256, help="Most photos per forward pass "
                                       "(1 turns dynamic batching off)."),
    batch_timeout_ms: float = typer.Option(5.0, "--batch-timeout-ms", min=0, max=1000, help="How long a batch waits "
                                           "to fill."),
    max_queue: int = typer.Option(256, "--max-queue", min=1, help="Photos that may wait; beyond it: 503."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", min=0.01, help="Largest upload accepted (413)."),
    request_timeout: float = typer.Option(30.0, "--request-timeout", min=0.001, help="Seconds a request may wait "
                                          "before 504."),
    token: Optional[str] = typer.Option(None, "--token", envvar="SKINFOOD_TOKEN", show_envvar=True,
                                        help="Bearer token clients must send. Off loopback one is made up "
                                        "if you give none."),
    no_auth: bool = typer.Option(False, "--no-auth", help="Serve a non-loopback address without a token "
                                 "(anyone on the network can use it)."),
    cors_origin: List[str] = typer.Option([], "--cors-origin", help="Allow browser pages from this origin "
                                          "(repeatable); CORS is off by default."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log method, path and status "
                                    "(never photos)."),
    descriptions: Optional[Path] = DescriptionsOpt,
):
    """Serve the model: an HTTP API for programs and a page a phone opens.

    The page is at / (take or choose a photo, read the answer in English or
    Korean); the API is POST /v1/predict and /v1/explain, with its docs at
    /docs. Requests are batched dynamically on one inference thread. Photos stay
    in memory, are never written to disk and never logged. Ctrl-C or SIGTERM
    finishes the requests in flight and exits 0.
    Needs the extra: pip install "skinfood\\[serve]".

    Examples:

        skinfood serve

        skinfood serve --host 0.0.0.0        # for phones on the same Wi-Fi

        curl -F file=@photo.jpg http://127.0.0.1:8000/v1/predict
    """
    import secrets

    from skinfood_cli.errors import MissingExtraError
    from skinfood_cli.output import console
    from skinfood_cli.paths import resolve_model

    try:
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise MissingExtraError('serve needs FastAPI, uvicorn and python-multipart: pip install "skinfood[serve]"') \
            from None
    from skinfood_cli.server import LOOPBACK, ServeConfig, lan_address, run_server

    err = console(stderr=True)
    exposed = host not in LOOPBACK
    made_up = False
    if exposed and not token and not no_auth:
        token, made_up = secrets.token_urlsafe(16), True
    cfg = ServeConfig(model=str(resolve_model(model)), device=device,
                      precision=precision.value if precision else None, max_batch_size=max_batch_size,
                      batch_timeout_ms=batch_timeout_ms, max_queue=max_queue, max_upload_mb=max_upload_mb,
                      request_timeout_s=request_timeout, token=token or None, cors_origins=list(_cors_origins(cors_origin)),
                      descriptions=str(descriptions) if descriptions else None)
    err.print(f"[dim]loading {cfg.model} and warming up...[/dim]")

    def say(text):
        err.print(text, soft_wrap=True)  # addresses must stay whole to be copied

    def announce(state, sock):
        bound_port = sock.getsockname()[1]
        shown = (lan_address() or host) if host in ("0.0.0.0", "::") else host
        shown = f"[{shown}]" if ":" in shown else shown
        url = f"http://{shown}:{bound_port}/"
        e = state.engine
        say(f"[bold green]ready[/bold green]: run {e.model.run_name} on {e.device} ({e.precision.name}), "
            f"batches of up to {max_batch_size}, listening on {host}:{bound_port}")
        if token:
            where = " on a phone on the same network" if exposed else ""
            say(f"open [bold]{url}#token={token}[/bold]{where}")
            if made_up:
                say("[dim]the token was made up for this run; pass --token or set SKINFOOD_TOKEN to keep one[/dim]")
        else:
            warning = "  [yellow](no token: anyone on the network can use it)[/yellow]" if exposed else ""
            say(f"open [bold]{url}[/bold]{warning}")
        say(f"API docs {url}docs · Ctrl-C stops (requests in flight finish)")

    run_server(cfg, host, port, announce, access_log=access_log)
    err.print("stopped")


def _cors_origins(origins):
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            from skinfood_cli.errors import UsageError

            raise UsageError(f"--cors-origin {origin!r}: give an origin like https://app.example.com")
        yield origin.rstrip("/")


# --- demo -----------------------------------------------------------------------------


@command()
def demo(
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="Where to write the synthetic photos "
                                           "(default: a new temporary folder)."),
    epochs: int = typer.Option(8, "--epochs", min=1, help="Training epochs."),
):
    """A first run with no data of your own: generate, train, evaluate, predict, explain.

    The photos are SYNTHETIC (coloured blobs on skin-toned noise), made up so the
    whole pipeline runs in about a minute on a laptop CPU. The trained model is
    saved as a run named demo-<time>, so `skinfood predict` works afterwards.
    """
    import tempfile
    import time

    from skinfood_cli.output import console
    from skinfood_cli.synthetic import make_dataset

    err = console(stderr=True)
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="skinfood-demo-"))
    data = make_dataset(root / "data", ("acne", "psoriasis", "vitiligo"), train_per_class=40,
                        test_per_class=10, size=(128, 96), lesion_scale=0.4)
    err.print(f"[bold]1/4[/bold] wrote a SYNTHETIC photo set (not real skin photos) to {data}: "
              "train/ and test/ folders of acne, psoriasis, vitiligo")
    name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    photo = sorted((data / "test" / "vitiligo").glob("*.jpg"))[0]
    steps = [
        (f"[bold]2/4[/bold] training ResNet50 from scratch at 64 px on the CPU as run {name!r}",
         ["train", "--data", str(data), "--name", name, "--epochs", str(epochs), "--image-size", "64",
          "--batch-size", "16", "--lr", "2e-3", "--no-pretrained", "--device", "cpu"]),
        ("[bold]3/4[/bold] evaluating it on the held-out test/ photos",
         ["evaluate", "--model", name, "--bootstrap", "200"]),
        (f"[bold]4/4[/bold] predicting and explaining one test photo: {photo}",
         ["predict", str(photo), "--model", name]),
        (None, ["explain", str(photo), "--model", name, "--output-dir", str(root / "explain")]),
    ]
    cli = typer.main.get_command(app)
    for message, args in steps:
        if message:
            err.print(message)
        code = cli.main(args=args, prog_name="skinfood", standalone_mode=False)
        if code:
            raise typer.Exit(code)
    err.print(f"\ndone. Everything the demo wrote is in {root}; the model is run {name!r} "
              "(see `skinfood models`). Next: `skinfood train --data YOUR_PHOTOS/`.")


def main() -> None:
    """Console-script entry point."""
    app()
