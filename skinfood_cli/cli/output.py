"""Printing: data on stdout, chatter on stderr; machine formats and Rich tables.

Machine formats (json, jsonl, csv, tsv) write only data, so `| jq` and
`> out.csv` work; progress bars, warnings and notes go to the stderr console.
"""

from __future__ import annotations

import csv
import os
import sys
from typing import IO

from skinfood_cli.explanation import EXPLAIN_FIELDS
from skinfood_cli.jsonio import dumps

MACHINE_FORMATS = ("json", "jsonl", "csv", "tsv")
RECORD_COLUMNS = [
    "path",
    "label",
    "disease_name",
    "confidence",
    "uncertain",
    "top_k",
    "description",
    "urgency",
    "advice",
    "notice",
    "in_scope",
    "scope_score",
    "prediction_set",
    "quality",
    "error",
]
# `explain`'s records: a prediction record, then which class the heatmap is for and where it went.
EXPLAIN_COLUMNS = [*(c for c in RECORD_COLUMNS if c != "error"), *EXPLAIN_FIELDS, "error"]

_consoles: dict = {}


def console(stderr: bool = False):
    """The shared Rich console for stdout (data) or stderr (progress, warnings)."""
    key = "err" if stderr else "out"
    if key not in _consoles:
        from rich.console import Console

        width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else None
        _consoles[key] = Console(stderr=stderr, width=width, highlight=False)
    return _consoles[key]


def warn(message: str) -> None:
    """A yellow warning line on stderr; the message is plain text (file names may hold [brackets])."""
    from rich.markup import escape

    console(stderr=True).print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def note(message: str) -> None:
    from rich.markup import escape

    console(stderr=True).print(escape(message), soft_wrap=True)


def error_line(message: str) -> None:
    from rich.markup import escape

    console(stderr=True).print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)


class RecordWriter:
    """Writes dict records in one machine format, streaming where the format allows."""

    def __init__(self, fmt: str, stream: IO[str], columns: list[str] = RECORD_COLUMNS):
        self.fmt, self.stream, self.columns = fmt, stream, columns
        self._buffer: list[dict] = []
        self._writer: csv.DictWriter | None = None
        if fmt in ("csv", "tsv"):
            self._writer = csv.DictWriter(
                stream,
                fieldnames=columns,
                extrasaction="ignore",
                delimiter="," if fmt == "csv" else "\t",
                lineterminator="\n",
            )
            self._writer.writeheader()

    def write(self, record: dict) -> None:
        if self.fmt == "json":
            self._buffer.append(record)
        elif self.fmt == "jsonl":
            self.stream.write(dumps(record) + "\n")
            self.stream.flush()
        elif self._writer is not None:
            self._writer.writerow({k: _flat(record.get(k)) for k in self.columns})

    def close(self) -> None:
        if self.fmt == "json":
            self.stream.write(dumps(self._buffer, indent=2))
            self.stream.write("\n")
        self.stream.flush()


