"""Every `--help` reads right: flags show no type, no Python type leaks, and a listed choice is taken.

The command tree is walked from the Typer app itself, so a new command or option is
checked without being named here. Choices are read from the rendered help (what a
person sees), then handed to the command's parser alone (`make_context` parses and
converts but runs nothing), so no command body, model or torch is involved.
"""

from __future__ import annotations

import re

import pytest
import typer

from skinfood_cli.cli import app

# A row of an options panel: `│ [*] --name [-n] [--no-name] <a|b|c>  help...`
CHOICE_ROW = re.compile(r"^│\s*\*?\s*(?P<option>--[\w-]+)[^<│]*<(?P<choices>[^<>\s|]+(?:\|[^<>\s|]+)+)>")


def _walk(command, path):
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


COMMANDS = dict(_walk(typer.main.get_command(app), ()))


def _help(cli, path) -> str:
    result = cli(*path, "--help")
    assert result.exit_code == 0, result.output
    return result.output


def _listed_choices(text: str) -> dict[str, list[str]]:
    """Option -> the choices its help row shows as <a|b|c>."""
    found = {}
    for line in text.splitlines():
        match = CHOICE_ROW.match(line)
        if match:
            found[match["option"]] = match["choices"].split("|")
    return found


def _required_inputs(command) -> list[str]:
    """Stand-ins for the command's required options and arguments, so parsing gets past them."""
    options, arguments = [], []
    for param in command.params:
        if not param.required:
            continue
        if param.param_type_name == "argument":
            arguments.append("x")
        else:
            options += [param.opts[0], "x"]
    return [*options, *arguments]


def _parse(path, args):
    """Parse `skinfood PATH ARGS` as the command would, without running it."""
    command = COMMANDS[path]
    return command.make_context(" ".join(("skinfood", *path)), [*args, *_required_inputs(command)])


def _param_of(path, option):
    return next(p for p in COMMANDS[path].params if option in p.opts)


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "skinfood")
def test_help_shows_no_bool_metavar_and_no_python_types(cli, path):
    text = _help(cli, path)
    assert "<bool>" not in text, text
    assert "list[" not in text, text
    assert "range>" not in text, text  # `<int range>`: the range is printed beside the type already


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "skinfood")
def test_every_listed_choice_is_one_the_parser_takes_and_others_are_refused(cli, path):
    listed = _listed_choices(_help(cli, path))
    for option, choices in listed.items():
        for choice in choices:
            try:
                _parse(path, [option, choice])
            except Exception as exc:  # click's UsageError family: which param, and why
                pytest.fail(f"skinfood {' '.join(path)} {option} {choice}: listed but refused: {exc}")
        with pytest.raises(typer.BadParameter) as refused:
            _parse(path, [option, "not-a-choice"])
        assert refused.value.exit_code == 2 and refused.value.param is _param_of(path, option), refused.value


def test_the_choice_check_sees_the_options_with_choices(cli):
    train = _listed_choices(_help(cli, ("train",)))
    assert {"--arch", "--augment", "--select", "--leaks", "--precision", "--format"} <= set(train)
    assert "resnet50" in train["--arch"] and set(train["--select"]) == {"last", "best"}
    assert set(_listed_choices(_help(cli, ("diseases", "show")))["--format"]) == {"table", "json"}


def test_explain_help_lists_exactly_the_formats_explain_takes(cli):
    from skinfood_cli.cli.app import PredictFormat, TableFormat, TrainFormat

    listed = _listed_choices(_help(cli, ("explain",)))["--format"]
    known = {f.value for enum in (PredictFormat, TableFormat, TrainFormat) for f in enum}
    taken = set()
    for fmt in sorted(known):
        try:
            _parse(("explain",), ["--format", fmt])
            taken.add(fmt)
        except Exception:
            pass
    assert sorted(listed) == sorted(taken) == ["human", "json", "jsonl"]


def test_flags_still_parse_as_flags():
    ctx = _parse(("predict",), ["--no-recursive"])
    assert ctx.params["recursive"] is False
    ctx = _parse(("train",), ["--quiet", "--arch", "EfficientNet-Lite0"])
    assert ctx.params["quiet"] is True and ctx.params["arch"].value == "efficientnet-lite0"
