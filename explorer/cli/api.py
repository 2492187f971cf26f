"""``explorer api``: the OpenAI-compatible endpoint alone (no app, no Panel), for evaluation harnesses.

explorer api                                     # the demo on http://127.0.0.1:8000/v1
explorer api --base ./base --adapter a=./a --adapter b=./b --port 8000

Requests carry their mix (``extra_body={"mix": {"a": 0.3, "b": 0.7}}`` with the ``openai``
client, or the model name ``soup:a=0.3,b=0.7``); concurrent requests are decoded together.
"""

from __future__ import annotations

import argparse
import asyncio

from explorer.api import make_api_app
from explorer.hosts import allowed_hosts
from explorer.launch import open_soup
from explorer.options import add_network_args, check_port_free, options_from_args
from explorer.scheduler import Scheduler


def add_api_args(p: argparse.ArgumentParser) -> None:
    add_network_args(p, port=8000)


def cmd_api(args: argparse.Namespace) -> int:
    options = options_from_args(args)
    hosts = allowed_hosts(args.address, args.port, args.allow_host)  # checked before the model loads
    check_port_free(args.address, args.port)
    scheduler = Scheduler(open_soup(options))
    app = make_api_app(scheduler, hosts)
    asyncio.run(_serve(app, args.address, args.port, scheduler))
    return 0


async def _serve(app, address: str, port: int, scheduler: Scheduler) -> None:
    app.listen(port, address=address)
    print(
        f"OpenAI-compatible API on http://{address}:{port}/v1 (adapters: {', '.join(scheduler.soup.names)})"
    )
    print("stop it with Ctrl+C", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        scheduler.close()
