"""Headless Chromium settings for driving the app in a real browser (the screenshot script, the UI tests).

Debian's Chromium (``apt-get install -y chromium``); the flags keep it from reaching out to the
network at start, which a closed machine refuses many times over.
"""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("PSE_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
