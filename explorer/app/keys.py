"""Keyboard shortcuts for the whole page, and the cookie that recognises the browser.

Panel binds no keys to a page, so a small JavaScript component listens on the document and
sends the action's name to the server, which runs the session's method. While the user types
in a text field only Ctrl+Enter (Generate) acts; the field is blurred first so that the text
typed reaches the server before the request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import param
from panel.custom import JSComponent

from explorer.app.persist import COOKIE

# action -> (keys, what it does): the page's help lists them from here
SHORTCUTS = {
    "generate": ("Ctrl+Enter", "generate the response (also while typing the prompt)"),
    "pin": ("P", "pin this mix"),
    "undo": ("Ctrl+Z", "undo the last mix change"),
    "redo": ("Ctrl+Y or Ctrl+Shift+Z", "redo it"),
    "next": ("]", "next grid point to the right on the frontier"),
    "previous": ("[", "previous grid point to the left"),
}


def shortcuts_help() -> str:
    """The shortcuts as one line of HTML for the how-to."""
    keys = " · ".join(f"<kbd>{keys}</kbd> {what}" for keys, what in SHORTCUTS.values())
    return f'<div class="shortcuts-help"><small><b>Keys:</b> {keys}</small></div>'


class Shortcuts(JSComponent):
    """Invisible: sets the browser's cookie and sends key presses as actions to ``actions``."""

    browser_id = param.String(default="", doc="the id to keep in the browser's cookie ('' : none)")
    cookie = param.String(default=COOKIE, constant=True)

    _esm = """
    export function render({ model }) {
      if (model.browser_id) {
        document.cookie = `${model.cookie}=${model.browser_id}; path=/; max-age=31536000; SameSite=Strict`
      }
      const editable = (el) => el && (el.isContentEditable || ['TEXTAREA', 'INPUT', 'SELECT'].includes(el.tagName))
      const handler = (event) => {
        if (event.defaultPrevented || event.isComposing) return
        const target = event.composedPath()[0]  // the element itself, inside Bokeh's shadow roots
        const mod = event.ctrlKey || event.metaKey
        const key = event.key.length === 1 ? event.key.toLowerCase() : event.key
        let action = null
        if (mod && key === 'Enter') action = 'generate'
        else if (editable(target) || event.altKey) return
        else if (mod && key === 'z') action = event.shiftKey ? 'redo' : 'undo'
        else if (mod && key === 'y') action = 'redo'
        else if (mod) return
        else if (key === 'p') action = 'pin'
        else if (key === ']') action = 'next'
        else if (key === '[') action = 'previous'
        if (action === null) return
        event.preventDefault()
        if (editable(target)) target.blur()  // its text reaches the server before the action
        model.send_msg(action)
      }
      if (window._pseShortcuts) document.removeEventListener('keydown', window._pseShortcuts)
      window._pseShortcuts = handler
      document.addEventListener('keydown', handler)
      model.on('remove', () => document.removeEventListener('keydown', handler))
    }
    """

    def __init__(self, *, actions: Mapping[str, Callable[[], object]], **params):
        params.setdefault("height", 0)
        params.setdefault("width", 0)
        params.setdefault("margin", 0)
        super().__init__(**params)
        self._actions = dict(actions)

    def _handle_msg(self, data) -> None:
        action = self._actions.get(data) if isinstance(data, str) else None
        if action is not None:
            action()
