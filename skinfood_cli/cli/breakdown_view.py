"""`evaluate`'s extra parts, printed: the leak warning and line, the per-skin-tone table, the card note."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from skinfood_cli.cli.output import console, note, warn

if TYPE_CHECKING:
    from skinfood_cli.evaluation import EvalReport


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _ci(ci: dict, key: str) -> str:
    lo_hi = ci.get(key)
    return f"[{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]" if lo_hi else ""


def warn_leaks(result: EvalReport) -> None:
    """On stderr, when scored photos have a near copy among the model's training photos."""
    leaks = result.leaks
    if leaks and leaks.count:
        w = leaks.without
        warn(
            f"{leaks.count} of {result.num_images} photo(s) have a near copy among the model's training "
            f"photos (within {leaks.threshold} of 256 bits): the scores are optimistic. Without them: accuracy "
            f"{_f(w.accuracy)}, macro-F1 {_f(w.macro_f1)} on {w.count} photos (`skinfood check` lists copies)"
        )


def print_breakdowns(result: EvalReport, *, by_skin_tone: bool) -> None:
    out = console()
    leaks = result.leaks
    if leaks and leaks.count:
        w = leaks.without
        out.print(
            f"\n[yellow]without the {leaks.count} photo(s) copied from training[/yellow] ({w.count} photos): "
            f"accuracy {_f(w.accuracy)} {_ci(w.ci, 'accuracy')}, macro-F1 {_f(w.macro_f1)} "
            f"{_ci(w.ci, 'macro_f1')}"
        )
    table = result.by_skin_tone
    if not (by_skin_tone and table):
        return
    t = Table(show_edge=False, header_style="bold", title="by estimated skin tone")
    for col, right in (
        ("group", False),
        ("ITA", True),
        ("photos", True),
        ("accuracy", True),
        ("95% CI", False),
        ("macro-F1", True),
        ("95% CI ", False),
    ):
        t.add_column(col, justify="right" if right else "left")
    for g in table["groups"]:
        t.add_row(
            g["group"],
            g["ita"],
            str(g["count"]),
            _f(g["accuracy"]),
            _ci(g["ci"], "accuracy"),
            _f(g["macro_f1"]),
            _ci(g["ci"], "macro_f1"),
        )
    out.print()
    out.print(t)
    out.print(f"[dim]{table['note']}[/dim]")


def print_card_update(result: EvalReport) -> None:
    if result.card_path:
        note(f"test figures written into {result.card_path}")
