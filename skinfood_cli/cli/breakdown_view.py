"""`evaluate`'s extra parts: the leak warning, the per-skin-tone table, the model card update."""

from __future__ import annotations

from rich.table import Table

from skinfood_cli.cli.output import console, note, warn


def _card_due(loaded, result: dict) -> bool:
    from skinfood_cli.backends import is_exported
    from skinfood_cli.model_card import CARD_NAME

    folder = loaded.path.parent  # a run's own checkpoint, not an export copied elsewhere
    return (
        not is_exported(loaded.path)
        and result.get("split") in ("test", "all")
        and ((folder / CARD_NAME).is_file() or (folder / "config.yaml").is_file())
    )


def add_breakdowns(result: dict, loaded, *, by_skin_tone: bool, bootstrap: int, seed: int) -> None:
    """Leak check always (when the model records its training photos); skin tone when asked for,
    or when the run's model card is about to get the test figures (so the JSON has what the card has)."""
    from skinfood_cli.breakdown import add_leak_check, add_skin_tone

    add_leak_check(result, loaded.meta, bootstrap=bootstrap, seed=seed)
    leaks = result.get("leaks")
    if leaks and leaks["count"]:
        w = leaks["without"]
        warn(
            f"{leaks['count']} of {result['num_images']} photo(s) have a near copy among the model's training "
            f"photos (within {leaks['threshold']} of 256 bits): the scores are optimistic. Without them: accuracy "
            f"{_f(w['accuracy'])}, macro-F1 {_f(w['macro_f1'])} on {w['count']} photos (`skinfood check` lists copies)"
        )
    if by_skin_tone or _card_due(loaded, result):
        add_skin_tone(result, bootstrap=bootstrap, seed=seed)


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _ci(ci: dict, key: str) -> str:
    lo_hi = ci.get(key)
    return f"[{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]" if lo_hi else ""


def print_breakdowns(result: dict, *, by_skin_tone: bool) -> None:
    out = console()
    leaks = result.get("leaks")
    if leaks and leaks["count"]:
        w = leaks["without"]
        out.print(
            f"\n[yellow]without the {leaks['count']} photo(s) copied from training[/yellow] ({w['count']} photos): "
            f"accuracy {_f(w['accuracy'])} {_ci(w['ci'], 'accuracy')}, macro-F1 {_f(w['macro_f1'])} "
            f"{_ci(w['ci'], 'macro_f1')}"
        )
    table = result.get("by_skin_tone")
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


def write_breakdown_files(result: dict, folder) -> list:
    from skinfood_cli.breakdown import write_skin_tone_csv

    path = write_skin_tone_csv(result, folder)
    return [path] if path else []


def update_card(loaded, result: dict) -> None:
    from skinfood_cli.model_card import update_model_card

    if _card_due(loaded, result):
        card = update_model_card(loaded.path, loaded.meta, result)
        if card:
            note(f"test figures written into {card}")