def _flat(value):
    """A CSV cell: top-k lists as `label:prob|label:prob`, None as empty."""
    if value is None:
        return ""
    if isinstance(value, list):  # top-k (dicts) or a prediction set (class keys)
        return "|".join(v if isinstance(v, str) else f"{v['label']}:{v['probability']:.4f}" for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def open_output(path: str | None) -> IO[str]:
    if not path or path == "-":
        return sys.stdout
    return open(path, "w", encoding="utf-8", newline="")


def print_json(data) -> None:
    sys.stdout.write(dumps(data, indent=2) + "\n")


LABELS = {
    "en": {
        "condition": "condition",
        "alternatives": "alternatives",
        "about": "about",
        "what to do": "what to do",
        "signs": "signs",
        "look-alikes": "look-alikes",
        "self-care": "self-care",
        "when to see a doctor": "when to see a doctor",
        "heatmap": "heatmap",
        "heatmap for": "heatmap shows the evidence for",
        "not sure": "(the model is not sure)",
        "closest": "closest known condition",
        "not an answer": "(not an answer)",
        "out of scope": "not a known skin condition",
        "set": "possible conditions",
    },
    "ko": {
        "condition": "상태",
        "alternatives": "다른 가능성",
        "about": "설명",
        "what to do": "대처",
        "signs": "증상",
        "look-alikes": "비슷한 질환",
        "self-care": "자가 관리",
        "when to see a doctor": "진료가 필요한 때",
        "heatmap": "히트맵",
        "heatmap for": "히트맵이 보여주는 근거",
        "not sure": "(모델이 확신하지 못합니다)",
        "closest": "가장 가까운 학습된 질환",
        "not an answer": "(답이 아닙니다)",
        "out of scope": "학습한 피부 질환이 아님",
        "set": "가능한 질환",
    },
}


def label(lang: str, key: str) -> str:
    return LABELS.get(lang, LABELS["en"]).get(key, key)


URGENCY_STYLE = {"routine": "green", "soon": "yellow", "urgent": "bold red"}
URGENCY_TEXT = {
    "en": {"routine": "routine", "soon": "see a doctor soon", "urgent": "urgent: see a doctor promptly"},
    "ko": {"routine": "일반", "soon": "곧 진료를 받으세요", "urgent": "긴급: 빨리 진료를 받으세요"},
}


def print_prediction(rec: dict, lang: str, footer: str, names: dict[str, str] | None = None) -> None:
    """The detailed human answer for one image; `names` maps class labels to the names a
    person reads (a prediction set can hold more conditions than the record's top-k names)."""
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    out = console()
    if rec["error"]:
        out.print(f"[red]{escape(rec['path'])}: {escape(rec['error'])}[/red]")
        return
    pct = f"{rec['confidence'] * 100:.1f}%"
    sure = f"[yellow]{label(lang, 'not sure')}[/yellow]" if rec["uncertain"] else ""
    body = Table.grid(padding=(0, 1))
    body.add_column(style="bold")
    body.add_column()
    if rec.get("in_scope") is False:
        # Out of scope: the sentence leads, and no condition is described as if it were the answer.
        lines = (
            f"[bold yellow]{escape(rec['description'] or '')}[/bold yellow]\n"
            f"[dim]{label(lang, 'closest')}: {escape(rec['disease_name'])} {pct} "
            f"{label(lang, 'not an answer')}[/dim]"
        )
        out.print(Panel(lines, title=escape(rec["path"]), title_align="left", expand=False))
        _print_quality_hint(rec, lang)
        out.print(f"[dim]{escape(footer)}[/dim]")
        return
    body.add_row(label(lang, "condition"), f"[bold]{escape(rec['disease_name'])}[/bold]  {pct} {sure}")
    if len(rec.get("prediction_set") or []) > 1:
        named = {**(names or {}), **{a["label"]: a["disease_name"] for a in rec["top_k"]}}
        body.add_row(label(lang, "set"), ", ".join(escape(named.get(k, k)) for k in rec["prediction_set"]))
    alts = ", ".join(f"{escape(a['disease_name'])} {a['probability'] * 100:.1f}%" for a in rec["top_k"][1:])
    if alts:
        body.add_row(label(lang, "alternatives"), alts)
    body.add_row(label(lang, "about"), escape(rec["description"] or ""))
    if rec.get("advice"):
        urgency = rec.get("urgency") or "routine"
        text = URGENCY_TEXT.get(lang, URGENCY_TEXT["en"]).get(urgency, urgency)
        body.add_row(
            label(lang, "what to do"), f"[{URGENCY_STYLE.get(urgency, '')}]{escape(text)}[/] — {escape(rec['advice'])}"
        )
    out.print(Panel(body, title=escape(rec["path"]), title_align="left", expand=False))
    _print_quality_hint(rec, lang)
    out.print(f"[dim]{escape(footer)}[/dim]")


def _print_quality_hint(rec: dict, lang: str) -> None:
    """One yellow line under the answer when the photo is dark, blurred, small or compressed."""
    from rich.markup import escape

    from skinfood_cli.data.quality import quality_hint

    hint = quality_hint(rec.get("quality") or [], lang)
    if hint:
        console().print(f"[yellow]{escape(hint)}[/yellow]")


def print_prediction_table(records: list[dict], footer: str) -> None:
    """A compact table for many images, with a summary line."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_edge=False, header_style="bold")
    table.add_column("image", overflow="fold")
    table.add_column("condition")
    table.add_column("confidence", justify="right")
    table.add_column("next best")
    for rec in records:
        if rec["error"]:
            table.add_row(escape(rec["path"]), f"[red]error: {escape(rec['error'])}[/red]", "", "")
            continue
        conf = f"{rec['confidence'] * 100:.1f}%" + (" [yellow]?[/yellow]" if rec["uncertain"] else "")
        nxt = rec["top_k"][1] if len(rec["top_k"]) > 1 else None
        if rec.get("in_scope") is False:
            table.add_row(
                escape(rec["path"]),
                f"[yellow]{escape(rec['description'] or '')}[/yellow]",
                "",
                f"[dim]{escape(rec['disease_name'])}?[/dim]",
            )
            continue
        table.add_row(
            escape(rec["path"]),
            escape(rec["disease_name"]),
            conf,
            f"{escape(nxt['disease_name'])} {nxt['probability'] * 100:.0f}%" if nxt else "",
        )
    out = console()
    out.print(table)
    failed = sum(1 for r in records if r["error"])
    outside = sum(1 for r in records if not r["error"] and r.get("in_scope") is False)
    uncertain = sum(1 for r in records if not r["error"] and r["uncertain"] and r.get("in_scope") is not False)
    out.print(
        f"{len(records)} image(s): {len(records) - failed} classified"
        f"{f', {outside} out of scope' if outside else ''}"
        f"{f', {uncertain} uncertain (?)' if uncertain else ''}"
        f"{f', [red]{failed} failed[/red]' if failed else ''}"
    )
    out.print(f"[dim]{escape(footer)}[/dim]")


def print_explanation(rec: dict, book, lang: str, note_text: str) -> None:
    """Top-k, the full description and where the picture went, for one explained image."""
    from rich.markup import escape

    out = console()
    if rec["error"]:
        out.print(f"[red]{escape(rec['path'])}: {escape(rec['error'])}[/red]")
        return
    sure = f" [yellow]{label(lang, 'not sure')}[/yellow]" if rec["uncertain"] else ""
    out.print(f"[bold]{escape(rec['path'])}[/bold]")
    if rec.get("in_scope") is False:
        out.print(f"[bold yellow]{escape(rec['description'] or '')}[/bold yellow]")
        out.print(
            f"  [dim]{label(lang, 'closest')}: {escape(rec['disease_name'])} "
            f"{rec['confidence'] * 100:.1f}% {label(lang, 'not an answer')}[/dim]"
        )
        out.print(f"\n{label(lang, 'heatmap')}: {escape(rec['heatmap'])}")
        out.print(f"[dim]{escape(note_text)}[/dim]\n")
        return
    for i, alt in enumerate(rec["top_k"]):
        out.print(f"  {i + 1}. {escape(alt['disease_name'])}  {alt['probability'] * 100:.1f}%{sure if i == 0 else ''}")
    entry = book.get(rec["label"], lang) if book is not None else None
    if entry:
        out.print(f"\n[bold]{escape(entry.name)}[/bold]: {escape(entry.summary)}")
        for title, items in (
            ("signs", entry.signs),
            ("look-alikes", entry.look_alikes),
            ("self-care", entry.self_care),
        ):
            if items:
                out.print(f"  [bold]{label(lang, title)}:[/bold] {escape('; '.join(items))}")
        urgency = URGENCY_TEXT.get(lang, URGENCY_TEXT["en"]).get(entry.urgency, entry.urgency)
        out.print(
            f"  [bold]{label(lang, 'when to see a doctor')}[/bold] [{URGENCY_STYLE.get(entry.urgency, '')}]"
            f"({escape(urgency)})[/]: {escape(entry.see_a_doctor)}"
        )
    else:
        out.print(f"\n{escape(rec['description'] or '')}")
    explained = rec.get("explained_label")
    if explained and explained != rec["label"]:
        out.print(f"\n[bold]{label(lang, 'heatmap for')}: {escape(explained)}[/bold] (--class)")
    out.print(f"\n{label(lang, 'heatmap')}: {escape(rec['heatmap'])}")
    out.print(f"[dim]{escape(note_text)}[/dim]\n")


def print_export(result) -> None:
    """What `skinfood export` wrote and how it compared with PyTorch."""
    from rich.markup import escape

    out = console()
    for r in (result.fp32, result):
        if r is None:
            continue
        v = r.verification
        mark = "[green]verified[/green]" if v.passed else "[bold red]FAILED verification[/bold red]"
        out.print(f"[bold]{escape(str(r.path))}[/bold]  {r.precision}, {r.size_bytes / 1e6:.1f} MB")
        out.print(
            f"  {mark} against PyTorch fp32 on {v.images} {v.source}: max |Δp| {v.max_abs_diff:.1e}, "
            f"top-1 agreement {v.agreement_text()} (needs {v.criterion})"
        )
        out.print(f"  sha256 {r.sha256}")
        if r.sidecar:
            out.print(f"  metadata: {escape(str(r.sidecar))}")
    if result.fp32 is not None:
        out.print(f"int8 is {result.fp32.size_bytes / max(result.size_bytes, 1):.1f}x smaller than fp32")
    if result.verification.passed and (result.fp32 is None or result.fp32.verification.passed):
        out.print(
            f"[dim]took {result.seconds:.0f} s. Try it: skinfood predict PHOTO --model {escape(str(result.path))}[/dim]"
        )
