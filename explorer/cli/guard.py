"""How every sub-command ends: its exit code, or a one-line message instead of a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from explorer.errors import SoupError


def run_guarded(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """``handler(args)``; a SoupError or a file-system refusal prints ``error: ...`` and gives 2."""
    try:
        return handler(args)
    except SoupError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file system refusal nothing above foresaw: a message, not a traceback
        if err.filename:
            hint = f" ({err.filename}): check the path, its permissions and free space"
        else:  # a socket or another resource: no path, nothing about disks
            hint = ": check the address, port and permissions it names"
        print(f"error: {err.strerror or err}{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
