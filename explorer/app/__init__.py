"""The Panel layer: shared engine, per-session state, views and the app. Imports Panel."""

from __future__ import annotations

from explorer.app.engine import Engine
from explorer.app.main import Explorer, serve, shared_engine
from explorer.app.state import Session

__all__ = ["Engine", "Explorer", "Session", "serve", "shared_engine"]
