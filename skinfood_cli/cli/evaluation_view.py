"""The terminal view of an evaluation: its progress and warnings, confusion table, per-class table, summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from skinfood_cli.cli.output import console, warn

if TYPE_CHECKING:
    from skinfood_cli.evaluation import EvalReport, EvalSet

NAME_WIDTH = 28


class EvaluationProgress:
    """`evaluate_model`'s progress: once the photos are known, the warnings about what is left
    out and a bar over the photos to score; the bar goes when the last photo is scored."""

    def __init__(self, engine):
        self.engine = engine
        self.bar = None
        self.left = 0

    def start(self, eval_set: EvalSet) -> None:
        from skinfood_cli.cli.app import _warn_no_scope_check
        from skinfood_cli.cli.reporting import BatchProgress

        _warn_no_scope_check(self.engine)
        for name, count in eval_set.unknown.items():
            warn(f"left out {count} photo(s) of class {name!r}, which the model does not know")
        self.left = len(eval_set.samples)
        self.bar = BatchProgress(self.left, "evaluating").__enter__()

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.advance()
            self.left -= 1
            if not self.left:
                self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def __enter__(self) -> EvaluationProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def warn_unreadable(result: EvalReport) -> None:
    for item in result.unreadable:
        warn(f"skipped {item['path']}: {item['error']}")


def _short(name: str) -> str:
    return name if len(name) <= NAME_WIDTH else name[: NAME_WIDTH - 1] + "…"


def print_evaluation(result: EvalReport, *, normalize: bool = False) -> None:
    out = console()
    classes = result.classes
    cm = result.confusion_matrix
    out.print(
        "[bold]confusion matrix[/bold] (rows: true class, columns: predicted"
        + (", % of each row)" if normalize else ", counts)")
    )
    table = Table(show_edge=False, header_style="bold")
    table.add_column("true \\ pred", no_wrap=True)
    for j in range(len(classes)):
        table.add_column(str(j + 1), justify="right")
    for i, row in enumerate(cm):
        total = sum(row) or 1
        cells = []
        for j, v in enumerate(row):
            text = f"{100 * v / total:.0f}" if normalize else str(v)
            if i == j:
                text = f"[bold green]{text}[/bold green]"
            elif v:
                text = f"[red]{text}[/red]"
            else:
                text = f"[dim]{text}[/dim]"
            cells.append(text)
        table.add_row(f"{i + 1} {escape(_short(classes[i]))}", *cells)
    out.print(table)
    if any(len(c) > NAME_WIDTH for c in classes):
        for i, c in enumerate(classes):
            out.print(f"[dim]{i + 1} = {escape(c)}[/dim]")

    per = Table(show_edge=False, header_style="bold")
    per.add_column("class", justify="left")
    for col in ("precision", "recall", "F1", "support"):
        per.add_column(col, justify="right")
    never = False
    for name, s in result.per_class.items():
        mark = ""
        if s.never_predicted:
            mark, never = "*", True
        per.add_row(
            escape(_short(name)),
            f"{s.precision:.3f}{mark}",
            f"{s.recall:.3f}",
            f"{s.f1:.3f}",
            str(s.support),
        )
    out.print(per)
    if never:
        out.print("[dim]* never predicted: precision is defined as 0 (no predictions to be right about)[/dim]")

    ci = result.ci or {}

    def with_ci(key: str, value: float) -> str:
        low_high = ci.get(key)
        return f"{value:.3f}" + (f"  (95% CI {low_high[0]:.3f}–{low_high[1]:.3f})" if low_high else "")

    out.print(f"\n{result.num_images} images ({result.split} split of {escape(result.data)})")
    out.print(f"accuracy           {with_ci('accuracy', result.accuracy)}")
    out.print(f"balanced accuracy  {with_ci('balanced_accuracy', result.balanced_accuracy)}")
    out.print(f"macro-F1           {with_ci('macro_f1', result.macro_f1)}")
    out.print(f"top-{result.top_k} accuracy     {result.top_k_accuracy:.3f}")
    out.print(f"loss (mean NLL)    {result.loss:.3f}   (calibrated, T = {result.temperature:.2f})")
    out.print(f"calibration (ECE)  {result.ece:.3f}   (0 = confidences match accuracy)")
    _print_trust(out, result.trust or {})
    if result.most_confused:
        out.print("\nmost confused (true → predicted: count)")
        for pair in result.most_confused:
            out.print(f"  {escape(pair['true'])} → {escape(pair['predicted'])}: {pair['count']}")


def _print_trust(out, trust: dict) -> None:
    """Prediction-set coverage and the scope check on this split and on each --ood folder."""
    from rich.markup import escape

    if "test_coverage" in trust:
        out.print(
            f"prediction sets    coverage {trust['test_coverage']:.3f} (target {trust['coverage_target']:.2f}), "
            f"mean size {trust['test_mean_set_size']:.2f}"
        )
    if not trust.get("scope_check"):
        if trust.get("note"):
            out.print(f"[yellow]{escape(trust['note'])}[/yellow]")
        return
    out.print(
        f"scope check        {trust['test_flagged']:.1%} of these photos flagged out of scope "
        f"({escape(str(trust.get('method')))})"
    )
    for row in trust.get("ood", []):
        out.print(
            f"  --ood {escape(row['folder'])}: {row['num_images']} pictures, {row['flagged']:.1%} flagged, "
            f"AUROC {row['auroc']:.3f}"
        )
