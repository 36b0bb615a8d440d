"""Rewrite the red-flags review table in docs/descriptions.md from the bundled descriptions.

    python tools/red_flags_table.py docs/descriptions.md

A test (tests/test_descriptions.py) fails when the committed table is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from skinfood_cli.descriptions import load_descriptions
from skinfood_cli.red_flags import review_table


def update_review_doc(path: str) -> None:
    """Rewrites the table between the red-flags markers of `path` from the bundled file."""
    book = load_descriptions(include_user=False)
    entries = [(k, book.get(k)) for k in book.keys()]
    table = review_table([(k, d.urgency, d.red_flags) for k, d in entries if d is not None])
    doc = Path(path)
    text = doc.read_text(encoding="utf-8")
    start, end = "<!-- red-flags:start -->\n", "<!-- red-flags:end -->"
    head, rest = text.split(start, 1)
    doc.write_text(head + start + table + end + rest.split(end, 1)[1], encoding="utf-8")


if __name__ == "__main__":
    update_review_doc(sys.argv[1])
