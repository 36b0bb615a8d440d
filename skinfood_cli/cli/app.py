"""The Typer app and what every command shares: error handling, options, helpers.

The commands live beside this module, one room each (train, run, catalog,
deploy, demo); `skinfood_cli.cli` imports them all, which registers them here.
"""

from __future__ import annotations

import functools
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from skinfood_cli import __version__
from skinfood_cli.cli.completion import complete_model
from skinfood_cli.cli.metavars import Command, Group
from skinfood_cli.descriptions import LANGUAGES
from skinfood_cli.errors import EXIT_INTERRUPTED, EXIT_SOME_FAILED, SkinfoodError, os_error_in

# --precision's choices and --device's forms come from the model core, their one source
# (model.py imports no torch until a device is resolved).
from skinfood_cli.model import DEVICES
from skinfood_cli.model import PrecisionChoice as Precision

app = typer.Typer(
    name="skinfood",
    help="Train, evaluate and run a skin-condition photo classifier on your own machine.\n\n"
    "Not a medical device: answers are hints to discuss with a doctor, never a diagnosis.",
    cls=Group,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
diseases_app = typer.Typer(
    cls=Group, help="The bundled disease descriptions (English and Korean).", invoke_without_command=True
)
app.add_typer(diseases_app, name="diseases")


def _debug_env() -> bool:
    return os.environ.get("SKINFOOD_DEBUG", "") not in ("", "0")


_debug = {"on": _debug_env()}


# The languages come from the descriptions module, their one source.
Lang = Enum("Lang", {code: code for code in LANGUAGES}, type=str)


class PredictFormat(str, Enum):
    human = "human"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"


class ExplainFormat(str, Enum):
    human = "human"
    json = "json"
    jsonl = "jsonl"


class TrainFormat(str, Enum):
    human = "human"
    json = "json"


class TableFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class ShowFormat(str, Enum):
    table = "table"
    json = "json"


class Split(str, Enum):
    test = "test"
    val = "val"
    train = "train"


def handle_errors(func):
    """At the CLI boundary: SkinfoodError -> one red line and its exit code;
    Ctrl-C -> 130; an OSError (or one behind another error) -> its reason; anything
    unexpected -> one line (the traceback with --debug)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from skinfood_cli.cli.output import error_line

        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except SkinfoodError as exc:
            if _debug["on"]:
                raise
            if not exc.silent:
                error_line(exc.message)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            if _debug["on"]:
                raise
            from skinfood_cli.training.distributed import is_main

            if is_main():  # under torchrun every rank gets the Ctrl-C; one line is enough
                error_line("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            # `skinfood predict ... | head`: the reader left; that's not our error.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except Exception as exc:
            if _debug["on"]:
                raise
            reason = os_error_in(exc)
            if reason is not None:  # a full disk, a read-only folder: the machine's state, said plainly
                where = f": {reason.filename}" if reason.filename else ""
                error_line(f"{reason.strerror or reason}{where}")
            else:
                error_line(f"internal error: {exc.__class__.__name__}: {exc} (run with --debug for the traceback)")
            raise typer.Exit(EXIT_SOME_FAILED) from None

    return wrapper


def command(*args, **kwargs):
    def register(func):
        return app.command(*args, cls=Command, **kwargs)(handle_errors(func))

    return register


def _version(value: bool):
    if value:
        typer.echo(f"skinfood {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
):
    _debug["on"] = debug or _debug_env()  # per invocation: an in-process caller may run several


# --- shared option helpers ------------------------------------------------------

ModelOpt = typer.Option(
    None,
    "--model",
    "-m",
    autocompletion=complete_model,
    help="Checkpoint file, run folder or run name (default: the most recently trained run).",
)
DeviceOpt = typer.Option(None, "--device", help=f"{DEVICES} (default: $SKINFOOD_DEVICE or auto).")
PrecisionOpt = typer.Option(
    Precision.auto,
    "--precision",
    help="auto: 16-bit on GPUs and on CPUs with bf16 in hardware (faster, near-identical answers), else fp32.",
)
LangOpt = typer.Option(None, "--lang", help="Language of names and descriptions (default: from the locale).")
DescriptionsOpt = typer.Option(None, "--descriptions", help="A YAML file that adds or overrides descriptions.")


def _book(descriptions: Optional[Path]):
    from skinfood_cli.descriptions import load_descriptions

    return load_descriptions(descriptions)


def _lang(lang: Optional[Lang]) -> str:
    from skinfood_cli.descriptions import default_language

    return lang.value if lang else default_language()


def _load_engine(model: Optional[str], device, precision, batch_size: int = 32, workers=None):
    from skinfood_cli.engine import Engine, load_model
    from skinfood_cli.sources import resolve_model

    loaded = load_model(resolve_model(model))
    engine = Engine(
        loaded, device=device, precision=precision.value if precision else None, batch_size=batch_size, workers=workers
    )
    return engine


def _warn_no_scope_check(engine) -> None:
    """Once per command, after its inputs checked out: an old model answers without a scope check."""
    if not engine.has_scope_check:
        from skinfood_cli.cli.output import warn
        from skinfood_cli.trust.scope import NO_SCOPE_CHECK

        warn(f"{engine.model.path.name}: {NO_SCOPE_CHECK}")


def _warn_missing_descriptions(classes, book) -> None:
    from skinfood_cli.cli.output import warn
    from skinfood_cli.prediction import missing_descriptions

    for name in missing_descriptions(classes, book):
        warn(
            f'no description for class {name!r}: records say "No description available." '
            "(add one with --descriptions FILE)"
        )


def main() -> None:
    """Console-script entry point."""
    app()
