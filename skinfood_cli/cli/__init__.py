"""The `skinfood` command line: parse options, call the core, print.

Imports nothing heavy at module level: torch and torchvision are loaded inside
the commands that need them, so `skinfood --help` answers at once.
"""

# Importing a command module registers its commands; `skinfood --help` lists
# them in this order, the order a new user meets them.
from skinfood_cli.cli import check  # noqa: F401, I001
from skinfood_cli.cli import train  # noqa: F401
from skinfood_cli.cli import run  # noqa: F401
from skinfood_cli.cli import catalog  # noqa: F401
from skinfood_cli.cli import deploy  # noqa: F401
from skinfood_cli.cli import share  # noqa: F401
from skinfood_cli.cli import demo  # noqa: F401
from skinfood_cli.cli.app import app, main

__all__ = ["app", "main"]
