"""The ``explorer`` command: ``commands.py`` holds the parser of every sub-command; each other module
here is one sub-command's options and handler (generate and info live in commands.py).

``explorer pick`` reads results files only, so ``main`` runs it without importing the other
sub-commands, which load torch and transformers (seconds, and not needed to choose a mix).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """The ``explorer`` entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["pick"]:
        from explorer.cli.pick import main as pick

        return pick(args[1:])
    from explorer.cli.commands import main as run

    return run(args)


__all__ = ["main"]
