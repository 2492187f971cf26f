"""``explorer serve``: start the app (the demo by default) on 127.0.0.1 and print its URL.

explorer serve                                   # the embedded demo
explorer serve --base ./base --adapter a=./a --adapter b=./b --objective positive --objective concise
panel serve explorer/app/main.py --args --base ./base --adapter a=./a --adapter b=./b
"""

from __future__ import annotations

import argparse

from explorer.options import add_serve_args, app_options_from_args, check_port_free

__all__ = ["add_serve_args", "cmd_serve"]


def cmd_serve(args: argparse.Namespace) -> int:
    options, app_options = app_options_from_args(args)  # checked before anything loads
    check_port_free(args.address, args.port)
    # The app is an optional extra (pip install 'pareto-soup-explorer[app]'): Panel is imported only
    # when the app is served, so the other commands work without it.
    from explorer.app import serve, shared_engine

    serve(
        shared_engine(options, app_options),
        port=args.port,
        address=args.address,
        show=args.show,
        allow_hosts=args.allow_host,
    )
    return 0
