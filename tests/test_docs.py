"""The README and docs/ stay true: links resolve, docs/usage.md names every option `--help` shows,
and the user docs say nothing about the developers' machine.

Cheap checks (no model, no torch): they fail when a page is renamed without its
links, or an option is added, renamed or removed without its documentation.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from skinfood_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "benchmarks" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    return {
        re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        for m in re.finditer(r"^#+ (.+)$", text, re.MULTILINE)
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_between_pages_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:: not checked offline
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in _anchors(dest)):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_the_readme_is_a_front_door_pointing_to_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 300
    assert "**skinfood is not a medical device.**" in readme
    assert "make demo" in readme and "make test" in readme
    for page in (ROOT / "docs").glob("*.md"):
        assert f"](docs/{page.name})" in readme, f"README.md has no line pointing to docs/{page.name}"


def _usage_sections() -> dict[str, str]:
    text = (ROOT / "docs" / "usage.md").read_text()
    return {
        m.group(1): m.group(2) for m in re.finditer(r"^### (.+?)\n(.*?)(?=^### |\Z)", text, re.DOTALL | re.MULTILINE)
    }


def _commands():
    root = typer.main.get_command(app)
    for name, command in root.commands.items():
        yield name, name, command
        for sub, subcommand in getattr(command, "commands", {}).items():
            yield name, f"{name} {sub}", subcommand


def test_usage_names_every_option_each_command_shows_in_help():
    sections = _usage_sections()
    missing = []
    for group, label, command in _commands():
        body = next((text for title, text in sections.items() if re.search(rf"\b{group}\b", title)), None)
        assert body is not None, f"docs/usage.md has no section for `skinfood {label}`"
        for param in command.params:
            names = [o for o in (*param.opts, *getattr(param, "secondary_opts", ())) if o.startswith("--")]
            if param.param_type_name != "option" or not names or "--help" in names:
                continue
            if not any(re.search(rf"`{re.escape(n)}\b", body) or f" {n}" in body for n in names):
                missing.append(f"skinfood {label} {names[0]}")
    assert not missing, f"options in --help but not in docs/usage.md: {missing}"


def test_usage_examples_use_only_options_that_exist():
    known = {}
    for _, label, command in _commands():
        known[label] = {o for p in command.params for o in (*p.opts, *getattr(p, "secondary_opts", ()))}
    unknown = []
    text = (ROOT / "docs" / "usage.md").read_text()
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        for line in block.splitlines():
            for m in re.finditer(r"\bskinfood ((?:diseases show)|\w+)([^|#]*)", line):
                label, args = m.group(1), m.group(2)
                if label not in known:
                    continue
                unknown += [
                    f"skinfood {label} {flag}"
                    for flag in re.findall(r"(?<![\w-])(--[\w-]+)", args)
                    if flag not in known[label]
                ]
    assert not unknown, f"docs/usage.md uses options that do not exist: {unknown}"


# Words that belong to how skinfood is developed, not to what a user does: a scratch path on a
# developer's machine, an issue number, "this machine" for the one the figures came from.
DEVELOPER_WORDS = re.compile(r"/tmp/|issue #|this machine", re.IGNORECASE)
USER_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]


@pytest.mark.parametrize("page", USER_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_docs_speak_to_users_not_about_the_developers_machine(page):
    found = [
        f"{page.name}:{number}: {line.strip()}"
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if DEVELOPER_WORDS.search(line)
    ]
    assert not found, "name the CPU and the command instead (see CONTRIBUTING.md):\n" + "\n".join(found)
