"""The `topovae` command line: thin, it parses options and calls the library.

    topovae solve --list
    topovae solve --problem mbb --nelx 60 --nely 20 --volfrac 0.5 --filter sensitivity \\
        --rmin 2.4 --out mbb.png --json mbb.json

Bad input ends with one line ``Error: ...`` and exit code 2.
"""

from . import data, explore, solve, train, workflows  # noqa: F401  (registers the commands)
from ._common import InputError, main

__all__ = ["InputError", "main"]
