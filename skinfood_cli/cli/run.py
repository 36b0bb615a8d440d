"""Commands that run a trained model on photos: `predict`, `evaluate`, `explain`."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from skinfood_cli.cli.app import (
    DescriptionsOpt,
    DeviceOpt,
    ExplainFormat,
    Lang,
    LangOpt,
    ModelOpt,
    Precision,
    PrecisionOpt,
    PredictFormat,
    Split,
    TableFormat,
    _book,
    _lang,
    _load_engine,
    _warn_missing_descriptions,
    _warn_no_scope_check,
    command,
)
from skinfood_cli.errors import EXIT_SOME_FAILED


class GroupBy(str, Enum):
    skin_tone = "skin-tone"


# --- predict -----------------------------------------------------------------------


@command()
def predict(
    inputs: List[str] = typer.Argument(..., help="Image files, folders, glob patterns, or - to read paths from stdin."),
    model: Optional[str] = ModelOpt,
    fmt: PredictFormat = typer.Option(
        PredictFormat.human,
        "--format",
        "-f",
        help="human, or json/jsonl/csv/tsv for scripts (data only, on stdout or --output).",
    ),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write machine formats to FILE."),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="Alternatives to list."),
    threshold: Optional[float] = typer.Option(
        None,
        "--threshold",
        min=0.0,
        max=1.0,
        help="Below this confidence a record is marked uncertain (default: the model's calibrated value).",
    ),
    lang: Optional[Lang] = LangOpt,
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Look inside sub-folders."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per batch."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Image-decoding processes."),
    device: Optional[str] = DeviceOpt,
    precision: Precision = PrecisionOpt,
    descriptions: Optional[Path] = DescriptionsOpt,
    shard: Optional[str] = typer.Option(
        None, "--shard", help="I/N: take every N-th input from the I-th (for job arrays; concatenate the outputs)."
    ),
):
    """Classify photos: what the condition probably is, and how sure the model is.

    Examples:

        skinfood predict photo.jpg

        skinfood predict photos/ --format csv > out.csv

        find . -name '*.jpg' | skinfood predict - --format jsonl | jq .label

    Many photos on a CPU? Run `skinfood export --format torchscript --int8` once
    and pass the file it writes (best.int8.torchscript) as --model: about twice as
    fast on Intel CPUs since Cascade Lake and AMD since Zen 4, with the same
    answers for all but near-ties.
    """
    from skinfood_cli.cli.output import (
        RecordWriter,
        open_output,
        print_prediction,
        print_prediction_table,
        warn,
    )
    from skinfood_cli.cli.reporting import BatchProgress
    from skinfood_cli.descriptions import display_names
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS, expand_inputs, parse_shard, predict_items

    language = _lang(lang)
    items = expand_inputs(inputs, recursive=recursive, shard=parse_shard(shard))
    book = _book(descriptions)
    engine = _load_engine(model, device, precision, batch_size, workers)
    _warn_missing_descriptions(engine.classes, book)
    _warn_no_scope_check(engine)
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
            names = dict(zip(engine.classes, display_names(engine.classes, book, language)))
            print_prediction(collected[0], language, footer, names)
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


# --- evaluate ------------------------------------------------------------------------


@command()
def evaluate(
    model: Optional[str] = ModelOpt,
    data: Optional[Path] = typer.Option(
        None, "--data", "-d", help="Dataset folder (default: the one the model was trained on)."
    ),
    split: Split = typer.Option(Split.test, "--split", help="Which split of --data to score."),
    normalize: bool = typer.Option(False, "--normalize", help="Show row percentages instead of counts."),
    fmt: TableFormat = typer.Option(TableFormat.table, "--format", "-f", help="table, or json/csv for scripts."),
    report: Optional[Path] = typer.Option(
        None, "--report", help="Write metrics.json, confusion.csv, predictions.csv and confusion.png to DIR."
    ),
    bootstrap: int = typer.Option(
        1000, "--bootstrap", min=0, help="Bootstrap resamples for the 95% confidence intervals (0: none)."
    ),
    top_k: int = typer.Option(3, "--top-k", min=1, help="k of the top-k accuracy."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help="Leave out class folders the model does not know."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per batch."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Image-decoding processes."),
    device: Optional[str] = DeviceOpt,
    precision: Precision = PrecisionOpt,
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    by: Optional[GroupBy] = typer.Option(
        None,
        "--by",
        help="skin-tone: counts and scores per skin-tone group, estimated from "
        "the photo's colours (a rough guide, not a Fitzpatrick type).",
    ),
    ood: Optional[List[Path]] = typer.Option(
        None,
        "--ood",
        exists=True,
        file_okay=False,
        help="A folder of photos the model should NOT recognise (repeatable): how well the scope check flags them.",
    ),
):
    """Score a model on held-out photos: confusion table, per-class scores, calibration, worst mix-ups.

    Warns when test photos have a near copy among the model's training photos,
    and gives the scores without them too. On the test split it also writes the
    test figures into the run's MODEL_CARD.md.

    Examples:

        skinfood evaluate

        skinfood evaluate --model my-run --split val --normalize

        skinfood evaluate --format json | jq .macro_f1

        skinfood evaluate --by skin-tone

        skinfood evaluate --ood not-skin/ --ood other-conditions/
    """
    from skinfood_cli.cli.breakdown_view import print_breakdowns, print_card_update, warn_leaks
    from skinfood_cli.cli.evaluation_view import EvaluationProgress, print_evaluation, warn_unreadable
    from skinfood_cli.cli.output import RecordWriter, note, print_json
    from skinfood_cli.evaluation import evaluate_model

    engine = _load_engine(model, device, precision, batch_size, workers)
    with EvaluationProgress(engine) as progress:
        result = evaluate_model(
            engine,
            data=data,
            split=split.value,
            skip_unknown=skip_unknown,
            top_k=top_k,
            bootstrap=bootstrap,
            seed=seed,
            by_skin_tone=by is GroupBy.skin_tone,
            ood=ood or (),
            report_dir=report,
            progress=progress,
        )
    warn_unreadable(result)
    warn_leaks(result)
    if result.files:
        note(f"report written: {', '.join(str(f) for f in result.files)}")
    if fmt is TableFormat.json:
        print_json(result.to_dict())
    elif fmt is TableFormat.csv:
        writer = RecordWriter("csv", sys.stdout, ["class", "precision", "recall", "f1", "support"])
        for name, s in result.per_class.items():
            writer.write(
                {"class": name, "precision": s.precision, "recall": s.recall, "f1": s.f1, "support": s.support}
            )
        writer.close()
    else:
        print_evaluation(result, normalize=normalize)
        print_breakdowns(result, by_skin_tone=by is GroupBy.skin_tone)
    print_card_update(result)
    if result.unreadable:
        raise typer.Exit(EXIT_SOME_FAILED)


# --- explain ------------------------------------------------------------------------


@command()
def explain(
    inputs: List[str] = typer.Argument(..., help="Image files, folders, glob patterns, or - for stdin."),
    model: Optional[str] = ModelOpt,
    target_class: Optional[str] = typer.Option(None, "--class", help="Explain this class instead of the top one."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="PNG file to write (one input only)."),
    output_dir: Path = typer.Option(Path("skinfood-explain"), "--output-dir", help="Folder for the PNGs."),
    fmt: ExplainFormat = typer.Option(ExplainFormat.human, "--format", "-f", help="human, or json/jsonl for scripts."),
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
    from skinfood_cli.cli.output import EXPLAIN_COLUMNS, RecordWriter, print_explanation, warn
    from skinfood_cli.errors import UsageError
    from skinfood_cli.explanation import HEATMAP_NOTE, check_output, explain_items
    from skinfood_cli.prediction import NOT_A_DIAGNOSIS, expand_inputs

    language = _lang(lang)
    items = expand_inputs(inputs, recursive=recursive)
    if output and len(items) > 1:
        raise UsageError(f"--output names one file but there are {len(items)} inputs: use --output-dir")
    check_output(output)
    book = _book(descriptions)
    engine = _load_engine(model, device, Precision.fp32)
    _warn_missing_descriptions(engine.classes, book)
    _warn_no_scope_check(engine)
    records = explain_items(
        items,
        engine,
        book,
        lang=language,
        top_k=top_k,
        target_class=target_class,
        output=str(output) if output else None,
        output_dir=output_dir,
    )
    failed = 0
    writer = RecordWriter(fmt.value, sys.stdout, EXPLAIN_COLUMNS) if fmt is not ExplainFormat.human else None
    for record, _cam in records:
        failed += record["error"] is not None
        if writer:
            writer.write({k: record[k] for k in EXPLAIN_COLUMNS})
        else:
            print_explanation(record, book, language, HEATMAP_NOTE[language])
    if writer:
        writer.close()
    else:
        from skinfood_cli.cli.output import console

        console().print(f"[dim]{NOT_A_DIAGNOSIS[language]}[/dim]")
    if failed:
        warn(f"{failed} of {len(items)} input(s) could not be explained")
        raise typer.Exit(EXIT_SOME_FAILED)
