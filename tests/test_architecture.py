"""The house rules that keep skinfood changeable: no import cycles, small modules, a torch-free CLI layer."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "skinfood_cli"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Every skinfood_cli module -> the skinfood_cli modules it imports, at the top or inside functions."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # Imports under `if TYPE_CHECKING:` are for the type checker only: they never run.
        for block in [n for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]:
            block.body = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("skinfood_cli"):
                for alias in node.names:  # `from pkg import module` imports the module
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("skinfood_cli"))
        # A package's own __init__ importing its submodules is how re-exports work, not a cycle.
        graph[name] = {t for t in targets if t in modules and t != name and not name.startswith(t + ".")}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_cycle_among_skinfood_modules_even_through_function_level_imports():
    graph = _import_graph()
    # Package __init__ files re-export their submodules; a submodule importing its own
    # package's light names (e.g. training.config) is fine as long as the __init__ does
    # not import that submodule back, which the cycle search below would catch.
    assert _cycles(graph) == []


def test_the_cycle_check_can_fail():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_module_is_over_450_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_only_backends_compare_backend_names():
    outside = []
    for path in PACKAGE.rglob("*.py"):
        if "backends" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ('backend == "', 'backend != "', "== UINT8_NHWC", "input_kind"):
            if needle in text:
                outside.append(f"{path.relative_to(PACKAGE)}: {needle}")
    assert outside == []


def test_the_tests_have_one_conftest():
    # Test modules import helpers with `from conftest import ...`; a second conftest.py
    # anywhere under tests/ takes the name `conftest` first in some collection orders.
    tests = Path(__file__).resolve().parent
    assert [p.relative_to(tests).as_posix() for p in tests.rglob("conftest.py")] == ["conftest.py"]


def _imported_top_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
    return names


def test_typer_and_rich_are_imported_only_by_the_cli_layer():
    # The core returns data; printing and parsing are cli/'s, so the server and the
    # Python API never drag in a terminal library.
    outside = sorted(
        f"{p.relative_to(PACKAGE)}: {name}"
        for p in PACKAGE.rglob("*.py")
        if "cli" not in p.relative_to(PACKAGE).parts[:1]
        for name in _imported_top_names(p) & {"typer", "rich"}
    )
    assert outside == []
    assert not (PACKAGE / "output.py").exists()


def test_every_package_is_listed_for_the_wheel():
    # pyproject.toml lists the packages by hand (descriptions/ is mapped in from outside the
    # tree); a new subpackage missing there installs from a checkout but not from the wheel.
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    present = {_module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert present - listed == set()
