"""How `--help` names what an option takes: nothing for a flag, `<a|b|c>` for a choice.

Typer 0.29 renders its own type column: `<bool>` beside every flag (even --help),
Python's `list[str]` / `list[Path]` for repeatable options and variadic arguments,
and `<int range>` beside the range it also prints. `Command` and `Group` (the
classes every skinfood command is built with) give each parameter a readable type
instead, so no single option has to set a metavar by hand:

    --quiet                      (a flag takes no value)
    --format    <table|json>     (the choices, refused by the parser otherwise)
    --ood       <path>           (repeatable: the help says so)
    --top-k     <int> [x>=1]
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, get_args

from typer.core import TyperCommand, TyperGroup


def readable_type(param: Any, ctx: Any) -> str | None:
    """What `param` takes, as `--help` should show it (None: nothing to show)."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if param.param_type_name == "option" and param.metavar is not None:
        return param.metavar  # one set by hand wins
    desc = getattr(param, "type_descriptor", None)
    if desc is None or desc.is_choice:
        return param.display_type(ctx)  # typer's `<a|b|c>` (or whatever an unknown param shows)
    if desc.is_list:
        (item,) = get_args(desc.annotation) or (str,)
        return f"<{_type_name(item)}>"  # one value per use; the help says "repeatable"
    if desc.is_ranged:
        return f"<{desc.ranged_type_name}>"  # typer prints the range beside it
    return param.display_type(ctx)


def _type_name(kind: Any) -> str:
    if isinstance(kind, type) and issubclass(kind, Path):
        return "path"
    return getattr(kind, "__name__", str(kind))


def _readable(params: list) -> list:
    for param in params:
        if hasattr(param, "display_type_rich"):  # what typer 0.29 renders the type column from
            param.display_type_rich = functools.partial(readable_type, param)
    return params


class Command(TyperCommand):
    """A Typer command whose `--help` shows readable parameter types."""

    def get_params(self, ctx):
        return _readable(super().get_params(ctx))


class Group(TyperGroup):
    """A Typer group whose `--help` shows readable parameter types."""

    def get_params(self, ctx):
        return _readable(super().get_params(ctx))
